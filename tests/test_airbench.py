"""airbench as a zoo architecture, and the paper profile's settings (CPU, tiny sizes, real code paths)."""
import json

import pytest
import torch
import torch.nn.functional as F

from freqlib import airbench, profiles, zoo
from freqlib.airbench import AIRBENCH94, AirbenchNet, BatchNorm, sgd_settings
from freqlib.data import planted_frequency_dataset
from freqlib.evaluate import accuracy
from freqlib.models import build_model
from freqlib.train import TrainConfig, train_model


def correlated_images(n=64, seed=0):
    """Images with strongly correlated neighbouring pixels and channels (like photos)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 36, 36, generator=g)
    x = F.avg_pool2d(x, 5, 1)                                  # spatial correlation
    return torch.cat([x, 0.8 * x + 0.2 * torch.randn(x.shape, generator=g), -x], 1)


def test_whitening_stem_decorrelates_patches():
    net = AirbenchNet((8, 8, 8))
    images = correlated_images()
    net.init_whitening(images)
    out = F.conv2d(images, net.stem.weight)                   # the stem without bias or GELU
    half = out[:, : airbench.WHITEN_WIDTH // 2].permute(1, 0, 2, 3).reshape(airbench.WHITEN_WIDTH // 2, -1)
    cov = half @ half.T / half.shape[1]
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 0.02, "whitened channels must be uncorrelated"
    assert torch.all(torch.diag(cov) <= 1.0 + 1e-3) and torch.diag(cov)[0] > 0.9
    w = net.stem.weight
    assert torch.equal(w[12:], -w[:12])                       # each filter and its negative
    assert not w.requires_grad and net.stem.bias.requires_grad  # frozen filters, learning bias
    # an unwhitened stem mixes its channels: the check above can fail
    raw = F.conv2d(images, torch.randn_like(w))[:, :12].permute(1, 0, 2, 3).reshape(12, -1)
    rcov = raw @ raw.T / raw.shape[1]
    assert (rcov - torch.diag(torch.diag(rcov))).abs().max() > 0.1


def test_network_whitens_itself_from_its_first_training_batch_and_keeps_it():
    net = build_model("airbench", (8, 8, 16))
    assert not net.body._whitened
    net.eval()
    net(torch.rand(4, 3, 32, 32))
    assert not net.body._whitened                             # never from an evaluation pass
    net.train()
    net(torch.rand(64, 3, 32, 32))
    assert net.body._whitened and bool(net.body.whitened)
    weight = net.body.stem.weight.detach().clone()
    net(torch.rand(64, 3, 32, 32))
    assert torch.equal(weight, net.body.stem.weight)          # once only
    copy = build_model("airbench", (8, 8, 16))
    copy.load_state_dict(net.state_dict())
    assert copy.body._whitened and not copy.body.stem.weight.requires_grad
    copy.train()
    copy(torch.rand(8, 3, 32, 32))
    assert torch.equal(copy.body.stem.weight, weight)         # a loaded net never re-whitens


def test_batchnorm_bias_learns_64_times_faster():
    bn = BatchNorm(3)
    x = torch.randn(8, 3, 4, 4)
    opt = torch.optim.SGD(bn.parameters(), lr=0.01)
    (bn(x) * torch.arange(1.0, 4.0)[None, :, None, None]).sum().backward()
    grad_wrt_bias = torch.arange(1.0, 4.0) * 8 * 4 * 4        # d loss / d (effective bias)
    before = bn.shift.detach() * airbench.BIAS_SCALE
    opt.step()
    moved = bn.shift.detach() * airbench.BIAS_SCALE - before
    assert torch.allclose(moved, -0.01 * AIRBENCH94["bias_scaler"] * grad_wrt_bias, rtol=1e-5)
    assert bn.weight is None and torch.equal(bn.unit, torch.ones(3))   # unit scale, not learned
    ref = torch.nn.functional.batch_norm(x, None, None, training=True, eps=airbench.BN_EPS) + bn.shift.detach()[None, :, None, None] * airbench.BIAS_SCALE
    assert torch.allclose(bn(x), ref, atol=1e-5)


def test_convolutions_start_at_the_identity():
    net = AirbenchNet((8, 16, 16))
    conv = net.groups[1].conv2
    x = torch.randn(2, 16, 6, 6)
    assert torch.allclose(conv(x), x, atol=1e-6)


def test_sgd_settings_convert_the_reference_hyper_parameters():
    s = sgd_settings(1024)
    assert s["lr"] == pytest.approx(1.5) and s["momentum"] == 0.85
    # decay per step at the peak: weight_decay * batch / (1024 * (1 + 1 / (1 - momentum)))
    assert s["lr"] * s["weight_decay"] == pytest.approx(0.0153 * 1024 / (1024 * (1 + 1 / 0.15)))
    assert sgd_settings(512)["lr"] == pytest.approx(0.75)    # same lr per example
    paper = profiles.PROFILES["paper"]
    assert (paper["lr"], paper["momentum"]) == (pytest.approx(s["lr"]), s["momentum"])
    assert paper["weight_decay"] == pytest.approx(s["weight_decay"])
    assert profiles.RECIPE_SETTINGS[("paper", "airbench")]["linf_at"]["lr"] == pytest.approx(sgd_settings(512)["lr"])


def test_widths_are_checked_and_sizes_match_airbench94():
    with pytest.raises(ValueError, match="three positive conv-group widths"):
        AirbenchNet((64, 256))
    assert airbench.count_parameters(AirbenchNet()) == pytest.approx(1.97e6, rel=0.01)
    assert AirbenchNet().head.in_features == 256


def test_constrained_stem_replaces_the_whitening_conv():
    net = build_model("airbench", (8, 8, 8), stem={"kind": "banded", "high_share": 0.5})
    assert not net.body.whitening and net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    net.body.init_whitening(torch.rand(4, 3, 32, 32))          # no-op for constrained stems


def test_airbench_learns_a_planted_band():
    x, y, _ = planted_frequency_dataset(1600, "low", n_classes=4, seed=0)
    cfg = TrainConfig(arch="airbench", widths=(16, 32, 32), epochs=4, batch_size=128, n_train=1200,
                      translate=0, flip=False, warmup=0.23, **sgd_settings(128))
    model = build_model("airbench", cfg.widths, num_classes=4)
    train_model(model, x, y, cfg)
    assert accuracy(model, x[1200:], y[1200:]) > 0.8


@pytest.fixture
def airbench_zoo(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path / "models")
    monkeypatch.setitem(profiles.PROFILES, "smoke", dict(
        arch="airbench", widths=(8, 16, 16), epochs=1, n_train=512, batch_size=256, lr=0.4, momentum=0.85,
        weight_decay=0.0153 / 11.5, warmup=0.23, whiten=False,
        n_test=200, n_robust=32, robust_restarts=1, n_boot=100, seeds=1))
    return tmp_path / "models"


def test_airbench_trains_saves_and_loads_through_the_zoo(airbench_zoo, monkeypatch):
    model = zoo.get_model("standard", "smoke", "cpu")
    assert model.record["config"]["arch"] == "airbench" and model.body._whitened
    files = sorted(p.name for p in airbench_zoo.iterdir() if p.suffix in (".pt", ".json"))
    assert [f.rsplit(".", 1)[1] for f in files] == ["json", "pt"]
    x = torch.rand(5, 3, 32, 32)
    expected = model(x)
    trained = []
    monkeypatch.setattr(zoo, "_train_and_record", lambda *a, **k: trained.append(a) or None)
    again = zoo.get_model("standard", "smoke", "cpu")          # loads, does not train
    assert trained == [] and torch.allclose(again(x), expected, atol=1e-5)
    assert again.body._whitened and json.loads((airbench_zoo / files[0]).read_text())["test_accuracy"] >= 0


def test_paper_profile_adversarial_recipe_trains_through_the_zoo(tmp_path, monkeypatch):
    """The paper profile's airbench FGSM-RS path at a size a CPU test can afford."""
    monkeypatch.setattr(zoo, "zoo_dir", lambda: tmp_path / "models")
    row = dict(profiles.PROFILES["paper"], widths=(8, 8, 16), n_train=256, n_test=64, n_robust=16,
               robust_restarts=1)
    monkeypatch.setitem(profiles.PROFILES, "paper", row)
    monkeypatch.setitem(profiles.RECIPE_SETTINGS, ("paper", "airbench"),
                        {"linf_at": dict(profiles.RECIPE_SETTINGS[("paper", "airbench")]["linf_at"], epochs=2)})
    model = zoo.get_model("linf_at", "paper", "cpu")
    cfg = model.record["config"]
    assert (cfg["arch"], cfg["perturbation"], cfg["batch_size"], cfg["warmup"]) == ("airbench", "fgsm_linf", 512, 0.5)
    assert model.body._whitened and len(model.record["co_guard"]) >= 1


