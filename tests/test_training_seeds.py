"""Claim chapters at profile=smoke with two training seeds: the path the quick and paper profiles
take (three seeds), so that it runs in the suite and not only in a full build. Every number is
pooled over the seeds, each seed is judged on its own, the verdict comes from the pooled numbers,
and the deviations table says what pooling did to the first seed's verdicts."""
from __future__ import annotations

import json

import nbformat
import pytest

from freqlib.runner import stderr_outputs
from freqlib.verdicts import NOT_JUDGED, VERDICTS, seeds_text, verdict

TWO = {"seeds": 2}
# chapter 6 with two plantings and one adoption strength: the same multi-seed code, half the networks
LIGHTER = {"06": {"plantings": "low,high", "adoption_psnrs": "29"}}


def claims(glued) -> dict:
    return {r["claim"]: r for r in json.loads(glued["claims"])}


@pytest.mark.parametrize("chapter", ["01", "02", "06"])
def test_two_seeds_are_judged_each_and_pooled(executed_chapter, chapter):
    path, glued = executed_chapter(chapter, **TWO, **LIGHTER.get(chapter, {}))
    assert not stderr_outputs(nbformat.read(path, as_version=4))
    rows = claims(glued)
    for cid, row in rows.items():
        assert len(row["seed_verdicts"]) == 2 and set(row["seed_verdicts"]) <= set(VERDICTS), cid
        assert row["verdict"] == verdict(row["states"])
        assert row["seeds"] == glued[f"{cid}_seeds"] == seeds_text(row["verdict"], row["seed_verdicts"])
        for key, number in row["numbers"].items():      # a budget check may set a number aside
            assert number["over"].startswith(("2 seeds × ", NOT_JUDGED)), (cid, key, number["over"])
    # the deviations table sets the first seed's verdicts against the pooled ones, claim by claim
    effects = [r["effect"] for r in json.loads(glued["deviations"])["rows"]
               if r["effect"].startswith("verdicts on the first seed alone: ")]
    assert len(effects) == 1, effects
    first = ", ".join(f"{cid} {r['seed_verdicts'][0]}" for cid, r in rows.items())
    pooled = ", ".join(f"{cid} {r['verdict']}" for cid, r in rows.items())
    assert effects[0].startswith(f"verdicts on the first seed alone: {first}; pooled over 2 seeds: {pooled} ")


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
