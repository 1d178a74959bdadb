"""Whole-book wall time per profile, per chapter, from the run cards of the
executed notebooks (``_build/executed`` and ``results/*``).

    python bench/bench_book.py [--out bench/results.json]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import nbformat

from common import write

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    runs: dict[str, dict] = {}
    for folder in [ROOT / "_build" / "executed", *sorted((ROOT / "results").glob("*"))]:
        for nb_path in sorted(folder.rglob("*.ipynb")):
            meta = nbformat.read(nb_path, as_version=4).metadata.get("freqlib", {})
            card = meta.get("run_card", {})
            if not card:
                continue
            key = f"{card.get('profile')} on {card.get('device')}"
            entry = runs.setdefault(key, {"chapters": {}, "total_s": 0.0})
            entry["chapters"][nb_path.stem] = round(meta.get("wall_seconds", 0.0), 1)
            entry["total_s"] = round(sum(entry["chapters"].values()), 1)
    write(args.out, "book_wall_time", {"runs": runs})


if __name__ == "__main__":
    main()
