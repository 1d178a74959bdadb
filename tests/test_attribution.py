"""Paper A analyses: filtered accuracy, occluded-frequency attribution, perturbation
spectra, attacks and Fourier heat maps, checked against known answers."""
import math

import pytest
import torch
from torch import nn

from freqlib import attacks, attribution as A, paper_a, spectral
from freqlib.data import PlantedBand, planted_frequency_dataset
from freqlib.heatmap import distinct_frequencies, fourier_heatmap
from freqlib.models import build_model
from freqlib.evaluate import accuracy
from freqlib.train import TrainConfig, train_model

torch.manual_seed(0)


class BandProbe(nn.Module):
    """Two-class linear model that sees only DCT band ``band``: logits (-s, s), s = <w, P_band(x - 0.5)>."""

    def __init__(self, band: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.band = band
        self.w = nn.Parameter(torch.randn(3, 32, 32, generator=g), requires_grad=False)

    def forward(self, x):
        part = A.band_components(x - 0.5)[:, self.band]
        s = (part * self.w).flatten(1).sum(1)
        return torch.stack([-s, s], 1)


class FourierProbe(nn.Module):
    """Two-class linear model that sees only the projection of x - 0.5 on one Fourier basis image."""

    def __init__(self, i: int, j: int):
        super().__init__()
        self.u = nn.Parameter(spectral.fourier_basis(32, 32)[i, j].clone(), requires_grad=False)

    def forward(self, x):
        s = ((x - 0.5) * self.u).flatten(1).sum(1) * 100
        return torch.stack([-s, s], 1)


# ----------------------------------------------------------------- exact identities
def test_band_components_partition_the_image():
    x = torch.rand(5, 3, 32, 32, dtype=torch.float64)
    parts = A.band_components(x)
    assert parts.shape == (5, 32, 3, 32, 32)
    assert torch.allclose(parts.sum(1), x, atol=1e-10)
    # each component lives in its own band only
    coeffs = spectral.dct2(parts[:, 7])
    outside = spectral.dct_band_index(32, 32) != 7
    assert coeffs[..., outside].abs().max() < 1e-10


def test_occlusion_attribution_finds_the_only_band_a_model_sees():
    model = BandProbe(band=21)
    x = torch.rand(40, 3, 32, 32)
    res = A.band_attribution(model, x, batch_size=64)
    assert res.occlusion.shape == (40, 32) and res.keep_only.shape == (40, 32)
    others = torch.arange(32) != 21
    # removing a band the model ignores changes nothing
    assert res.occlusion[:, others].abs().max() < 1e-4
    assert not res.flip[:, others].any()
    # removing the band it uses takes its whole (positive) winning logit away
    logits = model(x)
    assert torch.allclose(res.occlusion[:, 21], logits.max(1).values, atol=1e-4)
    assert (res.occlusion[:, 21] > 0).all()
    # keep-only: band 21 alone rebuilds the logit; a constant (black) image has no band-21 part
    assert res.keep_only[:, others].abs().max() < 1e-4
    assert torch.allclose(res.keep_only[:, 21], logits.max(1).values, atol=1e-4)
    mean = res.mean()
    p = A.positive_normalise(mean["occlusion"])
    assert int(p.argmax()) == 21 and abs(float(A.upper_share(p)) - 1.0) < 1e-3
    assert abs(float(A.band_centroid(p)) - 21) < 0.05


@pytest.mark.parametrize("rescale", [None, "per_image_max"])
def test_filtered_accuracy_matches_direct_filtering(rescale):
    torch.manual_seed(1)
    model = build_model("fastnet", (8, 16, 32)).eval()
    x, y = torch.rand(30, 3, 32, 32), torch.randint(0, 10, (30,))
    radii = [0, 3, 8, 16]
    got = A.filtered_accuracy(model, x, y, radii, rescale=rescale, batch_size=32, chunk=7)
    assert got["low_pred"].shape == (30, 4) and got["rescale"] == rescale
    for i, r in enumerate(radii):
        with torch.no_grad():
            low, high = spectral.low_pass(x, r), spectral.high_pass(x, r)
            if rescale == "per_image_max":      # every filtered image divided by its own maximum
                low = low / low.amax((1, 2, 3), keepdim=True).clamp(min=1e-12)
                high = high / high.amax((1, 2, 3), keepdim=True)
            p_low, p_high = model(low).argmax(1), model(high).argmax(1)
        assert torch.equal(got["low_pred"][:, i], p_low) and torch.equal(got["high_pred"][:, i], p_high)
        assert abs(float(got["low"][i]) - float((p_low == y).float().mean())) < 1e-6
        assert abs(float(got["high"][i]) - float((p_high == y).float().mean())) < 1e-6


class InputProbe(nn.Module):
    """Records the largest value of every image it is fed; predicts class 0."""

    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().amax((1, 2, 3)))
        return torch.zeros(x.shape[0], 10).index_fill_(1, torch.tensor([0]), 1.0)


