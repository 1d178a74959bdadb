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
    from freqlib.attribution import filtered_accuracy
    clean = float(filtered_accuracy(model, x, y, [0])["high"][0])       # the high-pass at r = 0 is the image
    assert rep.numbers["clean accuracy (max-rescaled)"] == pytest.approx(clean)
    assert write_html(rep, tmp_path / "r.html").read_text().count("data:image/png;base64,") == 4


def test_cli_reports_bad_model_in_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a zoo model" in err[0]
    torch.save(_tiny_net(), tmp_path / "whole.pt")
    assert main(["report", str(tmp_path / "whole.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pickled code" in err[0]


def test_cli_reports_a_broken_export_file_in_one_line(tmp_path):
    """torch.export.load logs a whole traceback to stderr before it raises; the report silences that
    logger for the attempt, so the one error line is all a user sees. (In a fresh process: under
    pytest torch's log handler is not the one a user's terminal gets.)"""
    import subprocess
    import sys
    (tmp_path / "broken.pt2").write_bytes(b"not a zip archive")
    res = subprocess.run([sys.executable, "-m", "freqlib", "report", str(tmp_path / "broken.pt2"), "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    err = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(err) == 1, res.stderr[-2000:]
    assert err[0].startswith(f"error: cannot load {tmp_path / 'broken.pt2'} as a torch.export program")


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
    keys = {"clean accuracy (max-rescaled)", "attribution centroid (DCT band)", "mask: radial centroid"}
    assert keys <= set(rep.numbers) and keys <= set(rep.intervals) and len(rep.figures) == 4
    from freqlib.attribution import filtered_accuracy
    clean = float(filtered_accuracy(loaded, x, y, [0])["high"][0])      # the high-pass at r = 0 is the image
    assert rep.numbers["clean accuracy (max-rescaled)"] == pytest.approx(clean)
    centroid = rep.intervals["attribution centroid (DCT band)"]
    assert centroid.low < centroid.value < centroid.high       # resampling the 40 images moves it
    # every row is defined, once, in the dict the chapter's table and the HTML page both read
    from freqlib.report import CAPTIONS, DEFINITIONS
    assert set(rep.numbers) <= set(DEFINITIONS)
    n = rep.numbers
    if n["clean accuracy (max-rescaled)"] > 0:              # relative accuracies: the raw ones over clean
        for raw, rel in (("low-pass accuracy, r=4", "low-pass accuracy / clean, r=4"),
                         ("area under high-pass curve", "area under high-pass curve / clean")):
            assert n[rel] == pytest.approx(n[raw] / n["clean accuracy (max-rescaled)"], rel=1e-5)
    assert n["Fourier heat map: excess error"] == pytest.approx(
        n["Fourier heat map: mean error"] - n["Fourier heat map: clean error"], abs=1e-6)
    assert rep.figure_data == {CAPTIONS["filtered"]: "all 40 analysed images",
                               CAPTIONS["attribution"]: "all 40 analysed images",
                               CAPTIONS["heatmap"]: "the first 4 analysed images",
                               CAPTIONS["mask"]: "learned on the first 40 analysed images (in-sample)"}
    assert rep.settings["mask training images"] == "the first 40 analysed images (in-sample)"
    # one epoch never reaches the keep rule's second epoch: the mask is not kept, and the report says so
    assert any(w.startswith("⚠") for w in rep.warnings.values())
    page = write_html(rep, tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 4 and "synthetic data" in page and "⚠" in page
    assert DEFINITIONS["mask: radial centroid"].replace("²", "&#178;")[:40] in page or \
        DEFINITIONS["mask: radial centroid"][:40] in page
    assert "<figcaption>Fourier" not in page and "— the first 4 analysed images</figcaption>" in page


def test_report_of_a_model_that_is_never_right_draws_no_relative_accuracy_nor_centroid():
    """A constant answer that is always wrong: no clean accuracy to divide by, no excess error to weigh."""
    class Constant(nn.Module):
        """Class 0 by a margin of 100 whatever the image; its logit follows the image's mean a
        little, so that occluding the DCT band 0 has a positive attribution to draw."""
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return 100 * torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float() + \
                0.01 * self.w * x.mean((1, 2, 3))[:, None]
    x, y = torch.rand(12, 3, 32, 32), torch.ones(12, dtype=torch.long)
    from freqlib.report import PixelSpaceModel
    rep = make_report(PixelSpaceModel(Constant()), "constant", x, y, "synthetic data", n_heatmap=3, mask_images=12, mask_epochs=1,
                      n_boot=20)
    assert rep.numbers["clean accuracy (max-rescaled)"] == 0 and "low-pass accuracy / clean, r=4" not in rep.numbers
    assert rep.warnings["clean accuracy (max-rescaled)"].startswith("⚠ no analysed image right")
    assert rep.numbers["Fourier heat map: excess error"] == 0
    assert "Fourier heat map: excess-error radial centroid" not in rep.numbers
    assert "no centroid" in rep.warnings["Fourier heat map: excess error"]


def test_excess_centroid_weighs_only_the_error_above_the_clean_error():
    from freqlib.report import excess_centroid
    from freqlib.spectral import frequency_radius
    r = frequency_radius(32, 32)
    ring = ((r >= 9.5) & (r < 10.5)).float()
    clean = torch.tensor(0.4)
    # clean error everywhere, more on a ring near radius 10, less than clean near the centre (clipped at 0)
    error = clean + 0.3 * ring - 0.2 * (r < 3).float()
    expected = float((ring * r).sum() / ring.sum())
    assert float(excess_centroid(error, clean)) == pytest.approx(expected, rel=1e-6)
    assert 9.5 <= expected < 10.5
    # a batch of maps (bootstrap replicates) at once, one without any excess: nan there
    both = excess_centroid(torch.stack([error, torch.full_like(error, 0.4)]), torch.tensor([0.4, 0.4]))
    assert float(both[0]) == pytest.approx(expected, rel=1e-6) and torch.isnan(both[1])


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
    assert not [k for k in rep.warnings if k.startswith("mask")]     # kept under a keep ratio of 0.01


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
    assert [k for k in rep.warnings if k.startswith("mask")] == [held_key] and "not trained on" in rep.warnings[held_key]
    assert rep.settings["Fourier heat map"].startswith("the first 2 analysed images")
    # two models' panels are comparable only on one scale: error rate and mask value both span [0, 1]
    for caption in ("Error rate under each Fourier basis perturbation", "Learned Fourier mask"):
        assert rep.figures[caption].axes[0].images[0].get_clim() == (0, 1), caption


PLANTED = {"low-pass accuracy / clean, r=4": 0.4, "area under low-pass curve / clean": 0.7,
           "high-pass accuracy / clean, r=4": 0.4, "area under high-pass curve / clean": 0.3,
           "attribution share in bands >= 16": 0.1, "Fourier heat map: excess-error radial centroid": 8.0,
           "clean accuracy (max-rescaled)": 0.8, "Fourier heat map: mean error": 0.5,
           "Fourier heat map: clean error": 0.2, "Fourier heat map: excess error": 0.3}


def _planted_report(mask, attribution, training_seed=0, flagged=False, n_boot=200, spread_seed=1, shifts=None):
    """A report holding only what compare_reports reads, with planted numbers: PLANTED plus
    ``shifts`` (PLANTED key -> amount added); every such number has one resampling noise, the
    same in every report (paired: a shift is resolved, no shift is not), the attribution
    centroid its own (``spread_seed``)."""
    from freqlib.mask_geometry import bootstrap_centroid
    from freqlib.report import FrequencyReport
    from freqlib.verdicts import Estimate
    rep = FrequencyReport("planted", "synthetic data", seed=0, training_seed=training_seed)
    rep.mask = mask
    g = torch.Generator().manual_seed(spread_seed)
    rep.intervals["attribution centroid (DCT band)"] = Estimate.from_boot(
        attribution, attribution + 0.1 * torch.randn(n_boot, generator=g))
    noise = 0.01 * torch.randn(n_boot, generator=torch.Generator().manual_seed(99))
    for key, value in PLANTED.items():
        value += (shifts or {}).get(key, 0.0)
        rep.intervals[key] = Estimate.from_boot(value, value + noise)
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
    assert ("is 1.00 [1.00, 1.00], not resolved over the mask's frequencies (its interval includes 1) (one mask per "
            "network; training noise not covered): the two do not differ resolvably") in out["mask_equal_support"]
    assert "⚠" not in out["mask_equal_support"] and out["lean_readings"]["mask"] == "no resolved difference"
    assert "mean(M) " in out["mask_equal_support"] and "not resolved (its interval includes 0)" in out["attribution"]
    # a flat mask cut to the disc's support keeps tied values spread over all radii: the disc sits lower
    out = compare_reports({"flat": _planted_report(torch.ones(1, 1, 32, 32), 6.0),
                           "disc": _planted_report(disc, 2.0, flagged=True)})
    assert "disc's mask sits at lower frequencies than flat's largest values" in out["mask_equal_support"]
    assert f"disc's centroid over that of flat's mask cut to its {int((disc > 0).sum())} frequencies is" \
        in out["mask_equal_support"]
    assert f"(flat keeps 1024 of 1024 frequencies, mean(M) 1.000; disc keeps {int((disc > 0).sum())}," \
        in out["mask_equal_support"]
    assert "resolved (its interval excludes 0)" in out["attribution"]
    # the flag travels with every mask sentence, the equal-support one too
    for key in ("mask", "mask_equal_support"):
        assert out[key].endswith("; ⚠ disc's mask is flagged (mask not kept)") and "flat's mask is flagged" not in out[key]
    # the model (disc, the sparser) sits lower: the mask panel reads lower and carries the flag
    assert out["lean_readings"]["mask"] == "lower" and out["lean_panels"]["mask"].endswith("(mask not kept)")
    assert "this panel reads disc leaning lower than flat" in out["lean_panels"]["mask"]
    # the sparser mask is the reference's: a ratio below 1 puts the model higher
    out = compare_reports({"disc": _planted_report(disc, 2.0), "flat": _planted_report(torch.ones(1, 1, 32, 32), 2.0)})
    assert out["lean_readings"]["mask"] == "higher" and "flat leaning higher than disc" in out["lean_panels"]["mask"]
    # a ring of high frequencies against a mask whose largest values are the lowest: higher
    ring = ((r >= 12) & (r <= 14)).float()
    out = compare_reports({"falling": _planted_report(falling, 4.0), "ring": _planted_report(ring, 4.0)})
    assert "resolved over the mask's frequencies (its interval excludes 1) (one mask per network; training noise " \
        "not covered): ring's mask sits at higher frequencies" in out["mask_equal_support"]
    assert out["lean_readings"]["mask"] == "higher"
    # two masks keeping every frequency: the raw centroids are already at equal support, no ratio drawn
    out = compare_reports({"falling": _planted_report(falling, 4.0), "flat": _planted_report(torch.ones_like(r), 4.0)})
    assert out["mask_equal_support"].startswith("Both masks keep 1024 of 1024 frequencies") and "ratio" not in \
        out["mask_equal_support"] and "At equal support" not in out["mask_equal_support"]
    # read by the raw centroids' paired difference instead: the flat mask sits higher than the falling one
    assert out["lean_panels"]["mask"].startswith("Mask (flat − falling; 99.4% intervals): mask radial centroid (equal support) ")
    assert out["lean_readings"]["mask"] == "higher"
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


def test_lean_readings_cover_every_outcome():
    from freqlib.report import lean_direction, overall_reading, panel_reading
    from freqlib.verdicts import Estimate
    up, down, across = Estimate(0.2, 0.1, 0.3), Estimate(-0.2, -0.3, -0.1), Estimate(0.1, -0.1, 0.3)
    assert [lean_direction(e, +1) for e in (up, down, across)] == ["lower", "higher", "unresolved"]
    assert [lean_direction(e, -1) for e in (up, down, across)] == ["higher", "lower", "unresolved"]
    assert lean_direction(None, 1) == lean_direction(Estimate.no_power(), 1) == "not readable"
    # a difference resolved at 95% but not at the family-wise level the overall lean needs
    from freqlib.report import LEAN_LEVEL, LEAN_NUMBERS, family_wise
    boot = 0.12 + 0.05 * torch.randn(20_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    one = Estimate.from_boot(0.12, boot)
    assert lean_direction(one, +1) == "lower" and lean_direction(family_wise(one), +1) == "unresolved"
    assert LEAN_NUMBERS == 8 and LEAN_LEVEL == pytest.approx(1 - 0.05 / 8)
    assert family_wise(Estimate.exact(0.3)) == Estimate.exact(0.3)
    ratio_low, ratio_one = Estimate(0.7, 0.6, 0.8), Estimate(1.0, 0.9, 1.1)
    assert lean_direction(ratio_low, -1, null=1.0) == "lower" and lean_direction(ratio_one, -1, null=1.0) == "unresolved"
    assert panel_reading(["lower", "unresolved"]) == "lower" and panel_reading(["higher", "not readable"]) == "higher"
    assert panel_reading(["lower", "higher"]) == "mixed"
    assert panel_reading(["unresolved", "not readable"]) == "no resolved difference"
    assert panel_reading(["not readable"]) == "not readable"
    assert overall_reading({"a": "lower", "b": "mixed", "c": "no resolved difference"}) == "lower"
    assert overall_reading({"a": "higher", "b": "not readable"}) == "higher"
    assert overall_reading({"a": "lower", "b": "higher"}) == "panels disagree"
    assert overall_reading({"a": "mixed", "b": "no resolved difference"}) == "no resolved lean"


def test_compare_reports_reads_each_panel_and_the_four_together():
    from freqlib.report import LEAN_PANELS, compare_reports
    disc = (torch.arange(1024).reshape(1, 1, 32, 32) % 7 == 0).float()
    ref = _planted_report(disc, 4.0)
    # lower on the filtered curves (relative low-pass up, relative high-pass down) and the heat map
    lower = {"low-pass accuracy / clean, r=4": 0.2, "area under high-pass curve / clean": -0.1,
             "Fourier heat map: excess-error radial centroid": -2.0, "Fourier heat map: excess error": -0.1}
    out = compare_reports({"standard": ref, "model": _planted_report(disc, 4.0, shifts=lower)})
    assert set(out["lean_panels"]) == {*LEAN_PANELS, "mask"}
    r = out["lean_readings"]
    assert (r["filtered accuracy"], r["heat map"], r["attribution"], r["mask"], r["overall"]) == \
        ("lower", "lower", "no resolved difference", "no resolved difference", "lower")
    f = out["lean_panels"]["filtered accuracy"]
    assert f.startswith("Filtered accuracy (model − standard; each accuracy over the model's clean accuracy (max-rescaled), "
                        "0.800 for standard and 0.800 for model; 99.4% intervals): low-pass accuracy at r = 4 / clean 0.200 [0.200, "
                        "0.200] (lower); low-pass area / clean 0.000 [0.000, 0.000] (unresolved)")
    assert f.endswith("(lower); this panel reads model leaning lower than standard")
    assert out["lean_overall"] == ("Overall, model leans lower than standard (panels reading lower: filtered "
                                   "accuracy, heat map; higher: none; mixed: none; no resolved difference: "
                                   "attribution, mask)")
    assert "the excess error (mean minus clean error) is 0.300 [0.2" in out["heatmap"]
    assert "for standard and 0.200 [0.1" in out["heatmap"]
    assert "paired difference model − standard is -0.100 [-0.100, -0.100], resolved" in out["heatmap"]
    assert "clean error on the same images (unperturbed, not rescaled), 0.200" in out["heatmap"]
    # a mixed filtered panel (relative low-pass and high-pass both up) and a higher heat map: panels disagree
    mixed = {"area under low-pass curve / clean": 0.1, "area under high-pass curve / clean": 0.1,
             "Fourier heat map: excess-error radial centroid": 3.0, "attribution share in bands >= 16": -0.05}
    out = compare_reports({"standard": ref, "model": _planted_report(disc, 4.0, shifts=mixed)})
    r = out["lean_readings"]
    assert (r["filtered accuracy"], r["heat map"], r["attribution"], r["overall"]) == \
        ("mixed", "higher", "lower", "panels disagree")
    assert "this panel reads mixed: model's numbers point both ways" in out["lean_panels"]["filtered accuracy"]
    assert out["lean_overall"].startswith("Overall, no lean is claimed for model: its panels disagree (panels "
                                          "reading lower: attribution; higher: heat map; mixed: filtered accuracy")
    # higher only, and nothing resolved at all
    out = compare_reports({"standard": ref, "model": _planted_report(disc, 4.0, shifts={
        "Fourier heat map: excess-error radial centroid": 3.0})})
    assert out["lean_readings"]["overall"] == "higher" and out["lean_overall"].startswith(
        "Overall, model leans higher than standard")
    out = compare_reports({"standard": ref, "model": _planted_report(disc, 4.0)})
    assert out["lean_readings"]["overall"] == "no resolved lean"
    assert out["lean_overall"].startswith("Overall, model shows no resolved lean relative to standard")
    # a number missing on one side (no centroid: no excess error) is not readable, and says so
    model = _planted_report(disc, 4.0)
    del model.intervals["Fourier heat map: excess-error radial centroid"]
    out = compare_reports({"standard": ref, "model": model})
    assert out["lean_readings"]["heat map"] == "not readable" and "; not readable: heat map)" in out["lean_overall"]
    assert out["lean_panels"]["heat map"] == ("Heat map (model − standard; 99.4% intervals): excess-error radial centroid not "
                                              "readable (missing for one model, or not paired); this panel reads "
                                              "not readable (no paired interval)")


def test_a_flagged_mask_that_decides_the_lean_is_named_in_the_overall_reading():
    from freqlib.report import compare_reports
    r = torch.arange(32.0)[None, :].expand(32, 32)
    flat = torch.ones(1, 1, 32, 32)
    disc = ((r - 16).abs() <= 3).float().reshape(1, 1, 32, 32)
    out = compare_reports({"flat": _planted_report(flat, 4.0), "disc": _planted_report(disc, 4.0, flagged=True)})
    assert out["lean_readings"]["overall"] == out["lean_readings"]["mask"] == "lower"
    assert out["lean_overall"].endswith("; the mask panel counted here carries a ⚠")


def test_figure_titles_carry_each_figure_s_own_images(monkeypatch):
    from freqlib import report, zoo
    from freqlib.chapter import ChapterContext
    from freqlib.profiles import profile_settings
    x, y = torch.rand(600, 3, 32, 32), torch.randint(0, 10, (600,))
    monkeypatch.setattr(zoo, "cifar10_tensors", lambda split, device: (x, y, "synthetic data"))
    monkeypatch.setattr(report, "make_report", lambda model, description, xx, yy, variant, **kw:
                        report.FrequencyReport(description, variant))
    ctx = ChapterContext("smoke", "cpu", 0, "synthetic data", profile_settings("smoke"))
    monkeypatch.setattr(ctx, "test_set", lambda n: (x[:n], y[:n]), raising=False)
    rep = report.profile_report("tiny", ctx, loaded=(_tiny_net(), "tiny"))
    s = report.report_settings("smoke")
    first_mask = 600 - s["n_mask"]
    c = report.CAPTIONS
    assert rep.figure_data[c["filtered"]] == rep.figure_data[c["attribution"]] == \
        f"analysed on test images of synthetic data 0–{s['n_images'] - 1}"
    assert rep.figure_data[c["heatmap"]] == f"analysed on test images of synthetic data 0–{s['n_heatmap'] - 1}"
    assert rep.figure_data[c["mask"]] == f"learned on test images {first_mask}–599 of synthetic data"
    assert report.figure_title(rep, c["mask"], ctx) == \
        f"{c['mask']}\n[learned on test images {first_mask}–599 of synthetic data, smoke profile]"


def test_heat_map_sentence_gives_the_number_its_panel_reads():
    """The heat-map panel reads the excess error's radial centroid: the prose gives its paired
    difference beside the excess error, resolved where the planted shift is, not where there is none."""
    from freqlib.report import compare_reports
    mask = torch.ones(1, 1, 32, 32)
    key = "Fourier heat map: excess-error radial centroid"
    out = compare_reports({"ref": _planted_report(mask, 5.0), "low": _planted_report(mask, 5.0, shifts={key: -2.0})})
    assert ("The excess error's radial centroid, the number the heat-map panel reads, is 8.00 [" in out["heatmap"]
            and "for ref and 6.00 [" in out["heatmap"])
    assert "the paired difference low − ref is -2.00 [-2.00, -2.00] (95% interval; the reading above counts it at " \
           "the family-wise level), resolved (its interval excludes 0)" in out["heatmap"]
    same = compare_reports({"ref": _planted_report(mask, 5.0), "twin": _planted_report(mask, 5.0)})["heatmap"]
    assert "radial centroid, the number the heat-map panel reads" in same and same.endswith(
        "not resolved (its interval includes 0)")
