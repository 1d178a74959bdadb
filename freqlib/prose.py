"""Words for glued sentences, shared by the modules that write them (no freqlib imports, so any
module can use it without an import circle)."""
from __future__ import annotations

__all__ = ["listed"]


def listed(items) -> str:
    """``a``, ``a and b``, ``a, b and c`` (items as ``str``)."""
    items = [str(i) for i in items]
    if not items:
        raise ValueError("listed() needs at least one item to name")
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
