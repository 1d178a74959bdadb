"""Citing: CITATION.cff for the book, every citation key in references.bib, and
the paper of every claim mapped to its bibliography entry."""
import json
import re
from pathlib import Path

import pytest
import yaml

import freqlib
from freqlib.book import repository_settings
from freqlib.papers import PAPERS, SOURCES, cite_paper, paper_of
from freqlib.site import CITE_ROLE

ROOT = Path(__file__).resolve().parents[1]
BIB_KEYS = set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), re.M))
CFF_TOP = {"abstract", "authors", "cff-version", "commit", "contact", "date-released", "doi", "identifiers",
           "keywords", "license", "license-url", "message", "preferred-citation", "references", "repository",
           "repository-artifact", "repository-code", "title", "type", "url", "version"}


def test_citation_cff_is_valid_cff_1_2_0():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for field in ("message", "title", "authors"):            # required by the 1.2.0 schema
        assert cff.get(field), f"CITATION.cff lacks {field}"
    assert set(cff) <= CFF_TOP, f"keys the schema does not allow: {set(cff) - CFF_TOP}"
    for author in cff["authors"]:
        assert author.get("name") or author.get("family-names"), author
    assert cff["type"] in ("software", "dataset")
    assert str(cff["version"]) == freqlib.__version__
    for ref in cff["references"]:
        assert {"type", "title", "authors"} <= set(ref), ref.get("title")
        assert all(a.get("family-names") or a.get("name") for a in ref["authors"])


def test_citation_cff_cites_the_three_papers_and_the_configured_repository():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    urls = {ref.get("url") for ref in cff["references"]}
    for paper in PAPERS.values():
        assert f"https://arxiv.org/abs/{paper['arxiv']}" in urls, paper["short"]
    url, _ = repository_settings(ROOT)
    assert cff.get("repository-code", "") == url, "run python -m freqlib set-repository to keep them in step"


def test_papers_map_claims_to_bibliography_entries():
    for letter, paper in PAPERS.items():
        assert paper["key"] in BIB_KEYS, f"paper {letter}: {paper['key']} is not in references.bib"
        assert paper["arxiv"] in (ROOT / "references.bib").read_text()
        assert (ROOT / "chapters" / f"{paper['chapter']}.ipynb").is_file()
    assert paper_of("A2") is PAPERS["A"] and paper_of("C4")["key"] == "karantzas2022understanding"
    assert cite_paper("B1") == "{cite:t}`jia2019exploring`"
    for other in ("all of 01_high_frequency_reliance", "Z9", "", "A"):
        assert paper_of(other) is None and cite_paper(other, "—") == "—"
    for claim, keys in SOURCES.items():                      # chapter 6: ours, after the work it tests
        assert set(keys) <= BIB_KEYS and all(f"`{k}`" in cite_paper(claim) for k in keys)


def _sources():
    for path in sorted(ROOT.rglob("*")):
        if path.suffix in {".md", ".rst"} and not {"_build", ".venv", "data", "node_modules"} & set(path.parts) \
                and path.name not in {"README.md", "DEVELOPERS.md"} and "tests" not in path.parts:
            yield path, path.read_text()
        elif path.suffix == ".ipynb" and path.parent == ROOT / "chapters":      # sources, not executed copies
            cells = json.loads(path.read_text())["cells"]
            yield path, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


@pytest.mark.parametrize("path,text", list(_sources()), ids=lambda v: v.name if isinstance(v, Path) else "")
def test_every_cited_key_is_in_references_bib(path, text):
    keys = {k.strip() for a, b in CITE_ROLE.findall(text) for k in (a or b).split(",")}
    assert keys <= BIB_KEYS, f"{path.relative_to(ROOT)} cites keys missing from references.bib: {keys - BIB_KEYS}"


def test_the_book_cites_where_it_names_papers():
    """Pages that talk about the papers cite them (a citation links to the bibliography)."""
    texts = dict((p.relative_to(ROOT).as_posix(), t) for p, t in _sources())
    for page in ("intro.md", "instructor.md", "use_freqlib.md", "chapters/00_primer.ipynb",
                 "chapters/05_model_report.ipynb"):
        assert CITE_ROLE.search(texts[page]), f"{page} cites nothing"
    for paper in PAPERS.values():
        assert paper["key"] in texts["intro.md"]
