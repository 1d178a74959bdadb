"""The verdict machinery: intervals that cover at the nominal rate, criteria judged
on intervals (holds / fails / undecided), verdicts derived from them, pooling
over seeds, and deviations."""
import json
import math

import pytest
import torch

from freqlib.deviations import Deviation
from freqlib.verdicts import (ONE_SEED, Claim, Criterion, Estimate, bootstrap, difference, first_seed_effect,
                              mean_estimate, pool, pool_each, verdict)


def test_bootstrap_interval_covers_at_the_nominal_rate():
    """200 simulated samples: the 95% interval of a mean covers the truth >= 93% of the time."""
    g = torch.Generator().manual_seed(1)
    hits = 0
    for i in range(200):
        x = (torch.rand(300, generator=g) < 0.3).float()
        e = mean_estimate(x, n_boot=1000, seed=i)
        hits += e.low <= 0.3 <= e.high
    assert hits / 200 >= 0.93


def test_paired_difference_is_narrower_than_unpaired():
    """Two models scored on the same images: pairing removes the images' shared difficulty."""
    g = torch.Generator().manual_seed(0)
    hard = torch.rand(500, generator=g)
    a = (hard < 0.6).float()
    b = (hard < 0.55).float()                     # b is right only where a is right, minus a few
    paired = difference(a, b, n_boot=1000)
    unpaired = bootstrap(lambda m: m["a"] - m["b"], {"a": a}, {"b": b}, n_boot=1000)
    assert paired.high - paired.low < 0.5 * (unpaired.high - unpaired.low)
    assert paired.value == pytest.approx(float(a.mean() - b.mean()))


def test_bootstrap_of_a_ratio_of_means_and_bad_input():
    num, den = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([2.0, 2.0, 2.0, 2.0])
    e = bootstrap(lambda m: m["num"] / m["den"], {"num": num, "den": den}, n_boot=200)
    assert e.value == pytest.approx(1.25) and e.low < 1.25 < e.high      # resampling four values moves it
    with pytest.raises(ValueError, match="same number of images"):
        bootstrap(lambda m: m["a"], {"a": torch.ones(3), "b": torch.ones(4)})


@pytest.mark.parametrize("est,state", [
    (Estimate(0.30, 0.25, 0.35), "holds"),
    (Estimate(0.15, 0.10, 0.20), "fails"),
    (Estimate(0.22, 0.15, 0.28), "undecided"),     # straddles the threshold
    (Estimate.exact(0.20), "fails"),               # on the threshold: not above it
])
def test_criterion_state_follows_the_interval(est, state):
    assert Criterion("x above 0.2", "x", above=0.2).judge({"x": est}) == state


def test_below_criterion_and_for_every():
    c = Criterion("every ratio below 1", "ratio/*", below=1.0)
    assert c.judge({"ratio/a": Estimate.exact(0.5), "ratio/b": Estimate(0.8, 0.7, 0.9)}) == "holds"
    assert c.judge({"ratio/a": Estimate.exact(0.5), "ratio/b": Estimate(1.2, 1.1, 1.3)}) == "fails"
    assert c.judge({"ratio/a": Estimate.exact(0.5), "ratio/b": Estimate(1.0, 0.9, 1.1)}) == "undecided"
    with pytest.raises(KeyError, match="no number matches"):
        c.judge({"other": Estimate.exact(0.5)})
    with pytest.raises(ValueError, match="exactly one"):
        Criterion("bad", "x", above=1, below=2)


@pytest.mark.parametrize("states,expected", [
    (["holds", "holds"], "reproduced"),
    (["fails", "fails"], "not reproduced"),
    (["holds", "fails"], "partly"),
    (["holds", "undecided"], "inconclusive"),
    (["fails", "undecided"], "inconclusive"),
    (["undecided", "undecided"], "inconclusive"),
    # one holds and one fails: "partly" whatever the undecided one resolves to
    (["holds", "fails", "undecided"], "partly"),
])
def test_verdict_from_states(states, expected):
    assert verdict(states) == expected


