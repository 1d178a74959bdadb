"""Chapter 02 (Paper B) executes at profile=smoke and publishes computed verdicts."""
from __future__ import annotations

import json

from freqlib.verdicts import VERDICTS


def test_chapter_02_smoke(executed_chapter):
    path, glued = executed_chapter("02")
    assert path.is_file()
    claims = {c["claim"]: c for c in json.loads(glued["claims"])}
    assert set(claims) == {"B1", "B2"}
    for cid, c in claims.items():
        assert c["verdict"] in VERDICTS and glued[f"{cid}_verdict"] == c["verdict"]
        assert c["profile"] == "smoke"
    assert "10.97" in claims["B2"]["paper's value"]
    assert glued["c_variant"] in ("CIFAR-10-C (regenerated)", "CIFAR-10-C (released)")
    assert glued["B1_rule_agrees"] == "every"            # banded layers keep their construction
    float(glued["B1_c_spread"]), float(glued["B1_clean_spread"]), float(glued["B2_gain"])
    for key in ("zoo_high_standard", "zoo_high_linf_at", "zoo_high_gaussian", "B2_learned_high"):
        assert glued[key].endswith("%")
