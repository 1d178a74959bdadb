"""Cost of the bootstrap behind every interval.

1. Resamples per second for a typical criterion: a paired difference of two
   per-image arrays (``freqlib.verdicts.difference``), 2000 resamples of 1000
   images, on the device.
2. Its share of a chapter's wall time (goal: under 5%): the chapter is executed
   with papermill, as the runner does, with one extra first cell that times
   every call of ``freqlib.verdicts.bootstrap`` (and ``ctx.bootstrap``) inside
   the kernel; the share is that time over the whole execution.

    python bench/bench_bootstrap.py [--chapters 01 02 03] [--profile smoke] [--out bench/results.json]

A chapter that fails to execute is reported as such (with its error), not timed.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from common import timed, write
from freqlib.verdicts import difference

TIMER_CELL = '''# benchmark instrumentation (bench/bench_bootstrap.py): time every bootstrap call
import time as _bt, functools as _bf, freqlib.verdicts as _bv, freqlib.chapter as _bc
_BOOT = {"seconds": 0.0, "calls": 0, "resamples": 0}
def _timed_bootstrap(fn):
    @_bf.wraps(fn)
    def wrapper(*a, **k):
        t = _bt.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            _BOOT["seconds"] += _bt.perf_counter() - t
            _BOOT["calls"] += 1
            _BOOT["resamples"] += k.get("n_boot", 2000)
    return wrapper
_bv.bootstrap = _timed_bootstrap(_bv.bootstrap)
_bc.bootstrap = _bv.bootstrap   # ctx.bootstrap; mean_estimate/difference look the name up at call time
'''
DUMP_CELL = '''import json as _bj
open({path!r}, "w").write(_bj.dumps(_BOOT))
'''


def micro(n_boot: int, n_images: int, device: str) -> dict:
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(n_images, generator=gen).to(device)
    b = (a + 0.1 * torch.randn(n_images, generator=gen).to(device)).clamp(0, 1)
    sync = device.startswith("cuda")
    seconds = timed(lambda: difference(a, b, n_boot=n_boot, device=device), repeats=5, sync=sync)
    return {"n_boot": n_boot, "n_images": n_images, "arrays": 2, "seconds": round(seconds, 4),
            "resamples_per_s": round(n_boot / seconds)}


def chapter_share(name: str, profile: str, device: str) -> dict:
    """Execute chapter ``name`` with the timer cell; bootstrap seconds over wall seconds."""
    import nbformat
    import papermill
    from freqlib.runner import resolve_chapter, validate_parameters
    src = Path(name).resolve() if name.endswith(".ipynb") else resolve_chapter(name)
    params = validate_parameters(src, {"profile": profile, "device": device})
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "boot.json"
        nb = nbformat.read(src, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_code_cell(TIMER_CELL))
        nb.cells.append(nbformat.v4.new_code_cell(DUMP_CELL.format(path=str(dump))))
        staged = Path(tmp) / src.name
        nbformat.write(nb, staged)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(staged), str(Path(tmp) / "out.ipynb"), parameters=params,
                                       kernel_name="python3", cwd=str(src.parent), progress_bar=False)
        except Exception as exc:
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
            return {"chapter": src.stem, "profile": profile, "error": line}
        wall = time.perf_counter() - start
        boot = json.loads(dump.read_text())
    return {"chapter": src.stem, "profile": profile, "wall_s": round(wall, 1),
            "bootstrap_s": round(boot["seconds"], 2), "calls": boot["calls"],
            "share_pct": round(100 * boot["seconds"] / wall, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--n-images", type=int, nargs="+", default=[1000, 10_000],
                    help="images per criterion (1000: typical; 10,000: the quick profile's whole test set)")
    ap.add_argument("--chapters", nargs="*", default=["01", "02", "03"])
    ap.add_argument("--profile", default="smoke", help="profile of the chapter executions")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("FREQLIB_THREADS", str(torch.get_num_threads()))
    sizes = [micro(args.n_boot, n, args.device) for n in args.n_images]
    result = {"criterion": sizes[0], "criteria": sizes, "device": args.device,
              "chapters": [chapter_share(c, args.profile, args.device) for c in args.chapters],
              "load_average": round(os.getloadavg()[0], 1)}
    write(args.out, f"bootstrap_{args.device}", result)


if __name__ == "__main__":
    main()
