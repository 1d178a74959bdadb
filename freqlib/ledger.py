"""The claims ledger on the landing page and the instructor page's tables,
generated at every build from what the executed chapters glued (never typed
by hand).

Per claim the ledger shows the verdict, how many training seeds agree, the
criteria's states (✔ holds, ✘ fails, ? undecided), our numbers with their
intervals, whether the verdict survives the JPEG pixels of the same images,
the pooled result of a collected sweep over seeds (when one exists), and a
marker when the chapter ran under another ``requirements.lock`` than the
current one. The instructor page gets the chapters' wall times and every
chapter's deviations from its paper in one table.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .io import repo_root
from .notebooks import read_glue, run_card
from .papers import cite_paper

__all__ = ["collect_claims", "collect_deviations", "ledger_markdown", "timings_markdown",
           "deviations_markdown", "write_ledger", "MARKER", "TIMINGS_MARKER", "DEVIATIONS_MARKER"]

MARKER = "<!-- claims-ledger -->"
TIMINGS_MARKER = "<!-- timings -->"
DEVIATIONS_MARKER = "<!-- deviations -->"
LEDGER_COLUMNS = ("claim", "verdict", "criteria", "paper", "paper's value", "ours", "JPEG pixels")
RUN_COLUMNS = ("profile", "device", "variant", "run date")
# the abbreviations the ledger's cells use, each defined in its chapter
ABBREVIATIONS = ("ST: standard training; AT: adversarial training (L∞ unless named); OF: occluded-frequency "
                 "attribution; PGD: projected gradient descent; DCT: discrete cosine transform, k its band index; "
                 "r: a radius in the centred discrete Fourier transform; mean-C: mean accuracy over CIFAR-10-C; "
                 "SSIM: structural similarity; pts: percentage points")
SYMBOLS = {"holds": "✔", "fails": "✘", "undecided": "?"}


def _lock_note(card: dict, current: str) -> str:
    """'' when the chapter ran with the current lock installed, else a short warning."""
    lock = card.get("lock")
    if not lock:
        return " ⚠ lock not recorded"
    if lock.split()[0] != current:
        return f" ⚠ lock {lock.split()[0]}"
    return " ⚠ not the locked libraries" if "differ" in lock else ""


def _jpeg_check(row: dict) -> str:
    """Whether the verdict holds on the JPEG pixels of the same images (the claim's ``variants``)."""
    variants = row.get("variants") or {}
    if not variants:
        return "—"
    parts = []
    for label, v in variants.items():
        same = v.get("verdict") == row.get("verdict") and not v.get("changed")
        parts.append(f"{label}: same verdict" if same else f"{label}: {v.get('verdict', '?')}"
                     + (f" ({'; '.join(v['changed'])})" if v.get("changed") else ""))
    return "; ".join(parts)


def collect_claims(runs: dict[str, Path], chapters: list[Path]) -> list[dict]:
    """One row per claim; a chapter without an executed copy gives a "not run" row."""
    from .environment import lock_digest
    from .pooled import pooled_for_run
    current = lock_digest()
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
        pooled = pooled_for_run(done)
        for row in json.loads(glued["claims"]):
            row["run date"] = card.get("executed", "unknown")[:10] + _lock_note(card, current)
            row["device"] = card.get("device", "—")
            row["chapter"] = rel.stem
            row.setdefault("seeds", "1 seed")
            row["criteria"] = " ".join(SYMBOLS.get(s, "?") for s in row.get("states", [])) or "—"
            row["JPEG check"] = _jpeg_check(row)
            p = pooled.get(row["claim"])
            row["sweep (pooled)"] = f"{p['verdict']}, {p['seeds_text']} (sweep {p['sweep']})" if p else "—"
            rows.append(row)
    return rows


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _verdict_cell(row: dict) -> str:
    """The verdict, with the seed count when several training seeds were judged."""
    seeds = str(row.get("seeds", ""))
    total = re.search(r" of (\d+) seeds", seeds)
    several = total is not None and int(total.group(1)) > 1
    return f"{row.get('verdict', '—')}; {seeds}" if several else str(row.get("verdict", "—"))


def _jpeg_cell(row: dict) -> str:
    """Short form of the JPEG check: "same" or the verdict there and how many criteria change."""
    variants = row.get("variants") or {}
    if not variants:
        return "—"
    parts = []
    for v in variants.values():
        changed = v.get("changed") or []
        same = v.get("verdict") == row.get("verdict") and not changed
        parts.append("same" if same else f"{v.get('verdict', '?')}" + (
            f" ({len(changed)} criterion changes)" if len(changed) == 1 else
            f" ({len(changed)} criteria change)" if changed else ""))
    return "; ".join(parts)


def ledger_markdown(rows: list[dict], profiles: set[str] | None = None) -> str:
    """The claims table (one row per claim) and, below it, how each chapter was run."""
    if not rows:
        return "*No chapter with claims has been executed yet.*"
    from .environment import lock_digest
    lines = []
    if profiles and len(profiles) > 1:
        lines += [f"**Mixed profiles**: these chapters were executed at different profiles "
                  f"({', '.join(sorted(profiles))}); compare rows only within a profile.", ""]
    pooled = any(r.get("sweep (pooled)", "—") != "—" for r in rows)
    cols = LEDGER_COLUMNS + (("sweep (pooled)",) if pooled else ())
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        row = dict(r, verdict=_verdict_cell(r))
        row["JPEG pixels"] = _jpeg_cell(r) if r.get("verdict") != "not run" else "—"
        if r.get("chapter"):
            row["claim"] = f"[{r['claim']}](chapters/{r['chapter']}.ipynb)"
        row["paper"] = cite_paper(r.get("claim", ""), r.get("paper", "—"))
        lines.append("| " + " | ".join(_cell(row.get(c, "—")) for c in cols) + " |")
    runs = {}
    for r in rows:
        if r.get("chapter"):
            runs.setdefault(r["chapter"], r)
    if runs:
        lines += ["", "| chapter | " + " | ".join(RUN_COLUMNS) + " |", "|" + "---|" * (len(RUN_COLUMNS) + 1)]
        for stem, r in runs.items():
            lines.append(f"| [{stem}](chapters/{stem}.ipynb) | " + " | ".join(_cell(r.get(c, "—")) for c in RUN_COLUMNS)
                         + " |")
    lines += ["", "Criteria: ✔ holds, ✘ fails, ? undecided (95% intervals), in the chapter's order; a number "
              "a budget check set aside reads \"not judged\" and leaves its criterion undecided. *ours* gives "
              "each number with its interval (pooled over the training seeds where the verdict names several). "
              "*JPEG pixels*: the verdict recomputed on the JPEG-q75 versions of the same test images (the "
              "chapter lists the criteria that change); —: not recomputed."
              + (" *sweep (pooled)*: the collected sweep over training seeds (`python -m freqlib sweep`)."
                 if pooled else "") + f" {ABBREVIATIONS}.", "",
              f"Run table: ⚠ lock: executed under another `requirements.lock` than the current one ({lock_digest()}); "
              f"⚠ not the locked libraries: executed where torch, torchvision or numpy differ from the lock "
              f"(see the run card); either way numbers may differ from a run in the locked environment."]
    return "\n".join(lines)


def timings_markdown(runs: dict[str, Path]) -> str:
    """Chapter wall times from the run cards, and zoo training times from the records."""
    from .zoo import list_models
    lines = ["| chapter | profile | device | wall time | libraries | lock |", "|---|---|---|---|---|---|"]
    for stem, path in sorted(runs.items()):
        card = run_card(path)
        lines.append(f"| {stem} | {card.get('profile', '?')} | {card.get('device', '?')} | "
                     f"{card.get('wall time', '?')} | {card.get('libraries', '?')} | {card.get('lock', '?')} |")
    # the models today's code would load, at the profiles of these runs (not stale or other-profile keys)
    profiles = {run_card(p).get("profile") for p in runs.values()}
    models = sorted((m for m in list_models(current=True) if m.get("profile") in profiles),
                    key=lambda m: (m["profile"], m["name"], m.get("seed", 0), m["key"]))
    if models:
        # recipe, data and budget tell apart a recipe's variants (chapter 6's budget ladder, its
        # signature strengths); the key names the record in data/models
        lines += ["", "| zoo model | seed | profile | dataset | training images × epochs | training time | "
                      "test accuracy | device | key |", "|---|---|---|---|---|---|---|---|---|"]
        for m in models:
            c = m.get("config", {})
            budget = f"{c['n_train']:,} × {c['epochs']:g}" if "n_train" in c and "epochs" in c else "?"
            lines.append(f"| {m['name']} | {m.get('seed', 0)} | {m['profile']} | {c.get('dataset', '?')} | {budget} | "
                         f"{m['train_seconds']:.0f} s | {100 * m['test_accuracy']:.1f}% | {m['device']} | {m['key']} |")
    return "\n".join(lines)


def collect_deviations(runs: dict[str, Path]) -> list[dict]:
    """Every chapter's deviations (the ``deviations`` JSON it glued), chapter by chapter."""
    rows = []
    for stem, path in sorted(runs.items()):
        raw = read_glue(path).get("deviations")
        if not raw:
            continue
        table = json.loads(raw) if isinstance(raw, str) else raw
        for d in table.get("rows", []):
            rows.append({"chapter": stem, **d})
    return rows


def deviations_markdown(rows: list[dict]) -> str:
    if not rows:
        return "*No executed chapter has listed deviations yet.*"
    cols = ("chapter", "aspect", "paper", "ours", "reason", "effect", "date")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for d in rows:
        row = dict(d, chapter=f"[{d['chapter']}](chapters/{d['chapter']}.ipynb)")
        lines.append("| " + " | ".join(_cell(row.get(c) or "—") for c in cols) + " |")
    return "\n".join(lines)


def write_ledger(stage: Path, runs: dict[str, Path], chapters: list[Path]) -> None:
    """Replace the markers in the staged pages with the generated tables."""
    profiles = {run_card(p).get("profile", "unknown") for p in runs.values()}
    for page, marker, make in (
            ("intro.md", MARKER, lambda: ledger_markdown(collect_claims(runs, chapters), profiles)),
            ("instructor.md", TIMINGS_MARKER, lambda: timings_markdown(runs)),
            ("instructor.md", DEVIATIONS_MARKER, lambda: deviations_markdown(collect_deviations(runs)))):
        path = stage / page
        if path.is_file() and marker in path.read_text():
            path.write_text(path.read_text().replace(marker, make()))
