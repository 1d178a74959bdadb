"""The site checks themselves, on small hand-made pages: each finds the fault it
is for (and passes the page without it), so a green site test means something."""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from freqlib.site import (citation_problems, find_chromium, internal_link_problems, launch_links, markup_problems,
                          page_problems)

PAGE = """<!DOCTYPE html><html><head>{head}</head><body><main>
<p>Energy falls as <span class="math notranslate nohighlight">\\(P(f) \\propto f^{{-\\alpha}}\\)</span>.</p>
<div class="math notranslate nohighlight">\\[\\alpha \\approx 2\\]</div>
<pre>print("\\\\alpha in code is not a formula")</pre>
</main></body></html>"""
MATHJAX_CONFIG = '<script>window.MathJax = {"options": {"processHtmlClass": "math"}}</script>'


def needs_chromium():
    if find_chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing on CI: the set-up in the Makefile should install it")
        pytest.skip("Chromium not installed")


def _mathjax_copy(static: Path) -> None:
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    assert spec is not None, "sphinx-mathjax-offline is not installed"
    shutil.copytree(Path(spec.origin).parent / "static" / "mathjax", static / "mathjax")


def test_offline_math_check_passes_site_mathjax_and_fails_a_cdn(tmp_path):
    needs_chromium()
    _mathjax_copy(tmp_path / "_static")
    (tmp_path / "local.html").write_text(PAGE.format(
        head=MATHJAX_CONFIG + '<script defer src="_static/mathjax/tex-svg.js"></script>'))
    (tmp_path / "cdn.html").write_text(PAGE.format(
        head=MATHJAX_CONFIG + '<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js"></script>'))
    found = page_problems(tmp_path, ["local.html", "cdn.html"])
    assert found["local.html"] == []
    cdn = found["cdn.html"]
    assert "2 of 2 formulas not typeset by MathJax" in cdn
    assert any(p.startswith("TeX shown as text: \\(") for p in cdn)
    assert "needs the network: https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js" in cdn


def test_page_check_reports_script_errors_and_missing_images(tmp_path):
    needs_chromium()
    (tmp_path / "bad.html").write_text('<html><body><main><img src="missing.png">'
                                       '<script>const a = 1;</script><script>const a = 2;</script></main></body></html>')
    problems = page_problems(tmp_path, ["bad.html"])["bad.html"]
    assert "image did not load: missing.png" in problems
    assert any("already been declared" in p for p in problems)


def test_link_check_finds_missing_pages_and_anchors(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#here">ok</a> <a href="b.html#gone">x</a> '
                                     '<a href="c.html">y</a> <a href="#self">z</a><p id="self"></p>')
    (tmp_path / "b.html").write_text('<h1 id="here">B</h1>')
    assert internal_link_problems(tmp_path) == ["a.html: link b.html#gone names a missing anchor",
                                                "a.html: broken link c.html"]


def test_markup_check_finds_markdown_left_as_text_in_prose(tmp_path):
    """Glued text is pasted verbatim: backticks or a role in it show as text. Code, math and tables are not prose."""
    (tmp_path / "a.html").write_text("<p>the <code>`models`</code> parameter</p><pre>`x`</pre>"
                                     "<table><td>`cell`</td></table><p>fine, 2 ` 3, 2*3*4 and a * b * c</p>")
    assert markup_problems(tmp_path) == []
    (tmp_path / "b.html").write_text("<p>pooled (<em>`synthesis.pool_seeds`</em>)</p><li>see {doc}`06_x`</li>"
                                     "<p>B2 is *not judged*, a **found** band</p>")
    assert markup_problems(tmp_path) == ["b.html: markup shown as text: `synthesis.pool_seeds`",
                                         "b.html: markup shown as text: {doc}",
                                         "b.html: markup shown as text: `06_x`",
                                         "b.html: markup shown as text: *not judged*",
                                         "b.html: markup shown as text: **found**"]


def test_citation_check_wants_a_bibliography_link_per_cited_work(tmp_path):
    src, html = tmp_path / "src", tmp_path / "html"
    src.mkdir()
    html.mkdir()
    (src / "page.md").write_text("As {cite:t}`yin2019fourier` and {cite:p}`wang2020towards,jia2019exploring` show.")
    (html / "bibliography.html").write_text('<div id="id1"></div><div id="id2"></div><div id="id3"></div>')
    good = '<a href="bibliography.html#id1">1</a><a href="bibliography.html#id2">2</a><a href="bibliography.html#id3">3</a>'
    (html / "page.html").write_text(good)
    assert citation_problems(html, src) == []
    (html / "page.html").write_text('<a href="bibliography.html#id1">1</a><a href="bibliography.html#id9">2</a>')
    assert citation_problems(html, src) == ["page.html: cites 3 works but links 2 times to the bibliography",
                                            "page.html: citation link #id9 has no bibliography entry"]
    (html / "page.html").write_text(good + "{cite:t}`yin2019fourier`")
    assert citation_problems(html, src) == ["page.html: a citation role is shown as text"]


def test_launch_links_finds_binder_colab_and_repository_buttons(tmp_path):
    (tmp_path / "plain.html").write_text("<main>no buttons</main>")
    (tmp_path / "ch.html").write_text('<a href="https://mybinder.org/v2/gh/o/r/main">B</a>'
                                      '<a href="https://colab.research.google.com/github/o/r">C</a>')
    assert launch_links(tmp_path) == {"ch.html": ["mybinder.org", "colab.research.google.com"]}