@pytest.mark.parametrize("recipe", ["gaussian", "linf_at"])
def test_paper_recipes_whiten_from_clean_images_as_chapter_2_rebuilds_them(recipe):
    """The paper profile whitens the stem from clean training images before training, so
    chapter 2's whitening_start finds the frozen stem where it began (cosine 1). Whitening
    from the first training batch instead would read the recipe's noise into the stem."""
    from freqlib.filter_figures import whitening_start
    assert profiles.recipe_config(recipe, "paper").whiten
    cfg = profiles.recipe_config(recipe, "paper", widths=(8, 16, 16), epochs=1, n_train=128, batch_size=64)
    x = correlated_images(128)[:, :, :32, :32].sigmoid()
    y = torch.arange(128) % 10
    torch.manual_seed(0)
    model = build_model("airbench", cfg.widths)
    train_model(model, x, y, cfg)
    start = whitening_start({recipe: model}, x, n=5000)
    assert start.loc[recipe, "similarity to the start"] > 0.999


def test_a_whitened_airbench_stem_is_not_a_learned_first_layer():
    from freqlib.airbench import learned_first_layer
    net = build_model("airbench", (8, 8, 16))
    assert learned_first_layer(net)                           # not whitened yet: nothing frozen
    net.train()
    net(torch.rand(64, 3, 32, 32))
    assert not learned_first_layer(net) and not learned_first_layer(net.body)
    assert learned_first_layer(build_model("fastnet", (8, 16, 32)))   # whitening-initialised, then trained


