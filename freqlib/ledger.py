"""The claims ledger on the landing page, generated at every build from the
verdicts each executed chapter glued (never typed by hand)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["collect_claims", "ledger_markdown", "write_ledger", "MARKER"]

MARKER = "<!-- claims-ledger -->"
COLUMNS = ("claim", "paper", "paper's value", "ours", "verdict", "profile", "variant", "run date")


def collect_claims(runs: dict[str, Path], chapters: list[Path]) -> list[dict]:
    """One row per claim; a chapter without an executed copy gives a "not run" row."""
    import json
    from .runner import read_glue
    import nbformat
    rows = []
    for rel in chapters:
        done = runs.get(rel.stem)
        if done is None:
            rows.append({"claim": f"{rel.stem}", "verdict": "not run"})
            continue
        glued = read_glue(done)
        if "claims" not in glued:
            continue  # a chapter without claims (the primer)
        card = nbformat.read(done, as_version=4).metadata.get("freqlib", {}).get("run_card", {})
        for row in json.loads(glued["claims"]):
            row["run date"] = card.get("executed", "unknown")
            row["chapter"] = rel.stem
            rows.append(row)
    return rows


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def ledger_markdown(rows: list[dict]) -> str:
    if not rows:
        return "*No chapter with claims has been executed yet.*"
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c, "—")) for c in COLUMNS) + " |")
    return "\n".join(lines)


def write_ledger(stage: Path, runs: dict[str, Path], chapters: list[Path]) -> None:
    """Replace the marker in the staged landing page with the ledger table."""
    intro = stage / "intro.md"
    if not intro.is_file():
        return
    text = intro.read_text()
    if MARKER in text:
        intro.write_text(text.replace(MARKER, ledger_markdown(collect_claims(runs, chapters))))
