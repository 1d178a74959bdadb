"""CIFAR-10 loading (the original first, an offline mirror else), a device-resident batch iterator, and the
planted-frequency synthetic dataset used as ground truth by the tests.

Sources for CIFAR-10, tried in this order (``$FREQLIB_CIFAR10_SOURCE=auto``, the default):

1. a torchvision-format copy under ``data/cifar-10-batches-py`` (lossless);
2. torchvision's download into ``data/``, when its host answers within a few
   seconds: the original CIFAR-10 stays the default wherever a download works;
3. the JPEG-q75 mirror ``cifar10-jpeg.npz`` (``$FREQLIB_CIFAR10_MIRROR``, else
   ``../shared/data/cifar10-jpeg.npz`` beside the repository), checked against
   its sha256 and decoded once into ``data/cache/``.

``FREQLIB_CIFAR10_SOURCE=original`` allows only 1 and 2 (never the lossy mirror);
``mirror`` allows only 3 (to re-run the published quick pages, which were
computed on the mirror). The variant string says which one was used; every
figure must carry it.

The mirror is lossy, so test-set analyses of up to 932 images read the
*original* pixels of test images 0-931 from ``cifar10-test-head-lossless.npz``
(``$FREQLIB_CIFAR10_LOSSLESS_HEAD``, else beside the mirror), sha256-checked
like the mirror (:func:`load_test_head`).
"""
from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .errors import first_line
from .io import atomic_save_npz, atomic_write_json, repo_root

__all__ = [
    "VARIANT_ORIGINAL", "VARIANT_MIRROR", "VARIANT_HEAD", "HEAD_SIZE", "CLASS_NAMES", "DataUnavailableError",
    "data_dir", "mirror_path", "head_path", "available_variant", "load_cifar10", "load_test_head",
    "to_tensor", "DeviceLoader",
    "PlantedBand", "planted_frequency_dataset",
]

VARIANT_ORIGINAL = "CIFAR-10"
VARIANT_MIRROR = "CIFAR-10 (JPEG-q75 mirror)"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
MIRROR_SHA256 = "b034ab394f5e54ac5798fa8d4f8eacfff596162ff465898532a68feb5fa17e34"
VARIANT_HEAD = "original CIFAR-10 test images 0–931"
HEAD_SIZE = 932
HEAD_SHA256 = "ef617a987bed7c33b0ae06f9f78f977ec9d18e94cad579e193ef667f3340139b"
SPLIT_SIZES = {"train": 50_000, "test": 10_000}


class DataUnavailableError(RuntimeError):
    """No usable CIFAR-10 source was found, or a source is damaged."""


def data_dir() -> Path:
    """Folder for datasets, caches and the model zoo (``$FREQLIB_DATA`` or ``data/``)."""
    return Path(os.environ.get("FREQLIB_DATA", repo_root() / "data"))


def mirror_path() -> Path:
    env = os.environ.get("FREQLIB_CIFAR10_MIRROR")
    return Path(env) if env else repo_root().parent / "shared" / "data" / "cifar10-jpeg.npz"


def head_path() -> Path:
    env = os.environ.get("FREQLIB_CIFAR10_LOSSLESS_HEAD")
    return Path(env) if env else mirror_path().with_name("cifar10-test-head-lossless.npz")