def test_claim_per_seed_and_pooled():
    claim = Claim("X1", "paper", "statement", "value", [Criterion("x above 0.5", "x", above=0.5)])
    per_seed = [{"x": mean_estimate(torch.full((50,), v), n_boot=100)} for v in (0.7, 0.8, 0.75)]
    assert claim.evaluate(per_seed, "ours") == "reproduced"
    assert claim.seeds_text == "reproduced in 3 of 3 seeds"
    claim.evaluate([{"x": Estimate.exact(0.7)}, {"x": Estimate.exact(0.3)}], "ours")
    assert claim.seed_verdicts == ["reproduced", "not reproduced"]
    # the seeds that disagree with the pooled verdict are named, not only counted
    assert claim.seeds_text == f"{claim.verdict} in 0 of 2 seeds (the others: reproduced, not reproduced)"


def test_first_seed_effect_sets_the_first_seed_beside_the_pooled_verdict():
    """A claim that holds on its first seed only: the effect says so; one seed says it was not measured."""
    claim = Claim("X1", "p", "s", "v", [Criterion("x above 0.5", "x", above=0.5)])
    other = Claim("X2", "p", "s", "v", [Criterion("x above 0", "x", above=0.0)])
    noisy = lambda v: mean_estimate(v + 0.05 * torch.randn(200, generator=torch.Generator().manual_seed(0)), n_boot=200)
    per_seed = [{"x": noisy(v)} for v in (0.9, 0.45, 0.4)]          # first seed far above 0.5, the next two below
    claim.evaluate(per_seed, "")
    other.evaluate(per_seed, "")
    assert claim.seed_verdicts[0] == "reproduced" and claim.verdict != "reproduced"
    effect = first_seed_effect([claim, other])
    assert effect == ("verdicts on the first seed alone: X1 reproduced, X2 reproduced; pooled over 3 seeds: "
                      f"X1 {claim.verdict}, X2 {other.verdict} (per seed: X1 reproduced, not reproduced, not "
                      "reproduced; X2 reproduced, reproduced, reproduced)")
    claim.evaluate(per_seed[:1], "")
    assert first_seed_effect([claim, other]) == ONE_SEED
    with pytest.raises(ValueError, match="judged claims"):
        first_seed_effect([])


def test_pool_two_way_bootstrap_widens_with_seed_spread():
    tight = [mean_estimate(torch.full((100,), 0.5) + 0.01 * torch.randn(100), n_boot=500) for _ in range(3)]
    spread = [mean_estimate(torch.full((100,), v) + 0.01 * torch.randn(100), n_boot=500) for v in (0.3, 0.5, 0.7)]
    width = lambda e: e.high - e.low
    assert width(pool(spread)) > 5 * width(pool(tight))
    assert pool(spread).value == pytest.approx(0.5, abs=0.01)


def test_pool_of_three_seeds_uses_the_t_quantile_not_a_resample_of_three():
    # three seeds at 0, 1, 2 without image noise: mean 1, standard error 1/sqrt(3);
    # the t interval (2 degrees of freedom, quantile 4.30) reaches about 1 +- 2.48,
    # resampling three values with replacement could never leave [0, 2]
    pooled = pool([Estimate.exact(v) for v in (0.0, 1.0, 2.0)])
    assert pooled.value == pytest.approx(1.0)
    assert pooled.low == pytest.approx(1 - 4.303 / 3 ** 0.5, abs=0.25)
    assert pooled.high == pytest.approx(1 + 4.303 / 3 ** 0.5, abs=0.25)
    same = pool([Estimate.exact(0.5)] * 3)
    assert same.low == same.high == pytest.approx(0.5)


def test_pool_keeps_a_bounded_quantity_inside_its_range():
    """Three seeds' accuracies near 0: the t term carries the interval below 0 (an accuracy of
    10.7% [-3.0, 23.3] was printed, 2026-11-26); marked ``within(0, 1)`` it stops at 0 with the
    point value and the upper end unchanged, a strict criterion at the bound stays undecided, and
    the bounds survive scaling, pooling and the sweep's JSON."""
    from freqlib.sweep import _estimate
    accs = [Estimate.exact(v) for v in (0.0, 0.1, 0.25)]
    free, clipped = pool(accs), pool([a.within(0.0, 1.0) for a in accs])
    assert free.low < 0 and clipped.low == 0.0
    assert clipped.value == free.value and clipped.high == pytest.approx(free.high)
    assert Criterion("acc above 0", "a", above=0.0).judge_one(clipped) == "undecided"
    assert clipped.scaled(-100).bounds == (-100.0, 0.0) and clipped.bounds == (0.0, 1.0)
    assert _estimate(json.loads(json.dumps(clipped.to_dict()))).bounds == (0.0, 1.0)
    assert pool([a.within(None, 0.2) for a in accs]).high == 0.2              # an open lower end
    assert pool([accs[0].within(0.0, 1.0), accs[1], accs[2]]).low < 0       # bounds must agree to apply


