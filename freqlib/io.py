"""Atomic file writes and repository paths.

Everything the book writes (checkpoints, caches, executed notebooks, JSON
records) goes through a temporary file in the same folder and ``os.replace``,
so an interrupted run never leaves a half-written file under the final name.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["repo_root", "atomic_path", "atomic_write_text", "atomic_write_json",
           "atomic_save_npz", "atomic_torch_save"]


def repo_root() -> Path:
    """The repository root (parent of the ``freqlib`` package), or ``$FREQLIB_ROOT``."""
    env = os.environ.get("FREQLIB_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[1]


@contextmanager
def atomic_path(target: os.PathLike, suffix: str = ""):
    """Yield a temporary path beside ``target``; move it into place on success only."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + suffix, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; caches are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(target: os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def atomic_write_json(target: os.PathLike, obj) -> None:
    atomic_write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_save_npz(target: os.PathLike, **arrays) -> None:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:  # a handle: numpy adds no suffix
        np.savez(fh, **arrays)


def atomic_torch_save(obj, target: os.PathLike) -> None:
    import torch
    with atomic_path(target) as tmp:
        torch.save(obj, tmp)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} as JSON")
