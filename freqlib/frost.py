"""Frost for CIFAR-10-C (:mod:`freqlib.corruptions`): the original's frost photographs,
read and shrunk as ``make_cifar_c.py`` does, or synthetic ice textures when they are
missing or damaged (with a warning, and the data set's label says so).

The original blends a random 32x32 crop of one of five photographs (``frost1.png``
... ``frost5.jpg``; it draws ``randint(5)``, so ``frost6.jpg`` is never used), read by
cv2 (alpha dropped), shrunk by ``cv2.resize(fx=fy=0.2)``, BGR -> RGB. Here Pillow
decodes them (the same libjpeg / libpng decoders) and :func:`cv2_linear_resize`
shrinks them as OpenCV would.
"""
from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "FROST_FILES", "FROST_SCALE", "FrostLayers", "frost_dir", "frost_layers", "frost_textures",
    "cv2_linear_resize",
]

FROST_FILES = {
    "frost1.png": "ff9f907860bd7a835d459e32f9d588062b7f61ee267343cc7222b56753a14755",
    "frost2.png": "fe211a89b336999c207a852ce05818d4545d0b57c5beadd824b4cc9d9a9b6137",
    "frost3.png": "2d0d50b4a9bb213f38b024ef7768731bb83cc08d2f26b5766bbc167cdfa0e504",
    "frost4.jpg": "3f8b91ca1a9fa7167b09e773da53f5ae60d0a1fd88f02a783f6e328a72887f6e",
    "frost5.jpg": "5fc6a19df4a429ba68abdcc8f8a4278d4c9f81c9ccafd2c92ab0c8cf8992ebd2",
}


FROST_SCALE = 0.2        # make_cifar_c.py: cv2.resize(frost, (0, 0), fx=0.2, fy=0.2)


def frost_dir() -> Path:
    """Where the frost photographs are looked for: ``$FREQLIB_FROST``, else the
    folder ``frost/`` beside the CIFAR-10 mirror (``../shared/data/frost``)."""
    env = os.environ.get("FREQLIB_FROST")
    if env:
        return Path(env)
    from .data import mirror_path
    return mirror_path().parent / "frost"


def cv2_linear_resize(img: np.ndarray, scale: float) -> np.ndarray:
    """``cv2.resize(img, (0, 0), fx=scale, fy=scale)`` (INTER_LINEAR) of a uint8 HWC image.

    OpenCV maps output pixel ``i`` to source coordinate ``(i + 0.5) / scale - 0.5``
    (clamped at the edges) and interpolates bilinearly, without anti-aliasing;
    the output side is ``round(side * scale)``. For ``scale = 0.2`` every source
    coordinate is the integer ``5 i + 2``, so the result is an exact subsample.
    """
    h, w = img.shape[:2]

    def axis(n_in):
        n_out = int(round(n_in * scale))
        c = np.clip((np.arange(n_out) + 0.5) / scale - 0.5, 0, n_in - 1)
        i0 = np.floor(c).astype(int)
        return i0, np.minimum(i0 + 1, n_in - 1), (c - i0)
    r0, r1, fr = axis(h)
    c0, c1, fc = axis(w)
    x = img.astype(np.float64)
    top = x[r0][:, c0] * (1 - fc)[None, :, None] + x[r0][:, c1] * fc[None, :, None]
    bottom = x[r1][:, c0] * (1 - fc)[None, :, None] + x[r1][:, c1] * fc[None, :, None]
    # OpenCV's fixed-point arithmetic rounds halves up
    return np.floor(top * (1 - fr)[:, None, None] + bottom * fr[:, None, None] + 0.5).astype(np.uint8)


@dataclass(frozen=True)
class FrostLayers:
    """The images frost crops come from: (k, 3, H, W) on the uint8 grid, padded to
    the largest; ``sizes`` (k, 2) their true heights and widths; ``kind`` is
    ``"photos"`` (the original's) or ``"synthetic"`` (our fallback)."""
    images: torch.Tensor
    sizes: torch.Tensor
    kind: str
    digest: str