# ------------------------------------------------------------------ sources
def _load_torchvision_copy(root: Path, split: str):
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    if not all((folder / n).is_file() for n in names):
        return None
    images, labels = [], []
    for n in names:
        try:
            with open(folder / n, "rb") as fh:
                batch = pickle.load(fh, encoding="latin1")
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch["labels"])
        except Exception as exc:  # damaged copy: say so rather than fall through silently
            raise DataUnavailableError(
                f"The torchvision CIFAR-10 copy at {folder / n} cannot be read ({exc}). "
                f"Delete {folder} and provide the data again (see data/README.md).") from exc
    x = np.concatenate(images).transpose(0, 2, 3, 1).copy()
    return x, np.asarray(labels, dtype=np.int64)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _decode_mirror(path: Path, cache: Path) -> None:
    from PIL import Image
    from tqdm import tqdm

    digest = _sha256(path)
    if digest != MIRROR_SHA256:
        raise DataUnavailableError(
            f"The CIFAR-10 mirror {path} has sha256 {digest[:16]}..., expected "
            f"{MIRROR_SHA256[:16]}... (see ../shared/data/README.md). The file is truncated "
            "or not the mirror: replace it, or point FREQLIB_CIFAR10_MIRROR at a good copy.")
    arrays = {}
    with np.load(path) as z:
        for split in ("train", "test"):
            blob, offsets = z[f"{split}_jpeg"], z[f"{split}_offsets"]
            n = len(offsets) - 1
            out = np.empty((n, 32, 32, 3), dtype=np.uint8)
            for i in tqdm(range(n), desc=f"decoding {split} JPEGs (once)", leave=False):
                out[i] = np.asarray(Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())).convert("RGB"))
            arrays[f"{split}_images"] = out
            arrays[f"{split}_labels"] = z[f"{split}_labels"].astype(np.int64)
    atomic_save_npz(cache, **arrays)


def _load_mirror(split: str):
    path = mirror_path()
    if not path.is_file():
        return None
    cache = data_dir() / "cache" / f"cifar10-jpeg-q75-{MIRROR_SHA256[:12]}.npz"
    if not cache.is_file():
        _decode_mirror(path, cache)
    try:
        with np.load(cache) as z:
            x, y = z[f"{split}_images"], z[f"{split}_labels"]
    except Exception:
        cache.unlink(missing_ok=True)  # damaged cache: decode again from the checked mirror
        _decode_mirror(path, cache)
        with np.load(cache) as z:
            x, y = z[f"{split}_images"], z[f"{split}_labels"]
    return x, y


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"        # torchvision's checksum of that archive


def _download(root: Path, split: str) -> None:
    """torchvision's CIFAR-10 download into ``root``. Where torchvision does not import
    (the pinned CPU torch cannot load PyPI torchvision's compiled ops), the same archive
    with urllib, md5-checked as torchvision does, and unpacked only once complete."""
    try:
        import torchvision
    except Exception:
        torchvision = None
    if torchvision is not None:
        torchvision.datasets.CIFAR10(str(root), train=(split == "train"), download=True)
        return
    import tarfile
    import tempfile
    import urllib.request
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = Path(tmp) / "cifar-10-python.tar.gz"
        urllib.request.urlretrieve(CIFAR10_URL, archive)
        if hashlib.md5(archive.read_bytes()).hexdigest() != CIFAR10_MD5:
            raise DataUnavailableError(f"{CIFAR10_URL} gave a file with the wrong checksum")
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (Path(tmp) / "cifar-10-batches-py").replace(root / "cifar-10-batches-py")


_DOWNLOAD_FAILED: list[str] = []       # why the download failed (then the mirror is what loads)
DOWNLOAD_RETRY_S = 3600   # a failure is remembered on disk this long: every chapter's kernel is a new process,
                          # and one that got the download while another fell back would mix variants in a book


def _failure_marker() -> Path:
    return data_dir() / "download-failed.json"


def _recent_failure() -> str | None:
    """Why the download failed, if it failed in this process or (on disk) within ``DOWNLOAD_RETRY_S``."""
    if _DOWNLOAD_FAILED:
        return _DOWNLOAD_FAILED[0]
    try:
        import json
        import time
        record = json.loads(_failure_marker().read_text())
        if 0 <= time.time() - float(record["time"]) < DOWNLOAD_RETRY_S:
            _DOWNLOAD_FAILED.append(f"{record['reason']} (at {time.strftime('%H:%M', time.localtime(record['time']))}; "
                                    f"remove {_failure_marker()} to try again now)")
            return _DOWNLOAD_FAILED[0]
    except (OSError, ValueError, KeyError, TypeError):
        pass                            # no marker, or not one of ours: try the download
    return None


