"""First-layer filters in the frequency domain (Paper B: Jia, Bao & Ma 2019).

Measuring a filter
------------------
A ``k x k`` kernel (all its input channels) is zero-padded to the 32x32 input
size and its power spectrum taken (summed over input channels). Its
**high-frequency energy ratio** is

    rho = energy at radius >= R_CUT  /  total energy,

with ``R_CUT = sqrt(32*32 / 2 / pi) ~= 12.77`` cycles per image: the circle that
splits the 32x32 frequency grid into two halves of equal area. **Rule:** a
filter is *high-frequency* when ``rho > 0.5`` (most of its energy in the outer
half of the spectrum), else *low-frequency*. An all-pass filter (a delta) sits
on the boundary (rho = 0.503).

Because the spectrum of a zero-padded kernel is linear in its weights, rho is
a Rayleigh quotient ``w^T H w / w^T w`` of a fixed 9x9 matrix ``H`` (per input
channel). The eigenvectors of ``H`` split the 3x3 kernels into a 4-dimensional
*low band* (rho <= 0.37: the smooth blob, two gradients, one saddle) and a
5-dimensional *high band* (rho >= 0.64). Any kernel inside a band stays in it,
so a stem built from band bases has a known share of high-frequency filters.

Figures for these live in :mod:`freqlib.filter_figures`, so that editing a
plot does not change this file (the zoo hashes it into every constrained-stem
model's key).

Constrained stems (used through ``TrainConfig.stem``)
-----------------------------------------------------
* ``{"kind": "banded", "high_share": p}``: ``round(p * out_ch)`` filters are
  free combinations of the high-band basis, the rest of the low-band basis.
* ``{"kind": "modulated"}``: every filter is ``(1 - m) L/|L| + m H/|H|`` with a
  free low-band kernel ``L``, a free high-band kernel ``H`` and a learnable mix
  ``m = sigmoid(theta)`` (theta starts at 0). The share of filters the rule
  calls high is then learned. This is our reconstruction of the paper's
  "learnable modulation"; the paper's exact parametrisation is not public.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn
import torch.nn.functional as F

from .spectral import frequency_radius, power_spectrum

__all__ = ["PAD", "R_CUT", "THRESHOLD", "kernel_power", "high_frequency_ratio", "classify",
           "band_basis", "BandedStem", "ModulatedStem", "make_constrained_stem",
           "stem_weight", "band_eigen"]

PAD = 32
R_CUT = math.sqrt(PAD * PAD / 2 / math.pi)
THRESHOLD = 0.5


def stem_weight(module_or_weight) -> torch.Tensor:
    """(out, in, k, k) kernels of a first layer (a Conv2d, a constrained stem or a tensor)."""
    w = module_or_weight.weight if isinstance(module_or_weight, nn.Module) else module_or_weight
    return w.detach().float().cpu()


def kernel_power(weight, size: int = PAD) -> torch.Tensor:
    """Centred power spectra (out, size, size) of kernels zero-padded to ``size``,
    summed over input channels."""
    w = stem_weight(weight)
    if w.dim() != 4 or w.shape[-1] > size or w.shape[-2] > size:
        raise ValueError(f"expected kernels (out, in, k, k) with k <= {size}, got {tuple(w.shape)}")
    padded = F.pad(w, (0, size - w.shape[-1], 0, size - w.shape[-2]))
    return power_spectrum(padded).sum(1)


def high_frequency_ratio(weight, r_cut: float = R_CUT, size: int = PAD) -> torch.Tensor:
    """Share of each kernel's spectral energy at radius >= ``r_cut``, shape (out,)."""
    p = kernel_power(weight, size)
    high = (frequency_radius(size, size) >= r_cut).float()
    return (p * high).sum((-2, -1)) / p.sum((-2, -1)).clamp(min=1e-20)


def classify(weight, threshold: float = THRESHOLD, **kw) -> torch.Tensor:
    """True for the kernels the rule calls high-frequency (ratio > threshold)."""
    return high_frequency_ratio(weight, **kw) > threshold


@lru_cache(maxsize=8)
def _band_eig(k: int, r_cut: float, size: int):
    fy = torch.fft.fftfreq(size, dtype=torch.float64) * size
    fyy, fxx = torch.meshgrid(fy, fy, indexing="ij")
    # radius as measured on the centred grid (frequency -size/2 has radius size/2)
    rad = torch.fft.ifftshift(frequency_radius(size, size).double())
    a = torch.arange(k, dtype=torch.float64)
    ay, ax = torch.meshgrid(a, a, indexing="ij")
    phase = -2 * math.pi * (fyy.reshape(-1, 1) * ay.reshape(1, -1) + fxx.reshape(-1, 1) * ax.reshape(1, -1)) / size
    basis = torch.polar(torch.ones_like(phase), phase)                 # (size^2, k^2)
    mask = (rad.reshape(-1) >= r_cut).to(torch.complex128)
    h = (basis.conj().T @ (mask[:, None] * basis)).real / (size * size)
    vals, vecs = torch.linalg.eigh(h)
    return vals, vecs.T                                                 # rows: unit kernels


