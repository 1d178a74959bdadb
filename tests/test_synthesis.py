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


def _brute_p(a, b):
    """One-sided p-values by scipy's rho over every ordering of b (the reference enumeration)."""
    import itertools
    obs = spearmanr(a, b).statistic
    rhos = [spearmanr(a, [b[i] for i in p]).statistic for p in itertools.permutations(range(len(b)))]
    return (sum(r >= obs - 1e-9 for r in rhos) / len(rhos), sum(r <= obs + 1e-9 for r in rhos) / len(rhos))


@pytest.mark.parametrize("a,b", [([0.1, 0.5, 0.3, 0.9], [2.0, 1.0, 3.0, 4.0]),
                                 ([1, 2, 3, 4], [1, 2, 3, 4]),
                                 ([1, 2, 2, 4], [4, 3, 1, 2]),          # a tie
                                 ([0.3, 0.1, 0.7, 0.2, 0.5], [0.1, 0.2, 0.3, 0.5, 0.4])])
def test_permutation_p_matches_brute_force_enumeration(a, b):
    assert synthesis.permutation_p(a, b) == pytest.approx(_brute_p(a, b))


def test_sampled_orderings_match_the_exact_p_beyond_enumeration():
    """Nine models are sampled, not enumerated: every row a permutation, and the sampled p
    within four standard errors of the exact one (all 9! orderings)."""
    import itertools
    n = synthesis.EXACT_UP_TO + 1
    perms, exact = synthesis._orderings(n, 20_000, 0)
    assert not exact and torch.equal(perms.sort(1).values, torch.arange(n).expand(20_000, -1))
    a = torch.arange(n, dtype=torch.float64)
    b = torch.tensor([1, 0, 3, 2, 5, 4, 8, 6, 7], dtype=torch.float64)          # rho = 0.9
    every = torch.tensor(list(itertools.permutations(range(n))))
    want = float((synthesis.spearman(a[:, None].expand(-1, len(every)), b[every].T)
                  >= synthesis.spearman(a, b) - 1e-9).double().mean())
    got = synthesis.permutation_p(a, b)[0]
    assert abs(got - want) <= 4 * (want * (1 - want) / 20_000) ** 0.5 + 1 / 20_001


def test_four_models_reach_p_005_only_at_rho_one():
    assert synthesis.permutation_p([1, 2, 3, 4], [1, 2, 3, 4])[0] == pytest.approx(1 / 24)
    assert synthesis.permutation_p([1, 2, 3, 4], [2, 1, 4, 3])[0] == pytest.approx(5 / 24)   # rho = 0.6
    assert synthesis.smallest_agreeing_rho(4, 0.05) == pytest.approx((1.0, 1 / 24))
    assert synthesis.chance_share(4, 0.6) == pytest.approx(5 / 24)
    rho, p = synthesis.smallest_agreeing_rho(3, 0.05)                    # three models can never show it
    assert rho != rho and p == pytest.approx(1 / 6)


def test_agreement_rule_fails_on_a_random_ordering():
    same = [0.0, 1.0, 2.0, 3.0]
    tight = Estimate(1.0, 1.0, 1.0, "images")
    assert synthesis.pair_state(tight, *synthesis.permutation_p(same, same), 0.6, 0.05) == "agree"
    noisy = Estimate(1.0, 0.2, 1.0, "images")
    assert synthesis.pair_state(noisy, *synthesis.permutation_p(same, same), 0.6, 0.05) == "undecided"
    g = torch.Generator().manual_seed(3)
    for _ in range(30):                                                  # random orderings, sharp scores
        b = torch.tensor(same)[torch.randperm(4, generator=g)].tolist()
        rho = float(synthesis.spearman(torch.tensor(same), torch.tensor(b)))
        e = Estimate(rho, rho, rho, "images")
        state = synthesis.pair_state(e, *synthesis.permutation_p(same, b), 0.6, 0.05)
        assert state != "agree" or rho == 1.0
    zero = [1.0, 3.0, 0.0, 2.0]                                          # rho = 0 exactly
    assert float(synthesis.spearman(torch.tensor(same), torch.tensor(zero))) == 0.0
    assert synthesis.pair_state(Estimate(0.0, 0.0, 0.0, "images"), *synthesis.permutation_p(same, zero),
                                0.6, 0.05) == "not shown to agree"
    flipped = same[::-1]
    assert synthesis.pair_state(Estimate(-1.0, -1.0, -1.0, "images"), *synthesis.permutation_p(same, flipped),
                                0.6, 0.05) == "opposite"


