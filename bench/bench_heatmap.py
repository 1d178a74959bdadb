"""Fourier heat map throughput: perturbed images evaluated per second.

Uses the standard zoo model of the profile when it is cached (else a freshly
initialised network of the same architecture: speed does not depend on the
weights).

    python bench/bench_heatmap.py [--profile quick] [--n 100] [--out bench/results.json]
"""
from __future__ import annotations

import argparse
import time

import torch

from common import write
from freqlib.heatmap import distinct_frequencies, fourier_heatmap
from freqlib.models import build_model
from freqlib.profiles import PROFILES, resolve_device, resolve_profile
from freqlib.evaluate import prepare_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n", type=int, default=100, help="test images")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = resolve_device(args.device)
    profile = resolve_profile(args.profile, device)
    cfg = PROFILES[profile]
    model = prepare_model(build_model(cfg["arch"], cfg["widths"]), device).eval()
    x, y = torch.rand(args.n, 3, 32, 32), torch.randint(0, 10, (args.n,))
    fourier_heatmap(model, x[:4], y[:4])  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    fourier_heatmap(model, x, y)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    n_bases = len(distinct_frequencies(32, 32)[0])
    write(args.out, f"fourier_heatmap_{device.split(':')[0]}", {
        "profile": profile, "arch": cfg["arch"], "test_images": args.n, "distinct_bases": n_bases,
        "seconds": round(seconds, 2), "perturbed_images_per_s": round(args.n * n_bases / seconds),
        "full_test_set_estimate_s": round(seconds * 10_000 / args.n, 1)})


if __name__ == "__main__":
    main()