def band_eigen(k: int = 3, r_cut: float = R_CUT, size: int = PAD) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``k*k`` eigen-kernels of the ratio (rows, ascending ratio) and their ratios."""
    vals, vecs = _band_eig(k, float(r_cut), size)
    return vals.float(), vecs.float()


def band_basis(band: str, k: int = 3, r_cut: float = R_CUT, size: int = PAD,
               threshold: float = THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal (m, k*k) basis of the ``"low"`` or ``"high"`` band and the ratio of each vector."""
    if band not in ("low", "high"):
        raise ValueError(f"band must be 'low' or 'high', got {band!r}")
    vals, vecs = _band_eig(k, float(r_cut), size)
    keep = vals > threshold if band == "high" else vals <= threshold
    if not keep.any():
        raise ValueError(f"no {k}x{k} kernel has its ratio on the {band} side of {threshold}")
    return vecs[keep].float(), vals[keep].float()


def _coef_init(shape, fan_in: int, gen=None) -> nn.Parameter:
    return nn.Parameter(torch.randn(shape, generator=gen) / math.sqrt(fan_in))


class BandedStem(nn.Module):
    """3x3 conv (padding 1, no bias) whose first ``n_low`` filters live in the low
    band and the other ``n_high`` in the high band."""

    def __init__(self, in_ch: int, out_ch: int, high_share: float, k: int = 3):
        super().__init__()
        if not 0.0 <= high_share <= 1.0:
            raise ValueError(f"high_share must be in [0, 1], got {high_share}")
        self.in_ch, self.out_ch, self.k = in_ch, out_ch, k
        self.n_high = int(round(high_share * out_ch))
        self.n_low = out_ch - self.n_high
        low, _ = band_basis("low", k)
        high, _ = band_basis("high", k)
        self.register_buffer("basis_low", low)
        self.register_buffer("basis_high", high)
        self.coef_low = _coef_init((self.n_low, in_ch, low.shape[0]), in_ch * k * k)
        self.coef_high = _coef_init((self.n_high, in_ch, high.shape[0]), in_ch * k * k)

    @property
    def weight(self) -> torch.Tensor:
        w = torch.cat([self.coef_low @ self.basis_low, self.coef_high @ self.basis_high])
        return w.reshape(self.out_ch, self.in_ch, self.k, self.k)

    @property
    def band(self) -> torch.Tensor:
        """1 for filters built in the high band, 0 for the low band."""
        return torch.cat([torch.zeros(self.n_low), torch.ones(self.n_high)])

    def forward(self, x):
        return F.conv2d(x, self.weight.to(x.dtype), padding=self.k // 2)

    def extra_repr(self) -> str:
        return f"{self.in_ch}, {self.out_ch}, low={self.n_low}, high={self.n_high}"


class ModulatedStem(nn.Module):
    """3x3 conv whose filter ``i`` is ``(1 - m_i) L_i/|L_i| + m_i H_i/|H_i|`` with a
    learnable ``m_i = sigmoid(theta_i)`` mixing a low-band and a high-band kernel."""

    def __init__(self, in_ch: int, out_ch: int, k: int = 3, init_mix: float = 0.5):
        super().__init__()
        if not 0.0 < init_mix < 1.0:
            raise ValueError(f"init_mix must be in (0, 1), got {init_mix}")
        self.in_ch, self.out_ch, self.k = in_ch, out_ch, k
        low, _ = band_basis("low", k)
        high, _ = band_basis("high", k)
        self.register_buffer("basis_low", low)
        self.register_buffer("basis_high", high)
        self.coef_low = _coef_init((out_ch, in_ch, low.shape[0]), in_ch * k * k)
        self.coef_high = _coef_init((out_ch, in_ch, high.shape[0]), in_ch * k * k)
        self.theta = nn.Parameter(torch.full((out_ch,), math.log(init_mix / (1 - init_mix))))

    @property
    def mix(self) -> torch.Tensor:
        return torch.sigmoid(self.theta)

    def components(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo = (self.coef_low @ self.basis_low).reshape(self.out_ch, -1)
        hi = (self.coef_high @ self.basis_high).reshape(self.out_ch, -1)
        return (lo / lo.norm(dim=1, keepdim=True).clamp(min=1e-12),
                hi / hi.norm(dim=1, keepdim=True).clamp(min=1e-12))

    @property
    def weight(self) -> torch.Tensor:
        lo, hi = self.components()
        m = self.mix[:, None]
        return ((1 - m) * lo + m * hi).reshape(self.out_ch, self.in_ch, self.k, self.k)

    def forward(self, x):
        return F.conv2d(x, self.weight.to(x.dtype), padding=self.k // 2)

    def extra_repr(self) -> str:
        return f"{self.in_ch}, {self.out_ch}, learnable low/high mix"


STEMS = {"banded": BandedStem, "modulated": ModulatedStem}


def make_constrained_stem(kind: str, in_ch: int, out_ch: int, **spec) -> nn.Module:
    """The first-layer module for ``TrainConfig.stem = {"kind": kind, **spec}``."""
    if kind not in STEMS:
        raise ValueError(f"unknown stem kind {kind!r}; choose from {sorted(STEMS)} (or 'plain')")
    try:
        return STEMS[kind](in_ch, out_ch, **spec)
    except TypeError as exc:
        raise ValueError(f"bad options {spec} for stem kind {kind!r}: {exc}") from None
