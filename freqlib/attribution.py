"""Which frequencies a classifier uses: filtered-input accuracy and
occluded-frequency (OF) attribution over DCT bands (Paper A).

Conventions
-----------
* **Filtered inputs** (Wang, Wu, Huang, Xing, CVPR 2020; reference code
  HaohanWang/HFC; the disk convention of :mod:`freqlib.spectral`): the
  low-pass of radius ``r`` keeps the centred-DFT disk of distance ``< r``, the
  high-pass keeps the rest. No clipping to [0, 1].
* **Rescaling** (``rescale=``): ``"per_image_max"`` (the default) divides
  every low-pass and high-pass image by its own maximum before the model
  sees it; the clean image enters the criteria as the high-pass at r = 0
  (the image itself), so it is divided by its maximum too. This is the HFC
  code's convention for its *standard* models (scripts/resnet.py,
  ``train()``: the training images and the filtered train and test sets
  are each divided by their maximum; its clean validation batches are not).
  Its script for adversarially trained models (``trainMadry()``) feeds the
  filtered test sets without that division. We apply one convention to
  every model, so that models compared on the same images see the same
  transformation of them. A high-pass image has zero mean and small values,
  so the division stretches it several-fold; ``None`` feeds the filtered
  image as it is (our earlier convention). The model then normalises its
  input with the CIFAR-10 mean and std either way.
* **Bands**: orthonormal per-channel DCT-II, L-infinity band
  ``k = max(u, v)``, ``k = 0 .. 31`` for 32x32 images.
* **Occluded frequency** (Wang, Yang, Shrivastava, Rawal, Ding 2020):
  ``OF[k] = z_c(x) - z_c(x with band k zeroed)``, ``z_c`` the logit of the
  clean prediction ``c``. Positive: the band supports the prediction.
  The reference code (zifanw/frequency_explain) occludes bands 0..30 and
  feeds the un-normalised image; here every band 0..31 is occluded and the
  model normalises its [0, 1] input itself.
* **Keep-only**: ``KO[k] = z_c(only band k) - z_c(black image)``, the logit
  band ``k`` alone brings relative to an empty image. (The reference code
  reports ``z_c(x) - z_c(only band k)``, which differs from ``-KO[k]`` only
  by a per-image constant.)
* **Positive normalisation** of a per-model mean profile: clip at 0 and scale
  to sum 1. Its summaries are the attribution-weighted mean band (centroid)
  and the share in bands ``>= 16`` (the upper half of the DCT index range).
* **Band-shuffled null** (:func:`shuffle_bands`): each image's OF values
  assigned to the bands in a random order. It keeps every image's amount of
  attribution and its spread but has no band preference, so its
  positive-normalised upper share is 16/32 in expectation.

Everything works on whole (N, C, H, W) batches: the 2 x 32 band-edited
copies of a chunk of images come from one DCT, and the model sees them in
large batches. Per-image results come back so that every summary can carry
a bootstrap interval over images (:mod:`freqlib.verdicts`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import spectral
from .evaluate import eval_batch_size, logits, model_device

__all__ = [
    "filtered_accuracy", "RESCALE", "rescale_images", "chance_agreement", "curve_area", "crossing_radius",
    "BandAttribution", "band_components", "band_attribution", "positive_normalise", "band_centroid", "upper_share",
    "shuffle_bands", "band_magnitude", "band_profile", "band_energy_share", "upper_energy", "UPPER_BAND",
    "attribution_summary", "plot_filtered_curves", "plot_band_profiles",
]

UPPER_BAND = 16      # bands >= 16 are "high" (the upper half of the DCT index range of 32x32)
RESCALE = ("per_image_max", None)


def _check_images(images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be a (N, C, H, W) batch, got shape {tuple(images.shape)}")
    if labels is not None and labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")


# ------------------------------------------------------- filtered accuracy
def rescale_images(x: torch.Tensor, rescale: str | None = "per_image_max") -> torch.Tensor:
    """``x`` as the model sees it under a filtered-input convention (see the module notes).

    ``"per_image_max"`` divides each image by its own maximum over channels and
    pixels (the HFC code's convention for the filtered images of its standard
    models); an image whose maximum is not positive (the all-zero low-pass at
    r = 0) is left as it is. ``None`` returns ``x``.
    """
    if rescale not in RESCALE:
        raise ValueError(f"rescale={rescale!r} is not one of {RESCALE}")
    if rescale is None:
        return x
    top = x.amax(dim=tuple(range(1, x.dim())), keepdim=True)
    return torch.where(top > 0, x / top.clamp(min=1e-12), x)


@torch.no_grad()
def filtered_accuracy(model, images: torch.Tensor, labels: torch.Tensor, radii=range(17),
                      rescale: str | None = "per_image_max", batch_size: int | None = None,
                      chunk: int | None = None) -> dict:
    """Accuracy on low-pass and high-pass versions of ``images`` for every radius.

    Returns ``{"radius": (R,), "low": (R,), "high": (R,), "low_pred": (N, R),
    "high_pred": (N, R), "labels": (N,), "rescale": rescale}`` on the CPU:
    accuracies and every image's predicted class, so that intervals over
    images can be drawn. Each chunk of images is transformed once (one real
    FFT) into all 2R filtered copies, rescaled per ``rescale`` (the same for
    every model: see the module notes) and evaluated in batches of
    ``batch_size``. The clean images are not evaluated separately: the
    high-pass at radius 0 is the image itself, under the same rescaling.
    """
    _check_images(images, labels)
    if rescale not in RESCALE:
        raise ValueError(f"rescale={rescale!r} is not one of {RESCALE}")
    radii = torch.as_tensor(list(radii), dtype=torch.float32)
    device = model_device(model)
    batch_size = batch_size or eval_batch_size(device)
    n_r = len(radii)
    chunk = chunk or max(1, (8 * batch_size) // (2 * n_r))
    preds = []
    for s in range(0, images.shape[0], chunk):
        x = images[s:s + chunk].to(device)
        low = spectral.low_pass_stack(x, radii.tolist())                    # (R, n, C, H, W), one rFFT
        high = x[None] - low
        both = rescale_images(torch.cat([low, high]).flatten(0, 1), rescale)  # (2R n, C, H, W)
        preds.append(logits(model, both, batch_size).argmax(1).view(2, n_r, -1))
    pred = torch.cat(preds, 2).cpu()                                         # (2, R, N), one transfer
    y = labels.cpu()
    hits = (pred == y[None, None]).float().mean(-1)
    return {"radius": radii, "low": hits[0], "high": hits[1], "low_pred": pred[0].T.contiguous(),
            "high_pred": pred[1].T.contiguous(), "labels": y, "rescale": rescale}


def chance_agreement(pred: torch.Tensor, labels: torch.Tensor, n_classes: int = 10) -> dict:
    """Per-image arrays for a chance-corrected accuracy over a bootstrap.

    Returns ``{"correct": (N,), "pred": (N, K), "label": (N, K)}`` (one-hot).
    With means ``m``, ``m["correct"] - (m["pred"] * m["label"]).sum(-1)`` is the
    accuracy minus the agreement expected if the same predictions were paired
    with shuffled labels: 0 for any classifier that ignores the image (a
    constant answer, a random guess), whatever the class balance.
    """
    pred, labels = torch.as_tensor(pred).long().cpu(), torch.as_tensor(labels).long().cpu()
    if pred.shape != labels.shape:
        raise ValueError(f"{tuple(pred.shape)} predictions but {tuple(labels.shape)} labels")
    eye = torch.eye(n_classes)
    return {"correct": (pred == labels).float(), "pred": eye[pred], "label": eye[labels]}


def curve_area(radius: torch.Tensor, acc: torch.Tensor) -> float:
    """Normalised area under an accuracy-vs-radius curve (trapezoid rule / radius range).

    1.0 means perfect accuracy at every radius; chance level c gives c.
    """
    radius, acc = torch.as_tensor(radius, dtype=torch.float64), torch.as_tensor(acc, dtype=torch.float64)
    if len(radius) < 2:
        raise ValueError("an area needs at least two radii")
    return float(torch.trapezoid(acc, radius) / (radius[-1] - radius[0]))


def crossing_radius(radius: torch.Tensor, acc: torch.Tensor, level: float, rising: bool = True) -> float:
    """First radius where ``acc`` crosses ``level`` (linear interpolation).

    ``rising=True`` looks for the first step from below to at-or-above the
    level (low-pass curves), ``rising=False`` for the first step from above to
    below (high-pass curves). Returns ``nan`` if the curve never crosses.
    """
    r = torch.as_tensor(radius, dtype=torch.float64)
    a = torch.as_tensor(acc, dtype=torch.float64)
    for i in range(1, len(a)):
        before, after = a[i - 1] - level, a[i] - level
        crossed = (before < 0 <= after) if rising else (before >= 0 > after)
        if crossed:
            t = float(before / (before - after)) if before != after else 0.0
            return float(r[i - 1] + t * (r[i] - r[i - 1]))
    return float("nan")


# ------------------------------------------------- occluded-frequency (OF)
@dataclass
class BandAttribution:
    """Per-image, per-band results of :func:`band_attribution` (CPU tensors).

    occlusion  (N, K)  z_c(x) - z_c(x without band k)
    keep_only  (N, K)  z_c(only band k) - z_c(black image)   (None if not computed)
    flip       (N, K)  prediction changes when band k is removed
    keep_match (N, K)  band k alone gives the clean prediction  (None if not computed)
    pred       (N,)    clean prediction c
    """
    occlusion: torch.Tensor
    keep_only: torch.Tensor | None
    flip: torch.Tensor
    keep_match: torch.Tensor | None
    pred: torch.Tensor

    @property
    def n_bands(self) -> int:
        return self.occlusion.shape[1]

    def mean(self) -> dict[str, torch.Tensor]:
        """Means over images: OF, flip rate and, if computed, keep-only and its match rate, each (K,)."""
        out = {"occlusion": self.occlusion.mean(0), "flip_rate": self.flip.float().mean(0)}
        if self.keep_only is not None:
            out.update(keep_only=self.keep_only.mean(0), keep_match_rate=self.keep_match.float().mean(0))
        return out


def _band_onehots(h: int, w: int, device) -> torch.Tensor:
    band = spectral.dct_band_index(h, w, device)
    k = torch.arange(max(h, w), device=device)
    return (band[None] == k[:, None, None]).float()                         # (K, H, W)


def band_components(x: torch.Tensor) -> torch.Tensor:
    """The part of each image carried by each DCT band: (N, C, H, W) -> (N, K, C, H, W).

    Summing over K gives ``x`` back; ``x - out[:, k]`` is ``x`` with band k zeroed.
    """
    onehot = _band_onehots(x.shape[-2], x.shape[-1], x.device)
    coeffs = spectral.dct2(x)
    return spectral.idct2(coeffs[:, None] * onehot[None, :, None])


@torch.no_grad()
def band_attribution(model, images: torch.Tensor, batch_size: int | None = None,
                     chunk: int | None = None, keep_only: bool = True) -> BandAttribution:
    """Occluded-frequency and (if ``keep_only``) keep-only attribution of every DCT band, batched.

    Without ``keep_only`` the model sees 33 instead of 65 copies of each image.
    """
    _check_images(images)
    device = model_device(model)
    batch_size = batch_size or eval_batch_size(device)
    h, w = images.shape[-2:]
    n_bands = max(h, w)
    copies = 1 + n_bands * (2 if keep_only else 1)
    chunk = chunk or max(1, (8 * batch_size) // copies)
    black = logits(model, torch.zeros(1, *images.shape[1:]), batch_size, precise=True)[0]
    parts = {k: [] for k in ("occlusion", "keep_only", "flip", "keep_match", "pred")}
    for s in range(0, images.shape[0], chunk):
        x = images[s:s + chunk].to(device)
        n = x.shape[0]
        kept = band_components(x)                                           # (n, K, C, H, W)
        occluded = x[:, None] - kept
        batch = torch.cat([x, occluded.flatten(0, 1)] + ([kept.flatten(0, 1)] if keep_only else []))
        z = logits(model, batch, batch_size, precise=True)            # differences of logits: fp32
        clean = z[:n]
        z_occ = z[n:n + n * n_bands].view(n, n_bands, -1)
        c = clean.argmax(1)
        idx = c[:, None, None].expand(n, n_bands, 1)
        zc = clean.gather(1, c[:, None])                                    # (n, 1)
        parts["occlusion"].append(zc - z_occ.gather(2, idx)[..., 0])
        parts["flip"].append(z_occ.argmax(2) != c[:, None])
        parts["pred"].append(c)
        if keep_only:
            z_keep = z[n + n * n_bands:].view(n, n_bands, -1)
            parts["keep_only"].append(z_keep.gather(2, idx)[..., 0] - black[c][:, None])
            parts["keep_match"].append(z_keep.argmax(2) == c[:, None])
    # one transfer to the CPU at the end, not one per chunk
    return BandAttribution(**{k: torch.cat(v).cpu() if v else None for k, v in parts.items()})


def positive_normalise(profile: torch.Tensor) -> torch.Tensor:
    """Clip a (..., K) profile at 0 and scale each row to sum 1 (rows with no positive mass: nan)."""
    p = torch.as_tensor(profile, dtype=torch.float64).clamp(min=0)
    total = p.sum(-1, keepdim=True)
    return torch.where(total > 0, p / total.clamp(min=1e-300), torch.full_like(p, float("nan")))


def band_centroid(weights: torch.Tensor) -> torch.Tensor:
    """Weighted mean band ``sum_k k w_k / sum_k w_k`` of a (..., K) non-negative profile."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    k = torch.arange(w.shape[-1], dtype=torch.float64, device=w.device)
    return (w * k).sum(-1) / w.sum(-1)


