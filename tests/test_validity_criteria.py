"""Criteria of chapter 06 revised after review can fail: D1's upper-band criterion against the
same-budget null, D3's competence floor against a network at chance; plus the borderline rule,
the verdict sentence and the signature amplitudes the chapter states."""
from __future__ import annotations

import itertools

import torch

from freqlib import validity as V
from freqlib.verdicts import VERDICTS, Estimate, bootstrap, verdict


def _boot(statistic, *samples, **kw):
    return bootstrap(statistic, *samples, n_boot=300, seed=0, **kw)


def _claim(cid):
    return next(c for c in V.causal_claims() if c.id == cid)


def _upper_criterion():
    return next(k for k in _claim("D1").criteria if k.key == "d1_upper_excess/high")


def test_d1_upper_criterion_fails_when_pgd_is_the_null():
    x = torch.rand(40, 3, 32, 32)
    null = V.random_sign_delta(x, 8 / 255, seed=0)
    same = V.upper_share_excess(null, null, _boot)
    assert same.value == same.low == same.high == 0.0
    assert _upper_criterion().judge({"d1_upper_excess/high": same}) == "fails"
    # another random pattern of the same budget does not pass either (it is the null again)
    other = V.random_sign_delta(x, 8 / 255, seed=1)
    assert _upper_criterion().judge({"d1_upper_excess/high": V.upper_share_excess(other, null, _boot)}) != "holds"


def test_d1_upper_criterion_holds_for_a_high_frequency_perturbation():
    x = torch.full((40, 3, 32, 32), 0.5)
    i = torch.arange(32)
    checker = ((i[:, None] + i[None, :]) % 2 * 2 - 1).float() * (8 / 255)     # all energy at the Nyquist frequency
    delta = checker.expand(40, 3, 32, 32) * (1 + 0.1 * torch.rand(40, 1, 1, 1))
    null = V.random_sign_delta(x, 8 / 255, seed=0)
    est = V.upper_share_excess(delta, null, _boot)
    assert est.low > 0.2
    assert _upper_criterion().judge({"d1_upper_excess/high": est}) == "holds"


def test_d3_fails_for_a_network_at_chance():
    """A network that guesses follows no signature: the old two criteria hold, the competence floor fails."""
    g = torch.Generator().manual_seed(0)
    n = 1000
    st_clean = (torch.rand(n, generator=g) < 0.55).float()
    st_moved = st_clean * (torch.rand(n, generator=g) < 0.5).float()
    st_follow = (1 - st_moved) * (torch.rand(n, generator=g) < 0.7).float()
    at_clean = (torch.rand(n, generator=g) < V.CHANCE).float()             # a guessing network
    at_moved = (torch.rand(n, generator=g) < V.CHANCE).float()
    at_follow = (torch.rand(n, generator=g) < V.CHANCE).float()
    s = {"sc": st_clean, "sw": st_moved, "sf": st_follow, "ac": at_clean, "aw": at_moved, "af": at_follow}
    numbers = {"d3_reduction": _boot(lambda m: (1 - m["sw"] / m["sc"]) - (1 - m["aw"] / m["ac"]), s),
               "d3_follow_gap": _boot(lambda m: m["sf"] - m["af"], s),
               "d3_at_competence": _boot(lambda m: m["ac"] - V.CHANCE, s),
               "d3_at_floor": _boot(lambda m: m["ac"] - V.CHANCE - V.COMPETENCE, s)}
    reduction, follow = _claim("D3").criteria
    # both passed before the revision, on the effect numbers alone
    assert reduction.judge_one(numbers["d3_reduction"]) == "holds"
    assert follow.judge_one(numbers["d3_follow_gap"]) == "holds"
    assert reduction.judge(numbers) == follow.judge(numbers) == "fails"
    assert verdict([reduction.judge(numbers), follow.judge(numbers)]) == "not reproduced"
    # the same effects in a network well above chance pass
    s_good = dict(s, ac=(torch.rand(n, generator=g) < 0.5).float())
    s_good["aw"] = s_good["ac"]
    good = {"d3_reduction": _boot(lambda m: (1 - m["sw"] / m["sc"]) - (1 - m["aw"] / m["ac"]), s_good),
            "d3_follow_gap": numbers["d3_follow_gap"],
            "d3_at_competence": _boot(lambda m: m["ac"] - V.CHANCE, s_good),
            "d3_at_floor": _boot(lambda m: m["ac"] - V.CHANCE - V.COMPETENCE, s_good)}
    assert reduction.judge(good) == follow.judge(good) == "holds"


def test_borderline_flags_values_near_a_threshold_with_or_without_interval():
    far = Estimate(0.3, 0.3, 0.3, over="one mask (no interval)", n=1)
    assert V.borderline({"auroc": Estimate(0.7495, 0.7495, 0.7495, over="one mask", n=1), "margin": far})
    assert V.borderline({"auroc": Estimate(0.76, 0.7503, 0.765), "margin": Estimate(0.12, 0.08, 0.13)})
    assert not V.borderline({"auroc": Estimate(0.9, 0.84, 0.91), "margin": Estimate(0.29, 0.27, 0.31)})
    single = {"auroc": Estimate(0.35, 0.35, 0.35, over="x", n=1), "margin": Estimate(-.5, -.5, -.5, over="x", n=1)}
    assert not V.borderline(single)


def test_synthesis_sentence_reads_every_verdict_grammatically():
    for combo in itertools.product(VERDICTS, repeat=3):
        text = V.synthesis_sentence(dict(zip(("D1", "D2", "D3"), combo)), "high")
        assert text[0].isupper() and text.endswith("(D3).")
        assert "not clearly" not in text and " not followed" not in text and " not adopted" not in text
        assert all(f"({c})" in text for c in ("D1", "D2", "D3"))


def test_signature_amplitudes_and_the_stated_claim_agree():
    lo, hi = V.signature_amplitudes("high")
    assert 0 < lo <= hi
    text = V.causal_claims("high", eps=8 / 255)[2].paper_value
    assert f"{255 * hi:.2f}/255" in text
    assert ("all below ε" in text) == (hi < 8 / 255)
    assert "all below ε" in V.causal_claims("high", eps=12 / 255)[2].paper_value