def _load_download(root: Path, split: str):
    if _recent_failure():
        return None                     # tried lately; do not fetch 170 MB again per split or per chapter
    try:
        _download(root, split)
    except Exception as exc:
        import time
        import warnings
        _DOWNLOAD_FAILED.append(first_line(exc))
        try:
            atomic_write_json(_failure_marker(), {"reason": _DOWNLOAD_FAILED[0], "time": time.time()})
        except OSError:
            pass                        # a read-only data folder: remembered in this process only
        warnings.warn(f"the CIFAR-10 download failed ({_DOWNLOAD_FAILED[0]}); FREQLIB_CIFAR10_SOURCE=mirror "
                      "skips it", RuntimeWarning, stacklevel=2)
        return None
    _failure_marker().unlink(missing_ok=True)
    return _load_torchvision_copy(root, split)


SOURCES = ("auto", "original", "mirror")
PROBE_TIMEOUT_S = 3.0     # an offline machine answers at once or not at all; a reachable host within this


def source_choice() -> str:
    """``$FREQLIB_CIFAR10_SOURCE`` (``auto`` when unset), checked."""
    choice = os.environ.get("FREQLIB_CIFAR10_SOURCE", "auto").strip().lower() or "auto"
    if choice not in SOURCES:
        raise ValueError(f"FREQLIB_CIFAR10_SOURCE={choice!r} is not one of {', '.join(SOURCES)}: "
                         "unset it (auto), or set original (never the JPEG mirror) or mirror (only the mirror)")
    return choice


@lru_cache(maxsize=None)
def _download_host_answers(url: str = CIFAR10_URL) -> bool:
    """Whether the download's host (or the https proxy that would carry it) accepts a connection
    within ``PROBE_TIMEOUT_S``, name lookup included (asked once per process)."""
    target = urllib.parse.urlsplit(urllib.request.getproxies().get("https") or url)
    port = target.port or (443 if target.scheme == "https" else 80)
    answered = []

    def connect():
        try:
            socket.create_connection((target.hostname, port), timeout=PROBE_TIMEOUT_S).close()
            answered.append(True)
        except OSError:
            pass
    # a daemon thread: a resolver that hangs past the timeout neither blocks the caller nor the exit
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(PROBE_TIMEOUT_S)
    return bool(answered)


def _sources(choice: str, root: Path, split: str):
    """(loader, variant) pairs in the order ``choice`` tries them."""
    copy = (lambda: _load_torchvision_copy(root, split), VARIANT_ORIGINAL)
    download = (lambda: _load_download(root, split), VARIANT_ORIGINAL)
    mirror = (lambda: _load_mirror(split), VARIANT_MIRROR)
    if choice == "mirror":
        return (mirror,)
    if choice == "original":
        return copy, download
    # auto: the download only when its host answers, so an offline machine reaches the mirror at once;
    # asked lazily, after the copy, so a machine with the copy never waits for the probe
    online = lambda: _download_host_answers()
    then_download = (lambda: _load_download(root, split) if online() else None, VARIANT_ORIGINAL)
    then_late_download = (lambda: None if online() else _load_download(root, split), VARIANT_ORIGINAL)
    return copy, then_download, mirror, then_late_download


