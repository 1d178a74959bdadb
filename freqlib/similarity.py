"""Image similarity: per-image PSNR and SSIM of two batches (one definition for the book:
chapter 2's corruptions, chapter 3's masked images, chapter 6's signatures)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim"]


def _gauss_window(size: int, sigma: float, channels: int, device, dtype):
    ax = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-ax ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 7,
         sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) of two (N, C, H, W) batches, Gaussian window,
    valid region only, averaged over channels and positions. Returns (N,)."""
    if x.shape != y.shape:
        raise ValueError(f"ssim needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    c = x.shape[1]
    win = _gauss_window(window, sigma, c, x.device, x.dtype)
    f = lambda t: F.conv2d(t, win, groups=c)
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB of two (N, C, H, W) batches."""
    mse = (x - y).pow(2).flatten(1).mean(1).clamp(min=1e-12)
    return 10 * torch.log10(data_range ** 2 / mse)