@lru_cache(maxsize=4)
def _frost_photos(folder: str) -> FrostLayers | str:
    """The five photographs, rescaled as the original does; or why they cannot be used."""
    from PIL import Image
    from .data import _sha256
    folder = Path(folder)
    missing = [f for f in FROST_FILES if not (folder / f).is_file()]
    if missing:
        return f"{', '.join(missing)} not found in {folder}"
    bad = [f for f, sha in FROST_FILES.items() if _sha256(folder / f) != sha]
    if bad:
        return f"{', '.join(bad)} in {folder} fail their sha256 check"
    arrays = []
    for f in FROST_FILES:
        with Image.open(folder / f) as im:
            arrays.append(cv2_linear_resize(np.asarray(im.convert("RGB")), FROST_SCALE))   # RGBA: alpha dropped
    hmax, wmax = max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
    stack = np.zeros((len(arrays), hmax, wmax, 3), dtype=np.uint8)
    for i, a in enumerate(arrays):
        stack[i, :a.shape[0], :a.shape[1]] = a
    digest = hashlib.sha256("".join(FROST_FILES.values()).encode()).hexdigest()[:12]
    return FrostLayers(torch.from_numpy(stack).permute(0, 3, 1, 2).float() / 255,
                       torch.tensor([a.shape[:2] for a in arrays]), "photos", digest)


def frost_layers(seed: int = 0) -> FrostLayers:
    """The original frost photographs when present and intact, else synthetic
    textures (:func:`frost_textures`) with a one-line warning saying where to put them."""
    got = _frost_photos(str(frost_dir()))
    if isinstance(got, FrostLayers):
        return got
    _warn_frost(got)
    tex = frost_textures(seed)
    tex = torch.floor(tex * 255 + 1e-3) / 255                      # the original reads uint8 images
    return FrostLayers(tex, torch.tensor([tex.shape[-2:]] * tex.shape[0]), "synthetic", f"synthetic-{seed}")


@lru_cache(maxsize=8)
def _warn_frost(reason: str) -> None:
    warnings.warn(f"frost photographs unusable ({reason}): using synthetic frost textures; put frost1.png ... "
                  f"frost5.jpg from hendrycks/robustness (ImageNet-C/create_c) in {frost_dir()} or set "
                  "FREQLIB_FROST", RuntimeWarning, stacklevel=4)


def frost_textures(seed: int = 0, count: int = 5, size: int = 128) -> torch.Tensor:
    """Synthetic frost textures (count, 3, size, size) in [0, 1]: our fallback for
    the original's frost photographs when they are missing (:func:`frost_layers`).

    A smooth 1/f^2 haze plus anti-aliased ice needles: random segments (length
    2-16 px) each with two side branches at +-60 degrees, splatted bilinearly,
    saturated by ``1 - exp(-density)``, tinted pale blue.
    """
    g = torch.Generator().manual_seed(10_007 * seed + 17)
    fy = torch.fft.fftfreq(size) * size
    rad = torch.sqrt(fy[:, None] ** 2 + fy[None] ** 2).clamp(min=1.0)
    phase = torch.rand(count, size, size, generator=g) * 2 * math.pi
    haze = torch.fft.ifft2(torch.polar(1.0 / rad ** 1.0, phase)).real
    haze = (haze - haze.amin((1, 2), keepdim=True)) / (haze.amax((1, 2), keepdim=True) - haze.amin((1, 2), keepdim=True))
    n_seg, n_pts = 700, 24
    start = torch.rand(count, n_seg, 2, generator=g) * size
    ang = torch.rand(count, n_seg, generator=g) * math.pi
    length = 2 + 14 * torch.rand(count, n_seg, generator=g) ** 2
    bright = 0.3 + 0.7 * torch.rand(count, n_seg, generator=g)
    # main needle + two branches from a random point along it
    at = torch.rand(count, n_seg, generator=g)
    fork = start + at[..., None] * length[..., None] * torch.stack([ang.cos(), ang.sin()], -1)
    segs = [(start, ang, length, bright)]
    for turn in (math.pi / 3, -math.pi / 3):
        segs.append((fork, ang + turn, 0.45 * length, 0.8 * bright))
    density = torch.zeros(count, size * size)
    t = torch.linspace(0, 1, n_pts)
    for s0, a, ln, b in segs:
        px = s0[..., 0, None] + t * ln[..., None] * a.cos()[..., None]     # count, n_seg, n_pts
        py = s0[..., 1, None] + t * ln[..., None] * a.sin()[..., None]
        wgt = (b[..., None] * ln[..., None] / n_pts).expand_as(px)
        x0, y0 = px.floor(), py.floor()
        for dx in (0, 1):
            for dy in (0, 1):
                wx = (1 - (px - x0 - dx).abs())
                wy = (1 - (py - y0 - dy).abs())
                idx = (torch.remainder(y0 + dy, size) * size + torch.remainder(x0 + dx, size)).long()
                density.scatter_add_(1, idx.reshape(count, -1), (wgt * wx * wy).reshape(count, -1))
    crystals = 1 - torch.exp(-1.6 * density.reshape(count, size, size))
    frost = (0.45 * haze + 0.8 * crystals).clamp(0, 1)
    tint = torch.tensor([0.85, 0.93, 1.0])[None, :, None, None]
    return (frost[:, None] * tint).clamp(0, 1)
