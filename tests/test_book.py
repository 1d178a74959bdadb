"""Every chapter executes at profile=smoke, and the site builds from the result
and renders in a real browser."""
import json
import os
import re

import pytest

from freqlib.runner import build_site, chapters_in_toc
from freqlib.verdicts import VERDICTS

CHAPTERS = [c.stem for c in chapters_in_toc()]


@pytest.fixture(scope="session")
def smoke_site(executed_chapter, smoke_dir, tmp_path_factory):
    for chapter in CHAPTERS:
        executed_chapter(chapter)
    return build_site(smoke_dir, output_root=tmp_path_factory.mktemp("site"), log=lambda *a: None)


def test_primer_smoke(executed_chapter):
    path, glued = executed_chapter("00")
    assert glued["profile"] == "smoke" and glued["device"] == "cpu"
    assert glued["variant"].startswith("CIFAR-10")
    assert 1.0 < glued["power_alpha"] < 4.0          # natural-image spectra fall off as a power law
    assert float(glued["dct_upper_share"].rstrip("%")) < 25  # bands >= 16 hold little energy
    assert re.fullmatch(r"\d+\.\d\d%", glued["standard_accuracy"])


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_smoke_has_computed_verdicts(executed_chapter, chapter):
    path, glued = executed_chapter(chapter)
    assert glued["variant"].startswith("CIFAR-10")
    makes_claims = "publish(" in next(c for c in chapters_in_toc() if c.stem == chapter).read_text()
    assert ("claims" in glued) == makes_claims, f"{chapter}: claims glued={'claims' in glued}, publish() in source={makes_claims}"
    if not makes_claims:
        return
    claims = json.loads(glued["claims"])
    assert claims, "a claim chapter must publish its claims"
    for row in claims:
        assert row["verdict"] in VERDICTS
        assert glued[f"{row['claim']}_verdict"] == row["verdict"]
        assert row["ours"] and row["paper's value"]


def test_site_builds_with_run_cards_and_ledger(smoke_site):
    intro = (smoke_site / "intro.html").read_text()
    assert "Claims ledger" in intro
    ledger = intro.split("Claims ledger", 2)[-1]
    for claim in ("A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "C4"):  # every chapter's claims
        assert f">{claim}<" in ledger, f"{claim} missing from the ledger"
    assert any(v in ledger for v in VERDICTS)
    for chapter in CHAPTERS:
        page = (smoke_site / "chapters" / f"{chapter}.html").read_text()
        assert "Run card" in page and "Traceback" not in page


def test_site_pages_render_in_chromium(smoke_site):
    from freqlib.site import find_chromium, internal_link_problems, page_problems
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing on CI: the set-up in the Makefile should install it")
        pytest.skip("Chromium not installed")
    assert internal_link_problems(smoke_site) == []
    problems = page_problems(smoke_site)
    assert {f"chapters/{c}.html" for c in CHAPTERS} <= set(problems)
    assert {page: p for page, p in problems.items() if p} == {}
