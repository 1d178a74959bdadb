"""Fourier masks (Paper C) on planted-frequency data, where the answer is known."""
from __future__ import annotations

import os

import pytest
import torch

from freqlib import masks as fm
from freqlib.data import planted_frequency_dataset
from freqlib.models import build_model
from freqlib.evaluate import accuracy
from freqlib.train import TrainConfig, train_model


@pytest.fixture(scope="module")
def planted():
    """A small FastNet trained on 4-class data whose label lives only in the 'mid' band;
    its mask is learned on held-out images and tested on others. (Checked over
    seeds 0-4: the band ratio was 46-563 and the complement left chance accuracy.)"""
    torch.set_num_threads(int(os.environ.get("FREQLIB_THREADS", "2")))
    x, y, band = planted_frequency_dataset(3072, "mid", n_classes=4, seed=0, signal=0.1)
    torch.manual_seed(0)
    model = build_model("fastnet", (8, 16, 32), num_classes=4)
    cfg = TrainConfig(widths=(8, 16, 32), epochs=6, batch_size=128, lr=0.2, n_train=2048,
                      flip=False, translate=0, label_smoothing=0.0)
    train_model(model, x[:2048], y[:2048], cfg)
    assert accuracy(model, x[2560:], y[2560:]) > 0.9, "the planted task should be learnable"
    cfg = fm.MaskConfig(batch_size=64, lr=fm.scaled_lr(64), max_epochs=8, tol=2e-3, patience=2)
    result = fm.train_mask(model, x[2048:2560], y[2048:2560], cfg)
    return model, x[2560:], y[2560:], band, result


def test_learned_mask_keeps_the_planted_band(planted):
    model, x, y, band, result = planted
    assert result.kept and result.kept_epoch > 0
    mask = fm.symmetrize(result.mask)
    assert fm.band_mass_ratio(mask, band) > 10.0         # mass inside the band far above outside
    assert result.sparsity < 0.5                          # and it did drop most of the spectrum
    assert result.acc_masked >= 0.99 * result.acc_unmasked


def test_complement_mask_destroys_accuracy(planted):
    model, x, y, band, result = planted
    mask = fm.symmetrize(result.mask)
    clean = fm.mask_accuracy(model, x, y, None)
    assert fm.mask_accuracy(model, x, y, mask) >= 0.95 * clean
    assert fm.mask_accuracy(model, x, y, fm.complement(mask)) < 0.45   # chance is 0.25


def test_training_keeps_the_mask_symmetric_and_in_range(planted):
    *_, result = planted
    m = result.mask
    assert m.min() >= 0 and m.max() <= 1
    assert torch.allclose(m, fm.symmetrize(m), atol=1e-4)
    assert [h["epoch"] for h in result.history] == list(range(1, result.epochs + 1))


def test_apply_mask_identity_and_real_part():
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(fm.apply_mask(x, torch.ones(32, 32)), x, atol=1e-5)
    m = torch.rand(1, 1, 32, 32)
    # real part of the inverse == applying the symmetrised mask
    assert torch.allclose(fm.apply_mask(x, m), fm.apply_mask(x, fm.symmetrize(m)), atol=1e-5)
    with pytest.raises(ValueError, match="height and width"):
        fm.apply_mask(x, torch.ones(16, 16))


def test_pixel_transform_matches_masked_logits():
    model = build_model("fastnet", (8, 16, 32)).eval()
    x = torch.rand(4, 3, 32, 32)
    m = (torch.rand(1, 1, 32, 32) > 0.5).float()
    t = fm.pixel_transform(m, model.normalize)
    with torch.no_grad():
        assert torch.allclose(model(t(x)), fm.masked_logits(model, x, m), atol=1e-4)


def test_image_masks_are_batched_and_independent():
    model = build_model("fastnet", (8, 16, 32)).eval()
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        y = model(x).argmax(1)
    out = fm.train_image_masks(model, x, y, steps=5)
    assert out["masks"].shape == (6, 1, 32, 32)
    assert out["masks"].min() >= 0 and out["masks"].max() <= 1
    # each mask depends on its own image only: the first mask is the same when trained alone
    alone = fm.train_image_masks(model, x[:1], y[:1], steps=5)
    assert torch.allclose(alone["masks"][0], out["masks"][0], atol=1e-4)


def test_radial_centroid_orders_low_and_high():
    from freqlib.spectral import radial_mask
    low, high = radial_mask(32, 32, 4), 1 - radial_mask(32, 32, 12)
    assert fm.radial_centroid(low) < 3 < 12 < fm.radial_centroid(high)
    assert abs(float(fm.radial_centroid(torch.ones(32, 32))) - 12.2) < 0.1


def test_anisotropy_separates_oriented_from_isotropic():
    from freqlib.data import PlantedBand
    oriented = PlantedBand(2, 14, angle=0.0).mask() + 0.05
    iso = fm.isotropic_version(oriented)
    a, b = fm.bootstrap_anisotropy(oriented, 300), fm.bootstrap_anisotropy(iso, 300)
    assert a["low"] > 5 * b["high"]
    assert a["low"] <= a["value"] <= a["high"]
    # the permutation null keeps the radial profile: an isotropic mask sits at it, an oriented one far above
    assert a["value"] > 2 * float(fm.permutation_anisotropy(oriented, 300).quantile(0.95))
    assert fm.bootstrap_anisotropy(iso, 10)["value"] <= float(fm.permutation_anisotropy(iso, 300).quantile(0.95)) + 1e-6


def test_ssim_and_psnr():
    x = torch.rand(5, 3, 32, 32)
    assert torch.allclose(fm.ssim(x, x), torch.ones(5), atol=1e-5)
    scores = [fm.ssim(x, (x + s * torch.randn_like(x)).clamp(0, 1)).mean() for s in (0.05, 0.2, 0.5)]
    assert scores[0] > scores[1] > scores[2]
    assert (fm.ssim(x, 1 - x) < 0).all()                  # inverted contrast: anti-correlated
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert (fm.psnr(x, noisy) < 15).all() and (fm.psnr(x, x) > 60).all()


def test_linear_probe_finds_signal_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 5, (200,), generator=g)
    centres = torch.randn(5, 20, generator=g) * 2
    feats = centres[y] + torch.randn(200, 20, generator=g)
    assert fm.linear_probe(feats, y) > 0.8
    assert fm.linear_probe(feats, y[torch.randperm(200, generator=g)]) < 0.4


def test_bad_config_is_refused():
    with pytest.raises(ValueError):
        fm.MaskConfig(batch_size=0)
    with pytest.raises(ValueError):
        fm.MaskConfig(keep_ratio=1.5)
