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
            warnings.simplefilter("ignore", FutureWarning)  # jit is deprecated, still worth reading
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


def make_report(model: nn.Module, description: str, images: torch.Tensor, labels: torch.Tensor,
                variant: str, n_heatmap: int = 200, mask_images: int = 1000, mask_epochs: int = 10,
                seed: int = 0) -> FrequencyReport:
    """Run the four lenses; figures are matplotlib figures, numbers plain floats.
    The data variant goes into the report's header and each figure's caption
    (the chapter's figure titles), not into every panel."""
    import matplotlib.pyplot as plt
    from . import attribution, heatmap, masks
    from .plots import show_spectrum
    rep = FrequencyReport(description, variant)
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)

    curves = attribution.filtered_accuracy(model, images, labels)
    rep.numbers["clean accuracy"] = float(curves["high"][0])
    rep.numbers["low-pass accuracy, r=4"] = float(curves["low"][4])
    rep.numbers["high-pass accuracy, r=4"] = float(curves["high"][4])
    rep.numbers["area under low-pass curve"] = attribution.curve_area(curves["radius"], curves["low"])
    rep.numbers["area under high-pass curve"] = attribution.curve_area(curves["radius"], curves["high"])
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(curves["radius"], curves["low"], "o-", label="low-pass")
    ax.plot(curves["radius"], curves["high"], "s-", label="high-pass")
    ax.axhline(0.1, color="grey", ls=":", label="chance")
    ax.set(xlabel="radius r", ylabel="accuracy", title="Filtered-input accuracy")
    ax.legend()
    rep.figures["Accuracy on low-pass and high-pass filtered test images"] = fig

    attr = attribution.band_attribution(model, images).mean()
    profile = attribution.positive_normalise(attr["occlusion"])
    rep.numbers["attribution centroid (DCT band)"] = float(attribution.band_centroid(profile))
    rep.numbers["attribution share in bands >= 16"] = float(attribution.upper_share(profile))
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.bar(range(len(profile)), profile.numpy())
    ax.set(xlabel="DCT band k", ylabel="share of positive attribution",
           title="Occluded-frequency attribution")
    rep.figures["Occluded-frequency attribution per DCT band"] = fig

    heat = heatmap.fourier_heatmap(model, images[:n_heatmap], labels[:n_heatmap], seed=seed)
    rep.numbers["Fourier heat map: mean error"] = float(heat["error"].mean())
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = show_spectrum(ax, heat["error"], "Fourier heat map (error rate, eps=4)", log=False,
                       cmap="viridis")
    fig.colorbar(im, ax=ax)
    rep.figures["Error rate under each Fourier basis perturbation"] = fig

    bs = 50
    cfg = masks.MaskConfig(batch_size=bs, lr=masks.scaled_lr(bs), max_epochs=mask_epochs, seed=seed)
    res = masks.train_mask(model, images[:mask_images], labels[:mask_images], cfg, device=device)
    rep.numbers["mask: mean(M)"] = res.sparsity
    rep.numbers["mask: masked / unmasked accuracy"] = res.acc_masked / max(res.acc_unmasked, 1e-12)
    rep.numbers["mask: radial centroid"] = float(masks.radial_centroid(res.mask))
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = show_spectrum(ax, res.mask.reshape(-1, 32, 32).mean(0), "Fourier mask M (centred)",
                       log=False, cmap="viridis")
    fig.colorbar(im, ax=ax)
    rep.figures["Learned Fourier mask"] = fig
    return rep


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def write_html(rep: FrequencyReport, out: Path) -> Path:
    """One self-contained HTML page (figures embedded), written atomically."""
    rows = "\n".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in rep.numbers.items())
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
<b>Data:</b> {html.escape(rep.variant)}<br><b>Made:</b> {when} by <code>python -m freqlib report</code></p>
<h2>Numbers</h2><table>{rows}</table><h2>Figures</h2>{figs}</body></html>
"""
    atomic_write_text(out, page)
    return out
