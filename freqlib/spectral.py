"""Spectral operations on batches of images.

Every function takes a float tensor of shape (N, C, H, W) (or (..., H, W)) on any
device and works on the whole batch at once: no per-image Python loops.

Conventions
-----------
* Centred DFT: ``fftshift(fft2(x, norm="ortho"))``; frequency (0, 0) sits at
  index (H // 2, W // 2).
* Radial filters follow Wang et al. (CVPR 2020, "High-frequency component helps
  explain..."): the low-pass keeps the disk of Euclidean distance ``< r`` around
  the centre of the centred spectrum; the high-pass keeps the rest, so
  ``low_pass(x, r) + high_pass(x, r) == x``.
* DCT: orthonormal type-II per channel, computed as ``D @ x @ D.T``.
  DCT L-infinity band ``k`` is ``{(u, v): max(u, v) == k}``, ``k = 0 .. H-1``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

__all__ = [
    "centred_dft", "inverse_centred_dft", "frequency_radius", "frequency_angle",
    "radial_mask", "low_pass", "high_pass", "low_pass_stack", "band_pass",
    "dct_matrix", "dct2", "idct2", "dct_band_index", "dct_band_energy",
    "zero_dct_band", "keep_dct_band", "perturb_amplitude",
    "power_spectrum", "radial_profile", "angular_profile", "fourier_basis", "fit_power_law",
]


# ---------------------------------------------------------------- DFT helpers
def centred_dft(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DFT over the last two axes with (0, 0) moved to the centre."""
    return torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))


