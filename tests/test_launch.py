"""Launching a chapter elsewhere: the install cell, papermill's view of the
parameters, the one repository URL, and launch buttons only when it is set."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from freqlib.book import (INSTALL_TAG, INSTALL_TAGS, install_cell_source, repository_settings,
                          set_install_cell, set_repository)
from freqlib.runner import chapter_parameters, chapters_in_toc
from freqlib.site import launch_links

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = chapters_in_toc(ROOT)
WITH_INSTALL_CELL = [c for c in CHAPTERS if INSTALL_TAG in c.read_text()]


def _install_cell(chapter: Path):
    cells = [c for c in nbformat.read(chapter, as_version=4).cells
             if INSTALL_TAG in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{chapter.name}: {len(cells)} install cells"
    return cells[0]


# Runs an install cell with every way of starting a process replaced by a
# recorder; HIDE makes freqlib look uninstalled (as on Colab).
PROBE = """
import json, os, subprocess, sys
calls = []
def record(*args, **kwargs):
    calls.append([str(a) for a in (args[0] if args else kwargs["args"])])
    return 0
subprocess.check_call = subprocess.call = subprocess.run = subprocess.Popen = record
os.system = lambda command: calls.append(command) or 0
if {hide}:
    import importlib.util
    real = importlib.util.find_spec
    importlib.util.find_spec = lambda name, *a, **k: None if name == "freqlib" else real(name, *a, **k)
