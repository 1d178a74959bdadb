"""Chapter 4's scores and rank agreement: intervals that can show agreement, opposition or neither."""
import pytest
import torch
from scipy.stats import spearmanr

from freqlib import synthesis
from freqlib.verdicts import ONE_SEED, Estimate, bootstrap


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
    assert e.value == pytest.approx(want) and e.low < want < e.high     # resampling the 40 images moves it


def test_chapter_refuses_fewer_than_two_models_before_any_work(tmp_path):
    from freqlib.runner import ChapterFailed, execute_chapter, resolve_chapter
    with pytest.raises(ChapterFailed, match=r"models='standard': name at least two zoo models"):
        execute_chapter(resolve_chapter("04"), {"profile": "smoke", "device": "cpu", "models": "standard"},
                        tmp_path, log=lambda *a: None, failed_dir=tmp_path / "failed")


def test_chapter_pools_its_seeds_and_sets_the_first_seed_beside_them(executed_chapter):
    """One seed (smoke): the seeds row says it was not measured. Two seeds: every score and correlation is
    over both, the pairs table reads each seed, and the row sets the first seed's readings beside the pooled."""
    import json

    import nbformat
    (one_path, one), (path, two) = executed_chapter("04"), executed_chapter("04", seeds=2)
    row = lambda g: next(r for r in json.loads(g["deviations"])["rows"] if r["ours"].startswith("one training seed"))
    assert row(one)["effect"] == ONE_SEED and one["seeds_note"].startswith("This run reads one training seed")
    effect = row(two)["effect"]
    assert effect.startswith("pair readings on the first seed alone: ") and "pooled over 2 seeds: " in effect
    assert "(seed 1: " in effect and "model pairs told apart, first seed → pooled: filtered (A) " in effect
    assert two["seeds_note"].startswith("Every model is read on 2 training seeds (0, 1)")
    outputs = lambda p: json.dumps([c.get("outputs", []) for c in nbformat.read(p, as_version=4).cells])
    assert "reading on each seed" in outputs(path) and "reading on each seed" not in outputs(one_path)


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


def test_pair_readings_agree_only_on_a_shared_order_with_a_tight_interval():
    """Six models: two lenses with one order agree; a shuffled lens is within chance; the shared order
    with seeds that disagree reads undecided (beyond chance at the point values, interval too wide)."""
    order, shuffled = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 5.0, 0.0, 3.0, 1.0, 4.0]
    scores, lenses = _scores({"L1": order, "L2": order, "L3": shuffled}, noise=0.01)
    rho, perm, holm, state = synthesis.pair_readings(scores, lenses, 0.6, 0.05)
    assert rho["L1", "L2"].value == pytest.approx(1.0) and state["L1", "L2"] == "agree"
    assert state["L1", "L3"] == state["L2", "L3"] == "not shown to agree"
    assert all(holm[k][0] >= perm[k][0] for k in rho)
    # the same mean order, but three seeds on which L2 orders the models in zigzags
    swing = torch.tensor([6.0, -6.0, 6.0, -6.0, 6.0, -6.0])
    seeds = [{m: {"L1": e["L1"], "L2": Estimate.exact(v), "L3": e["L3"]} for (m, e), v in zip(scores.items(), vals)}
             for vals in ((torch.tensor(order) + swing).tolist(), (torch.tensor(order) - swing).tolist(), order)]
    pooled = synthesis.pool_seeds(seeds)
    assert [e["L2"].value for e in pooled.values()] == pytest.approx(order)
    rho, _, _, state = synthesis.pair_readings(pooled, lenses, 0.6, 0.05)
    assert rho["L1", "L2"].value == pytest.approx(1.0) and rho["L1", "L2"].low < 0.6
    assert state["L1", "L2"] == "undecided"


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