def upper_share(weights: torch.Tensor, start: int = UPPER_BAND) -> torch.Tensor:
    """Share of a (..., K) non-negative profile in bands ``>= start``."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    return w[..., start:].sum(-1) / w.sum(-1)


def shuffle_bands(profiles: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The band-shuffled null of per-image profiles (N, K): each row permuted at random."""
    p = torch.as_tensor(profiles)
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(p.shape, generator=g).argsort(-1)
    return p.gather(-1, order.to(p.device))


# ------------------------------------------------------ band spectra of images
def band_magnitude(x: torch.Tensor, remove_dc: bool = True) -> torch.Tensor:
    """Mean ``|DCT coefficient|`` per band, over channels and the band's coefficients: (N, K).

    ``remove_dc`` drops the (0, 0) coefficient (the per-channel mean), so a
    perturbation and an image are compared on their patterns, not brightness.
    """
    _check_images(x)
    h, w = x.shape[-2:]
    if remove_dc:
        x = x - x.mean((-2, -1), keepdim=True)
    mag = spectral.dct2(x).abs().mean(1).flatten(1)                          # (N, H*W)
    band = spectral.dct_band_index(h, w, x.device).flatten()
    n_bands = max(h, w)
    total = torch.zeros(x.shape[0], n_bands, device=x.device, dtype=mag.dtype).index_add_(1, band, mag)
    count = torch.bincount(band, minlength=n_bands).to(mag.dtype)
    return total / count


