"""Training, evaluation and the cached model zoo (tiny settings, real code paths)."""
import json

import pytest
import torch

from freqlib import profiles, zoo
from freqlib.data import planted_frequency_dataset
from freqlib.models import build_model
from freqlib.attacks import robust_accuracy
from freqlib.evaluate import accuracy
from freqlib.train import TrainConfig, perturb_batch, train_model


@pytest.fixture
def tiny_zoo(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path / "models")
    monkeypatch.setitem(profiles.PROFILES, "smoke", dict(
        arch="fastnet", widths=(8, 8, 16), epochs=1, n_train=512, batch_size=256, lr=0.2,
        n_test=200, n_robust=32, robust_restarts=1, n_boot=100, seeds=1))
    return tmp_path / "models"


def test_fast_net_learns_planted_band():
    x, y, _ = planted_frequency_dataset(2000, "low", n_classes=4, seed=0)
    cfg = TrainConfig(widths=(16, 16, 32), epochs=4, batch_size=128, n_train=1500, translate=0, flip=False)
    model = build_model("fastnet", cfg.widths, num_classes=4)
    info = train_model(model, x, y, cfg)
    assert info["steps"] == 4 * (1500 // 128)
    assert accuracy(model, x[1500:], y[1500:]) > 0.8


def test_fgsm_training_perturbation_stays_in_ball():
    x, y, _ = planted_frequency_dataset(32, "mid", seed=0)
    model = build_model("fastnet", (8, 8, 8), num_classes=4)
    cfg = TrainConfig(perturbation="fgsm_linf")
    adv = perturb_batch(model, x, y, cfg, torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    cfg2 = TrainConfig(perturbation="fgsm_l2", eps=0.5, alpha=0.625)
    adv2 = perturb_batch(model, x, y, cfg2, torch.Generator().manual_seed(0))
    assert (adv2 - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5


def test_unknown_recipe_and_perturbation_are_named():
    with pytest.raises(ValueError, match="unknown zoo model 'nope'"):
        profiles.recipe_config("nope", "smoke")
    with pytest.raises(ValueError, match="perturbation 'mixup'"):
        TrainConfig(perturbation="mixup")
    with pytest.raises(ValueError, match="profile='huge'"):
        profiles.resolve_profile("huge")


def test_zoo_trains_once_then_loads(tiny_zoo, monkeypatch):
    model = zoo.get_model("standard", "smoke", "cpu")
    files = sorted(p.suffix for p in tiny_zoo.iterdir() if p.suffix != ".lock")
    assert files == [".json", ".pt"]
    record = json.loads(next(tiny_zoo.glob("*.json")).read_text())
    for field in ("test_accuracy", "pgd_linf_accuracy", "train_seconds", "device", "seed", "variant"):
        assert field in record
    assert 0 <= record["pgd_linf_accuracy"] <= record["test_accuracy"] + 0.2

    def must_not_train(*a, **k):
        raise AssertionError("a cached model was retrained")
    monkeypatch.setattr("freqlib.train.train_model", must_not_train)
    again = zoo.get_model("standard", "smoke", "cpu")
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_config_change_gives_new_key(tiny_zoo):
    variant = "CIFAR-10 (JPEG-q75 mirror)"
    k1, _ = zoo.model_key("standard", "smoke", variant)
    k2, _ = zoo.model_key("standard", "smoke", variant, epochs=2)
    k3, _ = zoo.model_key("standard", "smoke", "CIFAR-10")
    k4, _ = zoo.model_key("gaussian", "smoke", variant)
    assert len({k1, k2, k3, k4}) == 4


def test_a_record_of_older_training_code_is_not_current(tiny_zoo, monkeypatch):
    """The instructor page's timing table lists the models today's code loads, not stale keys."""
    zoo.get_model("standard", "smoke", "cpu")
    [record] = zoo.list_models()
    assert zoo.is_current(record) and zoo.list_models(current=True) == [record]
    monkeypatch.setattr(zoo, "TRAINING_CODE", zoo.TRAINING_CODE + ("zoo.py",))   # as if the code changed
    assert not zoo.is_current(record) and zoo.list_models(current=True) == [] and zoo.list_models() == [record]


@pytest.mark.parametrize("damage", ["garbage", "wrong key"])
def test_damaged_checkpoint_is_retrained_with_warning(tiny_zoo, damage):
    zoo.get_model("standard", "smoke", "cpu")
    ckpt = next(tiny_zoo.glob("*.pt"))
    if damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint")
    else:
        blob = torch.load(ckpt, weights_only=True)
        blob["key"] = "0" * 16
        torch.save(blob, ckpt)
    with pytest.warns(RuntimeWarning, match="unusable.*retraining"):
        zoo.get_model("standard", "smoke", "cpu")
    assert torch.load(ckpt, weights_only=True)["key"] != "0" * 16


def test_a_full_device_while_loading_is_raised_and_the_checkpoint_kept(tiny_zoo, monkeypatch):
    zoo.get_model("standard", "smoke", "cpu")
    ckpt = next(tiny_zoo.glob("*.pt"))
    before = ckpt.read_bytes()

    def full(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory")
    monkeypatch.setattr(zoo, "prepare_model", full)
    with pytest.raises(torch.OutOfMemoryError):
        zoo.get_model("standard", "smoke", "cpu")
    assert ckpt.read_bytes() == before                  # not retrained over a good file


def test_interrupted_training_leaves_nothing(tiny_zoo, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr("freqlib.train.train_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zoo.get_model("gaussian", "smoke", "cpu")
    assert not tiny_zoo.exists() or not [p for p in tiny_zoo.iterdir() if p.suffix != ".lock"]


def test_interrupted_write_leaves_no_partial_file(tiny_zoo, monkeypatch):
    real_save = torch.save

    def dies_midway(obj, path, *a, **k):
        with open(path, "wb") as fh:
            fh.write(b"half")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        zoo.get_model("standard", "smoke", "cpu")
    monkeypatch.setattr(torch, "save", real_save)
    left = [p for p in tiny_zoo.glob("*") if not p.name.endswith(".lock")]   # the lock file may stay
    assert left == [], "a half-written checkpoint was left behind"


def test_robust_accuracy_not_above_clean():
    x, y, _ = planted_frequency_dataset(600, "low", n_classes=4, seed=2)
    model = build_model("fastnet", (8, 8, 16), num_classes=4)
    train_model(model, x, y, TrainConfig(widths=(8, 8, 16), epochs=2, batch_size=100, n_train=500,
                                         translate=0, flip=False))
    clean = accuracy(model, x[500:], y[500:])
    robust = robust_accuracy(model, x[500:], y[500:], eps=8 / 255, steps=5, restarts=2, progress=None)
    assert robust.shape == (100,) and float(robust.mean()) <= clean


def test_paper_architecture_trains_through_the_zoo(tiny_zoo, monkeypatch):
    """The paper profile's ResNet-18 path, at a size a CPU test can afford."""
    monkeypatch.setitem(profiles.PROFILES, "paper", dict(
        arch="resnet18", widths=(8,), epochs=1, n_train=256, batch_size=128, lr=0.1, n_test=64, n_robust=16,
        robust_restarts=1, n_boot=100, seeds=1))
    model = zoo.get_model("linf_at", "paper", "cpu")
    assert model.record["config"]["arch"] == "resnet18"
    assert model(torch.rand(3, 3, 32, 32)).shape == (3, 10)
    assert any(p.name.startswith("linf_at-paper-") for p in tiny_zoo.iterdir())


def test_fgsm_step_uses_train_mode_batch_norm():
    """Wong et al.'s FGSM-RS attacks the network in train mode: batch-norm uses the
    batch's statistics (and updates its running averages) during the attack step."""
    x, y, _ = planted_frequency_dataset(64, "mid", seed=0)
    model = build_model("fastnet", (8, 8, 8), num_classes=4).train()
    seen = []
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.register_forward_hook(lambda mod, inp, out: seen.append(mod.training))
    before = model.body.stem_norm.running_mean.clone()
    perturb_batch(model, x, y, TrainConfig(perturbation="fgsm_linf"), torch.Generator().manual_seed(0))
    assert seen and all(seen), "the attack step ran batch-norm in eval mode"
    assert not torch.equal(before, model.body.stem_norm.running_mean)


def test_overfitting_guard_stops_and_restores_the_previous_epoch(monkeypatch):
    """A PGD-5 probe that collapses by more than co_drop stops training and keeps the
    weights of the epoch before; a steady probe lets training run to the end."""
    x, y, _ = planted_frequency_dataset(400, "low", n_classes=4, seed=0)
    cfg = TrainConfig(widths=(8, 8, 8), epochs=3, batch_size=100, n_train=400, translate=0, flip=False,
                      perturbation="fgsm_linf", label_smoothing=0.0)
    snapshots = []

    def probe(model, px, py, c):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return [0.5, 0.1, 0.1][len(snapshots) - 1]
    monkeypatch.setattr("freqlib.train._pgd5_accuracy", probe)
    model = build_model("fastnet", (8, 8, 8), num_classes=4)
    info = train_model(model, x, y, cfg)
    assert info["co_collapse"] and info["co_guard"] == [0.5, 0.1]
    assert info["steps"] == 2 * 4                       # stopped after epoch 2 of 3
    for k, v in model.state_dict().items():             # epoch 1's weights are back
        assert torch.equal(v, snapshots[0][k]), k
    snapshots.clear()
    monkeypatch.setattr("freqlib.train._pgd5_accuracy", lambda *a: 0.3)
    info = train_model(build_model("fastnet", (8, 8, 8), num_classes=4), x, y, cfg)
    assert not info["co_collapse"] and info["co_guard"] == [0.3, 0.3, 0.3] and info["steps"] == 12


def test_l2_adversarial_training_and_l2_robust_accuracy_run():
    """The L2 attacks (torchattacks.PGDL2) flatten input gradients; channels_last models
    must still work through them (guard probe, PGD-L2 training, L2 evaluation)."""
    x, y, _ = planted_frequency_dataset(300, "low", n_classes=4, seed=1)
    for kind in ("fgsm_l2", "pgd_l2"):
        cfg = TrainConfig(widths=(8, 8, 8), epochs=1, batch_size=100, n_train=200, perturbation=kind,
                          eps=0.5, alpha=0.25, attack_steps=2, label_smoothing=0.0)
        model = build_model("fastnet", (8, 8, 8), num_classes=4)
        assert len(train_model(model, x, y, cfg)["co_guard"]) == 1
    robust = robust_accuracy(model, x[200:], y[200:], "l2", eps=0.5, steps=3, restarts=1, progress=None)
    assert robust.shape == (100,) and float(robust.mean()) <= accuracy(model, x[200:], y[200:])


def test_logits_refuses_images_that_are_not_float_nchw():
    from freqlib.evaluate import logits
    model = build_model("fastnet", (8, 16, 16))
    raw = (torch.rand(4, 32, 32, 3) * 255).to(torch.uint8)            # as load_cifar10 returns them
    with pytest.raises(ValueError, match="to_tensor"):
        logits(model, raw)
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32\)"):
        logits(model, torch.rand(3, 32, 32))                           # one image without its batch axis
    assert logits(model, torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_a_synthetic_set_s_variant_is_named_without_building_the_set(monkeypatch):
    """A cached model's key needs only the variant's name: chapter 6's shortcut sets (50,000
    images each) are not rebuilt to key a model, and the name is the one training records."""
    from freqlib import synthetic
    planted = "planted-low"
    assert zoo.dataset_variant(planted) == zoo.dataset_tensors(planted, "train")[2]
    monkeypatch.setattr(synthetic, "_shortcut_train", lambda *a: pytest.fail("built the shortcut set"))
    assert zoo.dataset_variant("shortcut-high") == synthetic.describe("shortcut-high")


def test_model_labels_are_read_off_the_recipes():
    from freqlib.profiles import RECIPES, model_label
    assert model_label("linf_at") == "AT (L∞ 8/255)" and model_label("gaussian") == "Gauss-aug (σ=0.1)"
    assert f"ε={RECIPES['l2_at']['eps']:g}" in model_label("l2_at")       # the budget is the recipe's
    assert model_label("planted_low") == "planted_low"                    # no label: the recipe's name
