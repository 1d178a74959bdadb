"""What software a number was computed with: library versions and the lock file's digest.

Run cards, zoo records and the ledger state these, so a reader can tell
whether two runs can be compared number for number. ``requirements.lock``
(pip-compile with hashes) pins the whole dependency set that ``make book``
and ``make test`` install; ``pyproject.toml`` keeps ranges for library users.
"""
from __future__ import annotations

import hashlib
import platform
import sys
from functools import lru_cache

from .io import repo_root

__all__ = ["LOCK_FILE", "lock_digest", "locked_versions", "lock_matches", "versions", "provenance"]

LOCK_FILE = "requirements.lock"


def lock_digest() -> str:
    """First 12 hex digits of the lock file's sha256, or ``"no lock"`` where there is none."""
    path = repo_root() / LOCK_FILE
    if not path.is_file():
        return "no lock"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Versions of Python and the numerical libraries that decide the numbers."""
    import numpy
    import torch
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    # torchvision's version from its metadata: importing it can fail where its compiled
    # ops do not match torch (the lock's CPU torch with PyPI's CUDA-linked torchvision),
    # and freqlib needs torchvision only to download CIFAR-10.
    from importlib.metadata import PackageNotFoundError, version
    try:
        out["torchvision"] = version("torchvision")
    except PackageNotFoundError:
        out["torchvision"] = "not installed"
    return out


def locked_versions() -> dict[str, str]:
    """``name -> version`` pinned in the lock file ({} without one)."""
    import re
    path = repo_root() / LOCK_FILE
    if not path.is_file():
        return {}
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", path.read_text(), re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def lock_matches() -> str:
    """``"yes"`` when the installed torch, torchvision and numpy are the lock's, else what differs
    (a run in an environment not installed from the lock is marked as such)."""
    pins = locked_versions()
    if not pins:
        return "no lock"
    have = versions()
    diffs = [f"{n} {have[n]} (lock {pins[n]})" for n in ("torch", "torchvision", "numpy")
             if n in pins and have[n] != pins[n]]
    return "yes" if not diffs else "no: " + ", ".join(diffs)


def provenance() -> dict[str, str]:
    """Versions plus the lock digest (and whether they are the lock's) and the platform,
    for records and run cards."""
    return {**versions(), "lock": lock_digest(), "lock_matches": lock_matches(),
            "platform": f"{platform.machine()} {sys.platform}"}