def _seeded(values: dict[str, dict[str, list[float]]], noise: float = 0.0) -> list[dict]:
    """One model -> lens -> Estimate per training seed, from model -> lens -> per-seed values."""
    k = len(next(iter(next(iter(values.values())).values())))
    g = torch.Generator().manual_seed(1)
    per_image = lambda v: v + noise * torch.randn(200, generator=g)
    make = (lambda v: bootstrap(lambda q: q["v"], {"v": per_image(v)}, n_boot=1000)) if noise else Estimate.exact
    return [{m: {lens: make(vs[s]) for lens, vs in lenses.items()} for m, lenses in values.items()} for s in range(k)]


def test_pool_seeds_adds_the_seeds_spread_so_one_lucky_seed_tells_no_pair_apart():
    """Seed 0 alone tells the models apart; pooled over seeds that order them both ways, they are not."""
    per_seed = _seeded({"a": {"L": [1.0, 0.2, 0.6]}, "b": {"L": [0.4, 0.7, 0.5]}}, noise=0.05)
    assert synthesis.told_apart_pairs(per_seed[0], "L")[frozenset("ab")]
    pooled = synthesis.pool_seeds(per_seed)
    assert pooled["a"]["L"].value == pytest.approx(sum(per_seed[s]["a"]["L"].value for s in range(3)) / 3)
    assert not synthesis.told_apart_pairs(pooled, "L")[frozenset("ab")]
    assert pooled["a"]["L"].over.startswith("3 seeds")
    # seeds that agree keep the pair told apart
    steady = synthesis.pool_seeds(_seeded({"a": {"L": [1.0, 0.95, 1.05]}, "b": {"L": [0.4, 0.45, 0.35]}}, noise=0.05))
    assert synthesis.told_apart_pairs(steady, "L")[frozenset("ab")]


def test_pool_seeds_interval_is_the_t_interval_of_the_seed_mean():
    """Exact per-seed scores: the interval is mean ± t(0.975, k-1) s / sqrt(k) (4.30 at k = 3), not ±1.96."""
    import math
    vals = [0.2, 0.5, 0.9]
    e = synthesis.pool_seeds(_seeded({"a": {"L": vals}}))["a"]["L"]
    se = torch.tensor(vals, dtype=torch.float64).std().item() / math.sqrt(3)
    assert (e.high - e.low) / 2 == pytest.approx(4.303 * se, rel=0.15)


def test_pool_seeds_moves_one_networks_lenses_together_and_models_apart():
    """A seed that raises both lenses of a network raises both replicates; two models' draws are independent."""
    per_seed = _seeded({"a": {"L1": [0.0, 1.0, 2.0], "L2": [5.0, 6.0, 7.0]}, "b": {"L1": [0.0, 1.0, 2.0], "L2": [0, 0, 0]}})
    pooled = synthesis.pool_seeds(per_seed)
    corr = lambda u, v: torch.corrcoef(torch.stack([u.double(), v.double()]))[0, 1].item()
    assert corr(pooled["a"]["L1"].boot, pooled["a"]["L2"].boot) > 0.99
    assert abs(corr(pooled["a"]["L1"].boot, pooled["b"]["L1"].boot)) < 0.1
    assert pooled["b"]["L2"].low == pooled["b"]["L2"].high == 0          # no spread, no sampling error: exact
    with pytest.raises(ValueError, match="same models"):
        synthesis.pool_seeds([per_seed[0], {"a": per_seed[1]["a"]}])
    with pytest.raises(ValueError, match="at least one"):
        synthesis.pool_seeds([])


def test_pool_mask_orders_keeps_the_first_seeds_orientation():
    """A seed on which the other mask is the sparser enters with its ratio inverted."""
    from freqlib.spectral import frequency_radius
    r = frequency_radius(32, 32)
    low, ring = (r < 3).float()[None, None], 0.8 * ((r >= 3) & (r < 6)).float()[None, None]   # the ring is denser
    first = synthesis.mask_pair_orders({"a": low, "b": ring}, 300)          # a sparser: key (a, b)
    second = synthesis.mask_pair_orders({"a": ring, "b": low}, 300)         # b sparser: key (b, a)
    assert list(first) == [("a", "b")] and list(second) == [("b", "a")]
    pooled = synthesis.pool_mask_orders([first, second])
    assert list(pooled) == [("a", "b")] and pooled["a", "b"].own_support == first["a", "b"].own_support
    assert pooled["a", "b"].common.value == pytest.approx(
        (first["a", "b"].common.value + 1 / second["b", "a"].common.value) / 2)
    assert first["a", "b"].told_apart and second["b", "a"].told_apart    # a lower on seed 0, higher on seed 1
    assert not pooled["a", "b"].told_apart                                  # the two seeds order the pair both ways


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


