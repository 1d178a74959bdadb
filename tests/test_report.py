"""`python -m freqlib report`: loading checkpoints, clear errors, a real HTML page."""
import pytest
import torch
from torch import nn

from freqlib.__main__ import main
from freqlib.models import build_model
from freqlib.report import ReportError, load_classifier, make_report, write_html


@pytest.fixture(autouse=True)
def _close_figures():
    """Each report opens its figures through pyplot; close them so the suite does not pile them up."""
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


def _tiny_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))


def test_unloadable_file_is_explained(tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"\x00garbage")
    # the exception's first line, not only its class
    with pytest.raises(ReportError, match=r"cannot load .*\(UnpicklingError: Weights only load failed.*\)\. "
                                          r"Expected a freqlib zoo checkpoint") as err:
        load_classifier(str(bad))
    assert "\n" not in str(err.value)
    with pytest.raises(ReportError, match="neither a zoo model"):
        load_classifier(str(tmp_path / "missing.pt"))
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3), "epoch": 3}, plain)            # neither a checkpoint nor bare weights
    with pytest.raises(ReportError, match="without 'config' and 'state_dict'"):
        load_classifier(str(plain))


def _export(model, path, shape=(2, 3, 32, 32)):
    batch = torch.export.Dim("batch", min=1, max=4096)
    prog = torch.export.export(model.eval(), (torch.rand(*shape),), dynamic_shapes=({0: batch},))
    torch.export.save(prog, path)
    return path


def test_wrong_input_shape_is_explained(tmp_path):
    mnist_like = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    path = _export(mnist_like, tmp_path / "mnist.pt2", (2, 1, 28, 28))
    with pytest.raises(ReportError, match=r"failed on a \(5, 3, 32, 32\) input"):
        load_classifier(str(path))
    hundred = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 100))
    path = _export(hundred, tmp_path / "hundred.pt2")
    with pytest.raises(ReportError, match=r"returned \(5, 100\).*expected \(5, 10\)"):
        load_classifier(str(path))


def test_a_program_exported_without_a_dynamic_batch_is_explained(tmp_path):
    # batch fixed at 5, the probe's own size: the probe alone would let it through
    prog = torch.export.export(_tiny_net().eval(), (torch.rand(5, 3, 32, 32),))
    torch.export.save(prog, tmp_path / "static.pt2")
    hint = r"dynamic_shapes=\(\{0: torch.export.Dim\(\"batch\"\)\},\)"
    with pytest.raises(ReportError, match=r"exactly 5 images .*" + hint):
        load_classifier(str(tmp_path / "static.pt2"))


def test_a_whole_pickled_model_is_explained(tmp_path):
    torch.save(_tiny_net(), tmp_path / "whole.pt")               # torch.save(model), not its weights
    with pytest.raises(ReportError, match=r"pickled code \(torch.nn.modules.container.Sequential; .*"
                                          r"weights_only=True.*export it with torch.export: torch.export.save"):
        load_classifier(str(tmp_path / "whole.pt"))


def test_a_bare_state_dict_is_explained(tmp_path):
    torch.save(_tiny_net().state_dict(), tmp_path / "weights.pt")
    with pytest.raises(ReportError, match=r"bare state_dict \(4 tensors.*architecture is missing; export it with"):
        load_classifier(str(tmp_path / "weights.pt"))


def test_exported_cifar_model_loads(tmp_path):
    model, description = load_classifier(str(_export(_tiny_net(), tmp_path / "tiny.pt2")))
    assert "tiny.pt2" in description and model(torch.rand(7, 3, 32, 32)).shape == (7, 10)


def test_an_exported_model_survives_eval_and_train(tmp_path):
    """An exported program's module raises NotImplementedError on train()/eval(); every lens calls
    eval() (evaluate.logits, mask training), so the wrapper must not pass it on."""
    from freqlib.evaluate import logits
    model, _ = load_classifier(str(_export(_tiny_net(), tmp_path / "tiny.pt2")))
    assert model.eval() is model and not model.training
    assert model.train() is model and model.training
    assert logits(model, torch.rand(6, 3, 32, 32)).shape == (6, 10) and not model.training


def _torchscript(path):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)      # deprecated by PyTorch, still read by the report
        torch.jit.save(torch.jit.script(_tiny_net().eval()), path)
    return path


