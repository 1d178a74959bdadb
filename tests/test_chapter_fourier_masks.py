"""Chapter 03 (Fourier masks) at profile=smoke: it runs, and its verdicts are computed."""
from __future__ import annotations

import json

import pytest

from freqlib.verdicts import VERDICTS, verdict


@pytest.fixture(scope="module")
def chapter(executed_chapter):
    return executed_chapter("03")


def test_every_claim_has_a_computed_verdict(chapter):
    _, glued = chapter
    rows = {r["claim"]: r for r in json.loads(glued["claims"])}
    assert sorted(rows) == ["C1", "C2", "C3", "C4"]
    for cid, row in rows.items():
        assert glued[f"{cid}_verdict"] == row["verdict"] in VERDICTS
        marks = [part.strip()[0] for part in row["criteria"].split("; ")]
        assert set(marks) <= {"✔", "✘"} and marks
        # the verdict follows from the criteria, not typed
        assert row["verdict"] == verdict([m == "✔" for m in marks])
        assert row["ours"] and row["paper's value"]
        assert row["profile"] == "smoke"


def test_verdicts_agree_with_the_glued_numbers(chapter):
    _, glued = chapter
    rows = {r["claim"]: r for r in json.loads(glued["claims"])}
    ssim_ok = max(float(glued[k]) for k in glued if k.startswith("ssim_")) < 0.5
    assert rows["C4"]["criteria"].startswith("✔" if ssim_ok else "✘")
    acc = lambda k: float(str(glued[k]).rstrip("%")) / 100
    c1_first = all(acc(f"acc_masked_{n}") >= 0.98 * acc(f"acc_{n}")
                   for n in ("standard", "linf_at"))
    # glued accuracies are rounded to 0.01%, so only check clear-cut cases
    margin = min(abs(acc(f"acc_masked_{n}") - 0.98 * acc(f"acc_{n}")) for n in ("standard", "linf_at"))
    if margin > 1e-3:
        assert rows["C1"]["criteria"].startswith("✔" if c1_first else "✘")
    probe = float(str(glued["probe"]).rstrip("%")) / 100
    scrambled = float(str(glued["probe_scrambled"]).rstrip("%")) / 100
    assert 0.0 <= probe <= 1.0 and 0.0 <= scrambled <= 1.0
    assert rows["C3"]["criteria"].split("; ")[2].startswith("✔" if probe >= 0.2 and scrambled < 0.15 else "✘")


def test_prose_numbers_are_glued(chapter):
    path, glued = chapter
    import nbformat
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    import re
    for name in re.findall(r"\{glue:text\}`([^`]+)`", text):
        assert name in glued, f"prose refers to {name!r}, which the chapter never glued"
    assert glued["profile"] == "smoke" and glued["variant"]
