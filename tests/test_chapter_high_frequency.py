"""Chapter 01 (Paper A) executes at profile=smoke and glues computed verdicts."""
import json
import math

import nbformat

from freqlib.verdicts import VERDICTS, verdict


def test_chapter_glues_computed_verdicts(executed_chapter):
    path, glued = executed_chapter("01")
    for key in ("profile", "variant", "numbers", "claims", "A1_verdict", "A2_verdict", "A3_verdict"):
        assert key in glued, f"{key} not glued"
    assert glued["profile"] == "smoke"
    d = json.loads(glued["numbers"])   # JSON, so an undefined share (NaN) survives
    for key in ("st_high_small", "st_low_small", "at_low_small", "st_of_upper", "at_of_upper",
                "st_of_centroid", "at_of_centroid", "image_upper", "pgd_st_upper"):
        assert isinstance(d[key], float) and math.isfinite(d[key]), (key, d.get(key))
    assert 0 <= d["st_high_small"] <= 1 and 0 <= d["image_upper"] <= 1
    assert 0 <= d["st_of_centroid"] <= 31
    # the verdicts follow from the glued numbers (same rules as the chapter's criteria)
    expected = {
        "A1": verdict([d["st_high_small"] >= 0.2, d["st_of_upper"] > d["at_of_upper"]]),
        "A2": verdict([d["pgd_st_upper"] > d["image_upper"], d["square_st_upper"] > d["image_upper"],
                       d["pgd_st_upper"] > 0.5]),
        "A3": verdict([d["at_of_centroid"] < d["st_of_centroid"], d["at_low_small"] > d["st_low_small"]]),
    }
    for cid, want in expected.items():
        assert glued[f"{cid}_verdict"] in VERDICTS
        assert glued[f"{cid}_verdict"] == want, cid
        assert glued[f"{cid}_ours"], f"{cid} has no summary of our numbers"
    ledger = json.loads(glued["claims"])
    assert [row["claim"] for row in ledger] == ["A1", "A2", "A3"]
    assert all(row["variant"] == glued["variant"] for row in ledger)


def test_chapter_figures_and_no_errors(executed_chapter):
    path, glued = executed_chapter("01")
    nb = nbformat.read(path, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 10, f"only {len(figures)} figures"
    # every glue reference in the prose names a glued value
    import re
    refs = {m for c in nb.cells if c.cell_type == "markdown" for m in re.findall(r"\{glue:text\}`([^`]+)`", c.source)}
    missing = {r for r in refs if r.split(":")[0] not in glued}
    assert not missing, f"prose refers to unglued names: {sorted(missing)}"