exec(compile({source!r}, "install-cell", "exec"))
print("CALLS=" + json.dumps(calls))
print("FREQLIB_DATA=" + os.environ.get("FREQLIB_DATA", ""))
"""


def run_install_cell(source: str, cwd: Path, hide: bool):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FREQLIB_DATA", None)
    res = subprocess.run([sys.executable, "-c", PROBE.format(hide=hide, source=source)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    out = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    return res, json.loads(out.get("CALLS", "null")), out.get("FREQLIB_DATA")


def test_chapters_00_and_05_have_the_install_cell():
    assert {c.stem[:2] for c in WITH_INSTALL_CELL} >= {"00", "05"}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.stem[:2])
def test_every_chapter_has_the_install_cell(chapter):
    """After merging, `python -m freqlib set-repository ""` inserts it into every chapter."""
    assert chapter in WITH_INSTALL_CELL, f"{chapter.name} has no install cell; run python -m freqlib set-repository ''"


@pytest.mark.parametrize("chapter", WITH_INSTALL_CELL, ids=lambda c: c.stem[:2])
def test_install_cell_is_first_hidden_and_names_the_configured_repository(chapter):
    cell = _install_cell(chapter)
    tags = cell.metadata["tags"]
    assert set(INSTALL_TAGS) <= set(tags) and "parameters" not in tags
    first_code = next(c for c in nbformat.read(chapter, as_version=4).cells if c.cell_type == "code")
    assert INSTALL_TAG in first_code.metadata.get("tags", []), f"{chapter.name}: the install cell must run first"
    assert not cell.get("outputs") and cell.get("execution_count") is None
    assert cell.source == install_cell_source(*repository_settings(ROOT)), \
        f"{chapter.name}: install cell differs from _config.yml; run python -m freqlib set-repository URL"


@pytest.mark.parametrize("chapter", WITH_INSTALL_CELL, ids=lambda c: c.stem[:2])
def test_install_cell_does_nothing_where_freqlib_imports(chapter, tmp_path):
    res, calls, data = run_install_cell(_install_cell(chapter).source, tmp_path, hide=False)
    assert res.returncode == 0, res.stderr
    assert calls == [] and data == "", f"the install cell started {calls} although freqlib imports"


def test_install_cell_installs_from_the_repository_when_freqlib_is_missing(tmp_path):
    source = install_cell_source("https://github.com/owner/book", "dev")
    res, calls, data = run_install_cell(source, tmp_path, hide=True)
    assert res.returncode == 0, res.stderr
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "git+https://github.com/owner/book@dev"]]
    assert data == str(tmp_path / "freqlib-data")       # data beside the notebook, not in site-packages


def test_install_cell_prefers_the_checkout_it_sits_in():
    res, calls, _ = run_install_cell(install_cell_source("https://github.com/owner/book"), ROOT / "chapters", hide=True)
    assert res.returncode == 0, res.stderr
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "-e", str(ROOT)]]


def test_install_cell_without_repository_stops_with_one_clear_line(tmp_path):
    res, calls, _ = run_install_cell(install_cell_source(""), tmp_path, hide=True)
    assert res.returncode != 0 and calls is None
    assert "ModuleNotFoundError: freqlib is not installed and this copy of the book names no repository" in res.stderr


@pytest.mark.parametrize("chapter", WITH_INSTALL_CELL, ids=lambda c: c.stem[:2])
def test_papermill_still_injects_after_the_parameters_cell(chapter):
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    nb = load_notebook_node(str(chapter))          # as papermill reads it (every cell gets a tags list)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    i_install = next(i for i, t in enumerate(tags) if INSTALL_TAG in t)
    i_params = next(i for i, t in enumerate(tags) if "parameters" in t)
    assert i_install < i_params
    out = parameterize_notebook(nb, {"seed": 3, "profile": "smoke"}, kernel_name="python3")
    out_tags = [c.metadata.get("tags", []) for c in out.cells]
    i_injected = next(i for i, t in enumerate(out_tags) if "injected-parameters" in t)
    assert "parameters" in out_tags[i_injected - 1] and i_injected == i_params + 1
    assert "seed = 3" in out.cells[i_injected].source
    assert out.cells[i_install].source == nb.cells[i_install].source      # untouched, still first
    assert set(chapter_parameters(chapter)) >= {"profile", "device", "seed"}


# ------------------------------------------------------------- set_repository
@pytest.fixture
def book_copy(tmp_path):
    for name in ("_config.yml", "_toc.yml", "CITATION.cff"):
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "chapters").mkdir()
    for chapter in WITH_INSTALL_CELL[:1]:
        shutil.copy2(chapter, tmp_path / "chapters" / chapter.name)
    return tmp_path


def test_set_repository_writes_one_url_everywhere_and_back(book_copy):
    import yaml
    before = {p: p.read_bytes() for p in book_copy.rglob("*") if p.is_file()}
    chapter = next((book_copy / "chapters").glob("*.ipynb"))
    set_repository("https://github.com/owner/book.git", branch="dev", root=book_copy, chapters=[chapter])
    assert repository_settings(book_copy) == ("https://github.com/owner/book", "dev")
    config = (book_copy / "_config.yml").read_text()
    assert "The one place that names the book's repository" in config      # comments kept
    assert yaml.safe_load(config)["launch_buttons"] == yaml.safe_load(before[book_copy / "_config.yml"])["launch_buttons"]
    cff = yaml.safe_load((book_copy / "CITATION.cff").read_text())
    assert cff["repository-code"] == "https://github.com/owner/book"
    assert _install_cell(chapter).source == install_cell_source("https://github.com/owner/book", "dev")
    assert chapter_parameters(chapter)                                      # still a valid chapter
    set_repository("", branch="main", root=book_copy, chapters=[chapter])
    after = {p: p.read_bytes() for p in book_copy.rglob("*") if p.is_file()}
    assert after == before, [p.name for p in before if before[p] != after.get(p)]


def test_set_repository_refuses_what_is_not_a_repository_url(book_copy):
    with pytest.raises(ValueError, match="must look like https://github.com/OWNER/REPO"):
        set_repository("github.com/owner", root=book_copy, chapters=[])


def test_set_install_cell_inserts_before_the_parameters_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"),
                nbformat.v4.new_code_cell("profile = 'auto'\ndevice = 'auto'\nseed = 0",
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(profile)")]
    path = tmp_path / "ch.ipynb"
    nbformat.write(nb, path)
    assert set_install_cell(path, "", "main") is True
    assert set_install_cell(path, "", "main") is False                    # idempotent
    cells = nbformat.read(path, as_version=4).cells
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "code"]
    assert INSTALL_TAG in cells[1].metadata["tags"] and "parameters" in cells[2].metadata["tags"]


# --------------------------------------------- launch buttons in a small book
def _small_book(root: Path, url: str) -> Path:
    """A two-page book with the real _config.yml, references and the install cell."""
    from freqlib.book import _write_config
    from freqlib.papers import cite_paper
    shutil.copy2(ROOT / "_config.yml", root / "_config.yml")
    shutil.copy2(ROOT / "references.bib", root / "references.bib")
    shutil.copy2(ROOT / "bibliography.md", root / "bibliography.md")
    _write_config(root, url, "main")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n  - file: bibliography\n")
    (root / "intro.md").write_text(
        "# Small book\n\nA formula $P(f) \\propto f^{-\\alpha}$ and a citation {cite:p}`yin2019fourier`.\n\n"
        "| claim | paper |\n|---|---|\n" + "".join(f"| {c} | {cite_paper(c)} |\n" for c in ("A1", "B1", "C2")))
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# A chapter\n\n$$x = \\frac{1}{2}$$"),
                nbformat.v4.new_code_cell("profile = 'auto'", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, root / "chapter.ipynb")
    set_install_cell(root / "chapter.ipynb", url, "main")
    res = subprocess.run([str(Path(sys.executable).with_name("jupyter-book")), "build", str(root), "-W", "-n",
                          "--keep-going"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0 and "warning" not in res.stderr.lower(), res.stdout[-3000:] + res.stderr[-3000:]
    return root / "_build" / "html"


@pytest.fixture(scope="module")
def small_books(tmp_path_factory):
    return {url: _small_book(tmp_path_factory.mktemp("book"), url)
            for url in ("", "https://github.com/owner/book")}


def test_no_launch_or_repository_button_without_a_url(small_books):
    html = small_books[""]
    assert launch_links(html) == {}
    assert "find_spec" not in (html / "chapter.html").read_text()   # the install cell is not shown


def test_binder_and_colab_buttons_with_a_url(small_books):
    links = launch_links(small_books["https://github.com/owner/book"])
    page = (small_books["https://github.com/owner/book"] / "chapter.html").read_text()
    assert "https://mybinder.org/v2/gh/owner/book/main?urlpath=tree/chapter.ipynb" in page
    assert "https://colab.research.google.com/github/owner/book/blob/main/chapter.ipynb" in page
    assert "btn-source-repository-button" in links["intro.html"] and "/issues/new" in links["intro.html"]


def test_small_book_serves_mathjax_and_links_ledger_papers(small_books):
    from freqlib.site import citation_problems
    for html in small_books.values():
        assert (html / "_static" / "mathjax" / "tex-svg.js").is_file()
        assert 'src="_static/mathjax/tex-svg.js"' in (html / "intro.html").read_text()
        assert citation_problems(html, html.parents[1]) == []
        intro = (html / "intro.html").read_text()
        for key in ("wang2020towards", "jia2019exploring", "karantzas2022understanding"):
            assert f"{{cite:t}}`{key}`" not in intro
        assert intro.count('href="bibliography.html#') >= 4     # 3 ledger papers + 1 citation


def test_the_site_folds_the_cell_papermill_injects(tmp_path):
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    from freqlib.runner import _fold_injected_parameters
    chapter = WITH_INSTALL_CELL[0]
    nb = parameterize_notebook(load_notebook_node(str(chapter)), {"seed": 2}, kernel_name="python3")
    path = tmp_path / chapter.name
    nbformat.write(nb, path)
    _fold_injected_parameters(path)
    folded = nbformat.read(path, as_version=4)
    injected = [c for c in folded.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "hide-input" in injected[0].metadata["tags"]
    assert "seed = 2" in injected[0].source                              # folded, not removed
    others = [c for c in folded.cells if c is not injected[0]]
    assert not any("hide-input" in c.metadata.get("tags", []) for c in others)
    assert [c.source for c in folded.cells] == [c.source for c in nb.cells]
