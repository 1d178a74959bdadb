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
self-contained HTML page with the figures and numbers. Its settings per profile
(:func:`freqlib.report.report_settings`) are chapter 5's, so
``python -m freqlib report NAME --profile P`` reproduces the chapter's numbers for NAME at profile P.
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

from .errors import first_line
from .io import atomic_write_text
from .mask_training import DATASET_MASKS
from .verdicts import LEVEL, Estimate

__all__ = ["ReportError", "load_classifier", "FrequencyReport", "make_report", "write_html", "REPORT_SETTINGS",
           "report_settings", "profile_report", "compare_reports", "report_lines", "DEFINITIONS", "CAPTIONS",
           "LEAN_RULE", "LEAN_PANELS", "LEAN_NUMBERS", "LEAN_LEVEL", "family_wise", "lean_direction", "panel_reading",
           "overall_reading", "excess_centroid",
           "figure_title"]

EXPECTED = ("a freqlib zoo checkpoint (a dict with 'config' and 'state_dict'), a torch.export "
            "program (.pt2) or a TorchScript file, of a model taking (N, 3, 32, 32) images in [0, 1] "
            "and returning (N, 10) logits")
# How to make a file the report reads, in one line (error messages end with it).
EXPORT_HINT = ('export it with torch.export: torch.export.save(torch.export.export(model.eval(), '
               '(torch.rand(2, 3, 32, 32),), dynamic_shapes=({0: torch.export.Dim("batch")},)), "mine.pt2")')

# The report's settings per profile, read by both chapter 5 and ``python -m freqlib report``:
# analysed images (the first test images), heat-map images (the first of those), and chapter 3's
# dataset-mask settings (the mask learns on the last ``n_mask`` test images, never analysed ones).
REPORT_SETTINGS = {"smoke": dict(n_images=64, n_heatmap=8, **DATASET_MASKS["smoke"]),
                   "quick": dict(n_images=500, n_heatmap=100, **DATASET_MASKS["quick"]),
                   "paper": dict(n_images=10_000, n_heatmap=10_000, **DATASET_MASKS["paper"])}


# The four figures' captions (keys of FrequencyReport.figures and .figure_data).
CAPTIONS = {"filtered": "Accuracy on low-pass and high-pass filtered test images",
            "attribution": "Occluded-frequency attribution per DCT band",
            "heatmap": "Error rate under each Fourier basis perturbation",
            "mask": "Learned Fourier mask"}

# What each row of the report measures: the chapter's definitions table and the HTML page's
# fourth column both read this one dict ("r" names the filters' radius the rows use).
_REL = ("divided by the clean accuracy (max-rescaled) of the same model, so that a gap in clean accuracy "
        "between two models does not read as a difference in frequency use")
DEFINITIONS = {
    "r": "the filter's radius: a disk of radius r cycles per image around frequency 0 of the centred spectrum",
    "clean accuracy (max-rescaled)": "accuracy on the unfiltered analysed images, each divided by its maximum "
                                     "as the filtered images are (the high-pass curve at r = 0)",
    "low-pass accuracy, r=4": "accuracy on the images low-pass filtered to the disk r = 4 (max-rescaled)",
    "high-pass accuracy, r=4": "accuracy on the images minus their r = 4 low-pass (max-rescaled)",
    "area under low-pass curve": "mean low-pass accuracy over r = 0..16 (trapezoid area divided by 16)",
    "area under high-pass curve": "mean high-pass accuracy over r = 0..16 (trapezoid area divided by 16)",
    "low-pass accuracy / clean, r=4": f"low-pass accuracy at r = 4 {_REL}",
    "high-pass accuracy / clean, r=4": f"high-pass accuracy at r = 4 {_REL}",
    "area under low-pass curve / clean": f"area under the low-pass curve {_REL}",
    "area under high-pass curve / clean": f"area under the high-pass curve {_REL}",
    "attribution centroid (DCT band)": "mean DCT band k = max(u, v) (per-channel orthonormal DCT-II, k = 0..31) "
                                       "of the mean occluded-frequency attribution, weighted by its positive part",
    "attribution share in bands >= 16": "share of the positive attribution in DCT bands k >= 16",
    "Fourier heat map: mean error": "error rate under a Fourier basis perturbation, averaged over every frequency "
                                    "and the heat-map images",
    "Fourier heat map: clean error": "error rate on the same heat-map images unperturbed (not rescaled): the "
                                     "baseline of the two rows below",
    "Fourier heat map: excess error": "mean error minus clean error: the error the perturbations add",
    "Fourier heat map: excess-error radial centroid": "mean frequency radius (cycles per image, centred spectrum) "
                                                      "of the heat map, each frequency weighted by its error above "
                                                      "the clean error (0 where not above)",
    "mask: mean(M)": "mean mask value over frequencies and channels (1: the mask keeps everything)",
    "mask: masked / unmasked accuracy (mask-training images)": "accuracy through the mask over accuracy without "
                                                               "it, on the mask's training images (the keep rule's "
                                                               "number)",
    "mask: masked / unmasked accuracy (analysed images)": "the same ratio on the analysed images, which the "
                                                          "mask did not see when held out",
    "mask: radial centroid": "mean frequency radius (cycles per image) of the symmetrised mask, each frequency "
                             "weighted by M² (its energy)",
}


