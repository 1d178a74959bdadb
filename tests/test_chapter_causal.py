"""Chapter 06 (causal frequencies) at profile=smoke: it runs, its verdicts are computed from
the glued numbers, and it glues the lens-validity table that chapter 04 cites."""
from __future__ import annotations

import json
import re

import pytest

from freqlib import shortcut
from freqlib import validity as V
from freqlib.verdicts import ONE_SEED, VERDICTS, Estimate, verdict


@pytest.fixture(scope="module")
def chapter(executed_chapter):
    return executed_chapter("06")


def test_claims_d1_to_d4_have_verdicts_derived_from_their_numbers(chapter):
    _, glued = chapter
    rows = {r["claim"]: r for r in json.loads(glued["claims"])}
    assert sorted(rows) == ["D1", "D2", "D3", "D4"]
    declared = {c.id: c for c in V.causal_claims()}
    for cid, row in rows.items():
        assert glued[f"{cid}_verdict"] == row["verdict"] in VERDICTS
        assert row["paper"].startswith("Beyond the papers") and row["ours"] and row["paper's value"]
        assert row["profile"] == "smoke"
        assert row["verdict"] == verdict(row["states"])
        numbers = {k: Estimate(**v) for k, v in row["numbers"].items()}
        # every criterion's state follows from the glued numbers and the declared threshold
        assert [c.judge(numbers) for c in declared[cid].criteria] == row["states"]


def test_lens_validity_table_is_glued_and_consistent(chapter):
    _, glued = chapter
    lv = json.loads(glued["lens_validity"])
    assert lv["chapter"] == "06" and lv["profile"] == "smoke"
    records = lv["records"]
    lenses = {r["lens"] for r in records}
    plantings = {r["planting"] for r in records}
    assert plantings == {"low", "high", "horizontal"}
    assert {"filtered accuracy", "occluded frequency", "Fourier mask", "PGD spectrum"} <= lenses
    assert any(lens.startswith("heat map") for lens in lenses)
    assert len(records) == len(lenses) * len(plantings)
    for r in records:
        numbers = {k: Estimate(**r[k]) for k in ("auroc", "margin", "specificity")}
        assert (r["state"], r["states"]) == V.validity_state(numbers)
        assert 0.0 <= r["auroc"]["value"] <= 1.0 and 0.5 <= r["shuffled_auroc_95"] < 1.0
    assert "lens_validity_table" in glued and "shortcut_lenses" in glued
    for r in records:      # one borderline rule for lenses with and without an interval
        numbers = {k: Estimate(**r[k]) for k in ("auroc", "margin", "specificity")}
        assert r["borderline"] == V.borderline(numbers)


def test_revised_criteria_are_judged_and_recorded(chapter):
    _, glued = chapter
    rows = {r["claim"]: r for r in json.loads(glued["claims"])}
    assert "d1_upper_excess/high" in rows["D1"]["numbers"] and "d1_upper/high" not in rows["D1"]["numbers"]
    assert "d3_at_competence" in rows["D3"]["numbers"]
    assert set(rows["D4"]["numbers"]) == {"d4_follow_excess", "d4_relative_excess"}
    # the reach reading, less D4's competence caveat, for some control outcome and strengths AT ignored
    core = glued["reach_reading"].split(" AT trained with the strong signature, though,")[0]
    assert core in {shortcut.reach_reading(rows["D3"]["verdict"], rows["D4"]["verdict"], c, beyond)
                    for c in ("separated", "neither", "open") for beyond in ([], [29.0], [26.0], [29.0, 26.0])}
    # D4's part of the sentence names AT as its subject, after a semicolon
    text = glued["synthesis_text"]
    assert " and it " not in text and re.search(r"\); (AT |it is inconclusive whether AT |a moved strong )", text)
    # the readouts name borderline (one map) apart from undecided (an interval), and the premise is a sentence
    assert glued["ex7_premise"].startswith("For AT, filtered accuracy ") and glued["ex7_premise"].endswith(".")
    for key in ("signed_reading", "at_behaviour_reading"):
        assert "or one map's value" not in glued[key]
    assert glued["mf_band_size"] == int(V.band_masks()["high"].sum())          # computed, not typed
    # ST at AT's clean accuracy: the ladder is the fixed one, its reading glued and in the deviations
    assert glued["match_fractions"] == "1/16, 1/8, 1/4, 1/2"
    assert glued["matched_reading"].startswith("ST at the budget matched on D3's set")
    assert {"d1_headroom/low", "d1_headroom/high"} <= set(rows["D1"]["numbers"])
    assert not any(k.startswith("d1_enrich/") for k in rows["D1"]["numbers"])
    dev = json.loads(glued["deviations"])
    revised = [r for r in dev["rows"] if r["aspect"] == "criterion"]
    assert len(revised) == 5 and all(r["date"] for r in revised)
    assert any("specificity" in r["ours"] and r["date"] == "2026-11-26" for r in revised)
    # each revision's effect is the old rule's state next to the new rule's, computed at this profile
    assert all(r["effect"].startswith("old rule: ") and "; new rule: " in r["effect"] for r in revised)
    assert all(r["effect"].startswith("not measured") or any(ch.isdigit() for ch in r["effect"]) for r in dev["rows"])
    null = next(r for r in dev["rows"] if r["ours"].startswith("D4's null"))       # smoke: one seed, one null
    assert null["effect"] == ONE_SEED and null["date"] == "2026-11-26"


