"""Pooled results of collected sweeps (``_build/sweeps/<id>/pooled.json``, written by
:func:`freqlib.sweep.collect`), read back for the claims ledger and for chapters.

A chapter shows the pooled table of its claims with
``freqlib.sweep.pooled_table("01", ctx.profile)`` (re-exported there).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .io import repo_root

__all__ = ["SWEEPS", "sweeps_dir", "pooled_for_run", "pooled_table"]

SWEEPS = "_build/sweeps"


def sweeps_dir() -> Path:
    """``_build/sweeps`` of the repository, or ``$FREQLIB_SWEEPS``."""
    return Path(os.environ.get("FREQLIB_SWEEPS") or repo_root() / SWEEPS)


def _fmt_params(params: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in params.items())


def _collected() -> list[dict]:
    """Every collected sweep, newest first."""
    found = []
    for p in sweeps_dir().glob("*/pooled.json"):
        try:
            found.append((p.stat().st_mtime, json.loads(p.read_text())))
        except (OSError, ValueError):
            continue
    return [s for _, s in sorted(found, key=lambda t: -t[0])]


def _groups(chapter: str, profile: str | None):
    for summary in _collected():
        for g in summary["groups"]:
            if (g["chapter"] == chapter or g["chapter"].startswith(chapter)) and \
                    (profile is None or g["profile"] == profile):
                yield summary["id"], g


def pooled_for_run(executed: Path) -> dict[str, dict]:
    """Pooled results (claim id -> claim row + ``sweep``) of the newest collected sweep of
    this executed chapter's profile and parameters (seed and device aside); {} if none."""
    import nbformat
    meta = nbformat.read(executed, as_version=4).metadata.get("freqlib", {})
    params = {k: v for k, v in meta.get("parameters", {}).items() if k not in ("seed", "device", "seeds")}
    for sid, g in _groups(Path(executed).stem, params.get("profile")):
        fixed = {k: v for k, v in g["params"].items() if k != "seeds"}
        if all(params.get(k) == v for k, v in fixed.items()):
            return {c["claim"]: dict(c, sweep=sid) for c in g["claims"]}
    return {}


def pooled_table(chapter: str, profile: str | None = None):
    """The newest collected sweep's pooled results for ``chapter``'s claims, as a
    DataFrame to display in the chapter (None, with a note, when no sweep exists)."""
    import pandas as pd
    if profile == "auto":
        from .profiles import resolve_profile
        profile = resolve_profile("auto")
    for sid, g in _groups(chapter, profile):
        rows = [{"claim": c["claim"], "pooled verdict": c["verdict"], "seeds": c["seeds_text"],
                 "per-seed verdicts": ", ".join(f"{s}: {v}" for s, v in zip(c["seeds"], c["seed_verdicts"])),
                 "pooled numbers": "; ".join(f"{k} = {v['text']}" for k, v in c["numbers"].items()),
                 "paper's value": c["paper's value"],
                 "JPEG check": "; ".join(f"{k}: {v}" for k, v in c["jpeg_check"].items()) or "—"}
                for c in g["claims"]]
        table = pd.DataFrame(rows).set_index("claim")
        table.attrs["sweep"] = sid
        print(f"sweep {sid} ({g['profile']}, {_fmt_params(g['params'])}): {g['jobs']} jobs")
        return table
    print(f"No collected sweep of chapter {chapter}" + (f" at profile {profile}" if profile else "")
          + f"; to run one over five training seeds: python -m freqlib sweep {chapter} --profile {profile or 'quick'} "
          "--seed 0 1 2 3 4")     # printed output: no markdown
    return None