class ReportError(ValueError):
    """The model cannot be loaded or does not have CIFAR-10's input/output shape."""


class PixelSpaceModel(nn.Module):
    """A foreign classifier seen as freqlib's ``normalize`` + ``body``. Its normalisation is
    inside it, so freqlib's is the identity (mean 0, std 1): masks and filters act on [0, 1] pixels.

    ``fixed_mode``: the body is an exported program's module, which refuses ``train()`` and
    ``eval()`` (NotImplementedError in torch 2.x); it was exported in eval mode and stays so,
    and only the wrapper's own flag follows ``train``/``eval``.
    """

    def __init__(self, model: nn.Module, fixed_mode: bool = False):
        from .models import Normalize
        super().__init__()
        self.normalize = Normalize(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.body = model
        self.fixed_mode = fixed_mode

    def train(self, mode: bool = True):
        if not self.fixed_mode:
            return super().train(mode)
        self.training = mode
        self.normalize.train(mode)
        return self

    def forward(self, x):
        return self.body(x)


# A batch size nobody exports with: a model that runs only at the batch size it was
# traced with, or returns no (N, 10) logits, fails here with the cause named, not at the
# first evaluation batch (a .pt2 program fixed to one batch size is refused before this,
# by _fixed_batch).
PROBE = (5, 3, 32, 32)


def _check_shape(model: nn.Module, device: str, source: str) -> None:
    try:
        with torch.no_grad():
            out = model(torch.rand(*PROBE, device=device))
    except Exception as exc:
        raise ReportError(f"{source}: the model failed on a {PROBE} input "
                          f"({first_line(exc)}); expected {EXPECTED}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (PROBE[0], 10):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ReportError(f"{source}: the model returned {shape} for a {PROBE} input; "
                          f"expected ({PROBE[0]}, 10) logits ({EXPECTED})")


def _fixed_batch(program) -> int | None:
    """The batch size an exported program was fixed to (exported without a dynamic batch
    dimension), or None when its first input's batch dimension is symbolic."""
    user = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            shape = getattr(node.meta.get("val"), "shape", None)
            return shape[0] if shape and isinstance(shape[0], int) else None
    return None


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
        import logging
        quiet = logging.getLogger("torch.export")      # it logs a whole traceback before raising on a bad file
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise ReportError(f"cannot load {path} as a torch.export program ({first_line(exc)}); "
                              f"expected {EXPECTED}") from None
        finally:
            quiet.setLevel(level)
        fixed = _fixed_batch(program)
        if fixed is not None:
            raise ReportError(f"{path}: the program was exported for batches of exactly {fixed} images (no "
                              f"dynamic batch dimension), the report evaluates other batch sizes; export it again "
                              f'with dynamic_shapes=({{0: torch.export.Dim("batch")}},)') from None
        model = PixelSpaceModel(program.module(), fixed_mode=True).to(device)
        _check_shape(model, device, str(path))
        return model, f"exported model {path.name}"
    import warnings
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning):   # jit is deprecated, still worth reading
                warnings.simplefilter("ignore", category)
            model = torch.jit.load(str(path), map_location=device)
        model = PixelSpaceModel(model).to(device).eval()   # its Normalize buffers too
        _check_shape(model, device, str(path))
        return model, f"TorchScript model {path.name}"
    except ReportError:
        raise
    except Exception:
        pass  # not TorchScript: try a zoo checkpoint
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        import re
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if code:   # torch.save(model): the file holds the model's classes, which only pickle can rebuild
            raise ReportError(f"cannot load {path}: it holds pickled code ({code.group(1)}; a whole model saved "
                              "with torch.save?), and the report loads with weights_only=True, which refuses to "
                              f"run pickled code; {EXPORT_HINT}") from None
        raise ReportError(f"cannot load {path} ({first_line(exc)}). Expected {EXPECTED}.") from None
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise ReportError(f"{path} holds a bare state_dict ({len(ckpt)} tensors, weights only): the "
                          f"architecture is missing; {EXPORT_HINT}")
    if not (isinstance(ckpt, dict) and "config" in ckpt and "state_dict" in ckpt):
        raise ReportError(f"{path} holds a {type(ckpt).__name__} without 'config' and 'state_dict'; expected {EXPECTED}")
    cfg = ckpt["config"]
    try:
        model = build_model(cfg["arch"], cfg["widths"], stem=cfg.get("stem") or None)
        model.load_state_dict(ckpt["state_dict"])
    except Exception as exc:
        raise ReportError(f"{path}: the weights do not fit the architecture in its config "
                          f"({first_line(exc)})") from None
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
    figure_data: dict = field(default_factory=dict)  # caption -> the images that figure was made on
    mask: torch.Tensor | None = None                 # the learned mask (centred), for comparisons
    seed: int = 0                                    # the bootstrap's seed: same seed, paired replicates
    training_seed: int | None = None                 # the network's training seed (zoo models; else unknown)


