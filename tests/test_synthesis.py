"""Chapter 4's scores and rank agreement: intervals that can show agreement, opposition or neither."""
import pytest
import torch
from scipy.stats import spearmanr

from freqlib import synthesis
from freqlib.verdicts import Estimate, bootstrap


def _scores(centres: dict[str, list[float]], noise: float, n: int = 300, seed: int = 0):
    """model -> lens -> Estimate: each score is the mean of n per-image values around its centre."""
    g = torch.Generator().manual_seed(seed)
    lenses = list(centres)
    models = [f"m{i}" for i in range(len(next(iter(centres.values()))))]
    out = {m: {} for m in models}
    for lens in lenses:
        for i, m in enumerate(models):
            per_image = centres[lens][i] + noise * torch.randn(n, generator=g)
            out[m][lens] = bootstrap(lambda s: s["v"], {"v": per_image}, n_boot=500)
    return out, lenses


def test_spearman_matches_scipy_batched():
    a, b = torch.randn(6, 50, dtype=torch.float64), torch.randn(6, 50, dtype=torch.float64)
    ours = synthesis.spearman(a, b)
    ref = [spearmanr(a[:, j], b[:, j]).statistic for j in range(50)]
    assert torch.allclose(ours, torch.tensor(ref, dtype=torch.float64))


def test_rank_agreement_can_agree_oppose_or_stay_undecided():
    same, lenses = _scores({"A": [0, 1, 2, 3], "B": [0, 1, 2, 3], "C": [3, 2, 1, 0]}, noise=0.5)
    rho = synthesis.rank_agreement(same, lenses)
    assert rho["A", "B"].low > 0.6                       # well-separated, same order: agree
    assert rho["A", "C"].high < 0                        # reversed order: opposite
    close, lenses = _scores({"A": [0, 0.01, 0.02, 0.03], "B": [0, 0.01, 0.02, 0.03]}, noise=1.0)
    rho = synthesis.rank_agreement(close, lenses)[("A", "B")]
    assert rho.low < 0.6 and rho.high > 0                # noise swamps the differences: undecided


def test_separated_pairs_counts_only_decided_differences():
    clear, _ = _scores({"A": [0, 1, 2]}, noise=0.5)
    noisy, _ = _scores({"A": [0, 0.001, 0.002]}, noise=1.0)
    assert synthesis.separated_pairs(clear, "A") == (3, 3)
    assert synthesis.separated_pairs(noisy, "A")[0] == 0
    exact = {m: {"F": Estimate.exact(v)} for m, v in zip("xyz", (0.1, 0.2, 0.2))}
    assert synthesis.separated_pairs(exact, "F") == (2, 3)   # an exact score ties only equal values


def test_filtered_score_is_low_minus_high_area():
    from freqlib.attribution import curve_area
    radius = torch.arange(5.0)
    labels = torch.zeros(40, dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    low_pred = (torch.rand(40, 5, generator=g) > 0.5).long()
    high_pred = torch.ones(40, 5, dtype=torch.long)
    high_pred[:10] = 0
    curves = {"radius": radius, "labels": labels, "low_pred": low_pred, "high_pred": high_pred}
    e = synthesis.filtered_score(curves, lambda f, s: bootstrap(f, s, n_boot=200))
    want = curve_area(radius, (low_pred == 0).float().mean(0)) - curve_area(radius, (high_pred == 0).float().mean(0))
    assert e.value == pytest.approx(want) and e.low <= want <= e.high


def test_chapter_refuses_fewer_than_two_models_before_any_work(tmp_path):
    from freqlib.runner import ChapterFailed, execute_chapter, resolve_chapter
    with pytest.raises(ChapterFailed, match=r"models='standard': name at least two zoo models"):
        execute_chapter(resolve_chapter("04"), {"profile": "smoke", "device": "cpu", "models": "standard"},
                        tmp_path, log=lambda *a: None, failed_dir=tmp_path / "failed")
