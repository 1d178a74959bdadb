"""Spectral operations: exact identities and the planted-band ground truth."""
import math

import pytest
import torch

from freqlib import spectral
from freqlib.data import PlantedBand, planted_frequency_dataset

torch.manual_seed(0)
X = torch.rand(6, 3, 32, 32, dtype=torch.float64)


@pytest.mark.parametrize("r", [0, 1, 3.5, 8, 16, 23, 40])
def test_low_plus_high_is_identity(r):
    assert torch.allclose(spectral.low_pass(X, r) + spectral.high_pass(X, r), X, atol=1e-10)


@pytest.mark.parametrize("r", [2, 5, 11])
def test_filters_are_idempotent_and_real(r):
    low = spectral.low_pass(X, r)
    high = spectral.high_pass(X, r)
    assert torch.allclose(spectral.low_pass(low, r), low, atol=1e-10)
    assert torch.allclose(spectral.high_pass(high, r), high, atol=1e-10)
    # the disk is point-symmetric, so the filtered spectrum is Hermitian: the full complex inverse has no
    # imaginary part, and the half-spectrum shortcut of low_pass loses nothing against it
    full = torch.fft.ifft2(torch.fft.ifftshift(spectral.centred_dft(X) * spectral.radial_mask(32, 32, r).double(),
                                               dim=(-2, -1)), norm="ortho")
    assert full.imag.abs().max() < 1e-10 and torch.allclose(full.real, low, atol=1e-10)


def test_extreme_radii():
    assert torch.allclose(spectral.low_pass(X, 0), torch.zeros_like(X))
    assert torch.allclose(spectral.high_pass(X, 0), X, atol=1e-12)
    assert torch.allclose(spectral.low_pass(X, 1), X.mean((-2, -1), keepdim=True).expand_as(X), atol=1e-10)
    assert torch.allclose(spectral.low_pass(X, 23), X, atol=1e-10)  # 16*sqrt(2) < 23


def test_parseval_dft_and_dct():
    energy = X.pow(2).sum((-2, -1))
    assert torch.allclose(spectral.power_spectrum(X).sum((-2, -1)), energy)
    assert torch.allclose(spectral.dct2(X).pow(2).sum((-2, -1)), energy)
    assert torch.allclose(spectral.dct_band_energy(X, reduce_channels=False).sum(-1), energy)


def test_dct_orthonormal_and_invertible():
    d = spectral.dct_matrix(32, dtype=torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(32, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(spectral.idct2(spectral.dct2(X)), X, atol=1e-12)
    # agrees with scipy's orthonormal DCT-II
    from scipy.fft import dctn
    ref = dctn(X.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert torch.allclose(spectral.dct2(X), torch.from_numpy(ref), atol=1e-10)


def test_dct_bands_partition_and_occlusion():
    band = spectral.dct_band_index(32, 32)
    assert band.min() == 0 and band.max() == 31
    assert [(band == k).sum().item() for k in (0, 1, 31)] == [1, 3, 63]
    total = sum(spectral.keep_dct_band(X, k) for k in range(32))
    assert torch.allclose(total, X, atol=1e-10)
    assert torch.allclose(spectral.zero_dct_band(X, 5) + spectral.keep_dct_band(X, 5), X, atol=1e-10)


def test_radial_and_angular_profiles_locate_a_planted_ring():
    mask = PlantedBand(9, 11).mask()
    prof = spectral.radial_profile(mask)
    assert prof[9:11].min() > 0.9 and prof[:8].max() == 0 and prof[12:].max() == 0
    wedge = PlantedBand(3, 14, angle=math.pi / 2).mask()
    ang = spectral.angular_profile(wedge, n_bins=8)
    assert ang.argmax().item() == 4 and ang[0] == 0


def test_fourier_basis_unit_norm_and_frequency():
    basis = spectral.fourier_basis(32, 32)
    norms = basis.flatten(2).norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    power = spectral.power_spectrum(basis[16, 20][None])[0]
    peaks = {tuple(p.tolist()) for p in torch.nonzero(power > 0.1 * power.max())}
    assert peaks == {(16, 20), (16, 12)}  # (0, +4) and its mirror (0, -4)


def test_power_law_fit_recovers_exponent():
    f = torch.arange(0, 17, dtype=torch.float64).clamp(min=1)
    alpha, amp = spectral.fit_power_law(3.0 * f ** -2.3)
    assert abs(alpha - 2.3) < 1e-6 and abs(amp - 3.0) < 1e-6


def test_amplitude_perturbation_keeps_phase_and_range():
    x = torch.rand(4, 3, 32, 32)
    y = spectral.perturb_amplitude(x, 0.0, torch.Generator().manual_seed(0))
    assert torch.allclose(x, y, atol=1e-5)
    z = spectral.perturb_amplitude(x, 0.5, torch.Generator().manual_seed(0))
    assert z.min() >= 0 and z.max() <= 1 and not torch.allclose(x, z, atol=1e-2)


def test_planted_data_carries_label_only_in_band():
    x, y, mask = planted_frequency_dataset(600, "high", n_classes=4, seed=1)
    assert x.shape == (600, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    means = torch.stack([x[y == c].mean(0) for c in range(4)])
    diff_power = spectral.power_spectrum(means - means.mean(0)).mean((0, 1))
    inside = diff_power[mask.bool()].mean()
    outside = diff_power[~mask.bool()].mean()
    assert inside > 20 * outside


def test_fast_radial_filter_matches_full_complex_path():
    for r in (0.5, 3, 7.2, 16):
        mask = spectral.radial_mask(32, 32, r).double()
        full = spectral.inverse_centred_dft(spectral.centred_dft(X) * mask)
        assert torch.allclose(spectral.low_pass(X, r), full, atol=1e-10)
    stack = spectral.low_pass_stack(X, [1, 4, 9])
    assert stack.shape == (3, *X.shape)
    assert torch.allclose(stack[1], spectral.low_pass(X, 4), atol=1e-10)