def _curve_area(m, radius):
    r = radius.double()
    return torch.trapezoid(m, r.to(m.device, m.dtype), dim=-1) / float(r[-1] - r[0])


def excess_centroid(error: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Mean frequency radius of a centred heat map's excess error: ``error`` (..., H, W) error
    rates, ``clean`` (...) the clean error rates of the same images; each frequency weighted by
    its error above the clean error (0 where not above). nan where no frequency is above."""
    from .spectral import frequency_radius
    excess = (error.double() - clean.double()[..., None, None]).clamp(min=0)
    r = frequency_radius(*error.shape[-2:]).double().to(excess.device)
    total = excess.flatten(-2).sum(-1)
    return torch.where(total > 0, (excess * r).flatten(-2).sum(-1) / total.clamp(min=1e-300),
                       torch.full_like(total, float("nan")))


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
    from .evaluate import correct, model_device
    from .plots import show_spectrum
    from .verdicts import bootstrap
    rep = FrequencyReport(description, variant, seed=seed,
                          training_seed=(getattr(model, "record", None) or {}).get("seed"))
    device = next(model.parameters()).device
    images, labels = images.to(device), labels.to(device)
    boot = lambda stat, sample: bootstrap(stat, sample, n_boot=n_boot, seed=seed, device="cpu")

    curves = attribution.filtered_accuracy(model, images, labels)
    y = curves["labels"][:, None]
    hits = {"low": (curves["low_pred"] == y).float(), "high": (curves["high_pred"] == y).float()}
    rad = curves["radius"]
    stats = {"clean accuracy (max-rescaled)": lambda m: m["high"][:, 0],      # the high-pass at r = 0
             "low-pass accuracy, r=4": lambda m: m["low"][:, 4],
             "high-pass accuracy, r=4": lambda m: m["high"][:, 4],
             "area under low-pass curve": lambda m: _curve_area(m["low"], rad),
             "area under high-pass curve": lambda m: _curve_area(m["high"], rad)}
    for key, stat in stats.items():
        rep.intervals[key] = boot(stat, hits)
    # relative to the model's own clean accuracy (same rescaling, same resamples), so that two models'
    # gap in clean accuracy does not pass for a difference in frequency use
    if hits["high"][:, 0].any():
        for key in ("low-pass accuracy, r=4", "high-pass accuracy, r=4", "area under low-pass curve",
                    "area under high-pass curve"):
            rel = key.replace(", r=4", " / clean, r=4") if "r=4" in key else f"{key} / clean"
            rep.intervals[rel] = boot(lambda m, stat=stats[key]: stat(m) / m["high"][:, 0].clamp(min=1e-12), hits)
    else:
        rep.warnings["clean accuracy (max-rescaled)"] = "⚠ no analysed image right: no accuracy relative to it"
    rep.numbers.update({k: e.value for k, e in rep.intervals.items()})
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(curves["radius"], curves["low"], "o-", label="low-pass")
    ax.plot(curves["radius"], curves["high"], "s-", label="high-pass")
    ax.axhline(0.1, color="grey", ls=":", label="chance")
    # fixed axes and colour scales below: reports are read side by side
    ax.set(xlabel="filter radius r (cycles per image)", ylabel="accuracy", ylim=(0, 1.02),
           title="Filtered-input accuracy")
    ax.legend()
    rep.figures[CAPTIONS["filtered"]] = fig
    rep.figure_data[CAPTIONS["filtered"]] = f"all {len(images)} analysed images"

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
    rep.figures[CAPTIONS["attribution"]] = fig
    rep.figure_data[CAPTIONS["attribution"]] = f"all {len(images)} analysed images"

    n_heat = min(n_heatmap, len(images))
    heat = heatmap.fourier_heatmap(model, images[:n_heat], labels[:n_heat], seed=seed, per_image=True)
    rep.settings["Fourier heat map"] = (f"the first {n_heat} analysed images, each Fourier basis "
                                        f"image at L2 norm {heat['eps']:g} per channel with a random sign")
    # the baseline: each image's clean error as the heat map sees it (unperturbed, not rescaled), so that
    # the map's error splits into what the model gets wrong anyway and what the perturbations add
    clean_wrong = 1 - correct(model, images[:n_heat], labels[:n_heat])     # the one evaluation primitive
    per = {"e": heat["per_image"], "c": clean_wrong}
    mean_error = lambda m: m["e"].flatten(1).mean(1)
    for key, stat in (("Fourier heat map: mean error", mean_error),
                      ("Fourier heat map: clean error", lambda m: m["c"]),
                      ("Fourier heat map: excess error", lambda m: mean_error(m) - m["c"])):
        rep.intervals[key] = boot(stat, per)
        rep.numbers[key] = rep.intervals[key].value
    key = "Fourier heat map: excess-error radial centroid"
    if torch.isfinite(excess_centroid(heat["error"], torch.tensor(rep.numbers["Fourier heat map: clean error"]))):
        rep.intervals[key] = boot(lambda m: excess_centroid(m["e"], m["c"]), per)
        rep.numbers[key] = rep.intervals[key].value
    else:
        rep.warnings["Fourier heat map: excess error"] = "⚠ no frequency raises the error above the clean error: no centroid"
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    im = show_spectrum(ax, heat["error"], f"Fourier heat map (ε = {heat['eps']:g})\nclean error "
                       f"{rep.numbers['Fourier heat map: clean error']:.2f}", log=False, cmap="viridis")
    im.set_clim(0, 1)
    fig.colorbar(im, ax=ax, label="test error rate")
    rep.figures[CAPTIONS["heatmap"]] = fig
    rep.figure_data[CAPTIONS["heatmap"]] = f"the first {n_heat} analysed images"

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
    rep.mask = res.mask
    rep.numbers["mask: mean(M)"] = res.sparsity
    rep.numbers[ratio_key] = res.acc_masked / max(res.acc_unmasked, 1e-12)
    if not res.kept or rep.numbers[ratio_key] < cfg.keep_ratio:
        rep.warnings[ratio_key] = (f"⚠ mask not kept: no epoch from the second on reached the keep ratio "
                                   f"{cfg.keep_ratio}; the most accurate epoch's mask is used, at "
                                   f"{rep.numbers[ratio_key]:.4f}")
    hits_masked = {"masked": masks.mask_correct(model, images, labels, res.mask.to(model_device(model))).float(),
                   "unmasked": masks.mask_correct(model, images, labels, None).float()}
    held = "mask: masked / unmasked accuracy (analysed images)"
    rep.intervals[held] = boot(lambda m: m["masked"] / m["unmasked"].clamp(min=1e-9), hits_masked)
    rep.numbers[held] = rep.intervals[held].value
    # how far the keep carries over to images the mask did not see: flagged when the whole interval
    # is below the keep ratio (no ratio when nothing is right unmasked)
    if hits_masked["unmasked"].any() and rep.intervals[held].high < cfg.keep_ratio:
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
    rep.figures[CAPTIONS["mask"]] = fig
    rep.figure_data[CAPTIONS["mask"]] = f"learned on {rep.settings['mask training images']}"
    return rep


def report_settings(profile: str) -> dict:
    """The report's settings at ``profile`` (``REPORT_SETTINGS``, with the profile's
    ``n_boot``); in a dry run of ``paper``, paper's row at smoke's sizes, as a chapter's."""
    from .profiles import dry_sized, paper_dry, profile_settings
    if profile not in REPORT_SETTINGS:
        raise ValueError(f"profile={profile!r} is not one of {tuple(REPORT_SETTINGS)} (resolve 'auto' first)")
    row = (dry_sized(REPORT_SETTINGS["paper"], REPORT_SETTINGS["smoke"]) if profile == "paper" and paper_dry()
           else dict(REPORT_SETTINGS[profile]))
    return {**row, "n_boot": profile_settings(profile)["n_boot"]}


