"""CIFAR-10-C as a data set, and networks scored on it.

:func:`cifar10c` corrupts the clean test images it is given (the original
lossless pixels where available, see :func:`default_clean`) with
:func:`freqlib.corruptions.corrupt` and caches each corruption and severity under
``data/cache/`` (one ``.npz``, keyed by seed, parameters, a hash of the clean
pixels, the frost layers and the code of :mod:`freqlib.corruptions`,
:mod:`freqlib.frost` and this module). If the released ``.npy`` files are present
(``$FREQLIB_CIFAR10C`` or ``data/CIFAR-10-C/``) and the clean pixels are the
original ones, it uses them instead and says so. Every set carries its label
(:func:`variant_label`), e.g. ``CIFAR-10-C (regenerated from original test images
0–399)``. :func:`corruption_correct` gives per-image 0/1 of a network on every
cell, the sample the bootstrap over test images resamples.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .corruptions import CORRUPTIONS, FAMILY_OF, PARAMS, SEVERITIES, check_cell, corrupt
from .frost import frost_layers
from .io import atomic_save_npz
from .results import code_digest, parts_digest
from .results import digest as tensor_digest

__all__ = [
    "VARIANT_REGENERATED", "VARIANT_RELEASED", "PIXELS", "released_dir", "variant_label", "default_clean",
    "CorruptionSet", "cifar10c", "corruption_correct", "Robustness", "robustness", "corruption_accuracy",
    "summarise",
]

VARIANT_REGENERATED = "CIFAR-10-C (regenerated)"


VARIANT_RELEASED = "CIFAR-10-C (released)"


PIXELS = {"original": "original test images", "jpeg": "JPEG-q75 pixels of test images"}


# --------------------------------------------------------- data sets
def released_dir() -> Path:
    """Where the released CIFAR-10-C .npy files are looked for."""
    from .data import data_dir
    env = os.environ.get("FREQLIB_CIFAR10C")
    return Path(env) if env else data_dir() / "CIFAR-10-C"


def _code_digest() -> str:
    """The code that makes the images: every corruption, the frost layers, and the set's assembly."""
    return code_digest("corruptions.py", "frost.py", "corruption_sets.py")[:12]


def variant_label(pixels: str, n: int, frost: str = "") -> str:
    """``CIFAR-10-C (regenerated from original test images 0–399)``, with
    ``; synthetic frost`` when the frost photographs were not used."""
    if pixels not in PIXELS:
        raise ValueError(f"pixels must be one of {tuple(PIXELS)}, got {pixels!r}")
    extra = "; synthetic frost" if frost == "synthetic" else ""
    return f"CIFAR-10-C (regenerated from {PIXELS[pixels]} 0–{n - 1}{extra})"


@dataclass
class CorruptionSet:
    """CIFAR-10-C images for some corruptions and severities, first ``n`` test images.

    ``images(name, severity)`` gives float (n, 3, 32, 32) in [0, 1]; the arrays
    live as uint8 in memory (regenerated) or memory-mapped files (released).
    ``pixels`` says which clean pixels were corrupted (``original`` / ``jpeg``),
    ``frost`` which frost layers (``photos`` / ``synthetic`` / ``released``, or
    empty without frost).
    """
    names: tuple
    severities: tuple
    n: int
    seed: int
    variant: str
    labels: torch.Tensor
    pixels: str = "original"
    frost: str = ""
    seconds: dict = field(default_factory=dict)      # generation time per (name, severity); 0 if cached
    fingerprint: str = ""                             # what the images are (cells, parameters, clean pixels, code)
    _arrays: dict = field(default_factory=dict, repr=False)
    _make: object = field(default=None, repr=False)   # (name, severity) -> array, for sets made on demand

    def images(self, name: str, severity: int, device="cpu") -> torch.Tensor:
        if (name, severity) not in self._arrays:
            if self._make is None or (name, severity) not in self.cells:
                raise KeyError(f"({name!r}, {severity}) is not a cell of this set: {self.cells}")
            self._arrays[(name, severity)] = self._make(name, severity)
        arr = self._arrays[(name, severity)]
        arr = np.array(arr) if not arr.flags.writeable else np.ascontiguousarray(arr)  # memmaps: copy
        return torch.from_numpy(arr).to(device).permute(0, 3, 1, 2).float().div_(255)

    def __iter__(self):
        for name in self.names:
            for s in self.severities:
                yield name, s

    @property
    def cells(self) -> tuple:
        return tuple(self)

    @property
    def generation_seconds(self) -> float:
        return float(sum(self.seconds.values()))