# ---- reading the rankings: shared ranks, open orders, glued sentences (each outcome on constructed numbers)
def _told(names, untold=()):
    """Every pair of ``names`` told apart except those in ``untold``."""
    import itertools
    loose = {frozenset(p) for p in untold}
    return {frozenset(p): frozenset(p) not in loose for p in itertools.combinations(names, 2)}


# chapter 4's quick numbers: filtered accuracy and the equal-support mask scores; gaussian vs standard untold
FA = {"standard": 0.242, "linf_at": 0.270, "l2_at": 0.295, "gaussian": 0.222}
MASK_EQ = {"standard": -8.147, "linf_at": -6.000, "l2_at": -6.717, "gaussian": -8.938}
MASK_RAW = {"standard": -8.75, "linf_at": -6.00, "l2_at": -7.04, "gaussian": -8.46}


def test_shared_ranks_average_what_the_lens_does_not_tell_apart():
    import pandas as pd
    every = synthesis.shared_ranks(MASK_EQ, _told(MASK_EQ))
    assert every == pd.Series(MASK_EQ).rank(ascending=False).to_dict()           # all told apart: plain ranks
    shared = synthesis.shared_ranks(MASK_EQ, _told(MASK_EQ, [("gaussian", "standard")]))
    assert shared == {"linf_at": 1, "l2_at": 2, "standard": 3.5, "gaussian": 3.5}
    none = synthesis.shared_ranks(MASK_EQ, _told(MASK_EQ, [(a, b) for a in MASK_EQ for b in MASK_EQ if a < b]))
    assert set(none.values()) == {2.5}                                          # nothing told apart: one rank
    assert sum(shared.values()) == sum(every.values()) == 10


def test_rho_span_covers_the_orders_a_lens_leaves_open():
    told = _told(MASK_EQ, [("gaussian", "standard")])
    assert synthesis.rho_span(FA, MASK_EQ, told) == pytest.approx((0.6, 0.8))   # the one pair decides 0.6 or 0.8
    rho = float(synthesis.spearman(torch.tensor(list(FA.values())), torch.tensor(list(MASK_EQ.values()))))
    assert synthesis.rho_span(FA, MASK_EQ, _told(MASK_EQ)) == pytest.approx((rho, rho))
    loose = {k: False for k in told}
    assert synthesis.rho_span(FA, MASK_EQ, loose) == pytest.approx((-1.0, 1.0))
    many = {f"m{i}": float(i) for i in range(synthesis.EXACT_UP_TO + 1)}
    lo, hi = synthesis.rho_span(many, many, _told(many))
    assert lo != lo and hi != hi                                                  # not enumerated


def test_reorder_text_names_the_pairs_that_drive_a_change():
    told = _told(MASK_EQ, [("gaussian", "standard")])
    assert synthesis.reordered_pairs(MASK_RAW, MASK_EQ) == [("standard", "gaussian")]
    assert synthesis.reorder_text(MASK_RAW, MASK_EQ, told, "the mask lens") == (
        "the change comes only from standard vs gaussian, which the mask lens does not tell apart")
    assert synthesis.reorder_text(MASK_EQ, MASK_EQ, told) == "the ranking is the same"
    swapped = dict(MASK_EQ, linf_at=-6.8)                                      # linf_at drops below l2_at too
    assert synthesis.reorder_text(MASK_RAW, swapped, told) == (
        "the ranking changes in linf_at vs l2_at (told apart) and standard vs gaussian (not told apart)")
    assert synthesis.reorder_text(MASK_RAW, swapped, _told(MASK_EQ)) == (
        "the ranking changes in standard vs gaussian, linf_at vs l2_at (told apart)")