def profile_report(spec: str, ctx, n_images: int | None = None, loaded: tuple | None = None) -> FrequencyReport:
    """The report of ``spec`` (a zoo name or a file) at ``ctx``'s profile, device and seed, with
    :func:`freqlib.report.report_settings`: the first ``n_images`` (default: the profile's) test images as
    ``ctx.test_set`` (a chapter's context) gives them, the mask trained with chapter 3's
    settings on the last ``n_mask`` test images and cached under chapter 3's tag (a zoo model
    reads chapter 3's mask). Chapter 5 and ``python -m freqlib report`` both call this;
    ``loaded``: the (model, description) of ``spec`` if :func:`freqlib.report.load_classifier` has read it already."""
    from . import mask_training
    from .zoo import cifar10_tensors
    s = report_settings(ctx.profile)
    all_x, all_y, test_variant = cifar10_tensors("test", "cpu")
    n = min(n_images or s["n_images"], len(all_x) - s["n_mask"])      # never the mask's images
    x, y = ctx.test_set(n)
    first_mask = len(all_x) - s["n_mask"]
    model, description = loaded or load_classifier(spec, ctx.profile, ctx.device)
    rep = make_report(model, description, x, y, ctx.variant, n_heatmap=s["n_heatmap"], seed=ctx.seed,
                      mask_set=(all_x[first_mask:], all_y[first_mask:]),
                      mask_set_name=f"the last {s['n_mask']} test images, {first_mask}–{len(all_x) - 1}",
                      mask_cfg=mask_training.dataset_mask_config(s, ctx.seed),
                      mask_tag=mask_training.dataset_mask_tag(Path(spec).stem, ctx.profile, ctx.seed),
                      n_boot=s["n_boot"])
    rep.settings = {"analysed images": f"the first {n} test images", "profile": ctx.profile,
                    "bootstrap resamples": s["n_boot"], **rep.settings}
    # each figure's own images: the heat map uses the first of the analysed images, the mask was
    # learned on the last test images (drawn from the test set as loaded, whichever pixels ctx.test_set used)
    original = "head" in getattr(ctx, "test_sources", ()) and getattr(ctx, "head_n", 0) >= n
    pixels = "original CIFAR-10 test images" if original else f"test images of {test_variant}"
    n_heat = min(s["n_heatmap"], n)
    rep.figure_data = {CAPTIONS["filtered"]: f"analysed on {pixels} 0–{n - 1}",
                       CAPTIONS["attribution"]: f"analysed on {pixels} 0–{n - 1}",
                       CAPTIONS["heatmap"]: f"analysed on {pixels} 0–{n_heat - 1}",
                       CAPTIONS["mask"]: f"learned on test images {first_mask}–{len(all_x) - 1} of {test_variant}"}
    return rep


