"""Checks of the built site as a reader sees it: every page opened in headless
Chromium (figures loaded, no error output), internal links resolved, and
screenshots for the README."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = ["find_chromium", "internal_link_problems", "page_problems", "screenshot"]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Offline, the CDN copies of MathJax / fonts cannot load; that is the network, not the book.
NETWORK_ERRORS = ("ERR_NAME_NOT_RESOLVED", "ERR_INTERNET_DISCONNECTED", "ERR_CONNECTION_REFUSED",
                  "ERR_ADDRESS_UNREACHABLE", "ERR_NETWORK_ACCESS_DENIED", "invalid theme mode")
ERROR_SELECTORS = ".output.stderr, .output.traceback, .cell_output .traceback, div.highlight-ipythontb"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def internal_link_problems(html_dir: Path) -> list[str]:
    """Links between pages of the site that point at a missing file."""
    problems = []
    for page in sorted(p for p in Path(html_dir).rglob("*.html") if "_static" not in p.parts):
        for href in re.findall(r'href="([^"]+)"', page.read_text(errors="replace")):
            url = urlparse(href)
            if url.scheme or href.startswith(("#", "mailto:", "javascript:")):
                continue
            target = (page.parent / unquote(url.path)).resolve()
            if url.path and not target.exists():
                problems.append(f"{page.relative_to(html_dir)}: broken link {href}")
    return problems


def _browser(playwright):
    exe = find_chromium()
    if exe is None:
        raise RuntimeError("Chromium is not installed; `make test` installs Debian's chromium "
                           "(apt-get install chromium)")
    return playwright.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)


def page_problems(html_dir: Path, pages: list[str] | None = None) -> dict[str, list[str]]:
    """Open each page in headless Chromium; report images that did not load,
    error outputs on the page and console errors other than offline network."""
    from playwright.sync_api import sync_playwright
    html_dir = Path(html_dir)
    pages = pages or [str(p.relative_to(html_dir)) for p in sorted(html_dir.rglob("*.html"))
                      if p.name not in {"genindex.html", "search.html"} and "_static" not in p.parts
                      and 'http-equiv="Refresh"' not in p.read_text(errors="replace")[:2000]]
    found: dict[str, list[str]] = {}
    with sync_playwright() as pw:
        browser = _browser(pw)
        for rel in pages:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto((html_dir / rel).resolve().as_uri())
            page.wait_for_load_state("load")
            issues = []
            broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
                                   ".map(i => i.getAttribute('src'))")
            issues += [f"image did not load: {src}" for src in broken]
            n_err = page.evaluate(f"document.querySelectorAll({ERROR_SELECTORS!r}).length")
            if n_err:
                issues.append(f"{n_err} error output(s) shown on the page")
            issues += [f"console: {m}" for m in console if not any(e in m for e in NETWORK_ERRORS)]
            found[rel] = issues
            page.close()
        browser.close()
    return found


def screenshot(html_page: Path, out: Path, width: int = 1280, height: int = 1000, full_page: bool = False) -> Path:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = _browser(pw)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(Path(html_page).resolve().as_uri())
        page.wait_for_load_state("load")
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out), full_page=full_page)
        browser.close()
    return out
