"""Chapter 6 at profile=smoke with two training seeds (two plantings and one adoption strength: the
same multi-seed code as quick and paper, half the networks): its claims pooled as every claim
chapter's are, and its lens-validity cells pooled over both seeds."""
from __future__ import annotations

import json

LIGHTER = {"seeds": 2, "plantings": "low,high", "adoption_psnrs": "29"}


def test_two_seeds_are_judged_each_and_pooled(executed_chapter, two_seeds_pooled):
    path, glued = executed_chapter("06", **LIGHTER)
    assert set(two_seeds_pooled(path, glued)) == {"D1", "D2", "D3", "D4"}
    validity = json.loads(glued["lens_validity"])
    assert validity["seeds"] == 2 and {r["planting"] for r in validity["records"]} == {"low", "high"}
    for r in validity["records"]:
        for key in ("auroc", "margin", "specificity"):
            assert r[key]["over"].startswith("2 seeds × "), (r["lens"], r["planting"], key, r[key]["over"])
