"""Time the regeneration of CIFAR-10-C (15 corruptions x 5 severities).

Generates ``--n`` test images per corruption and severity with
``freqlib.corruptions.corrupt`` (no cache) from the clean pixels
``freqlib.corruption_sets.default_clean`` picks (original pixels where available),
with the original frost photographs when present, prints images/s per corruption and
the total, and reports the time of the full 15 x 5 x 10,000 set: measured when
``--n 10000`` (the default), else extrapolated linearly from the measured
subset (and labelled as such).

    python bench/bench_corruptions.py [--n 10000] [--device cpu] [--out bench/results.json]
"""
from __future__ import annotations

import argparse
import time

import torch

from common import write
from freqlib import corruption_sets as csets
from freqlib import corruptions as cc
from freqlib import frost

FULL = 10_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=FULL, help="images per corruption and severity (<= 10000)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--corruptions", default=",".join(cc.CORRUPTIONS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON file to merge the results into")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [c for c in args.corruptions.split(",") if c]
    x, _, pixels = csets.default_clean(args.n)
    x = x.to(args.device)
    frost_kind = frost.frost_layers(args.seed).kind if "frost" in names else ""
    per = {}
    for name in names:
        start = time.perf_counter()
        for s in cc.SEVERITIES:
            out = cc.corrupt(x, name, s, args.seed)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        per[name] = {"seconds": round(seconds, 3), "images_per_second": round(5 * len(x) / seconds, 1)}
        print(f"{name:18s} {per[name]['images_per_second']:9.0f} images/s  ({seconds:.1f} s for 5 x {len(x)})",
              flush=True)
        del out
    total = sum(v["seconds"] for v in per.values())
    n_images = 5 * len(x) * len(names)
    scale = (FULL / len(x)) * (len(cc.CORRUPTIONS) / len(names))
    result = {
        "variant": csets.variant_label(pixels, len(x), frost_kind), "device": args.device,
        "images_per_corruption_severity": len(x), "corruptions": names,
        "measured_images": n_images, "measured_seconds": round(total, 2),
        "images_per_second": round(n_images / total, 1),
        "full_set_seconds": round(total * scale, 1),
        "full_set": "measured" if scale == 1 else f"extrapolated linearly (x{scale:.2f}) from the measured subset",
        "per_corruption": per,
    }
    print(f"total: {n_images} images in {total:.1f} s = {n_images / total:.0f} images/s; "
          f"full 15 x 5 x 10,000 set: {result['full_set_seconds']:.0f} s ({result['full_set']})")
    write(args.out, "corruptions", result)


if __name__ == "__main__":
    main()
