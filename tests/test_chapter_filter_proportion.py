"""Chapter 02 (Paper B) executes at profile=smoke and publishes computed verdicts
with intervals, the JPEG-pixel comparison and its deviations."""
from __future__ import annotations

import json

from freqlib.verdicts import STATES, VERDICTS


def test_chapter_02_smoke(executed_chapter, unglued):
    path, glued = executed_chapter("02")
    assert path.is_file() and unglued(path, glued) == []          # every number the prose pastes is glued
    claims = {c["claim"]: c for c in json.loads(glued["claims"])}
    assert set(claims) == {"B1", "B2"}
    for cid, c in claims.items():
        assert c["verdict"] in VERDICTS and glued[f"{cid}_verdict"] == c["verdict"]
        assert c["profile"] == "smoke"
        assert len(c["states"]) == 2 and set(c["states"]) <= set(STATES)
        assert c["seed_verdicts"] and all(v in VERDICTS for v in c["seed_verdicts"])
        for name, e in c["numbers"].items():                       # every number has its interval
            assert e["over"] == "images", (cid, name, e)
            assert e["low"] <= e["value"] <= e["high"] or (cid == "B2" and e["value"] != e["value"]), (cid, name, e)
        assert "[" in c["ours"]                                     # ours carries the intervals
        jpeg = c["variants"]["JPEG-q75 pixels"]
        assert jpeg["verdict"] in VERDICTS and len(jpeg["states"]) == 2
    assert set(claims["B1"]["numbers"]) == {"c_slope", "clean_slope"}
    assert set(claims["B2"]["numbers"]) == {"c_gain", "clean_drop"}
    assert "10.97" in claims["B2"]["paper's value"] and "relative" in claims["B2"]["paper's value"]
    # B2 is judged only when its budget check holds; when not, the measured states stay in "ours"
    judged = glued["B2_gate_text"].startswith("holds")
    assert judged or (claims["B2"]["verdict"] == "inconclusive" and claims["B2"]["ours"].startswith("not judged"))
    assert "[" in glued["B2_check"]
    # glued, not hand-written: the band split and the rule's radius
    assert int(glued["n_high_band"]) + int(glued["n_low_band"]) == 9 and glued["r_cut"] == "12.77"
    for key in ("B1_direction", "B1_best_c", "B1_best_clean"):            # directions come with paired intervals
        assert "[" in glued[key], key
    s = claims["B1"]["states"]                                      # the rule change names this run's states
    assert f"this rule: mean-C slope {s[0]}, clean slope {s[1]} → {claims['B1']['verdict']}" in glued["B1_rule_change"]
    assert glued["c_variant"] == "CIFAR-10-C (regenerated from original test images 0–99)"
    assert glued["jpeg_variant"] == "CIFAR-10-C (regenerated from JPEG-q75 pixels of test images 0–99)"
    assert glued["c_frost"] == "the original frost photographs"
    n_clean = int(glued["clean_n"].replace(",", ""))                # the most test images drawn, not the whole file
    assert f"original CIFAR-10 test images 0–{n_clean - 1};" in claims["B1"]["variant"] + ";"
    assert glued["B1_rule_agrees"] == "every"                       # banded layers keep their construction
    assert float(glued["B1_null_c"]) > 0 and float(glued["B1_null_clean"]) > 0     # five equal models still spread
    for key in ("B1_c_slope", "B1_clean_slope", "B2_gain", "B2_drop", "B2_vs_ablation"):
        assert "[" in glued[key] and "]" in glued[key], key
    for key in ("zoo_high_standard", "zoo_high_linf_at", "zoo_high_gaussian", "B2_learned_high"):
        assert glued[key].endswith("%")
    dev = json.loads(glued["deviations"])
    assert dev["chapter"] == "02" and len(dev["rows"]) >= 10
    assert {r["aspect"] for r in dev["rows"]} >= {"method", "training", "architecture", "dataset", "criterion"}
    assert all(r["date"] == "2026-11-24" for r in dev["rows"] if r["aspect"] == "criterion")
    revised = [r for r in dev["rows"] if r["aspect"] == "criterion" and "previous rule" in r["effect"]]
    assert len(revised) == 1 and "this rule" in revised[0]["effect"]             # measured, old vs new state
    assert "no whitening" in glued["budget_text"]
    # one training seed at smoke: the prose says the intervals leave the seed term out
    assert glued["seed_limits"].startswith("The intervals are over test images only: with one training seed (0)")
    assert glued["B1_over"] == "paired over test images" and glued["B1_seed_part"].startswith("This run has one")
    assert glued["B1_clean_half_images"] == glued["B1_clean_half"]                  # one seed: the same interval


def test_chapter_02_budgets_request_the_papers_setting():
    """Static: every profile's budget turns whitening off, the paper profile asks for
    ResNet-18 explicitly, and every model of B1/B2 is trained with the budget."""
    import re
    from pathlib import Path

    import nbformat
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "chapters" / "02_filter_proportion.ipynb", 4)
    src = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    budgets = re.findall(r"budget=dict\((.*)\)", src)                # to the line's last parenthesis
    assert len(budgets) == 3 and all("whiten=False" in b for b in budgets), budgets
    assert 'arch=ctx.arch, widths=(64,)' in budgets[2]
    assert 'setup_chapter(profile, device, seed, seeds, arch={"paper": "resnet18"})' in src   # ResNet-18 at paper
    trained = re.findall(r"seed=s\b[^)]*", src)                        # the models this chapter trains
    assert len(trained) == 5 and all(t.startswith("seed=s, **budget") for t in trained), trained