def figure_title(rep: FrequencyReport, caption: str, ctx) -> str:
    """``ctx.title`` (``freqlib.chapter.ChapterContext``) with that figure's own images
    (``rep.figure_data``) in place of the chapter's data label."""
    return ctx.title(caption, rep.figure_data.get(caption, rep.variant))


def _resolved(diff, null: float = 0.0, over: str = "") -> str:
    over = f" {over}" if over else ""
    return (f"resolved{over} (its interval excludes {null:g})" if diff.low > null or diff.high < null
            else f"not resolved{over} (its interval includes {null:g})")


def _training_seeds(reports: dict) -> str:
    """How many networks stand behind each model and which training seeds they are, from the reports."""
    seeds = {n: r.training_seed for n, r in reports.items()}
    if None not in seeds.values() and len(set(seeds.values())) == 1:
        which = f"training seed {next(iter(seeds.values()))} each"
    else:
        which = "training seed " + ", ".join(f"{'unknown' if v is None else v} for {n}" for n, v in seeds.items())
    return f"one trained network per model ({which}), so training seeds are not resampled"


def _mask_flags(reports: dict) -> str:
    """'; ⚠ NAME's mask is flagged (why)' for each report whose mask carries a warning."""
    out = ""
    for n, r in reports.items():
        why = [w.removeprefix("⚠ ").split(";")[0] for k, w in r.warnings.items() if k.startswith("mask")]
        if why:
            out += f"; ⚠ {n}'s mask is flagged ({'; '.join(why)})"
    return out


# How a model is read against the reference: each panel, then the four together.
# panel -> its numbers: (key, label, +1 where a larger value for the model means lower frequencies);
# the mask panel (ratio at equal support) is read in compare_reports
LEAN_PANELS = {
    "filtered accuracy": (("low-pass accuracy / clean, r=4", "low-pass accuracy at r = 4 / clean", +1),
                          ("area under low-pass curve / clean", "low-pass area / clean", +1),
                          ("high-pass accuracy / clean, r=4", "high-pass accuracy at r = 4 / clean", -1),
                          ("area under high-pass curve / clean", "high-pass area / clean", -1)),
    "attribution": (("attribution centroid (DCT band)", "attribution centroid", -1),
                    ("attribution share in bands >= 16", "share in bands >= 16", -1)),
    "heat map": (("Fourier heat map: excess-error radial centroid", "excess-error radial centroid", -1),),
}