def test_per_image_max_rescaling():
    x = torch.rand(6, 3, 32, 32) * torch.linspace(0.2, 1.0, 6)[:, None, None, None]
    r = A.rescale_images(x)
    assert torch.allclose(r.amax((1, 2, 3)), torch.ones(6))
    assert torch.allclose(r * x.amax((1, 2, 3), keepdim=True), x)
    zeros = torch.zeros(2, 3, 32, 32)                    # the low-pass at r = 0: left as it is
    assert torch.equal(A.rescale_images(zeros), zeros)
    assert A.rescale_images(x, None) is x
    with pytest.raises(ValueError, match="rescale"):
        A.rescale_images(x, "per_channel")
    # the model sees every filtered image with maximum 1 (except the all-zero low-pass at r = 0) ...
    probe = InputProbe()
    A.filtered_accuracy(probe, x, torch.zeros(6, dtype=torch.long), [0, 2, 5], batch_size=64)
    seen = torch.cat(probe.seen)
    assert ((seen - 1).abs() < 1e-5).sum() == len(seen) - 6 and (seen == 0).sum() == 6
    # ... so the per-image-maximum convention is blind to the images' scale, and the raw convention is not
    model = build_model("fastnet", (8, 16, 32)).eval()
    y = torch.randint(0, 10, (6,))
    a = A.filtered_accuracy(model, x, y, [0, 4], rescale="per_image_max")
    b = A.filtered_accuracy(model, 0.5 * x, y, [0, 4], rescale="per_image_max")
    assert torch.equal(a["high_pred"], b["high_pred"]) and torch.equal(a["low_pred"][:, 1], b["low_pred"][:, 1])


def test_chance_agreement_is_zero_for_a_constant_answer():
    from freqlib.verdicts import bootstrap
    y = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3] * 20)
    stat = lambda m: m["correct"] - (m["pred"] * m["label"]).sum(-1)      # noqa: E731
    const = A.chance_agreement(torch.full_like(y, 3), y)
    assert float(const["correct"].mean()) == pytest.approx(0.4)          # a constant "3" is right 40% of the time
    e = bootstrap(stat, const, n_boot=300)
    assert e.value == pytest.approx(0.0, abs=1e-6) and abs(e.low) < 1e-6 and abs(e.high) < 1e-6   # every resample
    perfect = bootstrap(stat, A.chance_agreement(y, y), n_boot=300)
    assert perfect.value == pytest.approx(1 - (0.1 ** 2 + 0.2 ** 2 + 0.3 ** 2 + 0.4 ** 2)) and perfect.low > 0.5
    with pytest.raises(ValueError, match="labels"):
        A.chance_agreement(y[:5], y)


def test_band_shuffled_null_has_no_band_preference():
    of = torch.zeros(400, 32)
    of[:, 20] = 1.0                                      # all attribution in one upper band
    shuffled = A.shuffle_bands(of, seed=3)
    assert torch.equal(shuffled.sort(1).values, of.sort(1).values)        # a permutation of each row
    assert float(A.upper_share(A.positive_normalise(of.mean(0)))) == 1.0
    assert float(A.upper_share(A.positive_normalise(shuffled.mean(0)))) == pytest.approx(0.5, abs=0.06)


def test_summaries():
    p = A.positive_normalise(torch.tensor([[1.0, -2.0, 3.0, 0.0], [-1.0, -1.0, -1.0, -1.0]]))
    assert torch.allclose(p[0], torch.tensor([0.25, 0.0, 0.75, 0.0], dtype=torch.float64))
    assert torch.isnan(p[1]).all()      # no positive mass: no profile, not a silent uniform one
    assert float(A.band_centroid(p[0])) == pytest.approx(1.5)
    assert float(A.upper_share(p[0], start=2)) == pytest.approx(0.75)
    r = torch.arange(5.0)
    assert A.curve_area(r, torch.ones(5)) == pytest.approx(1.0)
    assert A.curve_area(r, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0])) == pytest.approx(0.625)
    assert A.crossing_radius(r, torch.tensor([0.1, 0.1, 0.5, 0.9, 1.0]), 0.5) == pytest.approx(2.0)
    assert A.crossing_radius(r, torch.tensor([1.0, 0.8, 0.4, 0.1, 0.1]), 0.6, rising=False) == pytest.approx(1.5)
    assert math.isnan(A.crossing_radius(r, torch.full((5,), 0.1), 0.5))


