"""First-layer filter spectra: the ratio, the rule, the band-constrained stems."""
from __future__ import annotations

import math

import pytest
import torch

from freqlib import filters as ff
from freqlib.models import build_model, first_conv


def test_kernel_power_is_the_padded_fft():
    w = torch.randn(4, 3, 3, 3)
    padded = torch.zeros(4, 3, 32, 32)
    padded[..., :3, :3] = w
    ref = torch.fft.fftshift(torch.fft.fft2(padded, norm="ortho").abs() ** 2, dim=(-2, -1)).sum(1)
    assert torch.allclose(ff.kernel_power(w), ref, atol=1e-5)


def test_rule_on_known_kernels():
    box = torch.ones(1, 1, 3, 3)
    checker = torch.tensor([[1., -1, 1], [-1, 1, -1], [1, -1, 1]])[None, None]
    laplace = torch.tensor([[0., -1, 0], [-1, 4, -1], [0, -1, 0]])[None, None]
    delta = torch.zeros(1, 1, 3, 3)
    delta[..., 1, 1] = 1
    r = ff.high_frequency_ratio(torch.cat([box, checker, laplace, delta]))
    assert r[0] < 0.2 and r[1] > 0.9 and r[2] > 0.6
    assert abs(r[3] - 0.503) < 0.005                       # all-pass: the share of the grid outside R_CUT
    assert ff.classify(torch.cat([box, checker, laplace])).tolist() == [False, True, True]
    assert abs(math.pi * ff.R_CUT ** 2 - 512) < 1e-6


def test_ratio_is_scale_and_sign_invariant():
    w = torch.randn(6, 3, 3, 3)
    assert torch.allclose(ff.high_frequency_ratio(w), ff.high_frequency_ratio(-3.7 * w), atol=1e-6)


def test_bands_split_at_the_threshold_and_are_orthonormal():
    low, rl = ff.band_basis("low")
    high, rh = ff.band_basis("high")
    assert low.shape == (4, 9) and high.shape == (5, 9)
    assert rl.max() < 0.4 and rh.min() > 0.6
    basis = torch.cat([low, high])
    assert torch.allclose(basis @ basis.T, torch.eye(9), atol=1e-5)
    # the basis vectors' measured ratios equal the eigenvalues
    assert torch.allclose(ff.high_frequency_ratio(basis.reshape(9, 1, 3, 3)), torch.cat([rl, rh]), atol=1e-4)


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_banded_stem_has_the_requested_share(share):
    torch.manual_seed(0)
    stem = ff.make_constrained_stem("banded", 3, 32, high_share=share)
    high = ff.classify(stem)
    assert high.sum().item() == round(share * 32)
    assert torch.equal(high, stem.band.bool())


def test_banded_filters_stay_in_band_through_training():
    torch.manual_seed(0)
    stem = ff.make_constrained_stem("banded", 3, 16, high_share=0.5)
    opt = torch.optim.SGD(stem.parameters(), lr=0.5, weight_decay=5e-4)
    x = torch.rand(8, 3, 32, 32)
    target = torch.randn(8, 16, 32, 32)
    for _ in range(20):
        loss = (stem(x) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    r = ff.high_frequency_ratio(stem)
    assert (r[:8] < 0.4).all() and (r[8:] > 0.6).all()


def test_modulated_stem_mix_moves_filters_across_the_rule():
    stem = ff.make_constrained_stem("modulated", 3, 12)
    assert torch.allclose(stem.mix, torch.full((12,), 0.5))
    with torch.no_grad():
        stem.theta.fill_(6.0)
    assert ff.classify(stem).all()
    with torch.no_grad():
        stem.theta.fill_(-6.0)
    assert not ff.classify(stem).any()
    stem.theta.data.zero_()
    stem(torch.rand(2, 3, 32, 32)).square().mean().backward()
    assert stem.theta.grad is not None and stem.theta.grad.abs().sum() > 0


def test_stems_plug_into_both_architectures():
    for arch, widths in (("fastnet", (8, 16, 32)), ("resnet18", (8,))):
        model = build_model(arch, widths, stem={"kind": "banded", "high_share": 0.25})
        assert isinstance(first_conv(model), ff.BandedStem)
        assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    model = build_model("fastnet", (8, 16, 32), stem={"kind": "modulated"})
    assert isinstance(first_conv(model), ff.ModulatedStem)


def test_bad_stem_specs_are_named():
    with pytest.raises(ValueError, match="unknown stem kind"):
        ff.make_constrained_stem("wavelet", 3, 8)
    with pytest.raises(ValueError, match="bad options"):
        ff.make_constrained_stem("banded", 3, 8, share=0.5)
    with pytest.raises(ValueError, match="high_share"):
        ff.make_constrained_stem("banded", 3, 8, high_share=1.5)


def test_filter_table_counts_every_filter():
    models = {"a": build_model("fastnet", (8, 16, 32), stem={"kind": "banded", "high_share": 1.0}),
              "b": build_model("fastnet", (8, 16, 32), stem={"kind": "banded", "high_share": 0.0})}
    from freqlib.filter_figures import filter_table
    t = filter_table(models)
    assert len(t) == 16
    assert t.groupby("model")["high"].mean().to_dict() == {"a": 1.0, "b": 0.0}


def test_whitening_start_tells_a_trained_layer_from_its_start():
    """An untouched whitened stem is its own start (similarity 1, same share); a stem
    replaced by other filters is not; ResNet-18 has no whitening start and is left out."""
    from freqlib.filter_figures import whitening_start
    images = torch.rand(600, 3, 32, 32)
    kept = build_model("fastnet", (8, 8, 8))
    kept.body.init_whitening(kept.normalize(images[:500]))
    moved = build_model("fastnet", (8, 8, 8))
    with torch.no_grad():
        first_conv(moved).weight.copy_(torch.randn_like(first_conv(moved).weight))
    table = whitening_start({"kept": kept, "moved": moved, "resnet": build_model("resnet18", [8])}, images, n=500)
    assert list(table.index) == ["kept", "moved"]
    assert table.loc["kept", "similarity to the start"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["kept", "high at the start"] == table.loc["kept", "high after training"]
    assert abs(table.loc["moved", "similarity to the start"]) < 0.5


def test_band_basis_figure_has_one_labelled_scale_per_row():
    """Kernels share one symmetric diverging scale, spectra one scale from 0 in units
    of a flat spectrum (each map sums to PAD**2); each row has a labelled colour bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from freqlib.filter_figures import plot_band_basis
    fig = plot_band_basis("t")
    try:
        axes = fig.axes[:18]
        kernel_clims = {ax.images[0].get_clim() for ax in axes[:9]}
        power_clims = {ax.images[0].get_clim() for ax in axes[9:]}
        assert len(kernel_clims) == 1 and len(power_clims) == 1
        (low, high), = kernel_clims
        assert low == -high > -1
        assert next(iter(power_clims))[0] == 0
        for ax in axes[9:]:
            assert float(ax.images[0].get_array().sum()) == pytest.approx(ff.PAD ** 2, rel=1e-4)
        colour_bars = fig.axes[18:]
        assert len(colour_bars) == 2 and all(ax.get_ylabel() for ax in colour_bars)
    finally:
        plt.close(fig)
