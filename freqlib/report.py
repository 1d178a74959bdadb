"""A frequency report for any CIFAR-shaped classifier: ``python -m freqlib report MODEL``.

MODEL is either a zoo name (``standard``, ``linf_at``, ...) or a checkpoint file:

* a freqlib zoo checkpoint (``data/models/*.pt``: a dict with ``config`` and
  ``state_dict``), or
* an exported program (``.pt2``) saved with ``torch.export.save`` of a model
  exported with a dynamic batch dimension::

      batch = torch.export.Dim("batch", min=1, max=4096)
      prog = torch.export.export(model.eval(), (torch.rand(2, 3, 32, 32),),
                                 dynamic_shapes=({0: batch},))
      torch.export.save(prog, "mine.pt2")

* or a TorchScript file (``torch.jit.save``; deprecated by PyTorch but still read).

Either way the model takes float images of shape (N, 3, 32, 32) with values in
[0, 1] (normalisation inside the model) and returns (N, 10) logits.

The report runs four lenses on the first test images (filtered-input accuracy,
DCT band attribution, Fourier heat map, a Fourier mask) and writes one
self-contained HTML page with the figures and numbers.
"""
from __future__ import annotations

import base64
import datetime
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .io import atomic_write_text

__all__ = ["ReportError", "load_classifier", "FrequencyReport", "make_report", "write_html"]

EXPECTED = ("a freqlib zoo checkpoint (a dict with 'config' and 'state_dict'), a torch.export "
            "program (.pt2) or a TorchScript file, of a model taking (N, 3, 32, 32) images in [0, 1] "
            "and returning (N, 10) logits")


class ReportError(ValueError):
    """The model cannot be loaded or does not have CIFAR-10's input/output shape."""