def inverse_centred_dft(spectrum: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`centred_dft`; returns the real part."""
    return torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1)), norm="ortho").real


@lru_cache(maxsize=32)
def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    fy = torch.arange(h, dtype=torch.float64) - h // 2
    fx = torch.arange(w, dtype=torch.float64) - w // 2
    return torch.meshgrid(fy, fx, indexing="ij")


def frequency_radius(h: int, w: int, device=None) -> torch.Tensor:
    """Distance of every centred-spectrum index from the centre, shape (H, W)."""
    fy, fx = _grid(h, w)
    return torch.sqrt(fy ** 2 + fx ** 2).to(device=device, dtype=torch.float32)


def frequency_angle(h: int, w: int, device=None) -> torch.Tensor:
    """Orientation of every centred frequency in [0, pi), shape (H, W).

    Angle 0 is a horizontal frequency (vertical stripes). Frequencies f and -f
    share an angle because they are one real component.
    """
    fy, fx = _grid(h, w)
    return torch.remainder(torch.atan2(fy, fx), math.pi).to(device=device, dtype=torch.float32)


def radial_mask(h: int, w: int, r: float, device=None) -> torch.Tensor:
    """1 inside the open disk of radius ``r`` around the centre, else 0 (float)."""
    return (frequency_radius(h, w, device) < r).float()


def _apply_centred_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return inverse_centred_dft(centred_dft(x) * mask)


def _apply_symmetric_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Filter with a centred mask that is point-symmetric (m(f) == m(-f)).

    Then the filtered spectrum stays Hermitian, so the half spectrum of a real
    FFT suffices: about 10x faster than the full complex transform on CPU.
    """
    h, w = x.shape[-2:]
    half = torch.fft.ifftshift(mask, dim=(-2, -1))[..., : w // 2 + 1]
    return torch.fft.irfft2(torch.fft.rfft2(x, norm="ortho") * half, s=(h, w), norm="ortho")


def low_pass(x: torch.Tensor, r: float) -> torch.Tensor:
    """Keep frequencies at distance < r from the centre (r = 0 gives zeros)."""
    return _apply_symmetric_mask(x, radial_mask(x.shape[-2], x.shape[-1], r, x.device).to(x.dtype))


def high_pass(x: torch.Tensor, r: float) -> torch.Tensor:
    """Remove frequencies at distance < r (r = 0 gives x back); exactly ``x - low_pass(x, r)``."""
    return x - low_pass(x, r)


def low_pass_stack(x: torch.Tensor, radii) -> torch.Tensor:
    """Low-pass versions of ``x`` at every radius, sharing one forward FFT: ``(R, *x.shape)``."""
    h, w = x.shape[-2:]
    masks = torch.stack([radial_mask(h, w, r, x.device) for r in radii]).to(x.dtype)
    half = torch.fft.ifftshift(masks, dim=(-2, -1))[..., : w // 2 + 1]
    spec = torch.fft.rfft2(x, norm="ortho")
    half = half.reshape(len(radii), *([1] * (x.dim() - 2)), h, w // 2 + 1)
    return torch.fft.irfft2(spec[None] * half, s=(h, w), norm="ortho")


def band_pass(x: torch.Tensor, r_low: float, r_high: float) -> torch.Tensor:
    """Keep frequencies with r_low <= distance < r_high."""
    rad = frequency_radius(x.shape[-2], x.shape[-1], x.device)
    return _apply_symmetric_mask(x, ((rad >= r_low) & (rad < r_high)).to(x.dtype))


# ---------------------------------------------------------------------- DCT
@lru_cache(maxsize=32)
def _dct_matrix_cpu(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


def dct_matrix(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II matrix D (n x n): ``D @ D.T == I``."""
    return _dct_matrix_cpu(n).to(device=device, dtype=dtype)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two axes (batched)."""
    dh = dct_matrix(x.shape[-2], x.device, x.dtype)
    dw = dct_matrix(x.shape[-1], x.device, x.dtype)
    return dh @ x @ dw.T


def idct2(coeffs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct2`."""
    dh = dct_matrix(coeffs.shape[-2], coeffs.device, coeffs.dtype)
    dw = dct_matrix(coeffs.shape[-1], coeffs.device, coeffs.dtype)
    return dh.T @ coeffs @ dw


def dct_band_index(h: int, w: int, device=None) -> torch.Tensor:
    """Band number ``max(u, v)`` of every DCT coefficient, shape (H, W), int64."""
    u = torch.arange(h, device=device)[:, None]
    v = torch.arange(w, device=device)[None, :]
    return torch.maximum(u.expand(h, w), v.expand(h, w))


def dct_band_energy(x: torch.Tensor, reduce_channels: bool = True) -> torch.Tensor:
    """Sum of ``|DCT|^2`` in each L-infinity band: (N, C, H, W) -> (N, n_bands).

    With ``reduce_channels=False`` the result is (N, C, n_bands).
    """
    coeffs = dct2(x) ** 2
    h, w = x.shape[-2:]
    band = dct_band_index(h, w, x.device).flatten()
    n_bands = max(h, w)
    flat = coeffs.flatten(-2)
    out = torch.zeros(*flat.shape[:-1], n_bands, device=x.device, dtype=flat.dtype)
    out.index_add_(out.dim() - 1, band, flat)
    return out.sum(-2) if reduce_channels else out


def zero_dct_band(x: torch.Tensor, band: int) -> torch.Tensor:
    """x with the DCT coefficients of L-infinity band ``band`` set to zero."""
    keep = (dct_band_index(x.shape[-2], x.shape[-1], x.device) != band).to(x.dtype)
    return idct2(dct2(x) * keep)


def keep_dct_band(x: torch.Tensor, band: int) -> torch.Tensor:
    """x with only the DCT coefficients of L-infinity band ``band`` kept."""
    keep = (dct_band_index(x.shape[-2], x.shape[-1], x.device) == band).to(x.dtype)
    return idct2(dct2(x) * keep)


# --------------------------------------------------------- power profiles
def power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """``|centred DFT|^2``, same shape as ``x``."""
    return centred_dft(x).abs() ** 2


def radial_profile(power: torch.Tensor, n_bins: int | None = None) -> torch.Tensor:
    """Mean of a centred (..., H, W) map over annuli of unit width.

    Bin ``k`` holds frequencies with ``k <= radius < k + 1``; the default
    number of bins is ``min(H, W) // 2 + 1`` (corners beyond are dropped).
    Returns (..., n_bins).
    """
    h, w = power.shape[-2:]
    n_bins = n_bins or min(h, w) // 2 + 1
    idx = frequency_radius(h, w, power.device).floor().long().flatten()
    return _binned_mean(power, idx, n_bins)


def angular_profile(power: torch.Tensor, n_bins: int = 8, r_min: float = 1.0,
                    r_max: float | None = None) -> torch.Tensor:
    """Mean of a centred (..., H, W) map over orientation wedges in [0, pi).

    Only frequencies with ``r_min <= radius < r_max`` count (the DC term has
    no orientation). Wedge ``k`` is centred on angle ``k * pi / n_bins``.
    """
    h, w = power.shape[-2:]
    r_max = r_max if r_max is not None else min(h, w) / 2 + 0.5
    rad = frequency_radius(h, w, power.device).flatten()
    ang = frequency_angle(h, w, power.device).flatten()
    width = math.pi / n_bins
    idx = torch.floor(torch.remainder(ang + width / 2, math.pi) / width).long().clamp(max=n_bins - 1)
    idx = torch.where((rad >= r_min) & (rad < r_max), idx, torch.full_like(idx, n_bins))
    return _binned_mean(power, idx, n_bins + 1)[..., :n_bins]


def _binned_mean(values: torch.Tensor, idx: torch.Tensor, n_bins: int) -> torch.Tensor:
    flat = values.flatten(-2)
    keep = idx < n_bins
    idx, flat = idx[keep], flat[..., keep]
    total = torch.zeros(*flat.shape[:-1], n_bins, device=values.device, dtype=values.dtype)
    total.index_add_(total.dim() - 1, idx, flat)
    count = torch.zeros(n_bins, device=values.device, dtype=values.dtype)
    count.index_add_(0, idx, torch.ones_like(idx, dtype=values.dtype))
    return total / count.clamp(min=1)


# ------------------------------------------------------ Fourier basis images
def fourier_basis(h: int, w: int, device=None) -> torch.Tensor:
    """Unit-L2-norm real Fourier basis images U_ij of Yin et al. (2019), as in
    their reference code (google-research ``frequency_analysis``).

    Returns (H, W, H, W): entry [i, j] is the image whose centred spectrum is
    non-zero only at (i, j) and its mirror (-i, -j). The reference puts
    ``(1 + 1j) / 2`` at the first of the pair (in row-major order) and the
    conjugate at its mirror, which gives the phase-shifted wave

        U_ij[y, x] = sqrt(2 / (H W)) * cos(theta + pi / 4),
        theta = 2 pi (f_y y / H + f_x x / W),  (f_y, f_x) = (i - H//2, j - W//2),

    with (f_y, f_x) taken at the first of the pair, so U_ij and its mirror are
    one image. At the self-mirrored frequencies (the DC term and the Nyquist
    points) theta is a multiple of pi and the formula reduces to the real
    wave ``cos(theta) / sqrt(H W)``, as in the reference. The shift matters
    pixel-wise: a wave of period 4 pixels under a plain cosine is zero at every
    other pixel and sqrt(2) times larger at the rest; shifted, every pixel has
    the same magnitude.
    """
    i = torch.arange(h, dtype=torch.float64)[:, None].expand(h, w)
    j = torch.arange(w, dtype=torch.float64)[None, :].expand(h, w)
    mi, mj = (2 * (h // 2) - i) % h, (2 * (w // 2) - j) % w
    first = (i * w + j) <= (mi * w + mj)                     # the pair's first member in row-major order
    fy = torch.where(first, i - h // 2, mi - h // 2)
    fx = torch.where(first, j - w // 2, mj - w // 2)
    y = torch.arange(h, dtype=torch.float64)
    x = torch.arange(w, dtype=torch.float64)
    theta = 2 * math.pi * (fy[:, :, None, None] * y[:, None] / h + fx[:, :, None, None] * x[None, :] / w)
    basis = math.sqrt(2.0 / (h * w)) * torch.cos(theta + math.pi / 4)
    return basis.to(device=device, dtype=torch.float32)


def perturb_amplitude(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None,
                      clip: bool = True) -> torch.Tensor:
    """Multiply each image's amplitude spectrum by log-normal noise, keep its phase
    and its mean colour: the "power-spectrum perturbation" of the Paper B reconstruction.

    Every pair of frequencies ``f, -f`` of each image and channel gets one
    multiplier ``exp(sigma * z)``, ``z ~ N(0, 1)``: the noise field is
    Hermitian, so the perturbed spectrum is still the spectrum of a real image
    (computed with ``rfft2`` / ``irfft2``, no imaginary part to discard). The
    DC term (the mean colour) keeps multiplier 1, so the perturbation adds no
    brightness jitter. The result is clipped to [0, 1] unless ``clip=False``.
    """
    h, w = x.shape[-2:]
    z = torch.randn(x.shape, generator=generator,
                    device=generator.device if generator is not None else x.device).to(x.device)
    # one draw per pair {f, -f}: the partner of DFT index (k, l) is (-k mod H, -l mod W);
    # the lexicographically smaller index of each pair keeps its own draw, the other copies it
    ky = torch.arange(h, device=x.device)[:, None]
    kx = torch.arange(w, device=x.device)[None, :]
    own = (ky * w + kx) <= (((-ky) % h) * w + (-kx) % w)
    partner = torch.roll(torch.flip(z, (-2, -1)), (1, 1), (-2, -1))          # z at -f
    z = torch.where(own, z, partner)
    z[..., 0, 0] = 0.0                                                        # DC: the mean colour stays
    gain = torch.exp(sigma * z)[..., : w // 2 + 1]                            # the rfft2 half of the field
    out = torch.fft.irfft2(torch.fft.rfft2(x, norm="ortho") * gain, s=(h, w), norm="ortho")
    return out.clamp(0, 1) if clip else out


def fit_power_law(profile: torch.Tensor, f_min: int = 1, f_max: int | None = None) -> tuple[float, float]:
    """Least-squares fit of ``profile[f] ~ A / f**alpha`` in log-log space.

    ``profile`` is a 1-D radial profile indexed by integer frequency; returns
    ``(alpha, A)``. Natural images give alpha near 2 for power.
    """
    p = profile.detach().double().cpu()
    f_max = f_max or len(p) - 1
    f = torch.arange(f_min, f_max + 1, dtype=torch.float64)
    y = torch.log(p[f_min:f_max + 1].clamp(min=1e-30))
    design = torch.stack([torch.ones_like(f), -torch.log(f)], 1)
    coef = torch.linalg.lstsq(design, y[:, None]).solution.flatten()
    return float(coef[1]), float(torch.exp(coef[0]))
