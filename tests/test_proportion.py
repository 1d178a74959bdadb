"""Paper B's criteria (freqlib.proportion): each can hold and each can fail, on
constructed per-image correctness whose truth is known, and a null of models that
do not differ keeps the spread criteria from holding."""
from __future__ import annotations

import pytest
import torch

from freqlib import proportion as pb
from freqlib.verdicts import Estimate

N = 4000
SHARES = ("p=0", "p=0.25", "p=0.5", "p=0.75", "p=1")


def models_with_accuracies(accs, n=N, seed=0, shared=True):
    """Per-image 0/1 correctness of models with the given accuracies. ``shared``: the
    models agree on which images are hard (as real models do), so paired differences
    are precise; a model with a higher accuracy is right on a superset of images."""
    g = torch.Generator().manual_seed(seed)
    hard = torch.rand(n, generator=g)
    out = {}
    for name, a in accs.items():
        u = hard if shared else torch.rand(n, generator=g)
        out[name] = (u < a).float()
    return out


def b1(c_accs, clean_accs, **kw):
    claims = pb.claims()
    numbers = pb.b1_numbers(models_with_accuracies(c_accs, seed=1, **kw),
                            models_with_accuracies(clean_accs, seed=2, **kw), n_boot=500)
    claims[0].evaluate(numbers, "test")
    return claims[0], numbers


def b2(c_accs, clean_accs, n=N):
    claims = pb.claims()
    numbers = pb.b2_numbers(models_with_accuracies(c_accs, n=n, seed=3),
                            models_with_accuracies(clean_accs, n=n, seed=4), n_boot=500)
    claims[1].evaluate(numbers, "test")
    return claims[1], numbers


def states(claim):
    return [c.state for c in claim.criteria]


def test_thresholds_are_declared_once():
    t = pb.THRESHOLDS
    assert t["c_gain"] == pytest.approx(8.97) and t["c_spread"] == 5 and t["clean_spread"] == 2
    table = pb.criteria_table(pb.claims())
    assert list(table["number"]) == ["c_spread", "clean_spread", "c_gain", "clean_drop"]
    assert list(table["rule (points)"]) == ["> 5", "< 2", "> 8.97", "< 1"]


def test_b1_reproduced_when_robustness_moves_and_clean_does_not():
    claim, n = b1(dict(zip(SHARES, (0.40, 0.45, 0.50, 0.55, 0.60))), dict.fromkeys(SHARES, 0.8))
    assert n["c_spread"].value == pytest.approx(20, abs=2) and n["clean_spread"].value == 0
    assert states(claim) == ["holds", "holds"] and claim.verdict == "reproduced"


def test_b1_fails_when_nothing_moves_and_when_clean_moves():
    claim, _ = b1(dict.fromkeys(SHARES, 0.5), dict(zip(SHARES, (0.70, 0.72, 0.75, 0.78, 0.80))))
    assert states(claim) == ["fails", "fails"] and claim.verdict == "not reproduced"


def test_b1_spread_is_undecided_near_its_threshold_with_few_images():
    claim, n = b1(dict(zip(SHARES, (0.50, 0.51, 0.52, 0.53, 0.55))), dict.fromkeys(SHARES, 0.8), shared=False)
    assert n["c_spread"].low < 5 < n["c_spread"].high
    assert claim.criteria[0].state == "undecided" and claim.verdict == "inconclusive"


def test_b2_reproduced_for_the_papers_gain_at_no_clean_cost():
    claim, n = b2({"standard": 0.50, "modulated+amplitude": 0.62}, {"standard": 0.85, "modulated+amplitude": 0.85})
    assert n["c_gain"].value == pytest.approx(12, abs=1.5)
    assert states(claim) == ["holds", "holds"] and claim.verdict == "reproduced"


def test_b2_not_reproduced_for_a_loss_and_a_clean_drop():
    claim, n = b2({"standard": 0.50, "modulated+amplitude": 0.46}, {"standard": 0.85, "modulated+amplitude": 0.79})
    assert n["c_gain"].value < 0 and n["clean_drop"].value == pytest.approx(6, abs=1.5)
    assert states(claim) == ["fails", "fails"] and claim.verdict == "not reproduced"


def test_b2_gain_just_below_the_paper_is_undecided_or_fails_not_holds():
    claim, n = b2({"standard": 0.50, "modulated+amplitude": 0.585}, {"standard": 0.85, "modulated+amplitude": 0.85},
                  n=300)
    assert claim.criteria[0].state in ("undecided", "fails")


def test_null_spread_of_identical_models_and_of_a_real_effect():
    same = models_with_accuracies(dict.fromkeys(SHARES, 0.5), shared=True)
    assert pb.null_spread(same, n_perm=200) == 0.0
    noisy = models_with_accuracies(dict.fromkeys(SHARES, 0.5), n=400, shared=False)
    floor = pb.null_spread(noisy, n_perm=400)
    observed = pb.spread(noisy, n_boot=300).value
    assert 0 < floor < 15 and observed < floor + 5                # noise alone: spread near its floor
    planted = models_with_accuracies(dict(zip(SHARES, (0.3, 0.4, 0.5, 0.6, 0.7))), n=400, shared=False)
    assert pb.spread(planted, n_boot=300).low > pb.null_spread(planted, n_perm=400)


def test_pooled_over_seeds_and_variant_table():
    claims = pb.claims()
    per_seed = [pb.b2_numbers(models_with_accuracies({"standard": 0.5, "modulated+amplitude": 0.62}, seed=s),
                              models_with_accuracies({"standard": 0.85, "modulated+amplitude": 0.85}, seed=s + 9),
                              n_boot=300) for s in range(3)]
    assert claims[1].evaluate(per_seed, "test") == "reproduced"
    assert claims[1].seed_verdicts == ["reproduced"] * 3
    assert "3 seeds" in pb.pooled(per_seed)["c_gain"].over
    other = {"c_gain": Estimate(2.0, 0.5, 3.5), "clean_drop": Estimate.exact(0.0)}
    moved = claims[1].compare_variant("JPEG-q75 pixels", other)
    assert moved["verdict"] == "partly" and len(moved["changed"]) == 1
    table = pb.variant_table([claims[1]], "JPEG-q75 pixels", {"B2": other})
    assert table.loc[("B2", "verdict"), "JPEG-q75 pixels state"] == "partly"
    assert table.loc[("B2", "verdict"), "main state"] == "reproduced"


def test_spread_needs_two_models():
    with pytest.raises(ValueError, match="two models"):
        pb.spread({"a": torch.ones(5)})
