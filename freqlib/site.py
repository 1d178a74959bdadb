"""Checks of the built site as a reader sees it: every page opened in headless
Chromium with the network cut off (figures loaded, formulas typeset by the
site's own MathJax, no error output, no console errors), internal links and
their anchors resolved, citations linked to the bibliography, no markdown left
as text in the prose, no launch
button without a repository, and screenshots for the README."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from html import unescape as html_unescape
from urllib.parse import unquote, urlparse

__all__ = ["find_chromium", "internal_link_problems", "citation_problems", "markup_problems", "launch_links",
           "page_problems", "screenshot"]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Requests the checks cut off: only the site's own files (file://) and inline data load.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# A cut-off request logs this; the request itself is reported separately.
NETWORK_ERRORS = ("ERR_FAILED", "ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED", "ERR_CONNECTION_REFUSED",
                  "ERR_ADDRESS_UNREACHABLE", "ERR_NETWORK_ACCESS_DENIED")
ERROR_SELECTORS = ".output.stderr, .output.traceback, .cell_output .traceback, div.highlight-ipythontb"
# Launch providers and repository buttons (sphinx-book-theme markup).
LAUNCH_PATTERNS = ("mybinder.org", "colab.research.google.com", "/issues/new", "dropdown-launch-buttons",
                   "btn-source-repository-button", "btn-source-issues-button")
CITE_ROLE = re.compile(r"\{cite:[pt]\}`([^`]+)`|:cite:[pt]:`([^`]+)`")

# In the page: wait for MathJax, then count Sphinx's math nodes, those MathJax
# typeset, and TeX left as text outside code (delimiters, \commands).
MATH_SCRIPT = r"""async () => {
  const nodes = Array.from(document.querySelectorAll('span.math, div.math'));
  if (nodes.length && window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const typeset = nodes.filter(n => n.querySelector('mjx-container')).length;
  const main = (document.querySelector('main') || document.body).cloneNode(true);
  main.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  const text = main.textContent;
  const raw = (text.match(/\\\(|\\\[|\$\$|\\(?:frac|alpha|propto|approx|sum|mathrm|mathbf|left|right|cdot|pi)\b/g) || []);
  return {n: nodes.length, typeset: typeset, raw: Array.from(new Set(raw)).slice(0, 5)};
}"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _pages(html_dir: Path) -> list[Path]:
    return sorted(p for p in Path(html_dir).rglob("*.html") if "_static" not in p.parts)


_ID = re.compile(r'\bid="([^"]+)"')


def internal_link_problems(html_dir: Path) -> list[str]:
    """Links between pages of the site that point at a missing file or a missing anchor."""
    html_dir = Path(html_dir)
    ids: dict[Path, set[str]] = {}

    def anchors(page: Path) -> set[str]:
        if page not in ids:
            ids[page] = set(_ID.findall(page.read_text(errors="replace"))) if page.suffix == ".html" else set()
        return ids[page]

    problems = []
    for page in _pages(html_dir):
        for href in re.findall(r'href="([^"]+)"', page.read_text(errors="replace")):
            url = urlparse(href)
            if url.scheme or href.startswith(("mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(url.path)).resolve() if url.path else page.resolve()
            if not target.exists():
                problems.append(f"{page.relative_to(html_dir)}: broken link {href}")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in anchors(target):
                problems.append(f"{page.relative_to(html_dir)}: link {href} names a missing anchor")
    return problems


def _cited_keys(source: Path) -> list[str]:
    if source.suffix == ".ipynb":
        import json
        text = "\n".join("".join(c["source"]) for c in json.loads(source.read_text())["cells"]
                         if c["cell_type"] == "markdown")
    else:
        text = source.read_text()
    keys = []
    for a, b in CITE_ROLE.findall(text):
        keys += [k.strip() for k in (a or b).split(",") if k.strip()]
    return keys


def citation_problems(html_dir: Path, source_dir: Path | None = None) -> list[str]:
    """Every page whose source cites a work links each citation to an entry of the
    bibliography page, and no citation role is left as text.

    ``source_dir`` is the staged book (default: ``<html_dir>/../site-src``, where
    the runner stages it)."""
    html_dir = Path(html_dir)
    source_dir = Path(source_dir) if source_dir else html_dir.parent / "site-src"
    bib = html_dir / "bibliography.html"
    if not bib.is_file():
        return ["no bibliography.html in the site"]
    entries = set(_ID.findall(bib.read_text()))
    problems = []
    for source in sorted(p for p in source_dir.rglob("*") if p.suffix in {".md", ".rst", ".ipynb"}
                         and "_build" not in p.parts and p.name != "README.md"):
        keys = _cited_keys(source)
        page = html_dir / source.relative_to(source_dir).with_suffix(".html")
        if not keys or not page.is_file():
            continue
        html = page.read_text(errors="replace")
        rel = page.relative_to(html_dir)
        if "{cite" in html or ":cite:" in re.sub(r"<pre.*?</pre>", "", html, flags=re.S):
            problems.append(f"{rel}: a citation role is shown as text")
        links = re.findall(r'href="(?:\.\./)*bibliography\.html#([^"]+)"', html)
        if len(links) < len(set(keys)):
            problems.append(f"{rel}: cites {len(set(keys))} works but links {len(links)} times to the bibliography")
        problems += [f"{rel}: citation link #{a} has no bibliography entry" for a in links if a not in entries]
    return problems


# Markdown left as text in the prose: an inline-code span, emphasis or a MyST role, as glued
# text (``{glue:text}`` pastes it verbatim) or a typo shows it. A lone * or one between words
# (2*3) is no emphasis.
RAW_MARKUP = re.compile(r"`[^`\s][^`]*`|\{(?:glue|doc|ref|numref|cite)[^}]*\}|(?<![\w*])\*{1,2}[^\s*][^*]*\*{1,2}(?![\w*])")


def markup_problems(html_dir: Path) -> list[str]:
    """Prose (paragraphs and list items, code and math left out) that shows markdown as text:
    a backtick-quoted span, ``*emphasis*`` or a role such as ``{doc}``, where glued text or a typo
    kept it raw."""
    html_dir = Path(html_dir)
    problems = []
    for page in _pages(html_dir):
        text = re.sub(r"<(pre|code|script|style|math)\b.*?</\1>", "", page.read_text(errors="replace"), flags=re.S)
        for block in re.findall(r"<(?:p|li)\b[^>]*>(.*?)</(?:p|li)>", text, flags=re.S):
            plain = html_unescape(re.sub(r"<[^>]+>", "", block))
            problems += [f"{page.relative_to(html_dir)}: markup shown as text: {m.group(0)[:60]}"
                         for m in RAW_MARKUP.finditer(plain)]
    return problems


def launch_links(html_dir: Path) -> dict[str, list[str]]:
    """Launch (Binder, Colab), repository and issues buttons found on each page."""
    found = {}
    for page in _pages(html_dir):
        html = page.read_text(errors="replace")
        hits = [p for p in LAUNCH_PATTERNS if p in html]
        if hits:
            found[str(page.relative_to(html_dir))] = hits
    return found


def _browser(playwright):
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("Chromium is not installed; `make test` installs Debian's chromium "
                           "(apt-get install chromium)")
    return playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)


def _cut_off(external: list[str]):
    """A route handler that lets the site's own files through and records and
    aborts every other request (a reader without internet)."""
    def handle(route):
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()
    return handle


def page_problems(html_dir: Path, pages: list[str] | None = None, offline: bool = True,
                  parallel: int = 4) -> dict[str, list[str]]:
    """Open each page in headless Chromium; report images that did not load,
    error outputs on the page, console errors, formulas MathJax did not typeset
    or TeX left as text, and (``offline=True``, the default) every request the
    page makes outside the site, which is cut off as a reader without
    internet would have it. ``parallel`` pages load at once (tabs of one browser:
    a page's loading and typesetting wait on its own scripts, not on the CPU)."""
    from playwright.sync_api import sync_playwright
    html_dir = Path(html_dir)
    pages = pages or [str(p.relative_to(html_dir)) for p in _pages(html_dir)
                      if p.name not in {"genindex.html", "search.html"}
                      and 'http-equiv="Refresh"' not in p.read_text(errors="replace")[:2000]]
    found: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = _browser(pw)
        context = browser.new_context()
        step = max(1, parallel)
        for start in range(0, len(pages), step):
            opened = []
            for rel in pages[start:start + step]:
                page = context.new_page()
                console: list[str] = []
                external: list[str] = []
                if offline:
                    page.route("**/*", _cut_off(external))
                page.on("console", lambda m, console=console: console.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, console=console: console.append(f"uncaught {e}"))
                page.goto((html_dir / rel).resolve().as_uri(), wait_until="commit")   # the window loads together
                opened.append((rel, page, console, external))
            for rel, page, console, external in opened:
                page.wait_for_load_state("load")
                found[rel] = _issues(page, console, external)
                page.close()
        context.close()
        browser.close()
    return found


def _issues(page, console: list[str], external: list[str]) -> list[str]:
    """What :func:`page_problems` reports for one loaded page."""
    issues = []
    math = page.evaluate(MATH_SCRIPT)
    if math["typeset"] < math["n"]:
        issues.append(f"{math['n'] - math['typeset']} of {math['n']} formulas not typeset by MathJax")
    if math["raw"]:
        issues.append(f"TeX shown as text: {', '.join(math['raw'])}")
    broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                           ".map(i => i.getAttribute('src'))")
    issues += [f"image did not load: {src}" for src in broken]
    n_err = page.evaluate(f"document.querySelectorAll({ERROR_SELECTORS!r}).length")
    if n_err:
        issues.append(f"{n_err} error output(s) shown on the page")
    issues += [f"console: {m}" for m in console if not (external and any(e in m for e in NETWORK_ERRORS))]
    issues += [f"needs the network: {u}" for u in sorted(set(external))]
    return issues


def screenshot(html_page: Path, out: Path, width: int = 1280, height: int = 1000, full_page: bool = False) -> Path:
    """PNG of a page as a reader sees it (offline, formulas typeset)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.route("**/*", _cut_off([]))
        page.goto(Path(html_page).resolve().as_uri())
        page.wait_for_load_state("load")
        page.evaluate(MATH_SCRIPT)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=full_page)
        browser.close()
    return out
