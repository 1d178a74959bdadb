"""Every chapter executes at profile=smoke, and the site builds from the result
and renders in a real browser."""
import json
import os
import re

import pytest

from freqlib.runner import build_site, chapters_in_toc
from freqlib.verdicts import VERDICTS

CHAPTERS = [c.stem for c in chapters_in_toc()]
API_MODULES = ["spectral", "attribution", "heatmap", "masks", "mask_training", "mask_reliability",
               "mask_generalisation", "mask_geometry", "probe", "similarity", "corruptions", "frost",
               "corruption_sets", "attacks", "evaluate", "data", "zoo", "report", "verdicts", "synthetic",
               "validity", "shortcut"]


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
    # the class signal of the planted data lies (almost) wholly inside its band, as the prose says
    low, high = (float(v.rstrip("%")) for v in glued["planted_in_band"].split(" to "))
    assert 90 <= low <= high <= 100


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_smoke_has_computed_verdicts(executed_chapter, chapter):
    path, glued = executed_chapter(chapter)
    assert glued["variant"].startswith("CIFAR-10")
    # the run card names the pixels analysed, not only those trained on (every chapter draws test images)
    shown = glued.get("analysis_variant", "")
    assert shown == glued["variant"] or "analysed on" in shown, f"{chapter}: no analysis variant (ctx.record_variant)"
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


def test_bootstrap_statistics_keep_to_their_device(executed_chapter, device_report):
    """No statistic of any chapter builds a CPU tensor beside its device samples (what would
    crash the CUDA run only): each was re-run on meta tensors in the smoke kernels."""
    for chapter in CHAPTERS:
        executed_chapter(chapter)
    rows = [json.loads(line) for line in device_report.read_text().splitlines()]
    if not rows and os.environ.get("FREQLIB_SMOKE_DIR"):
        pytest.skip("chapters reused from FREQLIB_SMOKE_DIR: no kernel ran the check")
    mixed = [f"{r['statistic']}: {r['error']} at {r['where'][-1:]}" for r in rows if r["kind"] == "MIXED"]
    assert not mixed, "statistics mixing devices:\n" + "\n".join(mixed)
    checked = sum(r["kind"] == "ok" for r in rows)
    assert checked >= 0.9 * len(rows) and checked > 100, f"only {checked} of {len(rows)} statistics checkable"