def test_a_number_set_aside_prints_not_judged_not_no_power():
    """B2's budget gate sets its numbers aside; they printed "no power" beside an interval that
    had power (2026-11-26). Set aside, a number reads "not judged", stays so when pooled, and its
    criterion is undecided; a comparison without power still reads "no power"."""
    from freqlib.verdicts import not_judged
    seeds = [{"g": Estimate(v, v - 1, v + 1)} for v in (-5.0, -4.0)]
    aside = [not_judged(n, ["g"]) for n in seeds]
    assert aside[0]["g"].fmt() == "not judged" and pool([n["g"] for n in aside]).fmt() == "not judged"
    assert Criterion("gain above 0", "g", above=0.0).judge(aside[0]) == "undecided"
    assert Estimate.no_power(seeds[0]["g"]).fmt() == "no power"


def test_pool_each_pools_every_number_and_names_what_was_repeated():
    runs = [{"a": Estimate(v, v - 0.1, v + 0.1), "b": Estimate.exact(2 * v)} for v in (0.0, 1.0, 2.0)]
    pooled = pool_each(runs, unit="training runs")
    assert set(pooled) == {"a", "b"} and pooled["a"].value == pytest.approx(1.0)
    assert pooled["a"].over == "3 training runs × images" and pooled["b"].over == "3 training runs"
    assert pooled["a"].high - pooled["a"].low > 2 * (runs[0]["a"].high - runs[0]["a"].low)     # the runs' spread
    assert pool_each(runs)["a"].over == "3 seeds × images"
    with pytest.raises(ValueError, match="at least one dict"):
        pool_each([])


def test_compare_variant_names_changed_criteria():
    claim = Claim("X2", "p", "s", "v", [Criterion("x above 0", "x", above=0.0), Criterion("y below 1", "y", below=1.0)])
    claim.evaluate({"x": Estimate.exact(1.0), "y": Estimate.exact(0.5)}, "ours")
    same = claim.compare_variant("JPEG", {"x": Estimate.exact(2.0), "y": Estimate.exact(0.4)})
    assert same["verdict"] == "reproduced" and same["changed"] == []
    moved = claim.compare_variant("JPEG", {"x": Estimate(0.1, -0.1, 0.3), "y": Estimate.exact(0.4)})
    assert moved["verdict"] == "inconclusive" and moved["changed"] == ["x above 0: holds → undecided"]


def test_estimate_formatting_and_validation():
    assert Estimate(0.388, 0.351, 0.42).fmt(pct=True) == "38.8% [35.1, 42.0]"
    assert Estimate.exact(2.5).fmt() == "2.500"
    assert Estimate(-2.98e-8, -2.98e-8, 0.15).fmt(digits=1) == "0.0 [0.0, 0.1]"      # no "-0.0"
    # an interval whose bounds coincide is still an interval: every resample gave the same value
    assert Estimate(1.0, 1.0, 1.0).fmt(digits=2) == "1.00 [1.00, 1.00]"
    assert Estimate(0.5, 0.5, 0.5, over="3 seeds").fmt(digits=1) == "0.5 [0.5, 0.5]"
    # only an exact number and a point value declared without an interval print bare
    assert Estimate(0.445, 0.445, 0.445, over="one mask (no interval)", n=1).fmt(digits=3) == "0.445"
    assert Estimate(0.4, 0.3, 0.5, over="2 seeds × one mask (no interval)").fmt(digits=1) == "0.4 [0.3, 0.5]"
    with pytest.raises(ValueError, match="empty"):
        Estimate(1.0, 2.0, 0.5)
    assert math.isclose(Estimate(0.1, 0.0, 0.2).scaled(100).high, 20.0)


def test_deviation_needs_a_date_for_criterion_changes():
    Deviation("dataset", "Imagenette 128px", "CIFAR-10 32px", "the book is about CIFAR-10")
    with pytest.raises(ValueError, match="date"):
        Deviation("criterion", "none", "changed null", "first look")
    with pytest.raises(ValueError, match="aspect"):
        Deviation("colour", "a", "b", "c")