def test_band_energy_share_of_noise_and_smooth_images():
    noise = torch.randn(64, 3, 32, 32)
    assert A.band_energy_share(noise) == pytest.approx(768 / 1023, abs=0.02)
    e = A.upper_energy(noise)
    assert float(e["upper"].sum() / e["total"].sum()) == pytest.approx(A.band_energy_share(noise), rel=1e-4)
    smooth = spectral.low_pass(torch.rand(16, 3, 32, 32), 4)
    assert A.band_energy_share(smooth) < 0.01
    mag = A.band_magnitude(noise)
    assert mag.shape == (64, 32) and mag[:, 0].abs().max() < 1e-5   # DC removed
    prof = A.band_profile(noise)
    assert prof[0] == 0 and float(prof.sum()) == pytest.approx(1.0)
    assert float(prof[1:].std() / prof[1:].mean()) < 0.1               # white noise: flat per coefficient
    assert float(A.band_profile(smooth)[16:].sum()) < 0.05


def test_bad_input_is_named():
    model = BandProbe(3)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        A.filtered_accuracy(model, torch.rand(3, 32, 32), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        A.filtered_accuracy(model, torch.rand(3, 3, 32, 32), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attacks.pgd_linf(model, torch.rand(2, 3, 32, 32) * 3, torch.zeros(2, dtype=torch.long))


# -------------------------------------------------------------------- heat map
def test_heatmap_flags_exactly_the_frequency_a_model_sees():
    i0, j0 = 16 + 3, 16 - 5
    model = FourierProbe(i0, j0)
    g = torch.Generator().manual_seed(0)
    x = 0.5 + 0.002 * torch.randn(48, 3, 32, 32, generator=g)    # no clipping at eps = 1
    y = model(x).argmax(1)                                       # clean error 0 by construction
    res = fourier_heatmap(model, x, y, eps=1.0, batch_size=200)
    err = res["error"]
    assert res["clean_error"] == 0 and err.shape == (32, 32)
    hot = torch.zeros(32, 32, dtype=torch.bool)
    hot[i0, j0] = hot[32 - i0, 32 - j0] = True
    assert err[hot].min() > 0.25            # a random-sign push of norm >= 1 flips about half
    assert err[hot][0] == err[hot][1]       # U_ij and its mirror are one image
    assert err[~hot].max() == 0             # orthogonal frequencies never matter


def test_heatmap_does_not_clip_by_default():
    probe = InputProbe()
    x = torch.full((4, 3, 32, 32), 0.99)
    fourier_heatmap(probe, x, torch.zeros(4, dtype=torch.long), eps=4.0, batch_size=600)
    assert max(float(s.max()) for s in probe.seen) > 1.05          # x + 4 U_ij leaves [0, 1]: no clipping
    probe.seen.clear()
    res = fourier_heatmap(probe, x, torch.zeros(4, dtype=torch.long), eps=4.0, batch_size=600, clip=True)
    assert max(float(s.max()) for s in probe.seen) <= 1.0 and res["clip"]


def test_fourier_basis_is_the_reference_phase_shifted_basis():
    h, w = 32, 32
    basis = spectral.fourier_basis(h, w)
    assert basis.dtype == torch.float32 and basis.shape == (h, w, h, w)
    assert torch.allclose(basis.flatten(2).norm(dim=-1), torch.ones(h, w), atol=1e-5)   # unit norm
    reps, mirror = distinct_frequencies(h, w)
    i, j = reps[:, 0], reps[:, 1]
    assert torch.equal(basis[i, j], basis[mirror[i, j, 0], mirror[i, j, 1]])   # a pair is one image
    # the reference's recipe, built independently: (1+1j)/2 at the pair's first member, its
    # conjugate at the mirror, inverse centred DFT, times sqrt(HW), real part
    for (a, b) in [(16, 20), (3, 29), (0, 5), (16, 16), (0, 0), (0, 16), (20, 0)]:
        spec = torch.zeros(h, w, dtype=torch.complex128)
        ma, mb = (32 - a) % 32, (32 - b) % 32
        fa, fb = ((a, b), (ma, mb)) if a * w + b <= ma * w + mb else ((ma, mb), (a, b))
        if fa == fb:
            spec[fa] = 1.0
        else:
            spec[fa], spec[fb] = 0.5 + 0.5j, 0.5 - 0.5j
        img = torch.fft.ifft2(torch.fft.ifftshift(spec))
        assert img.imag.abs().max() < 1e-12                                 # a real image
        assert torch.allclose(basis[a, b].double(), (h * w) ** 0.5 * img.real, atol=1e-6), (a, b)
    # the phase shift: sqrt(2/HW) cos(theta + pi/4), not cos(theta), for a wave of period 4 along x;
    # (16, 8) (frequency (0, -8)) comes first in row-major order, so its theta is used for both
    x = torch.arange(w, dtype=torch.float64)
    shifted = (2 / (h * w)) ** 0.5 * torch.cos(2 * math.pi * -8 * x / w + math.pi / 4)
    for row in (0, 5, 31):
        assert torch.allclose(basis[16, 8, row].double(), shifted, atol=1e-6)
        assert torch.allclose(basis[16, 24, row].double(), shifted, atol=1e-6)
    assert basis[16, 24].abs().min() > 0.99 * basis[16, 24].abs().max()    # every pixel moves, none is zero


def test_distinct_frequencies_cover_the_grid_once():
    reps, mirror = distinct_frequencies(32, 32)
    assert len(reps) == 514
    covered = torch.zeros(32, 32, dtype=torch.int64)
    covered[reps[:, 0], reps[:, 1]] += 1
    covered[mirror[reps[:, 0], reps[:, 1], 0], mirror[reps[:, 0], reps[:, 1], 1]] += 1
    assert (covered >= 1).all()


# --------------------------------------------------------------------- attacks
def test_attacks_respect_the_budget():
    torch.manual_seed(0)
    model = build_model("fastnet", (8, 16, 32)).eval()
    x, y = torch.rand(12, 3, 32, 32), torch.randint(0, 10, (12,))
    eps = 8 / 255
    pgd = attacks.pgd_linf(model, x, y, eps=eps, steps=3, batch_size=5)
    assert pgd.adv.shape == x.shape and pgd.adv.min() >= 0 and pgd.adv.max() <= 1
    assert pgd.delta.abs().max() <= eps + 1e-6 and pgd.perturbed.all()
    y_pred = pgd.clean_pred                     # attack the model's own predictions: all "correct"
    sq = attacks.square_linf(model, x, y_pred, eps=eps, n_queries=10, batch_size=6)
    assert sq.delta.abs().max() <= eps + 1e-6
    sq_wrong = attacks.square_linf(model, x, (y_pred + 1) % 10, eps=eps, n_queries=5)
    assert not sq_wrong.perturbed.any()         # Square leaves misclassified images alone
    s = attacks.attack_summary(pgd)
    assert 0 <= s["success rate (on correct)"] <= 1 and s["max L∞ (×255)"] <= 8 + 1e-3


# ------------------------------------------------- planted-frequency ground truth
def _train_planted(band: str, seed: int = 0):
    x, y, _ = planted_frequency_dataset(2560, band, n_classes=4, signal=0.15, seed=seed)
    cfg = TrainConfig(arch="fastnet", widths=(8, 16, 32), epochs=8, batch_size=128, lr=0.2, n_train=2048,
                      flip=False, translate=0, label_smoothing=0.0, seed=seed)
    torch.manual_seed(seed)
    model = build_model("fastnet", (8, 16, 32), num_classes=4)
    train_model(model, x[:2048], y[:2048], cfg)
    return model.eval(), x[2048:], y[2048:]


@pytest.mark.parametrize("band", ["high", "low"])
def test_planted_band_is_found_by_attribution_and_filtering(band):
    planted = PlantedBand.named(band)
    model, x, y = _train_planted(band)
    assert accuracy(model, x, y) > 0.9, "the planted signal should be learnable"
    # DFT radius r corresponds to DCT index about 2r
    dct_lo, dct_hi = 2 * planted.r_min - 2, 2 * planted.r_max
    # occluded-frequency attribution: the strongest band (the DC term aside) lies in the planted range
    res = A.band_attribution(model, x[:128])
    of = res.mean()["occlusion"]
    k_star = int(of[1:].argmax()) + 1
    assert dct_lo <= k_star <= dct_hi, (band, k_star, of)
    share = float(paper_a.ac_upper_share(of))            # the A1 criterion's share: bands 16..31 of 1..31
    assert share > 0.7 if band == "high" else share < 0.1
    # filtered accuracy: the low-pass curve rises and the high-pass curve falls inside the band
    curves = A.filtered_accuracy(model, x, y, range(17))
    mid = 0.25 + 0.5 * (1 - 0.25)
    r_up = A.crossing_radius(curves["radius"], curves["low"], mid, rising=True)
    r_down = A.crossing_radius(curves["radius"], curves["high"], mid, rising=False)
    assert planted.r_min - 1 <= r_up <= planted.r_max + 0.5, (band, curves["low"])
    assert planted.r_min - 1 <= r_down <= planted.r_max + 0.5, (band, curves["high"])
