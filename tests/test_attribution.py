"""Paper A analyses: filtered accuracy, occluded-frequency attribution, perturbation
spectra, attacks and Fourier heat maps, checked against known answers."""
import math

import pytest
import torch
from torch import nn

from freqlib import attacks, attribution as A, spectral
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


def test_filtered_accuracy_matches_direct_filtering():
    torch.manual_seed(1)
    model = build_model("fastnet", (8, 16, 32)).eval()
    x, y = torch.rand(30, 3, 32, 32), torch.randint(0, 10, (30,))
    radii = [0, 3, 8, 16]
    got = A.filtered_accuracy(model, x, y, radii, batch_size=32, chunk=7)
    for i, r in enumerate(radii):
        with torch.no_grad():
            low = (model(spectral.low_pass(x, r)).argmax(1) == y).float().mean()
            high = (model(spectral.high_pass(x, r)).argmax(1) == y).float().mean()
        assert abs(float(got["low"][i]) - float(low)) < 1e-6
        assert abs(float(got["high"][i]) - float(high)) < 1e-6


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
    share = float(A.upper_share(A.positive_normalise(of[1:].clamp(min=0))))
    assert share > 0.7 if band == "high" else share < 0.1
    # filtered accuracy: the low-pass curve rises and the high-pass curve falls inside the band
    curves = A.filtered_accuracy(model, x, y, range(17))
    mid = 0.25 + 0.5 * (1 - 0.25)
    r_up = A.crossing_radius(curves["radius"], curves["low"], mid, rising=True)
    r_down = A.crossing_radius(curves["radius"], curves["high"], mid, rising=False)
    assert planted.r_min - 1 <= r_up <= planted.r_max + 0.5, (band, curves["low"])
    assert planted.r_min - 1 <= r_down <= planted.r_max + 0.5, (band, curves["high"])
