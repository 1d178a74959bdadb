"""CIFAR-10-C regeneration: shapes, ranges, severity order, determinism, fidelity
to PIL where the original used it, caching and the released-file loader."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from freqlib import corruptions as cc


@pytest.fixture(scope="module")
def images():
    """48 real CIFAR-10 test images (the severity order depends on natural statistics)."""
    from freqlib.zoo import cifar10_tensors
    x, _, _ = cifar10_tensors("test", "cpu")
    return x[:48].clone()


def correlation(a, b):
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-8)).mean().item()


@pytest.fixture(scope="module")
def by_severity(images):
    return {name: [cc.corrupt(images, name, s, seed=0) for s in cc.SEVERITIES] for name in cc.CORRUPTIONS}


def test_catalogue_matches_the_paper():
    assert len(cc.CORRUPTIONS) == 15 and len(set(cc.CORRUPTIONS)) == 15
    assert {k: len(v) for k, v in cc.FAMILIES.items()} == {"noise": 3, "blur": 4, "weather": 4, "digital": 4}
    assert all(len(cc.PARAMS[c]) == 5 for c in cc.CORRUPTIONS)
    assert [len(z) for z in cc.PARAMS["zoom_blur"]] == [7, 12, 16, 21, 26]


@pytest.mark.parametrize("name", cc.CORRUPTIONS)
def test_shape_dtype_range_and_grid(name, images, by_severity):
    for out in by_severity[name]:
        assert out.shape == images.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        assert torch.allclose(out * 255, (out * 255).round(), atol=1e-3)   # uint8 grid
        assert not torch.equal(out, images)


# Severity order. We measure the correlation of each corrupted image with its
# clean image (1 = unchanged structure); it must fall with severity. The CIFAR
# parameters themselves are not monotone for two corruptions, checked apart:
# glass blur (severity 1 shuffles pixels with no smoothing after) and elastic
# (the random affine jitter shrinks from 2.56 to 0.96 px as severity rises).
NOT_MONOTONE = {"glass_blur", "elastic_transform"}


@pytest.mark.parametrize("name", [c for c in cc.CORRUPTIONS if c not in NOT_MONOTONE])
def test_severity_monotone(name, images, by_severity):
    corr = [correlation(out, images) for out in by_severity[name]]
    psnr = [cc.psnr(out, images).mean().item() for out in by_severity[name]]
    assert all(b <= a + 0.005 for a, b in zip(corr, corr[1:])), (name, corr)
    assert corr[-1] < corr[0] - 0.01, (name, corr)
    assert psnr[-1] < psnr[0] - 1.0, (name, psnr)


def test_glass_blur_more_passes_is_worse(images, by_severity):
    corr = [correlation(out, images) for out in by_severity["glass_blur"]]
    # same sigma, one vs two shuffling passes: (0.25, 1, 1) vs (0.25, 1, 2), (0.4, 1, 1) vs (0.4, 1, 2)
    assert corr[3] < corr[1] - 0.01 and corr[4] < corr[2] - 0.01, corr


def test_elastic_follows_its_affine_jitter(images, by_severity):
    psnr = [cc.psnr(out, images).mean().item() for out in by_severity["elastic_transform"]]
    assert all(p < 25 for p in psnr) and psnr[0] < psnr[-1] - 1.0, psnr


@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "glass_blur", "motion_blur", "snow",
                                  "frost", "fog", "elastic_transform"])
def test_deterministic_given_seed(name, images):
    a = cc.corrupt(images[:8], name, 3, seed=1)
    b = cc.corrupt(images[:8], name, 3, seed=1)
    c = cc.corrupt(images[:8], name, 3, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def _pil_roundtrip(u8: np.ndarray, fn) -> np.ndarray:
    from PIL import Image
    return np.stack([np.asarray(fn(Image.fromarray(im))) for im in u8])


def test_jpeg_matches_libjpeg(images):
    from PIL import Image
    u8 = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for q in (80, 40):
        def enc(im):
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=q)
            return Image.open(buf).convert("RGB")
        ref = torch.from_numpy(_pil_roundtrip(u8, enc)).permute(0, 3, 1, 2).float() / 255
        ours = cc.jpeg(images, q)
        assert cc.psnr(ours, ref).mean() > 42, q                          # within a few grey levels
        assert cc.psnr(ours, images).mean() < cc.psnr(ref, images).mean() + 1.0


def test_pixelate_matches_pil_box(images):
    from PIL import Image
    u8 = (images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for s, c in enumerate(cc.PARAMS["pixelate"], start=1):
        size = int(32 * c)
        ref = _pil_roundtrip(u8, lambda im: im.resize((size, size), Image.BOX).resize((32, 32), Image.BOX))
        ours = (cc.corrupt(images, "pixelate", s) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        assert np.abs(ref.astype(int) - ours.astype(int)).max() <= 1


def test_brightness_and_contrast_are_exact(images):
    out = cc.corrupt(images, "contrast", 2)
    mean = images.mean((2, 3), keepdim=True)
    ref = torch.floor(((images - mean) * 0.5 + mean).clamp(0, 1) * 255 + 1e-3) / 255
    assert torch.equal(out, ref)
    v = images.amax(1)
    assert torch.allclose(cc.corrupt(images, "brightness", 5).amax(1), torch.floor((v + 0.3).clamp(0, 1) * 255 + 1e-3) / 255,
                          atol=1.5 / 255)


def test_frost_textures_are_deterministic_and_bright():
    a, b = cc.frost_textures(0), cc.frost_textures(0)
    assert torch.equal(a, b) and a.shape == (5, 3, 128, 128)
    assert 0.2 < a.mean() < 0.8 and a.std() > 0.05


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown corruption"):
        cc.corrupt(torch.rand(2, 3, 32, 32), "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        cc.corrupt(torch.rand(2, 3, 32, 32), "fog", 6)


def test_cache_is_used_and_deterministic(tmp_path):
    names, sev = ("gaussian_noise", "contrast"), (1, 5)
    a = cc.cifar10c(names, sev, n=20, seed=0, cache_dir=tmp_path, use_released=False, progress=False)
    assert a.variant == cc.VARIANT_REGENERATED and a.generation_seconds > 0
    assert len(list(tmp_path.glob("*.npz"))) == 4
    b = cc.cifar10c(names, sev, n=20, seed=0, cache_dir=tmp_path, use_released=False, progress=False)
    assert b.generation_seconds == 0.0
    for key in a:
        assert torch.equal(a.images(*key), b.images(*key))
    assert a.labels.shape == (20,) and a.images("contrast", 5).shape == (20, 3, 32, 32)


def test_released_files_are_preferred(tmp_path, monkeypatch):
    data = np.lib.format.open_memmap(tmp_path / "fog.npy", mode="w+", dtype=np.uint8, shape=(50_000, 32, 32, 3))
    data[10_000:10_005] = 7                                   # severity 2, first images
    data.flush()
    np.save(tmp_path / "labels.npy", np.arange(50_000) % 10)
    monkeypatch.setenv("FREQLIB_CIFAR10C", str(tmp_path))
    got = cc.cifar10c(("fog",), (2,), n=5, progress=False)
    assert got.variant == cc.VARIANT_RELEASED
    assert torch.allclose(got.images("fog", 2), torch.full((5, 3, 32, 32), 7 / 255))
    assert got.labels.tolist() == [0, 1, 2, 3, 4]


def test_summarise_averages_families_and_severities():
    import pandas as pd
    t = pd.DataFrame([{"corruption": c, "family": cc.FAMILY_OF[c], "severity": s,
                       "accuracy": 1.0 if cc.FAMILY_OF[c] == "noise" else 0.5 - 0.1 * s}
                      for c in cc.CORRUPTIONS for s in cc.SEVERITIES])
    s = cc.summarise(t)
    assert s["family/noise"] == 1.0 and abs(s["family/blur"] - 0.2) < 1e-9
    assert s["severity/1"] > s["severity/5"]
