"""Scoring a lens map against the candidate bands (chapter 6): AUROC of every band
for every bootstrap replicate of a map.

Baseline: the ranking freqlib used until 2026-11-26: each band's AUROC ranked the
maps again, with two binary searches per value for tied ranks. Ours
(``freqlib.validity.band_scores``): one sort ranks the maps for all bands, tie
groups found by running max/min, and one matrix product gives every band's rank
sum. Both are checked against scipy's ``rankdata`` before timing.

    python bench/bench_lens_scoring.py [--maps 2000] [--device cpu] [--out bench/results.json]
"""
from __future__ import annotations

import argparse

import torch
from scipy.stats import rankdata

from common import timed, write
from freqlib import validity as V


def searchsorted_midranks(v: torch.Tensor) -> torch.Tensor:
    s = v.sort(dim=-1).values.contiguous()
    lo = torch.searchsorted(s, v.contiguous(), right=False)
    hi = torch.searchsorted(s, v.contiguous(), right=True)
    return (lo + hi + 1).double() / 2


def per_band(maps: torch.Tensor, bands: dict) -> torch.Tensor:
    """The baseline: every band ranks the maps again."""
    m = V._reps(*maps.shape[-2:]).numel()
    out = []
    for band in bands.values():
        v = V._quantise(V._flat_reps(maps.double()).reshape(-1, m))
        inside = V._flat_reps(band.bool()).double()
        n1 = float(inside.sum())
        out.append((searchsorted_midranks(v) @ inside - n1 * (n1 + 1) / 2) / (n1 * (m - n1)))
    return torch.stack(out, -1)


def scipy_scores(maps: torch.Tensor, bands: dict) -> torch.Tensor:
    m = V._reps(*maps.shape[-2:]).numel()
    v = V._quantise(V._flat_reps(maps.double()).reshape(-1, m)).numpy()
    ranks = torch.from_numpy(rankdata(v, method="average", axis=-1))
    inside = torch.stack([V._flat_reps(b.bool()) for b in bands.values()], 1).double()
    n1 = inside.sum(0)
    return (ranks @ inside - n1 * (n1 + 1) / 2) / (n1 * (m - n1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maps", type=int, default=2000, help="maps scored at once (bootstrap replicates)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bands = V.band_masks()
    gen = torch.Generator().manual_seed(0)
    # a heat-map-like replicate stack: smooth radial profile + noise, with ties from a coarse copy
    smooth = V.radial_map(torch.rand(args.maps, 23, generator=gen)).double()
    maps = (smooth + 0.05 * torch.rand(args.maps, 32, 32, generator=gen, dtype=torch.float64))
    maps[: args.maps // 2] = (maps[: args.maps // 2] * 4).round()           # half of them with many ties
    maps = maps.to(args.device)
    want = scipy_scores(maps.cpu(), bands)
    for fn in (per_band, V.band_scores):
        got = fn(maps, bands).cpu()
        assert torch.allclose(got, want, atol=1e-12), f"{fn.__name__} differs from scipy by {(got - want).abs().max()}"
    sync = args.device.startswith("cuda")
    base = timed(lambda: per_band(maps, bands), sync=sync)
    ours = timed(lambda: V.band_scores(maps, bands), sync=sync)
    write(args.out, "lens_scoring", {"maps": args.maps, "bands": len(bands), "device": args.device,
                                     "per_band_s": round(base, 4), "one_ranking_s": round(ours, 4),
                                     "speedup": round(base / ours, 1)})


if __name__ == "__main__":
    main()
