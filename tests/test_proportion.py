"""Paper B's criteria (freqlib.proportion): each can hold and each can fail, on
constructed per-image correctness whose truth is known; models that do not differ
neither fail B1's "little" criterion nor pass its "large" one (the old spread rule
did both), and B2 is not judged when its budget check does not hold."""
from __future__ import annotations

import pytest
import torch

from freqlib import proportion as pb
from freqlib.verdicts import Estimate, half_width

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


SHARE_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)


def b1(c_accs, clean_accs, n=N, **kw):
    claims = pb.claims()
    numbers = pb.b1_numbers(models_with_accuracies(c_accs, n=n, seed=1, **kw),
                            models_with_accuracies(clean_accs, n=n, seed=2, **kw), SHARE_VALUES, n_boot=500)
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
    assert t["c_gain"] == pytest.approx(8.97) and t["c_slope"] == 5 and t["clean_slope"] == 2
    table = pb.criteria_table(pb.claims())
    assert list(table["number"]) == ["mean-C slope", "clean slope", "mean-C gain", "clean drop"]
    assert list(table["rule"]) == ["size > 5 pts", "size < 2 pts", "> 8.97 pts", "< 1 pts"]


def test_slope_is_the_least_squares_contrast_and_magnitude_folds_its_interval():
    models = {f"m{i}": torch.full((10,), a) for i, a in enumerate((0.40, 0.45, 0.50, 0.55, 0.60))}
    e = pb.slope(models, SHARE_VALUES, n_boot=50)
    assert e.value == pytest.approx(20) and e.low == pytest.approx(20) and e.high == pytest.approx(20)
    m = Estimate(-7.0, -10.0, -4.0).size()
    assert (m.value, m.low, m.high) == (7.0, 4.0, 10.0)
    m = Estimate(-1.0, -4.0, 0.9).size()
    assert (m.value, m.low, m.high) == (1.0, 0.0, 4.0)
    assert half_width(Estimate(0.0, -2.5, 2.5)) == 2.5
    with pytest.raises(ValueError, match="shares"):
        pb.slope(models, (0.0, 0.5))


def test_b1_reproduced_when_robustness_moves_and_clean_does_not():
    claim, n = b1(dict(zip(SHARES, (0.40, 0.45, 0.50, 0.55, 0.60))), dict.fromkeys(SHARES, 0.8))
    assert n["c_slope"].value == pytest.approx(20, abs=2) and n["clean_slope"].value == pytest.approx(0, abs=1e-4)
    assert states(claim) == ["holds", "holds"] and claim.verdict == "reproduced"


def test_b1_direction_is_not_claimed_a_falling_effect_counts_too():
    claim, n = b1(dict(zip(SHARES, (0.60, 0.55, 0.50, 0.45, 0.40))), dict.fromkeys(SHARES, 0.8))
    assert n["c_slope"].value < -15 and claim.criteria[0].state == "holds"


def test_b1_fails_when_nothing_moves_and_when_clean_moves():
    claim, _ = b1(dict.fromkeys(SHARES, 0.5), dict(zip(SHARES, (0.70, 0.72, 0.75, 0.78, 0.80))))
    assert states(claim) == ["fails", "fails"] and claim.verdict == "not reproduced"


def test_b1_effect_is_undecided_near_its_threshold():
    claim, n = b1(dict(zip(SHARES, (0.50, 0.51, 0.52, 0.53, 0.55))), dict.fromkeys(SHARES, 0.8), n=600,
                  shared=False)
    assert n["c_slope"].size().low < 5 < n["c_slope"].size().high
    assert claim.criteria[0].state == "undecided" and claim.verdict == "inconclusive"


def test_b1_identical_models_on_932_images_never_fail_little_and_never_pass_large():
    """Five models with the same accuracy, independent errors, 932 images: the slope
    rules stay honest; the old spread rule failed 'little' in a good share of runs."""
    new_fail = new_large = old_fail = 0
    runs = 60
    for r in range(runs):
        same = models_with_accuracies(dict.fromkeys(SHARES, 0.6), n=932, seed=100 + r, shared=False)
        nums = pb.b1_numbers(same, same, SHARE_VALUES, n_boot=300)
        claim = pb.claims()[0]
        claim.evaluate(nums, "null")
        new_large += claim.criteria[0].state == "holds"
        new_fail += claim.criteria[1].state == "fails"
        old_fail += pb.previous_b1(same, same, n_boot=300)["states"][1] == "fails"
    assert new_fail == 0 and new_large <= 0.05 * runs
    assert old_fail >= 0.1 * runs                                   # the bias that the revision removes
    assert half_width(nums["clean_slope"]) > 2                  # and at 932 images 'little' cannot hold


