"""How each chapter departs from its paper and the paper's code (ReScience style).

A chapter lists its departures as :class:`Deviation` records in one cell and
shows them with :func:`deviations_table`, which also glues them as JSON so the
instructor page can list every chapter's deviations in one place. A change to
a verdict criterion after numbers were seen is a deviation too, with its date.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .notebooks import glue

__all__ = ["Deviation", "deviations_table", "ASPECTS"]

ASPECTS = ("dataset", "resolution", "architecture", "training", "attack", "method", "hyper-parameter",
           "evaluation", "criterion")


@dataclass(frozen=True)
class Deviation:
    """One way our procedure differs from the paper or its reference code."""
    aspect: str      # one of ASPECTS
    paper: str       # what the paper / its code does
    ours: str        # what this book does
    reason: str      # why
    effect: str = "not measured"   # measured effect, or "not measured"
    date: str = ""   # ISO date, required for criterion changes

    def __post_init__(self):
        if self.aspect not in ASPECTS:
            raise ValueError(f"deviation aspect {self.aspect!r} is not one of {ASPECTS}")
        if self.aspect == "criterion" and not self.date:
            raise ValueError(f"a criterion change needs its date (YYYY-MM-DD): {self.ours!r}")
        for name in ("paper", "ours", "reason", "effect"):
            if not getattr(self, name).strip():
                raise ValueError(f"deviation {self.ours or self.aspect!r}: {name} is empty")


def deviations_table(deviations: list[Deviation], chapter: str):
    """DataFrame of ``deviations`` for display (without the markdown backticks); glues
    ``deviations`` (JSON with the chapter, as written)."""
    import pandas as pd
    if not deviations:
        raise ValueError(f"{chapter}: a claim chapter lists at least one deviation (or says why none)")
    rows = [asdict(d) for d in deviations]
    glue("deviations", json.dumps({"chapter": chapter, "rows": rows}))
    # backticks mark code for the instructor page's markdown; a DataFrame cell would show them
    table = pd.DataFrame(rows).apply(lambda col: col.str.replace("`", "", regex=False))
    table.index = range(1, len(table) + 1)
    return table
