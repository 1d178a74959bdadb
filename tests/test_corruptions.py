"""CIFAR-10-C regeneration: shapes, ranges, severity order, determinism, fidelity
to PIL where the original used it, caching and the released-file loader."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from freqlib import corruption_sets as csets
from freqlib import corruptions as cc
from freqlib import frost
from freqlib import similarity


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
    psnr = [similarity.psnr(out, images).mean().item() for out in by_severity[name]]
    assert all(b <= a + 0.005 for a, b in zip(corr, corr[1:])), (name, corr)
    assert corr[-1] < corr[0] - 0.01, (name, corr)
    assert psnr[-1] < psnr[0] - 1.0, (name, psnr)


def test_glass_blur_more_passes_is_worse(images, by_severity):
    corr = [correlation(out, images) for out in by_severity["glass_blur"]]
    # same sigma, one vs two shuffling passes: (0.25, 1, 1) vs (0.25, 1, 2), (0.4, 1, 1) vs (0.4, 1, 2)
    assert corr[3] < corr[1] - 0.01 and corr[4] < corr[2] - 0.01, corr


def test_elastic_follows_its_affine_jitter(images, by_severity):
    psnr = [similarity.psnr(out, images).mean().item() for out in by_severity["elastic_transform"]]
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
        assert similarity.psnr(ours, ref).mean() > 42, q                  # within a few grey levels
        assert similarity.psnr(ours, images).mean() < similarity.psnr(ref, images).mean() + 1.0


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
    a, b = frost.frost_textures(0), frost.frost_textures(0)
    assert torch.equal(a, b) and a.shape == (5, 3, 128, 128)
    assert 0.2 < a.mean() < 0.8 and a.std() > 0.05


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="unknown corruption"):
        cc.corrupt(torch.rand(2, 3, 32, 32), "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        cc.corrupt(torch.rand(2, 3, 32, 32), "fog", 6)


def test_cache_is_used_and_deterministic(tmp_path):
    names, sev = ("gaussian_noise", "contrast"), (1, 5)
    a = csets.cifar10c(names, sev, n=20, seed=0, cache_dir=tmp_path, use_released=False, progress=False)
    assert a.variant == "CIFAR-10-C (regenerated from original test images 0–19)" and a.generation_seconds > 0
    assert len(list(tmp_path.glob("*.npz"))) == 4
    b = csets.cifar10c(names, sev, n=20, seed=0, cache_dir=tmp_path, use_released=False, progress=False)
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
    got = csets.cifar10c(("fog",), (2,), n=5, progress=False)
    assert got.variant == csets.VARIANT_RELEASED and got.pixels == "original"
    jpeg_pixels = csets.cifar10c(("fog",), (2,), n=5, progress=False, cache=False,
                              clean=(torch.rand(5, 3, 32, 32), torch.zeros(5, dtype=torch.long)), pixels="jpeg")
    assert jpeg_pixels.variant.startswith("CIFAR-10-C (regenerated from JPEG")   # released files are original pixels
    assert torch.allclose(got.images("fog", 2), torch.full((5, 3, 32, 32), 7 / 255))
    assert got.labels.tolist() == [0, 1, 2, 3, 4]


def test_summarise_averages_families_and_severities():
    import pandas as pd
    t = pd.DataFrame([{"corruption": c, "family": cc.FAMILY_OF[c], "severity": s,
                       "accuracy": 1.0 if cc.FAMILY_OF[c] == "noise" else 0.5 - 0.1 * s}
                      for c in cc.CORRUPTIONS for s in cc.SEVERITIES])
    s = csets.summarise(t)
    assert s["family/noise"] == 1.0 and abs(s["family/blur"] - 0.2) < 1e-9
    assert s["severity/1"] > s["severity/5"]


# ------------------------------------------------- fidelity to make_cifar_c.py
def original_glass_loop(x: np.ndarray, offsets: np.ndarray, delta: int) -> np.ndarray:
    """The loop of make_cifar_c.py's glass_blur, verbatim in its semantics, on one
    uint8 (32, 32, 3) image; ``offsets[i, k] = (dx, dy)`` replace its randint draws."""
    x = x.copy()
    for i in range(offsets.shape[0]):
        k = 0
        for h in range(32 - delta, delta, -1):
            for w in range(32 - delta, delta, -1):
                dx, dy = offsets[i, k]
                k += 1
                h_prime, w_prime = h + dy, w + dx
                # swap (as written there: the right-hand side holds numpy views)
                x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return x


@pytest.mark.parametrize("delta,iters", [(1, 1), (1, 2), (2, 1)])
def test_glass_shuffle_matches_the_original_loop(delta, iters):
    """Same random offsets into both; delta 1 takes the one-gather path, delta 2 the loop."""
    g = torch.Generator().manual_seed(delta * 10 + iters)
    u8 = torch.randint(0, 256, (5, 3, 32, 32), generator=g).float()
    offsets = cc.glass_offsets(5, delta, iters, 32, 32, g)
    ours = cc.glass_shuffle(u8, offsets, delta).permute(0, 2, 3, 1).numpy().astype(np.uint8)
    hwc = u8.permute(0, 2, 3, 1).numpy().astype(np.uint8)
    for j in range(5):
        ref = original_glass_loop(hwc[j], offsets[..., j].numpy(), delta)
        assert np.array_equal(ours[j], ref), j


def test_glass_shuffle_copies_rather_than_swaps():
    """A null: a true swap would only permute the pixels; the original's copy does not."""
    g = torch.Generator().manual_seed(0)
    u8 = torch.randperm(32 * 32, generator=g).float().reshape(1, 1, 32, 32).expand(1, 3, 32, 32)
    out = cc.glass_shuffle(u8, cc.glass_offsets(1, 1, 1, 32, 32, g), 1)
    assert len(out[0, 0].unique()) < 32 * 32                     # some pixels duplicated, some lost
    assert torch.equal(out[..., :2, :], u8[..., :2, :]) and torch.equal(out[..., :, :2], u8[..., :, :2])