def test_b1_planted_effect_in_constructed_per_image_scores():
    """Per-image mean-C scores built with a known linear effect of 8 points from p=0 to p=1."""
    g = torch.Generator().manual_seed(5)
    base = torch.rand(2000, generator=g)
    planted = {k: (base + 0.08 * p + 0.02 * torch.randn(2000, generator=g)).clamp(0, 1)
               for k, p in zip(SHARES, SHARE_VALUES)}
    flat = {k: (base + 0.02 * torch.randn(2000, generator=g)).clamp(0, 1) for k in SHARES}
    clean = models_with_accuracies(dict.fromkeys(SHARES, 0.8))
    for scores, expected in ((planted, "holds"), (flat, "fails")):
        claim = pb.claims()[0]
        claim.evaluate(pb.b1_numbers(scores, clean, SHARE_VALUES, n_boot=500), "test")
        assert claim.criteria[0].state == expected


def test_steps_and_best_wording_follow_their_intervals():
    moving = models_with_accuracies(dict(zip(SHARES, (0.60, 0.55, 0.50, 0.45, 0.40))))
    assert pb.direction_text(pb.steps(moving, n_boot=300)).startswith("falls at every step")
    assert "ahead of" in pb.best_text(moving, "mean accuracy", n_boot=300)
    assert "not resolved" not in pb.best_text(moving, "mean accuracy", n_boot=300)
    flat = models_with_accuracies(dict.fromkeys(SHARES, 0.5), n=400, shared=False)
    assert pb.direction_text(pb.steps(flat, n_boot=300)).startswith("has no resolved")
    assert pb.best_text(flat, "mean accuracy", n_boot=300).endswith("not resolved")
    # some steps fall, none rises: a fall where resolved, not "no direction"
    mixed = {"a": Estimate(-3.0, -4.0, -2.0), "b": Estimate(-0.5, -2.0, 1.0), "c": Estimate(-2.0, -3.0, -1.0)}
    assert pb.direction_text(mixed).startswith("falls where a step is resolved: 2 of 3 steps fall")
    rising = {"a": Estimate(3.0, 2.0, 4.0), "b": Estimate(0.5, -1.0, 2.0)}
    assert pb.direction_text(rising).startswith("rises where a step is resolved: 1 of 2 steps rise")
    both = {"a": Estimate(3.0, 2.0, 4.0), "b": Estimate(-3.0, -4.0, -2.0)}
    assert pb.direction_text(both).startswith("has no resolved")


def test_gain_phrase_follows_the_interval():
    assert pb.gain_phrase(Estimate(2.1, 0.5, 3.6)).startswith("gains 2.10")
    assert pb.gain_phrase(Estimate(-4.6, -7.6, -1.6)).startswith("loses 4.60 [1.60, 7.60] points")
    assert pb.gain_phrase(Estimate(1.4, -0.8, 3.7)).endswith("not resolved (the interval includes zero)")


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
    b1_seeds = [pb.b1_numbers(models_with_accuracies(dict(zip(SHARES, (0.6, 0.55, 0.5, 0.45, 0.4))), seed=s),
                              models_with_accuracies(dict.fromkeys(SHARES, 0.8), seed=s + 5), SHARE_VALUES, n_boot=300)
                for s in range(3)]
    assert claims[0].evaluate(b1_seeds, "test") == "reproduced" and claims[0].seed_verdicts == ["reproduced"] * 3
    assert claims[0].numbers["c_slope"].value < 0          # pooled signed; the criterion judges its size
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
    unjudged = pb.not_judged(other)
    shown = pb.variant_table([claims[1]], "JPEG-q75 pixels", {"B2": unjudged}, not_judged_ids=("B2",))
    assert (shown.loc["B2"]["JPEG-q75 pixels"].iloc[:2] == "not judged").all()
    # set aside, a number says so even where the table is not told which claims were set aside
    assert "not judged" in pb.variant_table([claims[1]], "JPEG-q75 pixels", {"B2": unjudged}).to_string()


