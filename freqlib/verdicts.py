"""Computed verdicts: criteria fixed before the numbers, verdicts after.

A chapter declares each claim with its criteria (a description and a
threshold rule) *before* computing anything, then evaluates them on the
numbers. The verdict is derived, never typed:

* ``reproduced``      every criterion holds
* ``partly``          some hold
* ``not reproduced``  none holds

:func:`publish` glues one table and, per claim, ``<ID>_verdict`` and
``<ID>_ours``; the runner reads the glued ``claims`` JSON to build the
claims ledger on the landing page.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from .chapter import glue

__all__ = ["Criterion", "Claim", "verdict", "publish", "VERDICTS"]

VERDICTS = ("reproduced", "partly", "not reproduced")


@dataclass
class Criterion:
    """``test(numbers) -> bool``; ``describe`` states the rule in words."""
    describe: str
    test: Callable[[dict], bool]
    passed: bool | None = None


@dataclass
class Claim:
    id: str
    paper: str
    statement: str
    paper_value: str
    criteria: list[Criterion]
    ours: str = ""
    numbers: dict = field(default_factory=dict)

    def evaluate(self, numbers: dict, ours: str) -> str:
        """Apply every criterion to ``numbers``; ``ours`` summarises them in words."""
        self.numbers, self.ours = dict(numbers), ours
        for c in self.criteria:
            c.passed = bool(c.test(numbers))
        return self.verdict

    @property
    def verdict(self) -> str:
        if any(c.passed is None for c in self.criteria):
            raise RuntimeError(f"claim {self.id} has not been evaluated yet; call .evaluate(numbers, ours)")
        return verdict([c.passed for c in self.criteria])


def verdict(passed: list[bool]) -> str:
    if not passed:
        raise ValueError("a verdict needs at least one criterion")
    if all(passed):
        return VERDICTS[0]
    return VERDICTS[1] if any(passed) else VERDICTS[2]


def publish(claims: list[Claim], ctx) -> "object":
    """Glue the verdicts and return a DataFrame to display as the verdict table."""
    import pandas as pd
    rows = []
    for c in claims:
        rows.append({
            "claim": c.id, "paper": c.paper, "statement": c.statement,
            "paper's value": c.paper_value, "ours": c.ours, "verdict": c.verdict,
            "criteria": "; ".join(f"{'✔' if k.passed else '✘'} {k.describe}" for k in c.criteria),
        })
        glue(f"{c.id}_verdict", c.verdict)
        glue(f"{c.id}_ours", c.ours)
    ledger = [dict(r, profile=ctx.profile, variant=ctx.variant, device=ctx.device) for r in rows]
    glue("claims", json.dumps(ledger))
    table = pd.DataFrame(rows).set_index("claim")
    glue("verdict_table", table, display=False)
    return table