def _released_arrays(names, severities, n):
    folder = released_dir()
    needed = [folder / f"{c}.npy" for c in names] + [folder / "labels.npy"]
    if not all(p.is_file() for p in needed):
        if folder.is_dir() and any(p.is_file() for p in needed):
            warnings.warn(f"{folder} holds only some released CIFAR-10-C files; regenerating instead",
                          RuntimeWarning, stacklevel=3)
        return None
    labels = np.load(folder / "labels.npy", mmap_mode="r")
    arrays = {}
    for c in names:
        data = np.load(folder / f"{c}.npy", mmap_mode="r")
        if data.shape[0] < 50_000 or data.shape[1:] != (32, 32, 3):
            raise ValueError(f"{folder / (c + '.npy')} has shape {data.shape}; expected (50000, 32, 32, 3)")
        for s in severities:
            arrays[(c, s)] = data[(s - 1) * 10_000:(s - 1) * 10_000 + n]
    return arrays, torch.from_numpy(np.array(labels[:n], dtype=np.int64))


def default_clean(n: int):
    """``(images, labels, pixels)`` of the first ``n`` test images: the original
    lossless pixels where available (the torchvision copy, or the lossless head
    file for ``n <= 932``), else the JPEG mirror's."""
    from .data import HEAD_SIZE, VARIANT_MIRROR, load_test_head, to_tensor
    from .zoo import cifar10_tensors
    x, y, variant = cifar10_tensors("test", "cpu")
    if variant != VARIANT_MIRROR:
        return x[:n], y[:n], "original"
    head = load_test_head() if n <= HEAD_SIZE else None
    if head is not None:
        return to_tensor(head[0][:n]), torch.from_numpy(head[1][:n]), "original"
    return x[:n], y[:n], "jpeg"


def cifar10c(names=CORRUPTIONS, severities=SEVERITIES, n: int = 10_000, seed: int = 0,
             device: str = "cpu", clean=None, pixels: str | None = None, use_released: bool = True,
             cache: bool = True, progress: bool = True, cache_dir: os.PathLike | None = None,
             lazy: bool = False) -> CorruptionSet:
    """CIFAR-10-C for the first ``n`` test images.

    ``clean`` is ``(images, labels)`` of those images (float NCHW in [0, 1], on
    the uint8 grid) and ``pixels`` says what they are (``"original"`` or
    ``"jpeg"``); without them, :func:`default_clean` picks the best pixels
    available. The released ``.npy`` files are used when present and the
    pixels are original; otherwise the set is regenerated and cached under
    ``cache_dir`` (default ``data/cache/cifar10c``), keyed by the corruption,
    its parameters, the seed, a hash of the clean pixels, the frost layers and
    this file. ``lazy=True`` makes each cell's images only when they are first
    asked for (a chapter whose scores are all cached never generates them); the
    set's ``fingerprint`` says what the images are either way.
    """
    from tqdm import tqdm

    from .data import data_dir
    names, severities = tuple(names), tuple(int(s) for s in severities)
    for c in names:
        for s in severities:
            check_cell(c, s)
    if not 1 <= n <= 10_000:
        raise ValueError(f"n must be in 1..10000 (CIFAR-10 test images), got {n}")
    if clean is None:
        x, y, pixels = default_clean(n)
    else:
        if pixels not in PIXELS:
            raise ValueError(f"cifar10c(clean=...) needs pixels= one of {tuple(PIXELS)} to say what the images are")
        x, y = clean
        if x.shape[0] < n or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"clean images must be (>= {n}, 3, H, W), got {tuple(x.shape)}")
        x, y = x[:n].cpu(), y[:n].cpu()
    if use_released and pixels == "original":
        got = _released_arrays(names, severities, n)
        if got is not None:
            arrays, labels = got
            return CorruptionSet(names, severities, n, seed, VARIANT_RELEASED, labels, "original",
                                 "released" if "frost" in names else "", {k: 0.0 for k in arrays},
                                 parts_digest({"released": [names, severities, n]}), arrays)
    u8 = (x * 255).round().clamp(0, 255).to(torch.uint8)
    pixel_hash = tensor_digest(u8)
    frost = frost_layers(seed) if "frost" in names else None
    keys = {(c, s): parts_digest({"name": c, "severity": s, "params": PARAMS[c][s - 1], "seed": seed, "n": n,
                                  "pixels": pixels, "clean": pixel_hash, "frost": frost.digest if c == "frost" else "",
                                  "code": _code_digest()})
            for c in names for s in severities}
    seconds = {}

    def make(c: str, s: int) -> np.ndarray:
        path = Path(cache_dir or data_dir() / "cache" / "cifar10c") / f"{c}-s{s}-n{n}-{pixels}-seed{seed}-{keys[c, s]}.npz"
        if cache and path.is_file():
            try:
                with np.load(path) as z:
                    arr = z["images"]
                seconds[(c, s)] = 0.0
                return arr
            except Exception:
                path.unlink(missing_ok=True)
        start = time.perf_counter()
        out = corrupt(x.to(device), c, s, seed)
        arr = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        seconds[(c, s)] = time.perf_counter() - start
        if cache:
            atomic_save_npz(path, images=arr)
        return arr

    arrays = {} if lazy else {cell: make(*cell) for cell in tqdm(list(keys), desc="CIFAR-10-C (regenerated)",
                                                                  leave=False, disable=not progress)}
    frost_kind = frost.kind if frost is not None else ""
    return CorruptionSet(names, severities, n, seed, variant_label(pixels, n, frost_kind), y.clone(), pixels,
                         frost_kind, seconds, parts_digest(sorted(keys.items())), arrays, make if lazy else None)