def _whitened_airbench(images):
    net = build_model("airbench", (8, 8, 16))
    net.body.init_whitening(images)
    return net.eval()


def test_the_filter_lens_reads_the_first_convolution_training_shaped():
    from freqlib.airbench import filter_lens_conv
    whitened = _whitened_airbench(correlated_images())
    assert filter_lens_conv(whitened) is whitened.body.groups[0].conv1      # past the frozen stem
    unwhitened = build_model("airbench", (8, 8, 16))
    assert filter_lens_conv(unwhitened) is unwhitened.body.stem
    fastnet = build_model("fastnet", (8, 16, 32))
    assert filter_lens_conv(fastnet) is fastnet.body.stem


def test_the_filter_score_of_airbench_ranks_learning_where_the_frozen_stem_cannot():
    """Two networks with one whitening stem, one whose first learned convolution became a blur
    and one whose became a checkerboard: the lens ranks the blur as more low-frequency, while
    the frozen stem scores both alike (and would rank them by noise)."""
    from freqlib import synthesis, validity
    from freqlib.models import first_conv
    images = correlated_images()
    blur, checker = _whitened_airbench(images), _whitened_airbench(images)
    with torch.no_grad():
        blur.body.groups[0].conv1.weight.fill_(1 / 9)
        sign = torch.tensor([[1., -1, 1], [-1, 1, -1], [1, -1, 1]])
        checker.body.groups[0].conv1.weight.copy_(sign.expand_as(checker.body.groups[0].conv1.weight) / 9)
    low, high = synthesis.filter_score(blur), synthesis.filter_score(checker)
    assert low.value > high.value + 0.5
    stem_low, stem_high = (synthesis.filter_score(m, layer=first_conv(m)) for m in (blur, checker))
    assert stem_low.value == pytest.approx(stem_high.value)
    assert "first learned layer" in synthesis.filter_score(blur, n_boot=50).over
    lens = validity.filter_lens(checker)
    assert lens.over.endswith("(no interval)") and "whitening" in lens.over
    r = torch.linalg.vector_norm(torch.stack(torch.meshgrid(*(torch.arange(32) - 16,) * 2, indexing="ij")).float(), dim=0)
    assert lens.fixed[r >= 12].mean() > lens.fixed[r < 4].mean()           # the checkerboard passes high frequencies


