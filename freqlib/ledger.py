"""The claims ledger on the landing page, generated at every build from the
verdicts each executed chapter glued (never typed by hand)."""
from __future__ import annotations

from pathlib import Path

from .io import repo_root
from .notebooks import read_glue, run_card

__all__ = ["collect_claims", "ledger_markdown", "timings_markdown", "write_ledger", "MARKER",
           "TIMINGS_MARKER"]

MARKER = "<!-- claims-ledger -->"
TIMINGS_MARKER = "<!-- timings -->"
COLUMNS = ("claim", "verdict", "paper", "paper's value", "ours", "profile", "variant", "run date")


def collect_claims(runs: dict[str, Path], chapters: list[Path]) -> list[dict]:
    """One row per claim; a chapter without an executed copy gives a "not run" row."""
    import json
    rows = []
    for rel in chapters:
        done = runs.get(rel.stem)
        if done is None:
            source = repo_root() / rel
            if source.is_file() and "publish(" in source.read_text():  # a claim chapter
                rows.append({"claim": f"all of {rel.stem}", "verdict": "not run", "ours": "—"})
            continue
        glued = read_glue(done)
        if "claims" not in glued:
            continue  # a chapter without claims (the primer)
        card = run_card(done)
        for row in json.loads(glued["claims"]):
            row["run date"] = card.get("executed", "unknown")[:10]
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
        row = dict(r)
        if r.get("chapter"):
            row["claim"] = f"[{r['claim']}](chapters/{r['chapter']}.ipynb)"
        lines.append("| " + " | ".join(_cell(row.get(c, "—")) for c in COLUMNS) + " |")
    return "\n".join(lines)


def timings_markdown(runs: dict[str, Path]) -> str:
    """Chapter wall times from the run cards, and zoo training times from the records."""
    from .zoo import list_models
    lines = ["| chapter | profile | device | wall time |", "|---|---|---|---|"]
    for stem, path in sorted(runs.items()):
        card = run_card(path)
        lines.append(f"| {stem} | {card.get('profile', '?')} | {card.get('device', '?')} | {card.get('wall time', '?')} |")
    models = list_models()
    if models:
        lines += ["", "| zoo model | profile | training time | test accuracy | device |", "|---|---|---|---|---|"]
        for m in models:
            lines.append(f"| {m['name']} | {m['profile']} | {m['train_seconds']:.0f} s | "
                         f"{100 * m['test_accuracy']:.1f}% | {m['device']} |")
    return "\n".join(lines)


def write_ledger(stage: Path, runs: dict[str, Path], chapters: list[Path]) -> None:
    """Replace the markers in the staged pages with the generated tables."""
    for page, marker, make in (("intro.md", MARKER, lambda: ledger_markdown(collect_claims(runs, chapters))),
                               ("instructor.md", TIMINGS_MARKER, lambda: timings_markdown(runs))):
        path = stage / page
        if path.is_file() and marker in path.read_text():
            path.write_text(path.read_text().replace(marker, make()))
