"""Training sets with a known answer: planted frequencies and frequency shortcuts.

Two families of zoo datasets (``TrainConfig.dataset``), built deterministically
and cached per process by :func:`synthetic_tensors`:

* ``planted-<band>`` (``low``, ``mid``, ``high``, ``horizontal``, ``vertical``:
  the presets of :class:`freqlib.data.PlantedBand`): the label lives *only* in
  the band. Built on :func:`freqlib.data.planted_frequency_dataset` (1/f
  background, one in-band template per class) in one call, so train and test
  share the class templates and no image. **10 classes**, because every zoo
  network has 10 outputs and the book's chance level (10%) then carries over;
  even the narrowest band (``low``, 44 frequencies x 3 channels) leaves 10
  random templates nearly orthogonal, so the task stays learnable.
* ``shortcut-<band>``: CIFAR-10 whose training images carry, on a share of
  them, a faint class *signature* in ``band``: gratings at a class-specific
  frequency and its horizontal-flip partner, with random phases per image,
  after the class-wise frequency shortcuts of Wang et al. (ICCV 2023). A
  signature lives in the amplitude spectrum, so the zoo's flips and shifts
  keep it (a fixed random texture per class would not survive the shifts:
  it is a different texture after every shift). The test split is the
  *clean* CIFAR-10 test set; :func:`attach_shortcut` puts a class's
  signature on any images (the chapter attaches it to the wrong class).
  ``shortcut-<band>-<psnr>db`` (e.g. ``shortcut-high-20db``) is the same set
  with a signature of that PSNR instead of the default's 32 dB: chapter 6's
  signature beyond the reach of an 8/255 L-inf change.

This module enters the zoo hash of every model trained on these sets: a
change here retrains them. Analyses of such models live elsewhere
(:mod:`freqlib.validity`).
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

import torch

from .data import PlantedBand, planted_frequency_dataset

__all__ = ["PLANTED", "SHORTCUT", "STRONG_PSNR", "ADOPTION_PSNRS", "N_CLASSES", "synthetic_tensors", "dataset_band", "planted_split",
           "shortcut_frequencies", "shortcut_mask", "random_patterns", "attach_shortcut", "shortcut_psnr",
           "shortcut_name", "shortcut_rms", "describe"]

N_CLASSES = 10
# planted-<band>: sizes and signal strength (planted_frequency_dataset's units:
# background std 0.12, class template std ``signal`` times 0.75-1.25 per image)
PLANTED = dict(n_train=12_000, n_test=2_000, signal=0.08, seed=0)
# shortcut-<band>: the pattern's RMS (pixels in [0, 1]) and the share of training
# images that carry their class's pattern; PSNR = -20 log10(rms) = 32.0 dB
SHORTCUT = dict(rms=10 ** (-32 / 20), share=0.5, seed=0)
# chapter 6's claim D4: a signature of this PSNR (dB) whose every grating lies at least 15/255
# beyond what an 8/255 L-inf change can remove from it alone, and about 18/255 beyond what it can
# remove from a class's whole signature (freqlib.shortcut.signature_reach: more than the strongest
# grating of the 32-dB signature, 9.06/255, which the standard network follows)
STRONG_PSNR = 20.0
# chapter 6's adoption curve: signature strengths between the faint (32 dB) and the strong one,
# AT trained once at each (29 dB: each weakest grating alone within an 8/255 change's reach, a
# class's whole signature beyond it; 26 dB: beyond either)
ADOPTION_PSNRS = (29.0, 26.0)


def _parse(name: str) -> tuple[str, str, float]:
    """(kind, band, signature RMS) of a synthetic dataset name."""
    kind, _, rest = name.partition("-")
    band, _, strength = rest.partition("-")
    if kind not in ("planted", "shortcut") or not band or (strength and (
            kind != "shortcut" or not re.fullmatch(r"\d+(\.\d+)?db", strength) or float(strength[:-2]) <= 0)):
        raise ValueError(f"unknown synthetic dataset {name!r}: use 'planted-<band>', 'shortcut-<band>' or "
                         "'shortcut-<band>-<psnr>db' (a PSNR in dB above 0, e.g. shortcut-high-20db) "
                         "with <band> one of low, mid, high, horizontal, vertical")
    PlantedBand.named(band)                       # raises a clear error for an unknown band
    return kind, band, 10 ** (-float(strength[:-2]) / 20) if strength else SHORTCUT["rms"]


def shortcut_name(band: str, psnr: float | None = None) -> str:
    """The zoo dataset name of ``band``'s shortcut set: ``shortcut-high``, or with a
    signature of ``psnr`` dB, ``shortcut-high-20db``."""
    name = f"shortcut-{band}" + ("" if psnr is None else f"-{psnr:g}db")
    _parse(name)
    return name


def shortcut_rms(name: str) -> float:
    """RMS (pixels in [0, 1]) of the signature of shortcut set ``name``."""
    kind, _, rms = _parse(name)
    if kind != "shortcut":
        raise ValueError(f"{name!r} is not a shortcut set: use 'shortcut-<band>' or 'shortcut-<band>-<psnr>db'")
    return rms


def dataset_band(name: str) -> PlantedBand:
    """The frequency band where ``name``'s class signal (or shortcut) lives."""
    return PlantedBand.named(_parse(name)[1])


