"""Statistics that run on the chapter's device keep to their input's device.

``ctx.bootstrap`` moves its samples to the chapter's device (CUDA at the paper
profile) and calls the statistic there, so a constant built on the CPU inside a
statistic (``torch.arange(K)``, a cached basis) breaks the GPU run only. This
machine has no GPU: the inputs live on the ``meta`` device instead, and a
:class:`~torch.overrides.TorchFunctionMode` refuses any operation that mixes a
meta tensor with a CPU one (a plain meta computation would let a matrix
product through). Each guarded function was once a GPU-only failure. The same
check runs on every bootstrap statistic of every smoke chapter in
tests/test_book.py (tools/device_shadow).
"""
import sys
from pathlib import Path

import pytest
import torch

from freqlib import attribution, paper_a, validity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "device_shadow"))
from device_guard import NoMixedDevices  # noqa: E402  (tools/, not a package)

B, K = 5, 32


def on_meta(fn, *args):
    with NoMixedDevices():
        out = fn(*args)
    assert out.device.type == "meta"
    return out


def test_the_guard_fails_on_a_cpu_constant():
    """The check can fail: the pre-fix band centroid (CPU arange) and a CPU matrix are caught."""
    x = torch.ones(B, K, device="meta")
    with pytest.raises(AssertionError, match="mixes devices"):
        on_meta(lambda w: (w * torch.arange(K, dtype=w.dtype)).sum(-1), x)
    with pytest.raises(AssertionError, match="mixes devices"):
        on_meta(lambda w: w @ torch.ones(K, 3), x)
    on_meta(lambda w: w[:, torch.arange(3)], x)          # a CPU index is fine on any device


def test_band_statistics_stay_on_the_device():
    w = torch.rand(B, K, device="meta", dtype=torch.float64)
    assert on_meta(attribution.band_centroid, w).shape == (B,)
    assert on_meta(attribution.upper_share, w).shape == (B,)
    assert on_meta(attribution.positive_normalise, w).shape == (B, K)


def test_paper_a_statistics_stay_on_the_device():
    """Chapter 1's numbers are functions of resampled means (name -> (B, ...)) on the device."""
    def means(number: str) -> dict:        # shapes as in paper_a's table of numbers
        keys = ("of", "norm", "energy", "st", "at") if "_of_" in number else \
            ("st", "at") if "low_small" in number else \
            ("upper", "total", "null_upper", "null_total", "st_upper", "st_total", "at_upper", "at_total")
        shapes = {k: (B, K) if "_of_" in number else (B,) for k in keys}
        return {k: torch.rand(*shape, device="meta") for k, shape in shapes.items()}
    for name, stat in paper_a.STATISTICS.items():
        assert on_meta(stat, means(name)).shape == (B,), name
    for name, (number, part) in paper_a.DESCRIPTIVE.items():
        assert on_meta(part, means(number)).shape == (B,), name


def test_lens_maps_stay_on_the_device():
    """Chapter 6's lens maps (what score_lens bootstraps) for filtered accuracy and OF attribution."""
    r = 24
    u = torch.rand(B, 2 * r, device="meta", dtype=torch.float64)
    maps = on_meta(lambda v: validity.radial_map(validity.filtered_importance(v[..., :r], v[..., r:])), u)
    assert maps.shape == (B, 32, 32)
    assert on_meta(validity.dct_band_map, torch.rand(B, K, device="meta", dtype=torch.float64)).shape == (B, 32, 32)


def test_bf16_shadow_gives_cpu_runs_the_dtypes_of_cuda():
    """FREQLIB_BF16_SHADOW (tools/device_shadow) makes every forward pass of the book's one
    evaluation primitive, and of training, run under bf16 autocast on the CPU, as on CUDA:
    the logits still come back float32, but rounded through bf16."""
    import os
    import subprocess
    code = ("import torch; from freqlib import evaluate, train; torch.manual_seed(0)\n"
            "m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))\n"
            "x = torch.rand(8, 3, 32, 32); z = evaluate.logits(m, x)\n"
            "assert z.dtype == torch.float32 and train.autocast is evaluate.autocast\n"
            "print(float((z - evaluate.logits(m, x, precise=True)).abs().max()))")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "tools" / "device_shadow"))
    env.pop("FREQLIB_DEVICE_REPORT", None)
    diffs = {}
    for shadow in ("", "1"):
        env["FREQLIB_BF16_SHADOW"] = shadow
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        diffs[shadow] = float(res.stdout.split()[-1])
    assert diffs[""] == 0.0 and diffs["1"] > 1e-4     # fp32 on the CPU as usual; bf16 under the shadow


def test_precise_logits_run_with_tf32_off_on_cuda_and_restore_it(monkeypatch):
    """cuDNN's default TF32 (10-bit mantissa) would turn the occluded-frequency attribution's
    small logit differences into rounding noise: ``precise=True`` runs in IEEE fp32 on CUDA."""
    from freqlib import evaluate
    flags = lambda: (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    before = flags()
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    with evaluate.full_fp32("cuda"):            # setting the flags needs no GPU
        assert flags() == (False, False)
    assert flags() == (True, before[1])
    with evaluate.full_fp32("cpu"):             # no TF32 on the CPU: left alone
        assert flags() == (True, before[1])
    entered = []
    real = evaluate.full_fp32
    monkeypatch.setattr(evaluate, "full_fp32", lambda device: entered.append(str(device)) or real(device))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 10))
    evaluate.logits(model, torch.rand(5, 3, 2, 2), batch_size=2, precise=True)
    evaluate.logits(model, torch.rand(2, 3, 2, 2))
    evaluate.logits(model, torch.rand(2, 3, 2, 2), precise=True, tf32=True)
    assert entered == ["cpu"]                   # the IEEE pass only, once for its three batches, on the model's device
    with pytest.raises(ValueError, match="tf32=True only applies to precise=True"):
        evaluate.logits(model, torch.rand(2, 3, 2, 2), tf32=True)


def test_the_masks_reference_loss_runs_in_the_training_passes_arithmetic(monkeypatch):
    """Mask training runs fp32 with CUDA's default TF32; an IEEE reference would offset
    CE(masked) - CE by TF32's rounding even where the mask keeps everything."""
    from freqlib import evaluate, mask_training
    seen = []
    real = evaluate.logits
    monkeypatch.setattr(evaluate, "logits", lambda *a, **kw: seen.append(kw) or real(*a, **kw))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 10))
    mask_training._reference_ce(model, torch.rand(2, 3, 2, 2), torch.tensor([0, 1]))
    assert seen == [{"precise": True, "tf32": True}]
