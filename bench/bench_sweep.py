"""Sweep throughput: ``seeds`` seeds of one chapter through submitit's local
executor (jobs in parallel, one thread each) against the same executions one
after another (each with every core), measured in one run.

    python bench/bench_sweep.py [--chapter 00] [--profile smoke] [--seeds 3] [--out bench/results.json]

Both arms execute from scratch into temporary folders (nothing is skipped).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import write


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chapter", default="00")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from freqlib.runner import execute_chapter, resolve_chapter
    from freqlib.sweep import _cores, run_sweep
    chapter = resolve_chapter(args.chapter)
    seeds = list(range(args.seeds))
    cores = _cores()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FREQLIB_SWEEPS"] = str(Path(tmp) / "sweeps")
        start = time.perf_counter()
        summary = run_sweep([args.chapter], [args.profile], seeds, device=args.device, cluster="local",
                            log=lambda *a: None)
        sweep_s = time.perf_counter() - start
        if summary["failures"]:
            raise SystemExit(f"sweep failed: {summary['failures']}")
        os.environ["FREQLIB_THREADS"] = str(cores)
        start = time.perf_counter()
        for seed in seeds:
            execute_chapter(chapter, {"profile": args.profile, "device": args.device, "seed": seed},
                            Path(tmp) / f"seq{seed}", force=True, log=lambda *a: None)
        sequential_s = time.perf_counter() - start
    write(args.out, "sweep_throughput", {
        "chapter": chapter.stem, "profile": args.profile, "seeds": args.seeds, "cores": cores,
        "sweep_local_s": round(sweep_s, 1), "sequential_s": round(sequential_s, 1),
        "speedup": round(sequential_s / sweep_s, 2),
        "load_average_before": round(load_before, 1), "load_average_after": round(os.getloadavg()[0], 1)})


if __name__ == "__main__":
    main()