# Any one of these numbers can decide the overall lean, so each is judged at the family-wise level
# (Bonferroni over them): with 8 numbers at 95% each, some would point somewhere by chance too often.
LEAN_NUMBERS = sum(len(v) for v in LEAN_PANELS.values()) + 1          # and the mask panel's one number
LEAN_LEVEL = 1 - (1 - LEVEL) / LEAN_NUMBERS
LEAN_RULE = ("each number of a panel is compared with the reference's by its paired difference (model − "
             "reference, resampled over the same images; the mask's ratio at equal support over its "
             f"frequencies), and counts only where that difference's {100 * LEAN_LEVEL:.1f}% interval excludes 0 "
             f"(1 for the ratio): a family-wise 95% level over the {LEAN_NUMBERS} numbers the overall reading can "
             "rest on (Bonferroni); a panel reads "
             "lower when at least one of its numbers points to lower frequencies and none to higher, higher "
             "likewise, mixed when its numbers point both ways, and no resolved difference when none counts. "
             "Overall, a model leans lower when at least one panel reads lower and none reads higher (higher "
             "likewise); when panels read both ways the panels disagree and no lean is claimed; mixed panels "
             "and panels without a resolved difference count neither way")


def family_wise(diff):
    """``diff`` with its interval at ``LEAN_LEVEL`` (from its bootstrap replicates; an estimate without
    replicates is returned as it is)."""
    if diff is None or diff.is_nan or diff.boot is None or diff.over == "exact":
        return diff
    return Estimate.from_boot(diff.value, diff.boot, over=diff.over, n=diff.n, level=LEAN_LEVEL)


def lean_direction(diff, sign: int, null: float = 0.0) -> str:
    """Where one paired difference points: ``"lower"``, ``"higher"``, ``"unresolved"`` (its interval
    holds ``null``) or ``"not readable"`` (no paired interval). ``sign`` +1: a value above ``null``
    means the model sits at lower frequencies than the reference."""
    if diff is None or diff.is_nan:
        return "not readable"
    if diff.low <= null <= diff.high:
        return "unresolved"
    return "lower" if sign * (diff.value - null) > 0 else "higher"


def panel_reading(directions) -> str:
    """A panel's reading from its numbers' directions (``LEAN_RULE``)."""
    directions = list(directions)
    lower, higher = "lower" in directions, "higher" in directions
    if lower and higher:
        return "mixed"
    if lower or higher:
        return "lower" if lower else "higher"
    if directions and all(d == "not readable" for d in directions):
        return "not readable"
    return "no resolved difference"


def overall_reading(panels: dict) -> str:
    """The four panels' readings together (``LEAN_RULE``): ``"lower"``, ``"higher"``,
    ``"panels disagree"`` or ``"no resolved lean"``."""
    readings = set(panels.values())
    if {"lower", "higher"} <= readings:
        return "panels disagree"
    if readings & {"lower", "higher"}:
        return "lower" if "lower" in readings else "higher"
    return "no resolved lean"


def _paired(model_est, ref_est):
    """model − reference over the same resamples, or None where the two cannot be paired."""
    from .synthesis import paired_difference
    if model_est is None or ref_est is None or model_est.is_nan or ref_est.is_nan:
        return None
    try:
        return paired_difference(model_est, ref_est)
    except ValueError:                       # replicates dropped (nan) on one side: no longer paired
        return None


def _panel_sentence(panel: str, model: str, ref: str, parts: list, note: str = "") -> tuple[str, str]:
    """(reading, sentence) of one panel from its (label, difference or None, direction) parts."""
    reading = panel_reading(d for _, _, d in parts)
    shown = "; ".join(f"{label} not readable (missing for one model, or not paired)" if diff is None
                      else f"{label} {diff.fmt(digits=3)} ({direction})" for label, diff, direction in parts)
    verdict = {"lower": f"{model} leaning lower than {ref}", "higher": f"{model} leaning higher than {ref}",
               "mixed": f"mixed: {model}'s numbers point both ways",
               "no resolved difference": f"no resolved difference from {ref}",
               "not readable": "not readable (no paired interval)"}[reading]
    return reading, (f"{panel.capitalize()} ({model} − {ref}{note}; {100 * LEAN_LEVEL:.1f}% intervals): {shown}; "
                     f"this panel reads {verdict}")


