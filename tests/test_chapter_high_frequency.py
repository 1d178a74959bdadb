"""Chapter 01 (Paper A) executes at profile=smoke, and its verdicts follow from the glued
numbers and their intervals under the criteria of freqlib.paper_a."""
import json
import math
import re

import nbformat

from freqlib import paper_a
from freqlib.verdicts import VERDICTS, Estimate, verdict


def _estimate(d: dict) -> Estimate:
    return Estimate(d["value"], d["low"], d["high"], d["over"], d["n"])


def test_verdicts_follow_from_the_glued_numbers(executed_chapter):
    path, glued = executed_chapter("01")
    for key in ("profile", "variant", "numbers", "claims", "deviations", "A1_verdict", "A2_verdict", "A3_verdict"):
        assert key in glued, f"{key} not glued"
    assert glued["profile"] == "smoke"
    numbers = {k: _estimate(v) for k, v in json.loads(glued["numbers"]).items()}
    claims = paper_a.claims(int(glued["r_small"]))
    ledger = {row["claim"]: row for row in json.loads(glued["claims"])}
    assert list(ledger) == ["A1", "A2", "A3"]
    for claim in claims:
        row = ledger[claim.id]
        assert row["variant"] == glued["analysis_variant"]
        # every criterion was judged on its own number, with an interval around the value
        assert len(row["states"]) == len(claim.criteria)
        for crit, state in zip(claim.criteria, row["states"]):
            e = numbers[crit.key]
            assert crit.key in row["numbers"]
            if math.isfinite(e.value):
                assert e.n > 0 and e.over != "exact", crit.key          # an interval over a sample
            assert crit.judge(numbers) == state, (claim.id, crit.key, e)
        assert glued[f"{claim.id}_verdict"] in VERDICTS
        assert glued[f"{claim.id}_verdict"] == verdict(row["states"]) == row["verdict"]
        # one training seed at smoke, judged on its own as well
        assert row["seed_verdicts"] == [row["verdict"]]
        # ours shows intervals
        assert glued[f"{claim.id}_ours"] and "[" in glued[f"{claim.id}_ours"], claim.id
        # the JPEG pixels of the same images were judged by the same criteria
        jpeg = row["variants"]["JPEG-q75 pixels"]      # smoke: every analysis on original pixels
        assert len(jpeg["states"]) == len(claim.criteria) and jpeg["verdict"] in VERDICTS
        assert jpeg["verdict"] == verdict(jpeg["states"])


def test_deviations_are_listed_with_dated_criterion_changes(executed_chapter):
    _, glued = executed_chapter("01")
    dev = json.loads(glued["deviations"])
    assert dev["chapter"] == "01"
    rows = dev["rows"]
    criteria = [r for r in rows if r["aspect"] == "criterion"]
    assert len(criteria) >= 3 and all(r["date"] == "2026-11-24" for r in criteria)
    assert sum("revised after review" in r["paper"] for r in criteria) == 4
    text = " ".join(r["paper"] + " " + r["ours"] for r in rows)
    for topic in ("JPEG", "SimBA", "Square", "band 31", "maximum", "cos(θ + π/4)", "un-normalised", "train_data"):
        assert topic in text, topic
    measured = [r for r in rows if r["effect"] != "not measured"]
    assert len(measured) >= 4                # JPEG, rescaling, band 31, the reference's spectrum metric, ...
    # training seeds: one at smoke, so the first seed cannot be set against the pooled verdicts
    seeds = next(r for r in rows if r["ours"].startswith("1 training seed(s) of ST and AT"))
    assert seeds["effect"].startswith("not measured: one training seed") and seeds["date"] == "2026-11-26"


def test_chapter_figures_and_no_errors(executed_chapter, unglued):
    path, glued = executed_chapter("01")
    nb = nbformat.read(path, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 10, f"only {len(figures)} figures"
    assert unglued(path, glued) == []           # every glue reference in the prose names a glued value
    cites = {m for c in nb.cells if c.cell_type == "markdown" for m in re.findall(r"\{cite:[tp]\}`([^`]+)`", c.source)}
    assert {"wang2020towards", "wang2020high", "guo2019simple", "yin2019fourier"} <= cites


def test_source_notebook_is_clean():
    from pathlib import Path
    nb = nbformat.read(Path(__file__).resolve().parents[1] / "chapters" / "01_high_frequency_reliance.ipynb", 4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for name in ("profile", "device", "seed", "seeds"):
        assert re.search(rf"^{name} = ", params[0].source, re.M), name