def band_profile(x: torch.Tensor) -> torch.Tensor:
    """Mean ``|DCT|`` per coefficient of each band over a batch, DC removed, bands 1..K-1 scaled
    to sum 1 (band 0, the mean colour, is set to 0): (N, C, H, W) -> (K,)."""
    prof = band_magnitude(x, remove_dc=True).mean(0)
    prof[0] = 0
    return prof / prof.sum()


def band_energy_share(x: torch.Tensor, start: int = UPPER_BAND, remove_dc: bool = True) -> float:
    """Share of the batch's total DCT energy (sum of squares) in bands ``>= start``."""
    _check_images(x)
    if remove_dc:
        x = x - x.mean((-2, -1), keepdim=True)
    energy = spectral.dct_band_energy(x).sum(0)
    total = float(energy.sum())
    if total <= 0:
        return float("nan")
    return float(energy[start:].sum()) / total


def upper_energy(x: torch.Tensor, start: int = UPPER_BAND, remove_dc: bool = True) -> dict:
    """Per-image DCT energy in bands ``>= start`` and in all bands: ``{"upper": (N,), "total": (N,)}``.

    The ratio of their means over a set of images is that set's energy share
    in the upper bands (:func:`band_energy_share`); kept apart, the two
    arrays let a bootstrap over images put an interval on the share.
    """
    _check_images(x)
    if remove_dc:
        x = x - x.mean((-2, -1), keepdim=True)
    energy = spectral.dct_band_energy(x.double())
    return {"upper": energy[:, start:].sum(1).float().cpu(), "total": energy.sum(1).float().cpu()}