def load_cifar10(split: str = "train"):
    """Return ``(images, labels, variant)``: uint8 (N, 32, 32, 3), int64 (N,), str."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root, choice = data_dir(), source_choice()
    for loader, variant in _sources(choice, root, split):
        got = loader()
        if got is not None:
            x, y = got
            if len(x) != SPLIT_SIZES[split] or len(y) != len(x):
                raise DataUnavailableError(
                    f"{variant} {split} split has {len(x)} images, expected {SPLIT_SIZES[split]}: "
                    f"the source is incomplete. Remove it (and data/cache/) and provide it again.")
            return x, y, variant
    copy = f"put the torchvision copy (folder cifar-10-batches-py) under {root}"
    mirror = f"put the JPEG mirror cifar10-jpeg.npz at {mirror_path()} or set FREQLIB_CIFAR10_MIRROR to its path"
    internet = "run on a machine with internet so torchvision can download it"
    ways = {"auto": [copy, mirror, internet], "original": [copy, internet], "mirror": [mirror]}[choice]
    failed = f"; the download failed: {_DOWNLOAD_FAILED[0]}" if _DOWNLOAD_FAILED else ""
    raise DataUnavailableError(
        f"CIFAR-10 is not available (FREQLIB_CIFAR10_SOURCE={choice}{failed}). Provide it in one of these ways:\n"
        + "\n".join(f"  {i}. {w};" for i, w in enumerate(ways, 1)))


def available_variant() -> str:
    """Which variant :func:`load_cifar10` would return, without loading anything."""
    choice = source_choice()
    if choice != "mirror" and (data_dir() / "cifar-10-batches-py" / "test_batch").is_file():
        return VARIANT_ORIGINAL
    if choice == "mirror" or (choice == "auto" and mirror_path().is_file()
                              and (_recent_failure() or not _download_host_answers())):
        return VARIANT_MIRROR
    return VARIANT_ORIGINAL     # what the download will give


_HEAD_CHECKED: dict[Path, tuple[float, int]] = {}


def load_test_head():
    """``(images, labels)`` of the original, lossless CIFAR-10 test images 0-931
    (uint8 (932, 32, 32, 3), int64), or ``None`` when the file is absent.

    A present but damaged file is an error (sha256 checked once per process
    and file version), never a silent fallback.
    """
    path = head_path()
    if not path.is_file():
        return None
    stat = path.stat()
    if _HEAD_CHECKED.get(path) != (stat.st_mtime, stat.st_size):
        digest = _sha256(path)
        if digest != HEAD_SHA256:
            raise DataUnavailableError(
                f"The lossless test head {path} has sha256 {digest[:16]}..., expected {HEAD_SHA256[:16]}... "
                "(see ../shared/data/README.md): replace it, or point FREQLIB_CIFAR10_LOSSLESS_HEAD at a good copy.")
        _HEAD_CHECKED[path] = (stat.st_mtime, stat.st_size)
    with np.load(path) as z:
        x, y = z["images"], z["labels"].astype(np.int64)
    if x.shape != (HEAD_SIZE, 32, 32, 3):
        raise DataUnavailableError(f"{path} holds images of shape {x.shape}, expected ({HEAD_SIZE}, 32, 32, 3)")
    return x, y


def to_tensor(images: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 NHWC array -> float32 NCHW tensor in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255)


# ------------------------------------------------------------ batch iterator
class DeviceLoader:
    """Batches from tensors that already live on the device.

    Augmentation (random horizontal flip, random translation by up to
    ``translate`` pixels with reflection padding) is done on the whole batch
    with tensor ops, so there are no worker processes and no host copies.

    ``alternating_flip`` (airbench): which images are flipped is drawn once, and
    every other epoch (the second, fourth, ...) flips the rest instead, so each
    image is seen both ways in every two epochs, not by chance.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool = False, flip: bool = False, translate: int = 0,
                 drop_last: bool = False, seed: int = 0, alternating_flip: bool = False):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.flip, self.translate = flip, translate
        # drawn where the images are: a CPU draw copied to a GPU every step would wait for it
        self.generator = torch.Generator(device=images.device).manual_seed(seed)
        self.alternating_flip, self.epoch, self._flipped = flip and alternating_flip, 0, None

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _augment(self, x: torch.Tensor, idx: torch.Tensor | None = None, odd: bool = False) -> torch.Tensor:
        """Flip and shift ``x``; ``idx`` (the images' indices) and ``odd`` (an odd epoch)
        matter only with ``alternating_flip``."""
        n = x.shape[0]
        if self.alternating_flip:
            flip = self._flipped[idx] ^ odd
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        elif self.flip:
            flip = torch.rand(n, generator=self.generator, device=self.generator.device) < 0.5
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
        if self.translate:
            t = self.translate
            h, w = x.shape[-2:]
            padded = torch.nn.functional.pad(x, (t, t, t, t), mode="reflect")
            draw = lambda: torch.randint(0, 2 * t + 1, (n,), generator=self.generator,  # noqa: E731
                                         device=self.generator.device).to(x.device)
            dy = draw()
            dx = draw()
            rows = (torch.arange(h, device=x.device)[None] + dy[:, None])[:, None, :, None]
            cols = (torch.arange(w, device=x.device)[None] + dx[:, None])[:, None, None, :]
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chan, rows, cols]
        return x

    def __iter__(self):
        n = self.images.shape[0]
        if self.alternating_flip and self._flipped is None:
            self._flipped = (torch.rand(n, generator=self.generator, device=self.generator.device)
                             < 0.5).to(self.images.device)
        odd, self.epoch = self.epoch % 2 == 1, self.epoch + 1
        order = (torch.randperm(n, generator=self.generator, device=self.generator.device) if self.shuffle
                 else torch.arange(n)).to(self.images.device)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx]
            if self.flip or self.translate:
                x = self._augment(x, idx, odd)
            yield x, self.labels[idx]