def test_cv2_linear_resize_subsamples_at_one_fifth():
    img = np.random.default_rng(0).integers(0, 256, (63, 112, 3), dtype=np.uint8)
    small = frost.cv2_linear_resize(img, 0.2)
    assert small.shape == (13, 22, 3)                             # round(63 * 0.2), round(112 * 0.2)
    assert np.array_equal(small, img[2::5][:13, 2::5][:, :22])    # source pixel 5 i + 2 exactly
    half = frost.cv2_linear_resize(np.arange(8, dtype=np.uint8).reshape(1, 8, 1).repeat(2, 0), 0.5)
    assert half[0, :, 0].tolist() == [1, 3, 5, 7]                  # 2 i + 0.5: halves round up, as OpenCV


def test_frost_uses_the_original_photographs():
    layers = frost.frost_layers()
    assert layers.kind == "photos", "the frost photographs in ../shared/data/frost should be found"
    assert layers.sizes.tolist() == [[120, 180], [63, 112], [63, 112], [70, 105], [99, 132]]
    assert set(frost.FROST_FILES) == {f"frost{i}.{'png' if i < 4 else 'jpg'}" for i in range(1, 6)}


def test_frost_crops_stay_inside_the_drawn_photograph():
    """Layers whose real area is 0.5 and padding 1.0: no crop may touch the padding,
    and every photograph is drawn (randint(5))."""
    sizes = torch.tensor([[40, 60], [33, 33], [50, 40], [34, 90], [64, 64]])
    images = torch.ones(5, 3, 64, 90)
    for k, (h, w) in enumerate(sizes.tolist()):
        images[k, :, :h, :w] = 0.1 * (k + 1)                      # photograph k has value 0.1 (k + 1)
    layers = frost.FrostLayers(images, sizes, "photos", "test")
    out = cc._frost(torch.zeros(400, 3, 32, 32), (1.0, 1.0), torch.Generator().manual_seed(0), layers)
    per_image = out.flatten(1)
    assert torch.equal(per_image.amin(1), per_image.amax(1))     # one photograph per crop, no padding
    drawn = torch.round(per_image[:, 0] * 10).long()
    assert set(drawn.tolist()) == {1, 2, 3, 4, 5}