def test_deviations_table_shows_code_without_backticks_and_glues_it_as_written(monkeypatch):
    from freqlib import deviations
    glued = {}
    monkeypatch.setattr(deviations, "glue", lambda k, v: glued.setdefault(k, v))
    table = deviations.deviations_table([Deviation("method", "`f(x)`", "ours", "why")], "ch")
    assert table.loc[1, "paper"] == "f(x)"                                   # the chapter's table
    assert json.loads(glued["deviations"])["rows"][0]["paper"] == "`f(x)`"   # the instructor page's markdown


def test_size_criterion_pools_signed_numbers_before_the_fold():
    """Two seeds whose effects have opposite signs: the effect's size is not established.
    Pooling the sizes (|+8| and |-8|) would say 8; pooling the signed numbers says about 0."""
    big = Criterion("effect larger than 5 in size", "slope", above=5.0, size=True)
    assert big.judge_one(Estimate(-8.0, -9.0, -7.0)) == "holds"
    assert big.judge_one(Estimate(-1.0, -4.0, 0.9)) == "fails"          # size interval [0, 4]
    assert big.judge_one(Estimate(-6.0, -9.0, -3.0)) == "undecided"
    assert big.threshold_text == "size > 5"
    claim = Claim("S1", "p", "s", "v", [big])
    seeds = [{"slope": mean_estimate(torch.full((40,), v) + 0.1 * torch.randn(40), n_boot=200)} for v in (8.0, -8.0)]
    claim.evaluate(seeds, "ours")
    assert claim.seed_verdicts == ["reproduced", "reproduced"]
    assert claim.verdict != "reproduced" and abs(claim.numbers["slope"].value) < 1


def test_sweep_judges_size_rules_on_numbers_pooled_signed():
    from freqlib.sweep import _pool_claim
    rule = {"describe": "size above 5", "keys": ["slope"], "above": 5.0, "below": None, "size": True}
    row = lambda v: {"claim": "S1", "verdict": "reproduced", "rules": [rule],
                     "numbers": {"slope": {"value": v, "low": v - 1, "high": v + 1, "over": "images", "n": 40}}}
    same = _pool_claim([(0, row(8.0)), (1, row(8.2)), (2, row(8.4))])
    opposite = _pool_claim([(0, row(8.0)), (1, row(-8.0))])
    assert same["states"] == ["holds"] and same["criteria"][0]["needs"] == "size > 5"
    assert opposite["states"] != ["holds"]
    falling = _pool_claim([(0, row(-8.0)), (1, row(-8.2)), (2, row(-8.4))])
    assert falling["states"] == ["holds"]                  # the size is judged, whatever the sign


def test_criteria_text_names_numbers_and_units_for_readers():
    """Readers see points, percentages and what each number is, never the internal keys; the
    judgement is on the raw numbers, so display can never change a state."""
    from freqlib.verdicts import PCT, PTS
    gap = Criterion("ST keeps more than AT", "st_minus_at_kept", above=0.0, **PTS)
    share = Criterion("a share below half", "share/low", below=0.5, name="low share", **PCT)
    claim = Claim("S2", "p", "s", "v", [gap, share])
    claim.evaluate({"st_minus_at_kept": Estimate(0.119, -0.012, 0.248), "share/low": Estimate(0.339, 0.328, 0.35)}, "o")
    text = claim.criteria_text()
    assert "(11.9 [-1.2, 24.8] pts; needs > 0 pts)" in text and "(low 33.9% [32.8, 35.0]; needs < 50%)" in text
    assert "st_minus_at_kept" not in text and "share/low" not in text
    assert [c.state for c in claim.criteria] == ["undecided", "holds"]
    assert (gap.label, share.label) == ("st_minus_at_kept", "low share")      # the key where no name is given
    # two different quantities in one criterion must be named, else the reader cannot tell them apart
    with pytest.raises(ValueError, match="name each in labels="):
        Criterion("both", ("a", "b"), above=0.0)
    both = Criterion("both", ("a", "b"), above=0.0, labels={"a": "first", "b": "second"}, unit="×")
    assert both.values_text({"a": Estimate(2.0, 1.5, 2.5), "b": Estimate(3.0, 2.0, 4.0)}) == \
        "first ×2.00 [1.50, 2.50], second ×3.00 [2.00, 4.00]"
    assert both.threshold_text == "> ×0"


def test_listed_names_one_two_or_many_and_refuses_none():
    from freqlib.prose import listed
    assert [listed(["a"]), listed(["a", "b"]), listed(("a", "b", "c"))] == ["a", "a and b", "a, b and c"]
    with pytest.raises(ValueError, match="at least one item"):
        listed([])