class PixelSpaceModel(nn.Module):
    """A foreign classifier seen as freqlib's ``normalize`` + ``body`` (normalise = identity)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.normalize = nn.Identity()
        self.body = model

    def forward(self, x):
        return self.body(x)


# A batch size nobody exports with: a program exported without a dynamic batch
# dimension fails here, with the cause named, not at the first evaluation batch.
PROBE = (5, 3, 32, 32)


def _check_shape(model: nn.Module, device: str, source: str) -> None:
    try:
        with torch.no_grad():
            out = model(torch.rand(*PROBE, device=device))
    except Exception as exc:
        raise ReportError(f"{source}: the model failed on a {PROBE} input "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); expected {EXPECTED}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (PROBE[0], 10):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ReportError(f"{source}: the model returned {shape} for a {PROBE} input; "
                          f"expected ({PROBE[0]}, 10) logits ({EXPECTED})")


def load_classifier(spec: str, profile: str = "quick", device: str = "cpu") -> tuple[nn.Module, str]:
    """(model, description) for a zoo name or a checkpoint path; clear errors otherwise."""
    from .models import build_model
    from .profiles import RECIPES
    from .evaluate import prepare_model
    path = Path(spec)
    if spec in RECIPES and not path.exists():
        from .zoo import get_model
        model = get_model(spec, profile, device)
        return model, f"zoo model '{spec}' ({profile} profile, {model.record['variant']})"
    if not path.is_file():
        raise ReportError(f"{spec!r} is neither a zoo model ({', '.join(sorted(RECIPES))}) nor a file")
    if path.suffix == ".pt2":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ReportError(f"cannot load {path} as a torch.export program ({type(exc).__name__}); "
                              f"expected {EXPECTED}") from None
        model = PixelSpaceModel(program.module()).to(device)
        _check_shape(model, device, str(path))
        return model, f"exported model {path.name}"
    import warnings
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning):   # jit is deprecated, still worth reading
                warnings.simplefilter("ignore", category)
            model = torch.jit.load(str(path), map_location=device)
        model = PixelSpaceModel(model).eval()
        _check_shape(model, device, str(path))
        return model, f"TorchScript model {path.name}"
    except ReportError:
        raise
    except Exception:
        pass  # not TorchScript: try a zoo checkpoint
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise ReportError(f"cannot load {path}: {type(exc).__name__}. Expected {EXPECTED}.") from None
    if not (isinstance(ckpt, dict) and "config" in ckpt and "state_dict" in ckpt):
        raise ReportError(f"{path} holds a {type(ckpt).__name__} without 'config' and 'state_dict'; expected {EXPECTED}")
    cfg = ckpt["config"]
    try:
        model = build_model(cfg["arch"], cfg["widths"], stem=cfg.get("stem") or None)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise ReportError(f"{path}: the weights do not fit the architecture in its config "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    model = prepare_model(model, device).eval()
    _check_shape(model, device, str(path))
    return model, f"checkpoint {path.name} ({cfg['arch']}, {ckpt.get('variant', 'unknown data')})"


@dataclass
class FrequencyReport:
    title: str
    variant: str
    numbers: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)      # caption -> matplotlib figure
    intervals: dict = field(default_factory=dict)    # number -> Estimate (95% interval), where one is drawn
    warnings: dict = field(default_factory=dict)     # number -> "⚠ ..." a reader must see next to it
    settings: dict = field(default_factory=dict)     # how the numbers were made (images, mask training)


def _curve_area(m, radius):
    r = radius.double()
    return torch.trapezoid(m, r.to(m.device, m.dtype), dim=-1) / float(r[-1] - r[0])


def make_report(model: nn.Module, description: str, images: torch.Tensor, labels: torch.Tensor,
                variant: str, n_heatmap: int = 200, mask_images: int = 1000, mask_epochs: int = 10,
                seed: int = 0, mask_set: tuple | None = None, mask_set_name: str = "",
                mask_cfg=None, mask_tag: str | None = None, n_boot: int = 1000) -> FrequencyReport:
    """Run the four lenses; figures are matplotlib figures, numbers plain floats, with 95%
    bootstrap intervals (``intervals``) over the analysed images (the mask's centroid: over
    mask frequencies), one resampling seed so that two reports on the same images are paired.

    The mask is trained on ``mask_set`` = (images, labels), held out from ``images`` (name it
    in ``mask_set_name``); without one, on the first ``mask_images`` analysed images
    (in-sample, said in ``settings``). ``mask_cfg`` (a :class:`freqlib.mask_training.MaskConfig`)
    replaces the default (batch 50, ``mask_epochs`` epochs); with ``mask_tag`` the mask is
    cached (:func:`freqlib.mask_training.train_mask_cached`), so a chapter can read chapter 3's.
    A mask that never met the keep criterion is flagged in ``warnings``.
    The data variant goes into the report's header and each figure's caption
    (the chapter's figure titles), not into every panel."""
    import matplotlib.pyplot as plt
    from . import attribution, heatmap, mask_geometry, mask_training, masks
    from .evaluate import model_device
    from .plots import show_spectrum
    from .verdicts import bootstrap
    rep = FrequencyReport(description, variant)
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    boot = lambda stat, sample: bootstrap(stat, sample, n_boot=n_boot, seed=seed, device="cpu")

    curves = attribution.filtered_accuracy(model, images, labels)
    y = curves["labels"][:, None]
    hits = {"low": (curves["low_pred"] == y).float(), "high": (curves["high_pred"] == y).float()}
    rad = curves["radius"]
    rep.intervals["clean accuracy"] = boot(lambda m: m["high"][:, 0], hits)
    rep.intervals["low-pass accuracy, r=4"] = boot(lambda m: m["low"][:, 4], hits)
    rep.intervals["high-pass accuracy, r=4"] = boot(lambda m: m["high"][:, 4], hits)
    rep.intervals["area under low-pass curve"] = boot(lambda m: _curve_area(m["low"], rad), hits)
    rep.intervals["area under high-pass curve"] = boot(lambda m: _curve_area(m["high"], rad), hits)
    rep.numbers.update({k: e.value for k, e in rep.intervals.items()})
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(curves["radius"], curves["low"], "o-", label="low-pass")
    ax.plot(curves["radius"], curves["high"], "s-", label="high-pass")
    ax.axhline(0.1, color="grey", ls=":", label="chance")
    # fixed axes and colour scales below: reports are read side by side
    ax.set(xlabel="filter radius r (cycles per image)", ylabel="accuracy", ylim=(0, 1.02),
           title="Filtered-input accuracy")
    ax.legend()
    rep.figures["Accuracy on low-pass and high-pass filtered test images"] = fig

    band = attribution.band_attribution(model, images)
    profile = attribution.positive_normalise(band.mean()["occlusion"])
    occ = {"occ": band.occlusion.cpu()}
    for key, fn in (("attribution centroid (DCT band)", attribution.band_centroid),
                    ("attribution share in bands >= 16", attribution.upper_share)):
        rep.intervals[key] = boot(lambda m, fn=fn: fn(attribution.positive_normalise(m["occ"])), occ)
        rep.numbers[key] = rep.intervals[key].value
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.bar(range(len(profile)), profile.cpu().numpy())
    ax.set(xlabel="DCT band k", ylabel="share of positive attribution",
           title="Occluded-frequency attribution")
    rep.figures["Occluded-frequency attribution per DCT band"] = fig

    heat = heatmap.fourier_heatmap(model, images[:n_heatmap], labels[:n_heatmap], seed=seed, per_image=True)
    rep.settings["Fourier heat map"] = (f"the first {min(n_heatmap, len(images))} analysed images, each Fourier basis "
                                        f"image at L2 norm {heat['eps']:g} per channel with a random sign")
    key = "Fourier heat map: mean error"
    rep.intervals[key] = boot(lambda m: m["e"], {"e": heat["per_image"].flatten(1).mean(1)})
    rep.numbers[key] = rep.intervals[key].value
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = show_spectrum(ax, heat["error"], f"Fourier heat map (ε = {heat['eps']:g})", log=False,
                       cmap="viridis")
    im.set_clim(0, 1)
    fig.colorbar(im, ax=ax, label="test error rate")
    rep.figures["Error rate under each Fourier basis perturbation"] = fig

    if mask_set is None:
        mx, my = images[:mask_images], labels[:mask_images]
        rep.settings["mask training images"] = f"the first {len(mx)} analysed images (in-sample)"
    else:
        mx, my = mask_set
        rep.settings["mask training images"] = f"{len(mx)} held-out images" + (f" ({mask_set_name})"
                                                                                if mask_set_name else "")
    cfg = mask_cfg or mask_training.MaskConfig(batch_size=50, lr=mask_training.scaled_lr(50),
                                               max_epochs=mask_epochs, seed=seed)
    if mask_tag:
        res = mask_training.train_mask_cached(model, mx, my, cfg, mask_tag, device=device)
    else:
        res = mask_training.train_mask(model, mx.to(device), my.to(device), cfg, device=device)
    rep.settings["mask training"] = (f"batch {cfg.batch_size}, lr {cfg.lr:g}, at most {cfg.max_epochs} epochs, "
                                     f"keep ratio {cfg.keep_ratio}")
    ratio_key = "mask: masked / unmasked accuracy (mask-training images)"
    rep.numbers["mask: mean(M)"] = res.sparsity
    rep.numbers[ratio_key] = res.acc_masked / max(res.acc_unmasked, 1e-12)
    if not res.kept or rep.numbers[ratio_key] < cfg.keep_ratio:
        rep.warnings[ratio_key] = (f"⚠ mask not kept: no epoch from the second on reached the keep ratio "
                                   f"{cfg.keep_ratio}; the most accurate epoch's mask, at "
                                   f"{rep.numbers[ratio_key]:.4f}")
    correct = {"masked": masks.mask_correct(model, images, labels, res.mask.to(model_device(model))).float(),
               "unmasked": masks.mask_correct(model, images, labels, None).float()}
    held = "mask: masked / unmasked accuracy (analysed images)"
    rep.intervals[held] = boot(lambda m: m["masked"] / m["unmasked"].clamp(min=1e-9), correct)
    rep.numbers[held] = rep.intervals[held].value
    # how far the keep carries over to images the mask did not see: flagged when the whole interval
    # is below the keep ratio (no ratio when nothing is right unmasked)
    if correct["unmasked"].any() and rep.intervals[held].high < cfg.keep_ratio:
        where = "which the mask was not trained on" if mask_set is not None else "the mask's training images among them"
        rep.warnings[held] = (f"⚠ below the keep ratio {cfg.keep_ratio} on the analysed images ({where}), "
                              "the whole 95% interval")
    rep.intervals["mask: radial centroid"] = mask_geometry.bootstrap_centroid(res.mask, n_boot, seed)
    rep.numbers["mask: radial centroid"] = rep.intervals["mask: radial centroid"].value
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = show_spectrum(ax, res.mask.reshape(-1, 32, 32).mean(0), "Fourier mask M (centred)",
                       log=False, cmap="viridis")
    im.set_clim(0, 1)
    fig.colorbar(im, ax=ax, label="mask value (mean over channels)")
    rep.figures["Learned Fourier mask"] = fig
    return rep


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def write_html(rep: FrequencyReport, out: Path) -> Path:
    """One self-contained HTML page (figures embedded), written atomically."""
    def interval(k):
        e = rep.intervals.get(k)
        return "" if e is None or e.low == e.high else f"[{e.low:.4f}, {e.high:.4f}]"
    rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td><td>{interval(k)}</td>"
                     f"<td>{html.escape(rep.warnings.get(k, ''))}</td></tr>" for k, v in rep.numbers.items())
    notes = "".join(f"<br><b>{html.escape(k)}:</b> {html.escape(str(v))}" for k, v in rep.settings.items())
    figs = "\n".join(f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,{_png(f)}">'
                     f"<figcaption>{html.escape(c)} — {html.escape(rep.variant)}</figcaption></figure>"
                     for c, f in rep.figures.items())
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Frequency report: {html.escape(rep.title)}</title>
<style>body{{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.4}}
table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:.3rem .6rem}}
figure{{display:inline-block;margin:1rem;vertical-align:top}}img{{max-width:28rem}}</style></head>
<body><h1>Frequency report</h1><p><b>Model:</b> {html.escape(rep.title)}<br>
<b>Data:</b> {html.escape(rep.variant)}{notes}<br><b>Made:</b> {when} by <code>python -m freqlib report</code></p>
<h2>Numbers</h2><p>Intervals: 95% bootstrap over the analysed images (the mask's centroid: over
mask frequencies).</p><table>{rows}</table><h2>Figures</h2>{figs}</body></html>
"""
    atomic_write_text(out, page)
    return out