@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
def test_report_runs_whole_on_a_foreign_model(tmp_path, kind):
    torch.manual_seed(0)
    path = _export(_tiny_net(), tmp_path / "tiny.pt2") if kind == "pt2" else _torchscript(tmp_path / "tiny.ts")
    model, description = load_classifier(str(path))
    x, y = torch.rand(20, 3, 32, 32), torch.randint(0, 10, (20,))
    rep = make_report(model, description, x, y, "synthetic data", n_heatmap=2, mask_images=20, mask_epochs=1,
                      n_boot=20)
    assert len(rep.figures) == 4 and rep.mask is not None and rep.training_seed is None
    for k, e in rep.intervals.items():
        assert e.low <= rep.numbers[k] <= e.high, k
    assert write_html(rep, tmp_path / "r.html").read_text().count("data:image/png;base64,") == 4


def test_cli_reports_bad_model_in_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a zoo model" in err[0]
    torch.save(_tiny_net(), tmp_path / "whole.pt")
    assert main(["report", str(tmp_path / "whole.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pickled code" in err[0]


def test_cli_reports_a_model_that_breaks_a_lens_in_one_line(tmp_path, capsys, monkeypatch):
    from freqlib import report, zoo
    path = _export(_tiny_net(), tmp_path / "tiny.pt2")
    monkeypatch.setattr(zoo, "cifar10_tensors", lambda split, device: (None, None, "synthetic data"))

    def breaks(*args, **kw):
        raise RuntimeError("an operator without a gradient\nsecond line")
    monkeypatch.setattr(report, "profile_report", breaks)
    assert main(["report", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {path}: the report failed on this model (RuntimeError: an operator without a gradient)"]


def test_cli_and_chapter_share_the_report_settings():
    from freqlib.mask_training import DATASET_MASKS
    from freqlib.profiles import PROFILES
    from freqlib.report import report_settings
    for profile in ("smoke", "quick", "paper"):
        s = report_settings(profile)
        assert {k: s[k] for k in DATASET_MASKS[profile]} == DATASET_MASKS[profile]    # chapter 3's mask
        assert s["n_boot"] == PROFILES[profile]["n_boot"] and s["n_heatmap"] <= s["n_images"]
    with pytest.raises(ValueError, match="not one of"):
        report_settings("auto")


def test_paper_dry_run_reports_at_smoke_sizes(monkeypatch):
    """report_settings works out the dry run itself: paper's row with smoke's numbers."""
    from freqlib.report import REPORT_SETTINGS, report_settings
    monkeypatch.setenv("FREQLIB_PAPER_DRY", "1")
    dry = report_settings("paper")
    assert dry["n_images"] == REPORT_SETTINGS["smoke"]["n_images"] < REPORT_SETTINGS["paper"]["n_images"]
    assert dry["n_heatmap"] == REPORT_SETTINGS["smoke"]["n_heatmap"]
    monkeypatch.delenv("FREQLIB_PAPER_DRY")
    assert report_settings("paper")["n_images"] == REPORT_SETTINGS["paper"]["n_images"]


def test_profile_report_uses_the_profile_settings(monkeypatch):
    """The command and chapter 5 both go through profile_report: analysed and mask images,
    heat-map size, mask config and tag, and n_boot all come from report_settings."""
    from freqlib import report, zoo
    from freqlib.chapter import ChapterContext
    from freqlib.profiles import profile_settings
    x, y = torch.rand(600, 3, 32, 32), torch.randint(0, 10, (600,))
    monkeypatch.setattr(zoo, "cifar10_tensors", lambda split, device: (x, y, "synthetic data"))
    seen = {}
    monkeypatch.setattr(report, "make_report", lambda model, description, xx, yy, variant, **kw: seen.update(
        kw, n=len(xx), variant=variant) or report.FrequencyReport(description, variant))
    ctx = ChapterContext("smoke", "cpu", 3, "synthetic data", profile_settings("smoke"))
    monkeypatch.setattr(ctx, "test_set", lambda n: (x[:n], y[:n]), raising=False)
    report.profile_report("tiny", ctx, loaded=(_tiny_net(), "tiny"))
    s = report.report_settings("smoke")
    assert seen["n"] == s["n_images"] and seen["n_heatmap"] == s["n_heatmap"] and seen["n_boot"] == s["n_boot"]
    assert len(seen["mask_set"][0]) == s["n_mask"] and torch.equal(seen["mask_set"][0], x[-s["n_mask"]:])
    assert seen["mask_cfg"].batch_size == s["batch"] and seen["mask_cfg"].seed == 3 and seen["seed"] == 3
    assert seen["mask_tag"] == "tiny-smoke-s3"
    rep = report.profile_report("tiny", ctx, n_images=500, loaded=(_tiny_net(), "tiny"))
    assert seen["n"] == len(x) - s["n_mask"]                 # never the mask's images
    assert rep.settings["analysed images"] == f"the first {len(x) - s['n_mask']} test images"


def test_report_on_a_checkpoint_writes_html(tmp_path):
    torch.manual_seed(0)
    model = build_model("fastnet", (8, 8, 16))
    ckpt = tmp_path / "mine.pt"
    torch.save({"config": {"arch": "fastnet", "widths": [8, 8, 16], "stem": {}},
                "state_dict": model.state_dict(), "variant": "synthetic"}, ckpt)
    loaded, description = load_classifier(str(ckpt))
    assert "mine.pt" in description
    x, y = torch.rand(40, 3, 32, 32), torch.randint(0, 10, (40,))
    rep = make_report(loaded, description, x, y, "synthetic data", n_heatmap=4, mask_images=40, mask_epochs=1,
                      n_boot=100)
    assert {"clean accuracy", "attribution centroid (DCT band)", "mask: radial centroid"} <= set(rep.numbers)
    assert len(rep.figures) == 4
    for k, e in rep.intervals.items():                       # every interval brackets its number
        assert e.low <= rep.numbers[k] <= e.high, k
    assert {"clean accuracy", "attribution centroid (DCT band)", "mask: radial centroid"} <= set(rep.intervals)
    assert rep.settings["mask training images"] == "the first 40 analysed images (in-sample)"
    # one epoch never reaches the keep rule's second epoch: the mask is not kept, and the report says so
    assert any(w.startswith("⚠") for w in rep.warnings.values())
    page = write_html(rep, tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "synthetic data" in page and "⚠" in page


def test_report_trains_its_mask_on_the_held_out_set():
    from freqlib.mask_training import MaskConfig
    torch.manual_seed(0)
    model = build_model("fastnet", (8, 8, 16)).eval()
    x, y = torch.rand(30, 3, 32, 32), torch.randint(0, 10, (30,))
    held = (torch.rand(20, 3, 32, 32), torch.randint(0, 10, (20,)))
    cfg = MaskConfig(batch_size=10, lr=0.01, max_epochs=3, keep_ratio=0.01, patience=1)
    rep = make_report(model, "tiny", x, y, "synthetic data", n_heatmap=2, mask_set=held, mask_set_name="planted",
                      mask_cfg=cfg, n_boot=50)
    assert rep.settings["mask training images"] == "20 held-out images (planted)"
    assert "batch 10" in rep.settings["mask training"]
    assert not rep.warnings                                  # kept under a keep ratio of 0.01


def test_report_flags_a_mask_that_does_not_carry_over_and_draws_on_fixed_scales(monkeypatch):
    from freqlib import masks
    from freqlib.mask_training import MaskConfig
    torch.manual_seed(0)
    model = build_model("fastnet", (8, 8, 16)).eval()
    x, y = torch.rand(30, 3, 32, 32), torch.randint(0, 10, (30,))
    held = (torch.rand(20, 3, 32, 32), torch.randint(0, 10, (20,)))
    cfg = MaskConfig(batch_size=10, lr=0.01, max_epochs=3, keep_ratio=0.01, patience=1)
    # kept on its training images, but on the analysed ones the masked network gets nothing right
    monkeypatch.setattr(masks, "mask_correct", lambda m, xx, yy, mask: torch.full((len(xx),), mask is None))
    rep = make_report(model, "tiny", x, y, "synthetic data", n_heatmap=2, mask_set=held, mask_cfg=cfg, n_boot=50)
    held_key = "mask: masked / unmasked accuracy (analysed images)"
    assert list(rep.warnings) == [held_key] and "not trained on" in rep.warnings[held_key]
    assert rep.settings["Fourier heat map"].startswith("the first 2 analysed images")
    # two models' panels are comparable only on one scale: error rate and mask value both span [0, 1]
    for caption in ("Error rate under each Fourier basis perturbation", "Learned Fourier mask"):
        assert rep.figures[caption].axes[0].images[0].get_clim() == (0, 1), caption


def _planted_report(mask, attribution, training_seed=0, flagged=False, n_boot=200, spread_seed=1):
    """A report holding only what compare_reports reads, with planted numbers."""
    from freqlib.mask_geometry import bootstrap_centroid
    from freqlib.report import FrequencyReport
    from freqlib.verdicts import Estimate
    rep = FrequencyReport("planted", "synthetic data", seed=0, training_seed=training_seed)
    rep.mask = mask
    g = torch.Generator().manual_seed(spread_seed)
    rep.intervals["attribution centroid (DCT band)"] = Estimate.from_boot(
        attribution, attribution + 0.1 * torch.randn(n_boot, generator=g))
    rep.intervals["mask: radial centroid"] = bootstrap_centroid(mask, n_boot, 0)
    rep.numbers = {k: e.value for k, e in rep.intervals.items()}
    rep.numbers["mask: mean(M)"] = float(mask.mean())
    if flagged:
        rep.warnings["mask: masked / unmasked accuracy (mask-training images)"] = "⚠ mask not kept"
    return rep


def test_compare_reports_reads_each_outcome_on_planted_masks():
    from freqlib.masks import equal_support
    from freqlib.report import compare_reports
    from freqlib.spectral import frequency_radius
    r = frequency_radius(32, 32).reshape(1, 1, 32, 32)
    falling = (1 - r / 23).clamp(min=0.05)                 # largest values at the lowest frequencies
    disc = (r <= 5).float()
    # the sparser mask is exactly the denser one's largest values: sparsity alone, ratio 1
    top = equal_support(falling, disc).reshape(1, 1, 32, 32)
    out = compare_reports({"dense": _planted_report(falling, 5.0),
                           "sparse": _planted_report(top, 5.05, spread_seed=2)})     # unpaired noise: unresolved
    assert "is 1.00 [1.00, 1.00], not resolved (its interval includes 1): the two do not differ resolvably" in \
        out["mask_equal_support"]
    assert "mean(M) " in out["mask_equal_support"] and "not resolved (its interval includes 0)" in out["attribution"]
    # a flat mask cut to the disc's support keeps tied values spread over all radii: the disc sits lower
    out = compare_reports({"flat": _planted_report(torch.ones(1, 1, 32, 32), 6.0),
                           "disc": _planted_report(disc, 2.0, flagged=True)})
    assert "disc's mask sits at lower frequencies than flat's largest values" in out["mask_equal_support"]
    assert f"disc's centroid over that of flat's mask cut to its {int((disc > 0).sum())} frequencies is" \
        in out["mask_equal_support"]
    assert f"(flat keeps 1024 of 1024 frequencies, mean(M) 1.000; disc keeps {int((disc > 0).sum())}," \
        in out["mask_equal_support"]
    assert "resolved (its interval excludes 0)" in out["attribution"] and "disc's mask is flagged ⚠" in out["mask"]
    assert "flat's mask is flagged" not in out["mask"]
    # a ring of high frequencies against a mask whose largest values are the lowest: higher
    ring = ((r >= 12) & (r <= 14)).float()
    out = compare_reports({"falling": _planted_report(falling, 4.0), "ring": _planted_report(ring, 4.0)})
    assert "resolved (its interval excludes 1): ring's mask sits at higher frequencies" in out["mask_equal_support"]
    # two masks keeping every frequency: the raw centroids are already at equal support, no ratio drawn
    out = compare_reports({"falling": _planted_report(falling, 4.0), "flat": _planted_report(torch.ones_like(r), 4.0)})
    assert out["mask_equal_support"].startswith("Both masks keep 1024 of 1024 frequencies") and "ratio" not in \
        out["mask_equal_support"] and "At equal support" not in out["mask_equal_support"]
    assert compare_reports({"one": _planted_report(disc, 1.0)}) == {}


def test_compare_reports_says_which_networks_stand_behind_the_interval():
    from freqlib.report import compare_reports
    disc = (torch.arange(1024).reshape(1, 1, 32, 32) % 7 == 0).float()
    out = compare_reports({"a": _planted_report(disc, 3.0, training_seed=0),
                           "b": _planted_report(disc, 3.0, training_seed=0)})
    assert out["attribution"].endswith("the interval is over the analysed test images, with one trained network "
                                       "per model (training seed 0 each), so training seeds are not resampled")
    out = compare_reports({"a": _planted_report(disc, 3.0, training_seed=2),
                           "mine": _planted_report(disc, 3.0, training_seed=None)})
    assert "(training seed 2 for a, unknown for mine)" in out["attribution"]


def test_report_lines_show_interval_and_warning():
    from freqlib.report import FrequencyReport, report_lines
    from freqlib.verdicts import Estimate
    rep = FrequencyReport("t", "synthetic data")
    rep.numbers = {"clean accuracy": 0.5, "mask: mean(M)": 0.25}
    rep.intervals["clean accuracy"] = Estimate(0.5, 0.4, 0.6)
    rep.warnings["mask: mean(M)"] = "⚠ planted"
    assert report_lines(rep) == ["  clean accuracy: 0.5000 [0.4000, 0.6000]", "  mask: mean(M): 0.2500  ⚠ planted"]
