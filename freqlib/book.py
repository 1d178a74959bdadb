"""Where the book lives and how a chapter is launched elsewhere.

The repository URL is named once, in ``_config.yml`` (``repository.url``);
:func:`set_repository` writes it there and derives everything else from it:
the install cell of every chapter (the code a Colab or Binder reader runs
first) and ``repository-code`` in ``CITATION.cff``.

The module is also a Sphinx extension (listed in ``_config.yml``):

* with no repository URL, no launch, repository or issues buttons are rendered
  (an empty URL would otherwise give launch buttons that point nowhere);
  with a URL, Binder and Colab launch buttons appear on every chapter and the
  repository and issues buttons in the header;
* MathJax comes from the site itself (``sphinx-mathjax-offline`` copies it to
  ``_static/mathjax``) and uses SVG output, which needs no web fonts, so
  formulas render on a reader's disk without internet.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["INSTALL_TAG", "INSTALL_TAGS", "install_cell_source", "install_cell", "repository_settings",
           "set_install_cell", "set_repository", "setup"]

INSTALL_TAG = "freqlib-install"
INSTALL_TAGS = ["remove-cell", INSTALL_TAG]      # remove-cell: the site does not show it
LAUNCH_PROVIDERS = ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url", "jupyterlite_url", "thebe")
HEADER_BUTTONS = ("use_repository_button", "use_issues_button")
MATHJAX_SVG = "mathjax/tex-svg.js"

_INSTALL_CELL = '''\
# Opened outside the book's environment (Colab, plain Jupyter), freqlib is not
# installed yet: install it from this checkout or from the book's repository.
# Where freqlib imports (the book's own runs, Binder) this cell does nothing.
import importlib.util
if importlib.util.find_spec("freqlib") is None:
    import os, pathlib, subprocess, sys
    REPOSITORY, BRANCH = {url}, {branch}  # from _config.yml (python -m freqlib set-repository)
    checkout = pathlib.Path.cwd().parent
    if (checkout / "freqlib" / "__init__.py").is_file():
        source = ["-e", str(checkout)]
        sys.path.insert(0, str(checkout))  # an editable install reaches new processes only
    elif REPOSITORY:
        source = [f"git+{{REPOSITORY}}@{{BRANCH}}"]
        os.environ.setdefault("FREQLIB_DATA", str(pathlib.Path.cwd() / "freqlib-data"))
    else:
        raise ModuleNotFoundError("freqlib is not installed and this copy of the book names no repository: "
                                  "run `pip install -e .` in a clone of the book, then reopen the chapter")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *source])
    importlib.invalidate_caches()'''


# ------------------------------------------------------------- settings
def repository_settings(root: Path | None = None) -> tuple[str, str]:
    """``(url, branch)`` from ``_config.yml``; the URL is ``""`` when unset."""
    import yaml
    from .io import repo_root
    config = yaml.safe_load((Path(root or repo_root()) / "_config.yml").read_text())
    repo = config.get("repository") or {}
    return str(repo.get("url") or "").strip(), str(repo.get("branch") or "main").strip()


def install_cell_source(url: str, branch: str = "main") -> str:
    """Source of the first code cell of every chapter for ``url``/``branch``."""
    import json
    return _INSTALL_CELL.format(url=json.dumps(url), branch=json.dumps(branch))


def install_cell(url: str, branch: str = "main") -> dict:
    """The install cell as notebook JSON: a code cell without outputs, tagged
    :data:`INSTALL_TAGS` (``remove-cell``: the site does not show it)."""
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": list(INSTALL_TAGS)},
            "outputs": [], "source": install_cell_source(url, branch).splitlines(keepends=True)}


def _check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    if url and not re.fullmatch(r"https://[\w.-]+/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"repository URL {url!r} must look like https://github.com/OWNER/REPO "
                         "(or https://gitlab.com/OWNER/REPO); use '' to remove it")
    return url


def _write_config(root: Path, url: str, branch: str) -> None:
    """Rewrite the two lines of the ``repository:`` block, keeping every comment."""
    path = root / "_config.yml"
    text = path.read_text()
    block = re.search(r"^repository:\n((?:[ \t]+.*\n|\s*\n)*)", text, re.M)
    if block is None:
        raise ValueError(f"{path} has no `repository:` block; add `repository:\\n  url: \"\"\\n  branch: main`")
    body = block.group(1)
    for key, value in (("url", url), ("branch", branch)):
        line = f'  {key}: "{value}"' if key == "url" else f"  {key}: {value}"
        body, n = re.subn(rf"^[ \t]+{key}:.*$", line, body, count=1, flags=re.M)
        if n == 0:
            body = line + "\n" + body
    from .io import atomic_write_text
    atomic_write_text(path, text[:block.start(1)] + body + text[block.end(1):])


def _write_citation(root: Path, url: str) -> None:
    path = root / "CITATION.cff"
    if not path.is_file():
        return
    lines = [l for l in path.read_text().splitlines() if not l.startswith("repository-code:")]
    if url:
        at = next((i + 1 for i, l in enumerate(lines) if l.startswith("license:")), len(lines))
        lines.insert(at, f'repository-code: "{url}"')
    from .io import atomic_write_text
    atomic_write_text(path, "\n".join(lines) + "\n")


def set_install_cell(chapter: Path, url: str, branch: str = "main") -> bool:
    """Put the install cell first among the code cells of ``chapter`` (replacing an
    older one); ``True`` if the file changed. The cell goes before the
    ``parameters`` cell, so papermill still injects after the right cell. The
    notebook JSON is edited as it is (no reformatting of other cells)."""
    import json
    text = Path(chapter).read_text()
    nb = json.loads(text)
    cells = [c for c in nb["cells"] if INSTALL_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = install_cell(url, branch)
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):   # cell ids exist from 4.5 on
        import uuid
        cell = {"id": uuid.uuid4().hex[:8], **cell}
    at = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    cells.insert(at, cell)
    old = [c for c in nb["cells"] if INSTALL_TAG in c.get("metadata", {}).get("tags", [])]
    if len(old) == 1 and nb["cells"].index(old[0]) == at and old[0]["source"] == cell["source"] \
            and old[0]["metadata"] == cell["metadata"]:
        return False
    nb["cells"] = cells
    from .io import atomic_write_text
    atomic_write_text(chapter, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return True


def set_repository(url: str, branch: str | None = None, root: Path | None = None,
                   chapters: list[Path] | None = None) -> list[Path]:
    """Name the book's repository: ``_config.yml``, the chapters' install cells and
    ``CITATION.cff``. ``url=""`` removes it (no launch buttons). Returns the
    files written."""
    from .io import repo_root
    from .runner import chapters_in_toc
    root = Path(root or repo_root())
    url = _check_url(url)
    branch = branch or repository_settings(root)[1]
    _write_config(root, url, branch)
    _write_citation(root, url)
    written = [root / "_config.yml"] + ([root / "CITATION.cff"] if (root / "CITATION.cff").is_file() else [])
    for chapter in chapters if chapters is not None else chapters_in_toc(root):
        if set_install_cell(chapter, url, branch):
            written.append(chapter)
    return written


# ------------------------------------------------------ Sphinx extension
def _configure(app, config) -> None:
    options = dict(config.html_theme_options or {})
    if options.get("repository_url"):
        for button in HEADER_BUTTONS:
            options.setdefault(button, True)
            if options[button] is False:      # Jupyter Book passes the _config.yml false through
                options[button] = True
    else:
        options.pop("repository_url", None)
        options["launch_buttons"] = {k: v for k, v in (options.get("launch_buttons") or {}).items()
                                     if k not in LAUNCH_PROVIDERS}
        for button in HEADER_BUTTONS + ("use_edit_page_button",):
            options[button] = False
    config.html_theme_options = options
    # CHTML output needs web fonts, which a browser refuses to load from file://
    # pages; SVG output draws the glyphs itself.
    if str(config.mathjax_path).startswith("mathjax/"):
        config.mathjax_path = MATHJAX_SVG
    # pydata-sphinx-theme logs "invalid theme mode" on a reader's first visit
    # unless a default is named; "auto" is what it falls back to anyway.
    config.html_context = {"default_mode": "auto", **(config.html_context or {})}


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated inline scripts: sphinx-thebe adds its configuration twice
    under Sphinx 7 (once through the registry, once to the builder), and the
    second copy re-declares a ``const``, an error on every page."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted((getattr(script, "attributes", None) or {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("config-inited", _configure, priority=900)
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