@lru_cache(maxsize=4)
def planted_split(band: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train x, train y, test x, test y) of ``planted-<band>``: one generator call, split."""
    p = PLANTED
    x, y, _ = planted_frequency_dataset(p["n_train"] + p["n_test"], band, n_classes=N_CLASSES,
                                        signal=p["signal"], seed=p["seed"])
    n = p["n_train"]
    return x[:n].contiguous(), y[:n].contiguous(), x[n:].contiguous(), y[n:].contiguous()


def _canon(fy: int, fx: int) -> tuple[int, int]:
    """One name for a real Fourier component: f and -f are the same one."""
    return (fy, fx) if fy > 0 or (fy == 0 and fx > 0) else (-fy, -fx)


def _band_components(band: str) -> list[tuple[int, int]]:
    """Centred frequencies (fy, fx) of ``band``, one per mirror pair, in a fixed order."""
    mask = PlantedBand.named(band).mask(32, 32)
    found = {_canon(int(i) - 16, int(j) - 16) for i, j in mask.nonzero().tolist()}
    return sorted(found)


@lru_cache(maxsize=8)
def shortcut_frequencies(band: str) -> tuple:
    """Per class, its signature: a frequency of ``band`` and its mirror image under a
    horizontal flip (so the flip augmentation keeps the signature); disjoint between classes."""
    comps = _band_components(band)
    gen = torch.Generator().manual_seed(SHORTCUT["seed"])
    used, groups = set(), []
    for k in torch.randperm(len(comps), generator=gen).tolist():
        f = comps[k]
        g = _canon(f[0], -f[1])
        if f in used or g in used or g not in comps:
            continue
        used |= {f, g}
        groups.append(tuple(sorted({f, g})))
        if len(groups) == N_CLASSES:
            return tuple(groups)
    raise ValueError(f"band {band!r} has too few frequencies for {N_CLASSES} disjoint class signatures")


def shortcut_mask(band: str) -> torch.Tensor:
    """(32, 32) bool: every frequency of every class signature, with its mirror."""
    m = torch.zeros(32, 32, dtype=torch.bool)
    for group in shortcut_frequencies(band):
        for fy, fx in group:
            m[16 + fy, 16 + fx] = m[(16 - fy) % 32, (16 - fx) % 32] = True
    return m


def _group_tensor(groups) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, 2, 2) frequencies and (G, 2) amplitudes giving RMS 1 (a single-component group repeats
    its frequency with amplitude 0)."""
    freqs = torch.tensor([[g[0], g[-1]] for g in groups], dtype=torch.float32)
    amps = torch.tensor([[1.0, 0.0] if len(g) == 1 else [1.0, 1.0] for g in groups])
    return freqs, amps * (2.0 / amps.sum(1, keepdim=True)).sqrt()


def _render(freqs: torch.Tensor, amps: torch.Tensor, gen: torch.Generator, rms: float,
            chunk: int = 4096) -> torch.Tensor:
    """Colour gratings: image n is sum_k amps[n, k] cos(2 pi f_nk . x / 32 + phase), a random phase per
    image, channel and component; (n, 3, 32, 32) of RMS ``rms``."""
    ij = torch.arange(32, dtype=torch.float32)
    out = []
    for s in range(0, freqs.shape[0], chunk):
        f, a = freqs[s:s + chunk], amps[s:s + chunk]
        phase = torch.rand(f.shape[0], 3, 2, 1, 1, generator=gen) * 2 * math.pi
        arg = (2 * math.pi / 32) * (f[:, None, :, 0, None, None] * ij[:, None] + f[:, None, :, 1, None, None] * ij) + phase
        out.append((a[:, None, :, None, None] * torch.cos(arg)).sum(2))
    return torch.cat(out) * rms