def test_filter_score_interval_over_kernels():
    from freqlib.models import build_model
    torch.manual_seed(0)
    net = build_model("fastnet", (8, 8, 16))
    point, e = synthesis.filter_score(net), synthesis.filter_score(net, n_boot=300)
    assert point.over == "exact" and e.over == "first-layer kernels"
    assert e.value == pytest.approx(point.value) and e.low < e.value < e.high


def test_mask_scores_at_equal_support_remove_the_sparsity_confound():
    from freqlib.spectral import frequency_radius
    r = frequency_radius(32, 32)
    dense = (1.0 / (1.0 + r))[None, None]                                # keeps everything, low values high
    sparse = dense * (r <= 4).float()                                    # its largest values only
    raw = {n: synthesis.mask_score(m, 200).value for n, m in (("dense", dense), ("sparse", sparse))}
    assert raw["sparse"] > raw["dense"] + 1                              # whole masks: sparser looks lower
    eq, n = synthesis.mask_scores_equal_support({"dense": dense, "sparse": sparse}, 200)
    assert n == int((sparse > 0).sum())
    assert eq["dense"].value == pytest.approx(eq["sparse"].value)       # same support: the same mask
    high = (r >= 10).float()[None, None] * dense + 1e-3 * (r < 10).float()[None, None]
    eq, _ = synthesis.mask_scores_equal_support({"sparse": sparse, "high": high}, 200)
    assert eq["sparse"].value > eq["high"].value + 1                     # a real difference survives


def test_mask_pairs_are_told_apart_only_where_both_cuts_order_them_alike():
    from freqlib import mask_geometry
    from freqlib.spectral import frequency_radius
    r = frequency_radius(32, 32)
    disk = (r < 2).float()
    shapes = {"low": disk,                                               # the sparsest: sets the common cut
              "near": disk + 0.9 * ((r >= 2.5) & (r < 3.5)).float(),
              "mid": ((r >= 4) & (r < 5)).float(),
              "far": disk + 0.9 * ((r >= 12) & (r < 14)).float()}       # its disk first, then a far ring
    mask_of = {n: m[None, None] for n, m in shapes.items()}
    orders = synthesis.mask_pair_orders(mask_of, 300)
    assert len(orders) == 6 and ("mid", "far") in orders                 # sparser first
    # cut to the disk's size, "far" keeps only its disk: "mid" sits higher; at "mid"'s own support
    # "far" adds its far ring and "mid" sits lower. Either cut alone would call the pair told apart.
    split = orders["mid", "far"]
    assert split.common.low > 1 and split.own.high < 1
    assert split.reversed and not split.told_apart
    assert split.own.value == pytest.approx(
        mask_geometry.centroid_ratio_equal_support(mask_of["mid"], mask_of["far"], 300).value)   # chapter 3's cut
    assert split.own_support == int((shapes["mid"] > 0).sum())
    # two different cuts that order the pair alike, each interval excluding 1: told apart
    alike = orders["mid", "near"]
    assert alike.common.low > 1 and alike.own.low > 1 and alike.common.value != pytest.approx(alike.own.value)
    assert alike.told_apart and not alike.reversed
    # the common cut cannot tell "near" from "far" (both are the disk there): not told apart
    tie = orders["near", "far"]
    assert tie.common.low <= 1 <= tie.common.high and tie.own.high < 1 and not tie.told_apart


def test_validity_names_are_rows_of_chapter_6():
    from freqlib import validity
    assert set(synthesis.VALIDITY_NAMES) == set(synthesis.LENSES)
    assert set(synthesis.VALIDITY_NAMES.values()) <= set(validity.LENSES)
    assert len(set(synthesis.VALIDITY_NAMES.values())) == len(synthesis.LENSES)   # one row per lens, none shared


def test_paired_difference_uses_the_replicates():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, generator=g)
    a = bootstrap(lambda m: m["v"], {"v": base + 0.5}, n_boot=300)
    b = bootstrap(lambda m: m["v"], {"v": base}, n_boot=300)             # same images, same seed: paired
    d = synthesis.paired_difference(a, b)
    assert d.value == pytest.approx(0.5) and d.high - d.low < 1e-5       # the shared noise cancels
    with pytest.raises(ValueError, match="as many bootstrap replicates"):
        synthesis.paired_difference(a, Estimate.exact(0.0))