def test_prose_numbers_and_deviations_are_glued(chapter, unglued):
    path, glued = chapter
    assert unglued(path, glued) == []
    dev = json.loads(glued["deviations"])
    assert dev["chapter"] == "06" and len(dev["rows"]) >= 3
    assert any(r["effect"] == glued["matched_reading"] for r in dev["rows"])


def test_the_plan_trains_what_the_chapter_reads_for_d4():
    """The chapter's default strong signature is the one paper-run trains up front."""
    from freqlib import paper_plan, synthetic
    from freqlib.runner import chapter_parameters, chapters_in_toc
    path = next(p for p in chapters_in_toc() if p.stem.startswith("06"))
    assert chapter_parameters(path)["strong_psnr"] == synthetic.STRONG_PSNR
    curve = tuple(float(p) for p in chapter_parameters(path)["adoption_psnrs"].split(","))
    assert curve == synthetic.ADOPTION_PSNRS
    datasets = {s.kwargs.get("dataset") for s in paper_plan.default_plan("paper")["06"]}
    assert synthetic.shortcut_name("high", synthetic.STRONG_PSNR) in datasets
    assert {synthetic.shortcut_name("high", p) for p in synthetic.ADOPTION_PSNRS} <= datasets
    # its ST network is trained for the first training seed the chapter reads, whatever that is
    strong = synthetic.shortcut_name("high", synthetic.STRONG_PSNR)
    shifted = paper_plan.default_plan("paper", seed=1, seeds=1)["06"]
    assert {(s.name, s.kwargs.get("seed", 0)) for s in shifted if s.kwargs.get("dataset") == strong} == \
        {("shortcut_standard", 1), ("shortcut_linf_at", 1)}


def test_the_plan_trains_the_st_budgets_the_chapter_matches_against():
    from freqlib import paper_plan
    from freqlib.profiles import recipe_config
    full = recipe_config("shortcut_standard", "paper").epochs
    ladder = {s.kwargs["epochs"] for s in paper_plan.default_plan("paper")["06"]
              if s.name == "shortcut_standard" and "epochs" in s.kwargs}
    assert ladder == {f * full for f in shortcut.MATCH_FRACTIONS}


def test_an_attack_radius_other_than_the_training_radius_is_refused(tmp_path):
    """D3 and D4 read reach at the AT networks' training radius: a different attack_eps must stop the
    chapter in its settings cell with a one-line error, before any network is trained."""
    from freqlib import runner
    path = runner.resolve_chapter("06_causal_frequencies")
    with pytest.raises(runner.ChapterFailed, match=r"attack_eps=4 differs from the AT networks' training radius 8/255"):
        runner.execute_chapter(path, {"profile": "smoke", "device": "cpu", "attack_eps": 4.0}, tmp_path,
                               failed_dir=tmp_path / "failed", log=lambda *a: None)