def test_open_rho_text_gives_rho_at_every_open_order():
    values = {"fa": FA, "mask": MASK_EQ, "flat": {"standard": 1.0, "gaussian": 1.0, "linf_at": 2.0, "l2_at": 3.0}}
    text = synthesis.open_rho_text("mask", values, _told(MASK_EQ, [("standard", "gaussian")]), ["fa", "flat"])
    assert text.startswith("over the orders mask leaves open (standard vs gaussian: not told apart), ρ with it is ")
    assert "fa 0.60 to 0.80 (0.80 in the point values' order)" in text
    assert "flat" in text and "in every such order" in text                  # flat ties the untold pair
    assert synthesis.open_rho_text("mask", values, _told(MASK_EQ), ["fa"]) == (
        "mask tells every pair of models apart, so each ρ with it stands in its one order")


def test_odd_lens_text_singular_tied_and_within_chance():
    sep = {"A": (3, 6), "B": (2, 6), "C": (5, 6)}
    one = synthesis.odd_lens_text({"A": 0.2, "B": 0.3, "C": 0.5}, sep, beyond_chance=True)
    assert one == ("The lens least in line with the others is A (3 of 6 model pairs told apart), "
                   "mean ρ with the others 0.20")
    tied = synthesis.odd_lens_text({"A": 0.2, "B": 0.2, "C": 0.5}, sep, beyond_chance=False)
    assert tied.startswith("The lenses least in line with the others, tied at mean ρ 0.20 with the others, are "
                           "A (3 of 6 model pairs told apart) and B (2 of 6 model pairs told apart)")
    assert "(point values; no pair is beyond chance)" in tied and "their scores" not in tied   # A tells half
    noisy = synthesis.odd_lens_text({"A": 0.4, "B": 0.2, "C": 0.5}, sep, beyond_chance=True)
    assert noisy.endswith("its scores tell fewer than half of the model pairs apart, so being the odd one says little")
    every = synthesis.odd_lens_text({"A": -0.3, "B": -0.3, "C": -0.3}, sep, beyond_chance=False)
    assert every == ("No lens is less in line with the others than the rest: all 3 tie at mean ρ -0.30 with the "
                     "others (point values; no pair is beyond chance)")


def test_top_model_entry_marks_ties_and_warnings():
    told = _told(FA, [("l2_at", "linf_at")])
    assert synthesis.top_model_entry("A", FA, _told(FA)) == "A: l2_at"
    assert synthesis.top_model_entry("A", FA, told) == "A: l2_at (not told apart from linf_at)"
    # every model not told from the top one is named, not only the runner-up (standard is third here)
    told = _told(FA, [("l2_at", "linf_at"), ("l2_at", "standard")])
    assert synthesis.top_model_entry("A", FA, told) == "A: l2_at (not told apart from linf_at, standard)"
    none = _told(FA, [("l2_at", m) for m in ("linf_at", "standard", "gaussian")])
    assert synthesis.top_model_entry("A", FA, none) == "A: l2_at (told apart from no other model)"
    assert (synthesis.top_model_entry("C", MASK_EQ, _told(MASK_EQ), " ⚠ (mask not kept)")
            == "C: linf_at ⚠ (mask not kept)")


def test_pairs_phrase_counts_all_some_one_or_none():
    assert synthesis.pairs_phrase(6, 6) == "All 6 pairs are"
    assert synthesis.pairs_phrase(3, 6) == "The other 3 pairs are"
    assert synthesis.pairs_phrase(1, 6) == "The other pair is"
    assert synthesis.pairs_phrase(0, 6) == "No other pair is"
    assert synthesis.pairs_phrase(1, 1) == "The one pair is"