def test_site_builds_with_run_cards_and_ledger(smoke_site):
    intro = (smoke_site / "intro.html").read_text()
    assert "Claims ledger" in intro
    ledger = intro.split("Claims ledger", 2)[-1]
    for claim in ("A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "C4"):  # every chapter's claims
        assert f">{claim}<" in ledger, f"{claim} missing from the ledger"
    for claim in ("A1", "B1", "C1", "D1"):      # each claim's row carries a verdict word (the prose above does too)
        row = ledger.split(f">{claim}<", 1)[1].split("</tr>", 1)[0]
        assert any(v in row for v in VERDICTS), claim
    for chapter in CHAPTERS:
        page = (smoke_site / "chapters" / f"{chapter}.html").read_text()
        assert "Run card" in page and "Traceback" not in page


def cut_table_cells(html: str) -> list[str]:
    """Table cells pandas shortened with '...' (its default max_colwidth of 50)."""
    return [c for c in re.findall(r"<td>([^<]*)</td>", html) if c.rstrip().endswith("...")]


def test_site_tables_show_whole_sentences(smoke_site):
    """Criteria, deviations and verdict notes are sentences: a reader must see them whole."""
    for chapter in CHAPTERS:
        cut = cut_table_cells((smoke_site / "chapters" / f"{chapter}.html").read_text())
        assert not cut, f"{chapter}: {len(cut)} table cells cut short, e.g. {cut[0]!r}"


def test_site_pages_render_in_chromium(smoke_site):
    """Every page, opened with the network cut off (as in CI and for a reader
    offline): figures load, formulas are typeset by the site's own MathJax, no
    error output, no console error, no request outside the site."""
    from freqlib.site import find_chromium, internal_link_problems, page_problems
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing on CI: the set-up in the Makefile should install it")
        pytest.skip("Chromium not installed")
    assert internal_link_problems(smoke_site) == []
    problems = page_problems(smoke_site)
    assert {f"chapters/{c}.html" for c in CHAPTERS} | {f"api/{m}.html" for m in API_MODULES} \
        | {"use_freqlib.html", "bibliography.html", "api/index.html"} <= set(problems)
    assert {page: p for page, p in problems.items() if p} == {}


def test_site_citations_link_to_the_bibliography(smoke_site):
    from freqlib.site import citation_problems, markup_problems
    assert citation_problems(smoke_site) == []
    assert markup_problems(smoke_site) == []          # no glued text or typo showing markdown as text
    ledger = (smoke_site / "intro.html").read_text().split("Claims ledger", 2)[-1]
    assert "bibliography.html#" in ledger


def test_site_shows_launch_buttons_only_with_a_repository(smoke_site):
    from freqlib.book import repository_settings
    from freqlib.site import launch_links
    url, _ = repository_settings()
    buttons = launch_links(smoke_site)
    if not url:
        assert buttons == {}, f"launch or repository buttons without a repository URL: {buttons}"
    else:
        assert {"mybinder.org", "colab.research.google.com"} <= set(buttons[f"chapters/{CHAPTERS[0]}.html"])


def test_site_serves_mathjax_itself_and_folds_injected_parameters(smoke_site):
    assert (smoke_site / "_static" / "mathjax" / "tex-svg.js").is_file()
    page = (smoke_site / "chapters" / f"{CHAPTERS[0]}.html").read_text()
    assert "_static/mathjax/tex-svg.js" in page and "cdn.jsdelivr.net" not in page
    assert "tag_injected-parameters tag_hide-input" in page          # papermill's copy folded
    assert "find_spec" not in page                                    # the install cell is not shown


@pytest.mark.parametrize("module", API_MODULES)
def test_api_pages_document_their_module(smoke_site, module):
    import importlib
    page = (smoke_site / "api" / f"{module}.html").read_text()
    names = getattr(importlib.import_module(f"freqlib.{module}"), "__all__")
    documented = [n for n in names if callable(getattr(importlib.import_module(f"freqlib.{module}"), n))]
    missing = [n for n in documented if f'id="freqlib.{module}.{n}"' not in page]
    assert documented and not missing, f"api/{module}.html lacks {missing}"


def test_unexecuted_chapter_gets_a_placeholder_page(tmp_path):
    """A chapter with no executed copy is a title and a how-to-run note, never its source
    (whose glue references would fail the -W build)."""
    import nbformat
    from freqlib.runner import _placeholder
    from freqlib.io import repo_root
    source = repo_root() / "chapters" / "03_fourier_masks.ipynb"
    _placeholder(source, tmp_path / "03.ipynb", tmp_path / "paper")
    nb = nbformat.read(tmp_path / "03.ipynb", as_version=4)
    text = "".join(c.source for c in nb.cells)
    assert len(nb.cells) == 1 and text.startswith("# ") and "{glue" not in text
    assert "python -m freqlib run 03_fourier_masks" in text and "`paper`" in text


def test_glue_from_an_unexecuted_chapter_is_replaced(tmp_path):
    import nbformat
    from freqlib.runner import _unlink_glue
    text = ("Found: {glue:text}`06_causal_frequencies.ipynb::found_summary`; ours {glue:text}`n_found`.\n\n"
            "```{glue} lens_validity_table\n:doc: 06_causal_frequencies.ipynb\n```\n")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)]), tmp_path / "04.ipynb")
    _unlink_glue(tmp_path, ["06_causal_frequencies"])
    out = nbformat.read(tmp_path / "04.ipynb", as_version=4).cells[0].source
    assert "06_causal" not in out and "{glue:text}`n_found`" in out and out.count("not executed") == 2