def test_spread_needs_two_models():
    with pytest.raises(ValueError, match="two models"):
        pb.spread({"a": torch.ones(5)})


class _Rob:
    def __init__(self, correct, cells):
        self.correct, self.cells = correct, cells


def _scores(noise_gain: float, n=500):
    """Scores of a standard and a Gaussian model on two noise cells and one blur cell."""
    g = torch.Generator().manual_seed(11)
    u = torch.rand(n, 3, generator=g)
    std = (u < 0.5).float()
    gauss = (u < torch.tensor([0.5 + noise_gain, 0.5 + noise_gain, 0.4])).float()
    cells = (("gaussian_noise", 1), ("shot_noise", 1), ("defocus_blur", 1))
    return pb.Scores(_Rob({"standard": std, "gaussian": gauss}, cells), {})


def test_b2_budget_check_gates_the_verdict_but_keeps_the_measured_states():
    per_seed = [pb.b2_numbers(models_with_accuracies({"standard": 0.50, "modulated+amplitude": 0.46}, seed=3),
                              models_with_accuracies({"standard": 0.85, "modulated+amplitude": 0.79}, seed=4),
                              n_boot=300)]
    competent = pb.competence(_scores(0.15), n_boot=300)
    assert competent.low > 0
    claim = pb.claims()[1]
    out = pb.judge_b2(claim, per_seed, competent, "measured")
    assert out["judged"] and claim.verdict == "not reproduced" and claim.ours == "measured"
    useless = pb.competence(_scores(-0.1), n_boot=300)
    assert useless.high < 0
    claim = pb.claims()[1]
    out = pb.judge_b2(claim, per_seed, useless, "measured")
    assert not out["judged"] and out["measured_verdict"] == "not reproduced"
    assert out["measured_states"] == ["fails", "fails"]
    assert claim.verdict == "inconclusive" and states(claim) == ["undecided", "undecided"]
    assert claim.ours.startswith("not judged at this budget") and "not reproduced" in claim.ours
    assert "criteria mean-C gain fails, clean drop fails → not reproduced" in claim.ours   # named, not keyed
    undecided = Estimate(1.0, -1.0, 3.0)                            # an unresolved check does not judge either
    assert not pb.judge_b2(pb.claims()[1], per_seed, undecided, "m")["judged"]


def test_relative_gain_and_corruption_gains():
    a, b = torch.full((50,), 0.6), torch.full((50,), 0.5)
    assert pb.relative_gain(a, b, n_boot=50).value == pytest.approx(20)
    gains = pb.corruption_gains(_scores(0.2), "standard", n_boot=200)
    assert list(gains["corruption"]) == ["gaussian_noise", "shot_noise", "defocus_blur"]
    g = gains.set_index("corruption")       # planted: +20 points on the noise cells, -10 on the blur cell
    assert g.loc["gaussian_noise", "low"] > 10 and g.loc["shot_noise", "low"] > 10 and g.loc["defocus_blur", "high"] < 0
    fam = pb.family_intervals(_scores(0.2), n_boot=200)
    assert list(fam.columns) == ["family/noise 95% lower", "family/noise 95% upper",
                                 "family/blur 95% lower", "family/blur 95% upper"]


def test_halves_text_gives_each_half_of_b1_its_own_state():
    """The abstract's stated half (robustness) and our reading's half (clean accuracy) apart."""
    claim = pb.claims()[0]
    with pytest.raises(RuntimeError, match="evaluate"):
        pb.halves_text(claim)
    claim.evaluate({"c_slope": Estimate(-8.3, -11.2, -5.4), "clean_slope": Estimate(-1.2, -3.8, 1.4)}, "t")
    assert pb.halves_text(claim) == ("The abstract's stated half (a great impact on robustness to common "
                                     "corruptions) holds; our reading's half (little effect on clean accuracy) "
                                     "is undecided.")
    claim.evaluate({"c_slope": Estimate(1.0, -1.0, 3.0), "clean_slope": Estimate(0.1, -0.5, 0.6)}, "t")
    assert pb.halves_text(claim).startswith("The abstract's stated half (a great impact on robustness to common "
                                            "corruptions) fails;")
    assert pb.halves_text(claim).endswith("clean accuracy) holds.")
    claim.evaluate({"c_slope": Estimate(5.5, 4.0, 7.0), "clean_slope": Estimate(4.0, 3.0, 5.0)}, "t")
    assert "corruptions) is undecided;" in pb.halves_text(claim) and pb.halves_text(claim).endswith("fails.")
    assert "great impact on the robustness to common corruptions" in claim.paper_value
    assert "our reading" in claim.paper_value


