"""Claim chapters at profile=smoke with two training seeds: the path the quick and paper profiles
take (three seeds), so that it runs in the suite and not only in a full build (chapter 6's is in
``test_training_seeds_causal.py``, a file of its own so the two test workers share the load)."""
from __future__ import annotations

import json

TWO = {"seeds": 2}


def claims(glued) -> dict:
    return {r["claim"]: r for r in json.loads(glued["claims"])}


def test_two_seeds_are_judged_each_and_pooled(executed_chapter, two_seeds_pooled):
    assert set(two_seeds_pooled(*executed_chapter("01", **TWO))) == {"A1", "A2", "A3"}


def test_one_seed_says_the_effect_was_not_measured(executed_chapter):
    """Chapter 2 at one seed (smoke's default, and the paper profile's ResNet-18) has nothing to set the
    first seed against, and says so without claiming the paper profile trains three."""
    _, glued = executed_chapter("02")
    rows = [r for r in json.loads(glued["deviations"])["rows"] if r["ours"].startswith("1 training seed of every")]
    assert [r["effect"] for r in rows] == ["not measured: one training seed in this run (`-p seeds=3` trains three)"]


def test_pooled_numbers_are_the_mean_of_each_seeds_own_run(executed_chapter):
    """Chapter 1 with seeds 0 and 1 in one run against two runs of one seed each (seed=0 and seed=1):
    each pooled value is the mean of the two runs' values. Numbers that draw an attack's random start
    differ a little (the attack's seed is the run's ``seed``), but far less than pooling one seed alone
    would move them (half the seeds' difference)."""
    two = claims(executed_chapter("01", **TWO)[1])
    runs = [claims(executed_chapter("01")[1]), claims(executed_chapter("01", seed=1)[1])]
    compared = []
    for cid, row in two.items():
        for key, number in row["numbers"].items():
            v0, v1 = (r[cid]["numbers"][key]["value"] for r in runs)
            assert abs(number["value"] - (v0 + v1) / 2) <= abs(v0 - v1) / 4 + 1e-6, (cid, key, number["value"], v0, v1)
            compared.append(v0 != v1)
    # two seeds can tie on a count (smoke's few images): most numbers must differ, or the check has no power
    assert sum(compared) >= len(compared) / 2, compared
