"""Shared bits of the benchmark scripts: timing and the JSON they write."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from freqlib.io import atomic_write_json


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__}


def timed(fn, repeats: int = 3, sync: bool = False) -> float:
    """Best-of-``repeats`` wall time of ``fn()`` in seconds (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def write(out: str | None, name: str, result: dict) -> None:
    """Merge ``result`` under ``name`` into the JSON at ``out`` (atomic)."""
    print(json.dumps({name: result}, indent=2))
    if out:
        path = Path(out)
        data = json.loads(path.read_text()) if path.is_file() else {}
        data[name] = {**result, "machine": machine()}
        atomic_write_json(path, data)
