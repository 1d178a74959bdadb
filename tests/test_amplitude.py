"""The power-spectrum perturbation of Paper B (freqlib.spectral.perturb_amplitude):
a Hermitian log-normal multiplier per frequency pair, phase and mean colour kept."""
from __future__ import annotations

import math

import pytest
import torch

from freqlib.spectral import perturb_amplitude


def multiplier(x, sigma, seed=0, shape=None):
    """The complex ratio of spectra out / in, without clipping (as the function applied it)."""
    out = perturb_amplitude(x, sigma, torch.Generator().manual_seed(seed), clip=False)
    return torch.fft.fft2(out.double()) / torch.fft.fft2(x.double()), out


@pytest.fixture(scope="module")
def images():
    return torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def test_zero_sigma_is_the_identity(images):
    assert torch.allclose(perturb_amplitude(images, 0.0, torch.Generator().manual_seed(0)), images, atol=1e-5)


def test_output_is_the_inverse_of_a_hermitian_spectrum(images):
    """The full complex inverse of the perturbed spectrum has no imaginary part to discard."""
    ratio, out = multiplier(images, 0.5)
    spec = torch.fft.fft2(images.double()) * ratio.real                    # real multiplier only
    back = torch.fft.ifft2(spec)
    assert back.imag.abs().max() < 1e-9
    assert torch.allclose(back.real.float(), out, atol=1e-5)


def test_multiplier_is_real_positive_and_equal_at_f_and_minus_f(images):
    ratio, _ = multiplier(images, 0.7)
    assert ratio.imag.abs().max() < 1e-4                                   # phase kept
    assert ratio.real.min() > 0
    mirrored = torch.roll(torch.flip(ratio.real, (-2, -1)), (1, 1), (-2, -1))   # value at -f
    assert torch.allclose(ratio.real, mirrored, rtol=1e-4)


def test_multiplier_is_exactly_log_normal_per_pair():
    """log(multiplier) / sigma over the distinct frequency pairs is N(0, 1) (KS test),
    and independent between pairs (no correlation between neighbours)."""
    from scipy import stats
    x = torch.rand(40, 3, 32, 32, generator=torch.Generator().manual_seed(5)) + 0.5
    sigma = 0.5
    ratio, _ = multiplier(x, sigma, seed=1)
    z = torch.log(ratio.real) / sigma
    ky, kx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    own = (ky * 32 + kx) <= ((-ky) % 32) * 32 + (-kx) % 32
    own[0, 0] = False                                                      # DC is left alone
    sample = z[..., own].flatten().numpy()
    assert len(sample) == 40 * 3 * (32 * 32 // 2 + 1)
    assert stats.kstest(sample, "norm").pvalue > 0.01
    assert abs(sample.std() - 1) < 0.01 and abs(sample.mean()) < 0.01
    neighbours = torch.corrcoef(torch.stack([z[..., 1:16, 1:31].flatten(), z[..., 1:16, 2:32].flatten()]))[0, 1]
    assert abs(neighbours) < 0.02


def test_mean_colour_is_unchanged_before_clipping(images):
    ratio, out = multiplier(images, 1.0)
    assert torch.allclose(ratio[..., 0, 0].real, torch.ones(6, 3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(out.mean((-2, -1)), images.mean((-2, -1)), atol=1e-5)


def test_clipped_output_is_in_range_and_seeded(images):
    a = perturb_amplitude(images, 0.5, torch.Generator().manual_seed(0))
    b = perturb_amplitude(images, 0.5, torch.Generator().manual_seed(0))
    c = perturb_amplitude(images, 0.5, torch.Generator().manual_seed(1))
    assert a.min() >= 0 and a.max() <= 1 and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.allclose(images, a, atol=1e-2)


def test_the_old_non_hermitian_field_would_fail_these_checks(images):
    """A null: independent noise at f and -f (the old implementation) leaves an imaginary
    part and scales the DC term, so the checks above can fail."""
    g = torch.Generator().manual_seed(0)
    spec = torch.fft.fft2(images, norm="ortho")
    noisy = torch.fft.ifft2(spec * torch.exp(0.5 * torch.randn(images.shape, generator=g)), norm="ortho")
    assert noisy.imag.abs().max() > 1e-2
    assert (noisy.real.mean((-2, -1)) - images.mean((-2, -1))).abs().max() > 1e-2
    assert math.isfinite(float(noisy.real.sum()))
