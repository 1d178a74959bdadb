"""Values a chapter shows in its prose (glue) and reading them back from
executed chapters, with their run cards.

Shared by the chapters (which glue), the runner (which executes chapters) and
the ledger (which builds pages from them), so none imports another. Jupyter
packages are imported only when needed: freqlib runs without them.
"""
from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["glue", "read_glue", "run_card"]


def glue(name: str, value, display: bool = False):
    """myst-nb glue when running inside a notebook kernel; a no-op elsewhere."""
    try:
        from IPython import get_ipython
        if get_ipython() is None:
            return
        from myst_nb import glue as _glue
    except ImportError:
        return
    _glue(name, value, display=display)


def read_glue(path: Path) -> dict[str, object]:
    """Values glued with myst-nb in an executed notebook, parsed where possible."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    found = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook", {})
            if "name" in meta:
                data = out.get("data", {})
                text = next((v for k, v in data.items() if k.endswith("text/plain")), "")
                try:
                    found[meta["name"]] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    found[meta["name"]] = text
    return found


def run_card(path: Path) -> dict:
    """The run card the runner stored in an executed notebook's metadata ({} if none)."""
    import nbformat
    return nbformat.read(path, as_version=4).metadata.get("freqlib", {}).get("run_card", {})
