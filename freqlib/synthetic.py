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
  them, a faint texture confined to ``band`` that is tied to their class (one
  fixed random pattern per class), after Wang et al. (ICCV 2023). The test
  split is the *clean* CIFAR-10 test set; :func:`attach_shortcut` puts a
  class's pattern on any images (the chapter attaches it to the wrong class).

This module enters the zoo hash of every model trained on these sets: a
change here retrains them. Analyses of such models live elsewhere
(:mod:`freqlib.validity`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from .data import PlantedBand, planted_frequency_dataset

__all__ = ["PLANTED", "SHORTCUT", "N_CLASSES", "synthetic_tensors", "dataset_band", "planted_split",
           "shortcut_patterns", "random_patterns", "attach_shortcut", "shortcut_psnr", "describe"]

N_CLASSES = 10
# planted-<band>: sizes and signal strength (planted_frequency_dataset's units:
# background std 0.12, class template std ``signal`` times 0.75-1.25 per image)
PLANTED = dict(n_train=12_000, n_test=2_000, signal=0.08, seed=0)
# shortcut-<band>: the pattern's RMS (pixels in [0, 1]) and the share of training
# images that carry their class's pattern; PSNR = -20 log10(rms) = 32.0 dB
SHORTCUT = dict(rms=10 ** (-32 / 20), share=0.5, seed=0)


def _parse(name: str) -> tuple[str, str]:
    kind, _, band = name.partition("-")
    if kind not in ("planted", "shortcut") or not band:
        raise ValueError(f"unknown synthetic dataset {name!r}: use 'planted-<band>' or 'shortcut-<band>' "
                         "with <band> one of low, mid, high, horizontal, vertical")
    PlantedBand.named(band)                       # raises a clear error for an unknown band
    return kind, band


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


def _band_fields(count: int, band: str, rms: float, gen: torch.Generator) -> torch.Tensor:
    """``count`` random colour textures (3, 32, 32) confined to ``band``, each of RMS ``rms``."""
    from .spectral import inverse_centred_dft
    mask = PlantedBand.named(band).mask(32, 32)
    phase = torch.rand(count, 3, 32, 32, generator=gen) * 2 * math.pi
    field = inverse_centred_dft(mask * torch.polar(torch.ones_like(phase), phase))
    return field * (rms / field.flatten(1).pow(2).mean(1).sqrt().clamp(min=1e-12))[:, None, None, None]


@lru_cache(maxsize=8)
def shortcut_patterns(band: str) -> torch.Tensor:
    """The (10, 3, 32, 32) class patterns of ``shortcut-<band>`` (zero mean, RMS ``SHORTCUT['rms']``)."""
    gen = torch.Generator().manual_seed(SHORTCUT["seed"])
    return _band_fields(N_CLASSES, band, SHORTCUT["rms"], gen)


def random_patterns(n: int, band: str, seed: int = 0) -> torch.Tensor:
    """``n`` fresh patterns of the same band and RMS that belong to no class: the
    same-budget null of a shortcut (what any texture of that strength does)."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    return _band_fields(n, band, SHORTCUT["rms"], gen)


def attach_shortcut(images: torch.Tensor, classes: torch.Tensor, band: str) -> torch.Tensor:
    """``images`` (N, 3, 32, 32) in [0, 1] plus the pattern of ``classes[i]`` on image i, clipped."""
    if images.dim() != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"shortcut patterns are 3x32x32; got images of shape {tuple(images.shape)}")
    if classes.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {classes.shape[0]} pattern classes")
    pat = shortcut_patterns(band).to(images.device, images.dtype)
    return (images + pat[classes.to(images.device)]).clamp(0, 1)


def shortcut_psnr() -> float:
    """Nominal PSNR (dB) of an image with a pattern attached, before clipping."""
    return -20 * math.log10(SHORTCUT["rms"])


def describe(name: str) -> str:
    """One line saying what ``name`` is (the data variant of models trained on it)."""
    kind, band = _parse(name)
    b = PlantedBand.named(band)
    where = f"DFT radius {b.r_min:g}-{b.r_max:g}" + (f", orientation {math.degrees(b.angle):.0f}°" if b.angle is not None else "")
    if kind == "planted":
        p = PLANTED
        return (f"planted-{band} (synthetic: {N_CLASSES} classes whose signal lives only in {where}; 1/f background; "
                f"signal {p['signal']}, seed {p['seed']}; {p['n_train']} train / {p['n_test']} test)")
    from .data import available_variant
    return (f"shortcut-{band} ({available_variant()} with a class-tied texture in {where} on "
            f"{SHORTCUT['share']:.0%} of the training images, PSNR {shortcut_psnr():.0f} dB, seed {SHORTCUT['seed']})")


def _cifar10(split: str):
    # loaded here rather than through freqlib.zoo, which imports this module
    from .data import load_cifar10, to_tensor
    x, y, _ = load_cifar10(split)
    return to_tensor(x), torch.from_numpy(y)


@lru_cache(maxsize=2)
def _shortcut_train(band: str):
    x, y = _cifar10("train")
    gen = torch.Generator().manual_seed(SHORTCUT["seed"] + 1)
    carry = torch.randperm(len(x), generator=gen)[: int(round(SHORTCUT["share"] * len(x)))]
    x[carry] = attach_shortcut(x[carry], y[carry], band)
    return x, y


def synthetic_tensors(name: str, split: str):
    """(images float NCHW in [0, 1], labels int64, variant) of a synthetic zoo dataset (CPU).

    Deterministic; cached per process. ``shortcut-<band>``'s test split is the
    clean CIFAR-10 test set (the pattern is attached by the analysis).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    kind, band = _parse(name)
    variant = describe(name)
    if kind == "planted":
        xtr, ytr, xte, yte = planted_split(band)
        return (xtr, ytr, variant) if split == "train" else (xte, yte, variant)
    if split == "test":
        x, y = _cifar10("test")
        return x, y, variant + "; clean test images"
    x, y = _shortcut_train(band)
    return x, y, variant