# -------------------------------------------------- planted-frequency data
@dataclass(frozen=True)
class PlantedBand:
    """Where the class signal lives in the centred spectrum.

    ``r_min <= radius < r_max`` and, if ``angle`` is given (radians, 0 =
    horizontal frequency), within ``angle_width`` of that orientation.
    """
    r_min: float
    r_max: float
    angle: float | None = None
    angle_width: float = math.pi / 8

    def mask(self, h: int = 32, w: int = 32) -> torch.Tensor:
        from .spectral import frequency_angle, frequency_radius
        rad = frequency_radius(h, w)
        keep = (rad >= self.r_min) & (rad < self.r_max)
        if self.angle is not None:
            ang = frequency_angle(h, w)
            diff = torch.remainder(ang - self.angle + math.pi / 2, math.pi) - math.pi / 2
            keep &= diff.abs() <= self.angle_width
        return keep.float()

    @classmethod
    def named(cls, name: "str | PlantedBand") -> "PlantedBand":
        if isinstance(name, PlantedBand):
            return name
        presets = {"low": cls(1, 4), "mid": cls(6, 10), "high": cls(12, 16),
                   "horizontal": cls(3, 14, angle=0.0), "vertical": cls(3, 14, angle=math.pi / 2)}
        if name not in presets:
            raise ValueError(f"unknown planted band {name!r}; choose one of {sorted(presets)} "
                             "or pass a PlantedBand")
        return presets[name]


def planted_frequency_dataset(n: int, band: "str | PlantedBand" = "high", n_classes: int = 4,
                              size: int = 32, signal: float = 0.08, seed: int = 0):
    """Images whose label is carried only by frequencies inside ``band``.

    Each image is 1/f ("pink") noise, the statistics of natural images, plus a
    class template whose spectrum is confined to the band, with a random
    per-image amplitude. Everything outside the band is label-free, so an
    analysis that works must point at the band. Returns float (N, 3, S, S) in
    [0, 1], int64 labels and the band's (S, S) centred mask.
    """
    from .spectral import frequency_radius, inverse_centred_dft

    band = PlantedBand.named(band)
    g = torch.Generator().manual_seed(seed)
    mask = band.mask(size, size)
    if mask.sum() == 0:
        raise ValueError(f"band {band} contains no frequency of a {size}x{size} image")
    rad = frequency_radius(size, size).clamp(min=1.0)

    def random_field(count: int, amplitude: torch.Tensor) -> torch.Tensor:
        phase = torch.rand(count, 3, size, size, generator=g) * 2 * math.pi
        spec = amplitude * torch.polar(torch.ones_like(phase), phase)
        img = inverse_centred_dft(spec)
        return img / img.flatten(1).std(dim=1).clamp(min=1e-8)[:, None, None, None]

    templates = random_field(n_classes, mask)                       # in-band class signal
    labels = torch.randint(0, n_classes, (n,), generator=g)
    background = random_field(n, 1.0 / rad)                          # label-free pink noise
    strength = signal * (0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=g))
    x = 0.5 + 0.12 * background + strength * templates[labels]
    return x.clamp(0, 1), labels.long(), mask