# -------------------------------------------------------- evaluation
def corruption_correct(model, cset: CorruptionSet, batch_size: int | None = None,
                       progress: str | None = None) -> torch.Tensor:
    """Per-image correctness (n, cells) of ``model`` on every (corruption, severity)
    of ``cset`` (columns in ``cset.cells`` order), 0/1 floats on the CPU: the sample
    the bootstrap over test images resamples."""
    from tqdm import tqdm

    from .evaluate import correct, model_device
    device = model_device(model)
    cols = [correct(model, cset.images(name, s, device), cset.labels, batch_size=batch_size)
            for name, s in tqdm(cset.cells, desc=progress, leave=False, disable=progress is None)]
    return torch.stack(cols, 1)


@dataclass
class Robustness:
    """Per-image correctness of several models on one :class:`CorruptionSet`."""
    variant: str
    cells: tuple
    correct: dict                     # model name -> (n, cells) 0/1

    def mean_c(self, model: str) -> torch.Tensor:
        """Per-image share of the cells classified right (n,): its mean is mean CIFAR-10-C accuracy."""
        return self.correct[model].mean(1)

    def table(self):
        """One row per model, corruption and severity: accuracy (and family)."""
        import pandas as pd
        rows = []
        for model, hits in self.correct.items():
            acc = hits.mean(0).tolist()
            rows += [{"model": model, "corruption": c, "family": FAMILY_OF[c], "severity": s, "accuracy": a}
                     for (c, s), a in zip(self.cells, acc)]
        return pd.DataFrame(rows)


def robustness(models: dict, cset: CorruptionSet, batch_size: int | None = None,
               progress: bool = True) -> Robustness:
    """:func:`corruption_correct` of several models on the same images."""
    return Robustness(cset.variant, cset.cells,
                      {name: corruption_correct(model, cset, batch_size,
                                                f"{name} on {cset.variant}" if progress else None)
                       for name, model in models.items()})


def corruption_accuracy(model, cset: CorruptionSet, batch_size: int | None = None, progress: str | None = None):
    """Accuracy of ``model`` on every (corruption, severity) of ``cset``: a DataFrame
    with columns corruption, family, severity, accuracy."""
    hits = corruption_correct(model, cset, batch_size, progress)
    return Robustness(cset.variant, cset.cells, {"model": hits}).table().drop(columns="model")


def summarise(table) -> dict:
    """Mean accuracy over everything, per family and per severity, from
    :func:`corruption_accuracy`'s table (families averaged over their corruptions)."""
    out = {"mean": float(table["accuracy"].mean())}
    for fam, sub in table.groupby("family"):
        out[f"family/{fam}"] = float(sub["accuracy"].mean())
    for s, sub in table.groupby("severity"):
        out[f"severity/{s}"] = float(sub["accuracy"].mean())
    return out