# ------------------------------------------------------------ tables, plots
def attribution_summary(results: dict, start: int = UPPER_BAND):
    """One row per model: centroid and upper share of the positive-normalised
    OF and keep-only profiles, mean flip rate, and the images evaluated."""
    import pandas as pd
    rows = {}
    for name, res in results.items():
        mean = res.mean()
        p_of = positive_normalise(mean["occlusion"])
        row = {"OF centroid": float(band_centroid(p_of)), f"OF share k≥{start}": float(upper_share(p_of, start))}
        if "keep_only" in mean:
            p_ko = positive_normalise(mean["keep_only"])
            row.update({"keep-only centroid": float(band_centroid(p_ko)),
                        f"keep-only share k≥{start}": float(upper_share(p_ko, start))})
        rows[name] = {**row, "mean flip rate": float(mean["flip_rate"].mean()),
                      f"flip rate k≥{start}": float(mean["flip_rate"][start:].mean()),
                      "images": res.occlusion.shape[0]}
    return pd.DataFrame(rows).T


def plot_filtered_curves(curves: dict, title: str, labels: dict | None = None, chance: float = 0.1):
    """Accuracy vs radius, low-pass (left) and high-pass (right), one line per model."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for name, cur in curves.items():
        lab = (labels or {}).get(name, name)
        axes[0].plot(cur["radius"], cur["low"], "o-", ms=3, label=lab)
        axes[1].plot(cur["radius"], cur["high"], "o-", ms=3, label=lab)
    for ax, kind in zip(axes, ("low-pass: disk r kept", "high-pass: disk r removed")):
        ax.axhline(chance, color="gray", ls=":", lw=1, label="chance")
        ax.set(xlabel="radius r (DFT, cycles / image)", title=kind, ylim=(0, 1.02))
    axes[0].set_ylabel("test accuracy")
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_band_profiles(profiles: dict, title: str, ylabel: str, labels: dict | None = None,
                       start: int = UPPER_BAND, ncols: int = 4):
    """Small multiples: one bar plot of a (K,) band profile per model, upper bands shaded."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch
    n = len(profiles)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows + 0.4), squeeze=False, sharey=True,
                             layout="constrained")
    for ax, (name, prof) in zip(axes.flat, profiles.items()):
        prof = torch.as_tensor(prof).double().cpu().numpy()
        k = np.arange(len(prof))
        ax.axvspan(start - 0.5, len(prof) - 0.5, color="0.92", zorder=0)
        ax.bar(k, prof, width=0.85, color=np.where(k >= start, "C3", "C0"))
        ax.axhline(0, color="k", lw=0.6)
        ax.set(title=(labels or {}).get(name, name), xlabel="DCT band k")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.legend(handles=[Patch(color="C0", label=f"bands k < {start}"),
                        Patch(facecolor="C3", edgecolor="0.75", label=f"bands k ≥ {start} ('high', shaded)")],
               loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title)
    return fig
