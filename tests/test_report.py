"""`python -m freqlib report`: loading checkpoints, clear errors, a real HTML page."""
import pytest
import torch
from torch import nn

from freqlib.__main__ import main
from freqlib.models import build_model
from freqlib.report import ReportError, load_classifier, make_report, write_html


def test_unloadable_file_is_explained(tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(ReportError, match="cannot load .*Expected a freqlib zoo checkpoint"):
        load_classifier(str(bad))
    with pytest.raises(ReportError, match="neither a zoo model"):
        load_classifier(str(tmp_path / "missing.pt"))
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, plain)
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
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    prog = torch.export.export(net.eval(), (torch.rand(2, 3, 32, 32),))      # batch fixed at 2
    torch.export.save(prog, tmp_path / "static.pt2")
    with pytest.raises(ReportError, match=r"failed on a \(5, 3, 32, 32\) input"):
        load_classifier(str(tmp_path / "static.pt2"))


def test_exported_cifar_model_loads(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    model, description = load_classifier(str(_export(net, tmp_path / "tiny.pt2")))
    assert "tiny.pt2" in description and model(torch.rand(7, 3, 32, 32)).shape == (7, 10)


def test_cli_reports_bad_model_in_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a zoo model" in err[0]


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