def test_images_needed_scales_like_one_over_root_n():
    assert pb.images_needed(932, 2.6, 2.0) == 1576                 # ceil(932 * 1.3**2)
    assert pb.images_needed(1000, 4.0, 2.0) == 4000
    assert pb.images_needed(1000, 1.0, 2.0) == 250                 # already narrow enough: fewer images
    with pytest.raises(ValueError):
        pb.images_needed(0, 1.0, 2.0)


def test_null_bias_text_follows_the_null_spreads():
    both = pb.null_bias_text(null_c=6.2, null_clean=3.5)
    assert "identical models could fail 'clean spread below 2'" in both
    assert "a null could pass 'spread above 5'" in both
    neither = pb.null_bias_text(null_c=3.6, null_clean=1.4)
    assert "would rarely fail 'clean spread below 2'" in neither
    assert "so a null would rarely pass 'spread above 5'" in neither and "smaller samples" in neither
    at_threshold = pb.null_bias_text(null_c=5.0, null_clean=2.0)     # both comparisons count a tie as reaching
    assert "identical models could fail" in at_threshold and "a null could pass" in at_threshold
    assert both.startswith("on this run, five models that do not differ")
    assert "3.6 points of mean CIFAR-10-C" in neither and "1.4 points of clean" in neither


def _family_scores(accs: dict, n=3000):
    """One model ``m`` on one cell per family, accuracy ``accs[family]``; shared hard images."""
    cells = (("gaussian_noise", 1), ("defocus_blur", 1), ("snow", 1), ("contrast", 1))
    u = torch.rand(n, 1, generator=torch.Generator().manual_seed(13))
    correct = (u < torch.tensor([[accs["noise"], accs["blur"], accs["weather"], accs["digital"]]])).float()
    return pb.Scores(_Rob({"m": correct}, cells), {})


def test_family_differences_are_paired_and_ordering_text_reads_their_intervals():
    # noise > blur holds, blur below weather (against), the rest resolved or not as planted
    diffs = pb.family_differences(_family_scores({"noise": 0.7, "blur": 0.5, "weather": 0.6, "digital": 0.6}), "m",
                                  n_boot=300)
    assert list(diffs) == ["noise > blur", "noise > weather", "noise > digital", "blur > weather", "blur > digital"]
    assert diffs["noise > blur"].value == pytest.approx(20, abs=2) and diffs["noise > blur"].low > 0
    assert diffs["blur > weather"].high < 0
    text = pb.ordering_text(diffs)
    assert text.startswith("of 5 predicted orderings, 3 are resolved and hold (noise > blur:")
    assert "2 are resolved the other way, against the prediction (blur > weather:" in text
    assert text.endswith("and 0 are not resolved, the paired interval including 0")
    # identical families: nothing resolved (paired on the same images, so the difference is exactly 0)
    flat = pb.family_differences(_family_scores(dict.fromkeys(("noise", "blur", "weather", "digital"), 0.5)), "m",
                                 n_boot=300)
    assert pb.ordering_text(flat).endswith("and 5 are not resolved, the paired interval including 0 "
                                           "(" + "; ".join(f"{k}: {flat[k].fmt(digits=1)}" for k in flat) + ")")
    mixed = {"noise > blur": Estimate(3.0, 1.0, 5.0), "blur > weather": Estimate(-1.0, -3.0, 1.0)}
    assert pb.ordering_text(mixed) == ("of 2 predicted orderings, 1 is resolved and holds (noise > blur: "
                                       f"{mixed['noise > blur'].fmt(digits=1)}); 0 are resolved the other way, "
                                       "against the prediction; and 1 is not resolved, the paired interval including 0 "
                                       f"(blur > weather: {mixed['blur > weather'].fmt(digits=1)})")
    assert pb.ordering_text({}).startswith("no predicted ordering")
    # a family absent from the set drops its pairs
    two = pb.Scores(_Rob({"m": torch.ones(10, 2)}, (("gaussian_noise", 1), ("defocus_blur", 1))), {})
    assert list(pb.family_differences(two, "m", n_boot=50)) == ["noise > blur"]