def test_state_legend_defines_every_state_as_verdict_decides_it():
    from freqlib import validity
    from freqlib.verdicts import verdict
    assert set(synthesis.VALIDITY_MEANINGS) == set(validity.STATE_WORDS)
    legend = synthesis.state_legend(validity.STATE_WORDS)
    for word in validity.STATE_WORDS.values():
        assert f"“{word}”: " in legend
    # the meanings as verdict() reads two criteria's states
    assert verdict(["holds", "holds"]) == "reproduced" and verdict(["fails", "fails"]) == "not reproduced"
    assert verdict(["holds", "fails"]) == verdict(["fails", "holds"]) == "partly"
    assert verdict(["holds", "undecided"]) == verdict(["undecided", "fails"]) == "inconclusive"


def test_mask_accuracy_text_shows_how_far_an_unkept_mask_misses():
    assert synthesis.mask_accuracy_text(True, 0.912, 0.915, 0.99) == "yes: 0.912 / 0.915"
    assert synthesis.mask_accuracy_text(False, 0.85, 0.93, 0.99) == "⚠ no: 0.850 / 0.930 = 0.914 (< 0.99)"
    close = synthesis.mask_accuracy_text(False, 0.98995, 1.0, 0.99)              # never rounded onto the ratio
    assert close == "⚠ no: 0.990 / 1.000 = 0.9899 (< 0.99)"
    assert "counted from epoch 2 on" in synthesis.mask_accuracy_text(False, 0.93, 0.93, 0.99)


def test_told_apart_pairs_feed_separated_pairs_and_mask_orders():
    clear, _ = _scores({"A": [0, 1, 2]}, noise=0.5)
    told = synthesis.told_apart_pairs(clear, "A")
    assert len(told) == 3 and all(told.values())
    assert synthesis.separated_pairs(clear, "A") == (3, 3)
    split = synthesis.MaskPairOrder(Estimate(1.1, 1.05, 1.15, "mask frequencies"),
                                    Estimate(0.97, 0.95, 0.99, "mask frequencies"), 10)
    alike = synthesis.MaskPairOrder(Estimate(0.9, 0.85, 0.95, "mask frequencies"),
                                    Estimate(0.8, 0.7, 0.9, "mask frequencies"), 10)
    assert synthesis.mask_told_apart({("g", "s"): split, ("l", "s"): alike}) == {
        frozenset(("g", "s")): False, frozenset(("l", "s")): True}
    # told_by_lens: the mask lens from the two cuts, even where its common-cut scores are far apart
    filtered, mask = synthesis.LENSES[0], synthesis.LENSES[3]
    scores, _ = _scores({filtered: [0, 1], mask: [0, 5]}, noise=0.1)
    assert synthesis.told_apart_pairs(scores, mask)[frozenset(("m0", "m1"))]
    told = synthesis.told_by_lens(scores, {("m0", "m1"): split}, [filtered, mask])
    assert told == {filtered: {frozenset(("m0", "m1")): True}, mask: {frozenset(("m0", "m1")): False}}


def test_holm_adjusts_each_p_by_its_rank_and_keeps_the_order():
    adjusted = synthesis.holm_adjust({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    # a pair read beyond chance alone is not beyond chance among six pairs with four models
    perm = {(i, j): (1 / 24, 1.0) if (i, j) == (0, 1) else (0.5, 0.5) for i in range(4) for j in range(i + 1, 4)}
    family = synthesis.pair_family(perm)
    rho = Estimate(1.0, 1.0, 1.0, over="exact", n=1)
    assert synthesis.pair_state(rho, *perm[0, 1], 0.5, 0.05) == "agree"
    assert family[0, 1][0] == pytest.approx(12 / 24)
    assert synthesis.pair_state(rho, *family[0, 1], 0.5, 0.05) == "not shown to agree"


def test_uncorrected_pairs_of_random_rankings_read_beyond_chance_far_more_often_than_alpha():
    share = synthesis.family_chance(4, 4, 0.05, n_sim=4000)
    assert 0.3 < share < 0.6                  # six pairs, each at 2 x 1/24 by chance
    assert synthesis.family_chance(3, 4, 0.05, n_sim=100) == 0.0       # 3 models: no rho reaches 0.05
