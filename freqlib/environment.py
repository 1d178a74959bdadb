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

__all__ = ["LOCK_FILE", "lock_digest", "versions", "provenance"]

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
    try:
        import torchvision
        out["torchvision"] = torchvision.__version__
    except ImportError:
        out["torchvision"] = "not installed"
    return out


def provenance() -> dict[str, str]:
    """Versions plus the lock digest and the platform, for records and run cards."""
    return {**versions(), "lock": lock_digest(), "platform": f"{platform.machine()} {sys.platform}"}
