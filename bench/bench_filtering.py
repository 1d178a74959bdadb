"""Band filtering of a batch of images, batched torch vs per-image numpy loops.

1. DCT band occlusion, bands 0..31 (Paper A's attribution input). Baseline in
   the style of the reference code (zifanw/frequency_explain): per image and
   band, scipy DCT -> zero the band -> inverse DCT. Ours: one batched DCT (two
   matmuls), all 32 masks at once, one batched inverse.
2. Radial low/high-pass at radii 0..16 (Wang et al. 2020 disks). Baseline:
   per image and channel, numpy fft2 -> fftshift -> mask -> ifft2. Ours: one
   real FFT shared by all radii, high = x - low.
Both pairs produce the same arrays (checked before timing).

    python bench/bench_filtering.py --n 1000 [--device cpu] [--out bench/results.json]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from common import timed, write
from freqlib import spectral


def numpy_loop(images: np.ndarray, radii) -> list[np.ndarray]:
    h, w = images.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    dist = np.sqrt((yy - h // 2) ** 2 + (xx - w // 2) ** 2)
    out = []
    for r in radii:
        mask = (dist < r).astype(float)
        low = np.empty_like(images)
        high = np.empty_like(images)
        for n in range(images.shape[0]):
            for c in range(images.shape[1]):
                f = np.fft.fftshift(np.fft.fft2(images[n, c]))
                low[n, c] = np.real(np.fft.ifft2(np.fft.ifftshift(f * mask)))
                high[n, c] = np.real(np.fft.ifft2(np.fft.ifftshift(f * (1 - mask))))
        out.append((low, high))
    return out


def batched(images: torch.Tensor, radii) -> list[tuple[torch.Tensor, torch.Tensor]]:
    low = spectral.low_pass_stack(images, radii)   # one forward FFT for all radii
    return list(zip(low, images[None] - low))       # high = x - low, exactly


def dct_numpy_loop(images: np.ndarray) -> np.ndarray:
    from scipy.fftpack import dct, idct
    n, c, h, w = images.shape
    out = np.empty((h, n, c, h, w))
    for i in range(n):
        img = images[i].transpose(1, 2, 0)                      # HWC, as the reference code
        for k in range(h):
            f = dct(dct(img.copy(), norm="ortho", axis=0), norm="ortho", axis=1)
            f[k, :k + 1] = 0
            f[:k + 1, k] = 0
            out[k, i] = idct(idct(f, norm="ortho", axis=0), norm="ortho", axis=1).transpose(2, 0, 1)
    return out


def dct_batched(images: torch.Tensor) -> torch.Tensor:
    bands = spectral.dct_band_index(*images.shape[-2:], images.device)
    keep = (bands[None] != torch.arange(images.shape[-2], device=images.device)[:, None, None]).to(images.dtype)
    return spectral.idct2(spectral.dct2(images)[None] * keep[:, None, None])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    radii = list(range(17))
    x = torch.rand(args.n, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ref = numpy_loop(x[:4].double().numpy(), radii)
    ours = batched(x[:4].double(), radii)
    assert all(np.allclose(a[0], b[0].numpy()) and np.allclose(a[1], b[1].numpy()) for a, b in zip(ref, ours))
    assert np.allclose(dct_numpy_loop(x[:3].double().numpy()), dct_batched(x[:3].double()).numpy())
    xd = x.to(args.device)
    sync = args.device.startswith("cuda")
    n_dct = min(args.n, 200)  # the scipy loop is slow: time it on a subset, report per image
    t_dloop = timed(lambda: dct_numpy_loop(x[:n_dct].numpy()), repeats=1) / n_dct
    t_dours = timed(lambda: dct_batched(xd), repeats=3, sync=sync) / args.n
    write(args.out, f"dct_band_occlusion_{args.device.split(':')[0]}", {
        "bands": 32, "device": args.device, "numpy_loop_ms_per_image": round(1e3 * t_dloop, 3),
        "batched_ms_per_image": round(1e3 * t_dours, 4), "speedup": round(t_dloop / t_dours, 1)})
    t_loop = timed(lambda: numpy_loop(x.numpy(), radii), repeats=1)
    t_ours = timed(lambda: batched(xd, radii), repeats=3, sync=sync)
    result = {"images": args.n, "radii": len(radii), "device": args.device,
              "numpy_loop_s": round(t_loop, 4), "batched_torch_s": round(t_ours, 4),
              "speedup": round(t_loop / t_ours, 1),
              "batched_images_per_s": round(args.n * len(radii) * 2 / t_ours)}
    write(args.out, f"band_filtering_{args.device.split(':')[0]}", result)


if __name__ == "__main__":
    main()