def test_missing_or_damaged_frost_photographs_fall_back_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("FREQLIB_FROST", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="frost1.png.*not found.*put frost1.png"):
        layers = frost.frost_layers()
    assert layers.kind == "synthetic"
    for f in frost.FROST_FILES:
        (tmp_path / f).write_bytes(b"not a photograph")
    frost._frost_photos.cache_clear()
    with pytest.warns(RuntimeWarning, match="sha256"):
        assert frost.frost_layers().kind == "synthetic"
    got = csets.cifar10c(("frost",), (1,), n=4, cache=False, progress=False, use_released=False,
                      clean=(torch.rand(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)), pixels="original")
    assert got.frost == "synthetic" and got.variant.endswith("0–3; synthetic frost)")
    frost._frost_photos.cache_clear()


def test_clean_pixels_choose_the_label_and_the_cache_key(tmp_path):
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0)).float() / 255
    y = torch.arange(6)
    kw = dict(n=6, cache_dir=tmp_path, use_released=False, progress=False)
    a = csets.cifar10c(("contrast",), (1,), clean=(x, y), pixels="original", **kw)
    b = csets.cifar10c(("contrast",), (1,), clean=(cc.jpeg(x, 75), y), pixels="jpeg", **kw)
    assert a.variant == "CIFAR-10-C (regenerated from original test images 0–5)"
    assert b.variant == "CIFAR-10-C (regenerated from JPEG-q75 pixels of test images 0–5)"
    assert len(list(tmp_path.glob("*.npz"))) == 2 and b.generation_seconds > 0
    assert not torch.equal(a.images("contrast", 1), b.images("contrast", 1))
    c = csets.cifar10c(("contrast",), (1,), clean=(x.flip(-1), y), pixels="original", **kw)
    assert c.generation_seconds > 0                                # other pixels: not the cached set
    with pytest.raises(ValueError, match="pixels="):
        csets.cifar10c(("contrast",), (1,), clean=(x, y), **kw)


def test_default_clean_pixels_are_the_lossless_head():
    from freqlib.data import load_test_head
    x, y, pixels = csets.default_clean(50)
    head = load_test_head()
    if head is None:
        pytest.skip("lossless test head not present")
    assert pixels == "original" and torch.equal((x * 255).round().byte().permute(0, 2, 3, 1),
                                                torch.from_numpy(head[0][:50]))


def test_robustness_keeps_per_image_correctness(tmp_path):
    from freqlib.models import build_model
    torch.manual_seed(0)
    x = torch.rand(30, 3, 32, 32)
    cset = csets.cifar10c(("contrast", "gaussian_noise"), (1, 5), n=30, clean=(x, torch.arange(30) % 10),
                       pixels="original", cache_dir=tmp_path, use_released=False, progress=False)
    models = {"a": build_model("fastnet", (8, 16, 32)).eval(), "b": build_model("fastnet", (8, 16, 32)).eval()}
    rob = csets.robustness(models, cset, progress=False)
    assert rob.correct["a"].shape == (30, 4) and set(rob.correct["a"].unique().tolist()) <= {0.0, 1.0}
    table = rob.table()
    assert len(table) == 8
    assert abs(table[table.model == "a"]["accuracy"].mean() - rob.mean_c("a").mean().item()) < 1e-6
    single = csets.corruption_accuracy(models["b"], cset)
    assert np.allclose(single["accuracy"].to_numpy(), rob.correct["b"].mean(0).numpy())