# ------------------------------------------------------ airbench's training loop
def test_lr_factor_rises_from_and_falls_to_airbench_floors():
    from freqlib.train import lr_factor
    total, rise = 100, 23
    assert lr_factor(0, total, rise, (0.2, 0.07)) == pytest.approx(0.2 + 0.8 / rise)
    assert lr_factor(rise - 1, total, rise, (0.2, 0.07)) == pytest.approx(1.0)
    assert lr_factor(rise, total, rise, (0.2, 0.07)) == pytest.approx(1.0)
    assert lr_factor(total, total, rise, (0.2, 0.07)) == pytest.approx(0.07)
    assert lr_factor(total, total, rise) == 0.0 and lr_factor(0, total, rise) == pytest.approx(1 / rise)
    with pytest.raises(ValueError, match="lr_ends"):
        TrainConfig(lr_ends=(0.2, 1.5))


@pytest.mark.parametrize("bad, names", [(dict(stem_bias_epochs=-1), "stem_bias_epochs"),
                                        (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"),
                                        (dict(n_train=0), "n_train"), (dict(warmup=1.5), "warmup")])
def test_a_training_config_out_of_range_is_a_one_line_error(bad, names):
    with pytest.raises(ValueError, match=names) as err:
        TrainConfig(**bad)
    assert "\n" not in str(err.value)
    TrainConfig(stem_bias_epochs=0, warmup=0.0)                         # the edges are allowed


def test_lookahead_pulls_the_weights_to_a_trailing_average_every_fifth_step():
    from freqlib.train import Lookahead
    net = torch.nn.Linear(3, 2)
    start = net.weight.detach().clone()
    look = Lookahead(net, total=10)
    with torch.no_grad():
        net.weight.add_(1.0)
    look.step(3)                                   # not a fifth step: nothing moves
    assert torch.equal(net.weight, start + 1.0)
    look.step(5)
    decay = 0.95 ** 5 * 0.5 ** 3
    assert torch.allclose(net.weight, start + (1 - decay))
    with torch.no_grad():
        net.weight.add_(1.0)
    look.finish()                                  # training ends on the average
    assert torch.allclose(net.weight, start + (1 - decay))


def tiny_airbench_run(monkeypatch, **loop):
    """A few steps of airbench on random images with the loop settings ``loop``; returns the
    model, and the SGD parameter groups and Lookahead the loop built."""
    import freqlib.train as ftrain
    seen = {}

    class SpySGD(torch.optim.SGD):
        def __init__(self, groups, **kw):
            seen["groups"] = groups
            super().__init__(groups, **kw)

    class SpyLookahead(ftrain.Lookahead):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen["lookahead"] = self
    monkeypatch.setattr(torch.optim, "SGD", SpySGD)
    monkeypatch.setattr(ftrain, "Lookahead", SpyLookahead)
    off = dict(lr_ends=(0.0, 0.0), lookahead=False, alternating_flip=False, stem_bias_epochs=None,
               decay_biases=False)
    cfg = TrainConfig(arch="airbench", widths=(8, 8, 8), epochs=2, batch_size=32, n_train=64,
                      **{**sgd_settings(32), **off, **loop})
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
    torch.manual_seed(0)
    model = build_model("airbench", cfg.widths)
    train_model(model, x, y, cfg)
    return model, seen


def test_whitening_bias_freezes_after_its_epochs(monkeypatch):
    frozen, _ = tiny_airbench_run(monkeypatch, stem_bias_epochs=0)
    trained, _ = tiny_airbench_run(monkeypatch)
    assert torch.equal(frozen.body.stem.bias, torch.zeros_like(frozen.body.stem.bias))   # as whitened
    assert trained.body.stem.bias.abs().max() > 0
    assert frozen.body.stem.bias.requires_grad          # handed back as built


def test_decay_biases_puts_every_parameter_under_weight_decay(monkeypatch):
    for on in (True, False):
        _, seen = tiny_airbench_run(monkeypatch, decay_biases=on)
        decayed, undecayed = seen["groups"]
        assert any(p.ndim == 1 for p in decayed["params"]) is on
        assert (len(undecayed["params"]) == 0) is on


def test_training_with_lookahead_ends_on_the_average(monkeypatch):
    model, seen = tiny_airbench_run(monkeypatch, lookahead=True)
    state = [v for v in model.state_dict().values() if v.is_floating_point()]
    assert all(torch.equal(a, b) for a, b in zip(state, seen["lookahead"].average))
    _, seen = tiny_airbench_run(monkeypatch)
    assert "lookahead" not in seen


def test_lookahead_runs_shorter_than_a_pull_end_on_their_first_weights(monkeypatch):
    """As in the reference: training ends on the average, which a run of fewer than 5 steps
    never moves (why the paper dry run takes 8 steps an epoch, profiles.DRY)."""
    import copy
    import freqlib.train as ftrain
    starts = []
    real = ftrain.Lookahead

    def recording(model, total):
        starts.append(copy.deepcopy(model.state_dict()))
        return real(model, total)
    monkeypatch.setattr(ftrain, "Lookahead", recording)
    for epochs, moved in ((2, False), (3, True)):       # 4 steps, then 6 (32-image batches)
        cfg = TrainConfig(arch="airbench", widths=(8, 8, 8), epochs=epochs, batch_size=32, n_train=64,
                          lookahead=True, **sgd_settings(32))
        g = torch.Generator().manual_seed(0)
        x, y = torch.rand(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)
        model = build_model("airbench", cfg.widths)
        train_model(model, x, y, cfg)
        end = model.state_dict()
        assert any(not torch.equal(v, end[k]) for k, v in starts[-1].items()) is moved


def test_airbench_networks_train_with_airbench_loop_and_others_do_not():
    loop = profiles.AIRBENCH_LOOP
    assert loop["stem_bias_epochs"] == AIRBENCH94["whiten_bias_epochs"]
    paper = profiles.recipe_config("standard", "paper")
    assert all(getattr(paper, k) == (tuple(v) if isinstance(v, tuple) else v) for k, v in loop.items())
    at = profiles.recipe_config("linf_at", "paper")       # Wong et al.'s cyclic schedule, no averaging
    assert at.lr_ends == (0.0, 0.0) and not at.lookahead and at.alternating_flip
    for other in (profiles.recipe_config("standard", "paper", arch="resnet18"),
                  profiles.recipe_config("standard", "quick")):
        assert other.lr_ends == (0.0, 0.0) and not (other.lookahead or other.alternating_flip
                                                    or other.decay_biases) and other.stem_bias_epochs is None