def attach_shortcut(images: torch.Tensor, classes: torch.Tensor, band: str, seed: int = 0,
                    rms: float | None = None) -> torch.Tensor:
    """``images`` (N, 3, 32, 32) in [0, 1] plus the signature of ``classes[i]`` on image i
    (random phases drawn with ``seed``; RMS ``rms``, default ``SHORTCUT['rms']``), clipped to [0, 1]."""
    if images.dim() != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"shortcut patterns are 3x32x32; got images of shape {tuple(images.shape)}")
    if classes.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {classes.shape[0]} pattern classes")
    freqs, amps = _group_tensor(shortcut_frequencies(band))
    idx = classes.cpu()
    pattern = _render(freqs[idx], amps[idx], torch.Generator().manual_seed(seed), SHORTCUT["rms"] if rms is None else rms)
    return (images + pattern.to(images.device, images.dtype)).clamp(0, 1)


def random_patterns(n: int, band: str, seed: int = 0, rms: float | None = None) -> torch.Tensor:
    """``n`` patterns of the same kind and RMS (default ``SHORTCUT['rms']``) whose frequencies belong
    to no class: the same-budget null of a shortcut (what any grating of that strength in the band does)."""
    taken = {f for g in shortcut_frequencies(band) for f in g}
    free = [(f, _canon(f[0], -f[1])) for f in _band_components(band) if f not in taken]
    free = [tuple(sorted({f, g})) for f, g in free if g not in taken]
    gen = torch.Generator().manual_seed(10_000 + seed)
    pick = torch.randint(0, len(free), (n,), generator=gen)
    freqs, amps = _group_tensor([free[i] for i in pick.tolist()])
    return _render(freqs, amps, gen, SHORTCUT["rms"] if rms is None else rms)


def shortcut_psnr(rms: float | None = None) -> float:
    """Nominal PSNR (dB) of an image with a pattern of RMS ``rms`` (default ``SHORTCUT['rms']``)
    attached, before clipping."""
    return -20 * math.log10(SHORTCUT["rms"] if rms is None else rms)


def describe(name: str) -> str:
    """One line saying what ``name`` is (the data variant of models trained on it)."""
    kind, band, rms = _parse(name)
    b = PlantedBand.named(band)
    where = f"DFT radius {b.r_min:g}-{b.r_max:g}" + (f", orientation {math.degrees(b.angle):.0f}°" if b.angle is not None else "")
    if kind == "planted":
        p = PLANTED
        return (f"planted-{band} (synthetic: {N_CLASSES} classes whose signal lives only in {where}; 1/f background; "
                f"signal {p['signal']}, seed {p['seed']}; {p['n_train']} train / {p['n_test']} test)")
    from .data import available_variant
    return (f"{name} ({available_variant()} with a class signature, gratings at a class-specific "
            f"pair of frequencies in {where} with random phases, on {SHORTCUT['share']:.0%} of the training images, "
            f"PSNR {shortcut_psnr(rms):g} dB, seed {SHORTCUT['seed']})")


def _cifar10(split: str):
    # loaded here rather than through freqlib.zoo, which imports this module
    from .data import load_cifar10, to_tensor
    x, y, _ = load_cifar10(split)
    return to_tensor(x), torch.from_numpy(y)


@lru_cache(maxsize=2)
def _shortcut_train(band: str, rms: float):
    x, y = _cifar10("train")
    gen = torch.Generator().manual_seed(SHORTCUT["seed"] + 1)
    carry = torch.randperm(len(x), generator=gen)[: int(round(SHORTCUT["share"] * len(x)))]
    x[carry] = attach_shortcut(x[carry], y[carry], band, seed=SHORTCUT["seed"] + 2, rms=rms)
    return x, y


def synthetic_tensors(name: str, split: str):
    """(images float NCHW in [0, 1], labels int64, variant) of a synthetic zoo dataset (CPU).

    Deterministic; cached per process. ``shortcut-<band>``'s test split is the
    clean CIFAR-10 test set (the pattern is attached by the analysis).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    kind, band, rms = _parse(name)
    variant = describe(name)
    if kind == "planted":
        xtr, ytr, xte, yte = planted_split(band)
        return (xtr, ytr, variant) if split == "train" else (xte, yte, variant)
    if split == "test":
        x, y = _cifar10("test")
        return x, y, variant + "; clean test images"
    x, y = _shortcut_train(band, rms)
    return x, y, variant