def compare_reports(reports: dict) -> dict:
    """Sentences comparing the first two reports (made on the same images with one seed, so
    their intervals are paired; none for fewer than two), the first being the reference:
    ``"attribution"`` (the DCT-band centroids), ``"mask"`` (the masks' radial centroids),
    ``"mask_equal_support"``: the sparser mask's centroid over that of the other mask cut to as
    many frequencies (:func:`freqlib.mask_geometry.centroid_ratio_equal_support`), because a
    sparser mask that keeps the low frequencies has a lower raw centroid by construction;
    ``"heatmap"``: mean, clean and excess error of the heat map; ``"lean_panels"`` (panel ->
    sentence), ``"lean_readings"`` (panel -> reading, ``"overall"`` too) and ``"lean_overall"``:
    on which side of the reference the second model leans, by ``LEAN_RULE``."""
    from . import mask_geometry, masks
    from .synthesis import paired_difference
    if len(reports) < 2:
        return {}
    (a, ra), (b, rb) = list(reports.items())[:2]
    out = {}
    for key, what in (("attribution centroid (DCT band)", "attribution centroid (DCT band)"),
                      ("mask: radial centroid", "mask's radial centroid (cycles per image)")):
        ea, eb = ra.intervals[key], rb.intervals[key]
        # the second model minus the reference, as the heat map and the lean readings put it
        diff = paired_difference(eb, ea)
        out[key] = (f"The {what} is {ea.fmt(digits=2)} for {a} and {eb.fmt(digits=2)} for {b}; the paired "
                    f"difference {b} − {a} is {diff.fmt(digits=2)} (95% interval; the reading above counts it "
                    f"at the family-wise level), {_resolved(diff)}")
    flags = _mask_flags({a: ra, b: rb})
    out["attribution"] = (out.pop("attribution centroid (DCT band)") + "; the interval is over the analysed test "
                          f"images, with {_training_seeds({a: ra, b: rb})}")
    out["mask"] = (out.pop("mask: radial centroid") + " over the mask's frequencies; one mask per network, so "
                   "neither training seeds nor mask training are resampled" + flags)

    # the heat map: its mean error holds each model's clean error; the excess is what perturbations add
    heat = {k: (ra.intervals.get(f"Fourier heat map: {k}"), rb.intervals.get(f"Fourier heat map: {k}"))
            for k in ("mean error", "clean error", "excess error")}
    if all(ea is not None and eb is not None for ea, eb in heat.values()):
        d = _paired(heat["excess error"][1], heat["excess error"][0])
        out["heatmap"] = (
            "On the heat map's images the error under a Fourier basis perturbation, averaged over all "
            f"frequencies, is {heat['mean error'][0].fmt(digits=3)} for {a} and {heat['mean error'][1].fmt(digits=3)} "
            f"for {b}; its baseline is each model's clean error on the same images (unperturbed, not rescaled), "
            f"{heat['clean error'][0].fmt(digits=3)} for {a} and {heat['clean error'][1].fmt(digits=3)} for {b}, so "
            f"the excess error (mean minus clean error) is {heat['excess error'][0].fmt(digits=3)} for {a} and "
            f"{heat['excess error'][1].fmt(digits=3)} for {b}; the paired difference {b} − {a} is "
            + ("not readable" if d is None else f"{d.fmt(digits=3)}, {_resolved(d)}"))
        # the number the heat-map panel reads: where in frequency the excess error sits
        key = "Fourier heat map: excess-error radial centroid"
        ca, cb = ra.intervals.get(key), rb.intervals.get(key)
        dc = None if ca is None or cb is None else _paired(cb, ca)
        if dc is not None:
            out["heatmap"] += (f". The excess error's radial centroid, the number the heat-map panel reads, is "
                               f"{ca.fmt(digits=2)} for {a} and {cb.fmt(digits=2)} for {b}; the paired difference "
                               f"{b} − {a} is {dc.fmt(digits=2)} (95% interval; the reading above counts it at the "
                               f"family-wise level), {_resolved(dc)}")

    # the mask panel's number, oriented model (b) against reference (a)
    mean = {a: ra.numbers["mask: mean(M)"], b: rb.numbers["mask: mean(M)"]}
    mask_part = None
    if ra.mask is None or rb.mask is None:
        out["mask_equal_support"] = (
            f"The raw difference includes the masks' sparsity (mean(M) {mean[a]:.3f} for {a}, {mean[b]:.3f} for "
            f"{b}): a sparser mask that keeps the low frequencies has a lower centroid by construction" + flags)
    else:
        kept = {a: masks.kept_frequencies(ra.mask), b: masks.kept_frequencies(rb.mask)}
        total = ra.mask[0].numel()
        if kept[a] == kept[b]:
            out["mask_equal_support"] = (
                f"Both masks keep {kept[a]} of {total} frequencies (mean(M) {mean[a]:.3f} for {a}, {mean[b]:.3f} "
                f"for {b}), so their centroids are already compared at equal support" + flags)
            d = _paired(rb.intervals["mask: radial centroid"], ra.intervals["mask: radial centroid"])
            d = family_wise(d)
            mask_part = ("mask radial centroid (equal support)", d, lean_direction(d, -1))
        else:
            (sparse, rs), (dense, rd) = sorted(((a, ra), (b, rb)), key=lambda item: kept[item[0]])
            n_boot = len(ra.intervals["mask: radial centroid"].boot)   # as many, same seed: paired with the centroids
            ratio = mask_geometry.centroid_ratio_equal_support(rs.mask, rd.mask, n_boot, ra.seed)
            if ratio.low <= 1 <= ratio.high:
                reading = ("the two do not differ resolvably, so the raw difference is consistent with their "
                           "sparsity alone")
            elif ratio.high < 1:
                reading = (f"{sparse}'s mask sits at lower frequencies than {dense}'s largest values at the same "
                           "support, beyond its sparsity")
            else:
                reading = (f"{sparse}'s mask sits at higher frequencies than {dense}'s largest values at the same "
                           "support")
            over_mask = "over the mask's frequencies"
            out["mask_equal_support"] = (
                f"The raw difference includes the masks' sparsity ({a} keeps {kept[a]} of {total} frequencies, "
                f"mean(M) {mean[a]:.3f}; {b} keeps {kept[b]}, mean(M) {mean[b]:.3f}): a sparser mask that keeps the "
                f"low frequencies has a lower centroid by construction. At equal support, {sparse}'s centroid over "
                f"that of {dense}'s mask cut to its {kept[sparse]} frequencies is {ratio.fmt(digits=2)}, "
                f"{_resolved(ratio, 1.0, over=over_mask)} (one mask per network; training noise not covered): "
                f"{reading}" + flags)
            # below 1: the sparser sits lower; the model leans lower when it is the sparser one
            ratio = family_wise(ratio)
            mask_part = (f"{sparse}'s centroid / {dense}'s at equal support", ratio,
                         lean_direction(ratio, -1 if sparse == b else +1, null=1.0))

    panels, readings = {}, {}
    for panel, numbers in LEAN_PANELS.items():
        parts = []
        for key, label, sign in numbers:
            d = family_wise(_paired(rb.intervals.get(key), ra.intervals.get(key)))
            parts.append((label, d, lean_direction(d, sign)))
        note = ""
        if panel == "filtered accuracy" and "clean accuracy (max-rescaled)" in ra.numbers:
            note = (f"; each accuracy over the model's clean accuracy (max-rescaled), {ra.numbers['clean accuracy (max-rescaled)']:.3f} "
                    f"for {a} and {rb.numbers['clean accuracy (max-rescaled)']:.3f} for {b}")
        readings[panel], panels[panel] = _panel_sentence(panel, b, a, parts, note)
    if mask_part is None:
        readings["mask"], panels["mask"] = "not readable", "Mask: not readable (no masks to compare)"
    else:
        readings["mask"], panels["mask"] = _panel_sentence("mask", b, a, [mask_part])
        panels["mask"] += flags
    overall = overall_reading(readings)
    named = lambda r: ", ".join(p for p, v in readings.items() if v == r) or "none"
    verdict = {"lower": f"{b} leans lower than {a}", "higher": f"{b} leans higher than {a}",
               "panels disagree": f"no lean is claimed for {b}: its panels disagree",
               "no resolved lean": f"{b} shows no resolved lean relative to {a}"}[overall]
    counted = overall in ("lower", "higher") and readings["mask"] == overall and flags
    out["lean_overall"] = (f"Overall, {verdict} (panels reading lower: {named('lower')}; higher: {named('higher')}; "
                           f"mixed: {named('mixed')}; no resolved difference: {named('no resolved difference')}"
                           + ("; not readable: " + named("not readable") if "not readable" in readings.values() else "")
                           + ")" + ("; the mask panel counted here carries a ⚠" if counted else ""))
    out["lean_panels"] = panels
    out["lean_readings"] = {**readings, "overall": overall}
    return out


def report_lines(rep: FrequencyReport) -> list[str]:
    """The numbers for a terminal, one per line: value, 95% interval where one is drawn, ⚠ warning."""
    lines = []
    for k, v in rep.numbers.items():
        e = rep.intervals.get(k)
        shown = e.fmt(digits=4) if e is not None else f"{v:.4f}"
        lines.append(f"  {k}: {shown}" + (f"  {rep.warnings[k]}" if k in rep.warnings else ""))
    return lines


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
                     f"<td>{html.escape(rep.warnings.get(k, ''))}</td><td>{html.escape(DEFINITIONS.get(k, ''))}</td>"
                     "</tr>" for k, v in rep.numbers.items())
    notes = "".join(f"<br><b>{html.escape(k)}:</b> {html.escape(str(v))}" for k, v in rep.settings.items())
    figs = "\n".join(f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,{_png(f)}">'
                     f"<figcaption>{html.escape(c)} — {html.escape(rep.figure_data.get(c, rep.variant))}</figcaption></figure>"
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
mask frequencies). The filters' radius r: {html.escape(DEFINITIONS["r"])}.</p><table>{rows}</table><h2>Figures</h2>{figs}</body></html>
"""
    atomic_write_text(out, page)
    return out
