"""Shared fixtures: smoke-executed chapters (each executed once per test run, for every worker)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Threads per process: `make test` runs two pytest-xdist workers, and two workers of two
    threads on two cores would oversubscribe them (every training slows down). Set in the
    controlling process, before the workers and the chapter kernels they start inherit it."""
    asked = os.environ.get("PYTEST_XDIST_WORKER_COUNT") or getattr(config.option, "numprocesses", None) or 1
    workers = int(asked) if str(asked).isdigit() else os.cpu_count() or 1      # -n auto: one per core
    os.environ.setdefault("FREQLIB_THREADS", str(max(1, min(2, (os.cpu_count() or 2) // workers))))
    if workers > 1:
        import torch
        torch.set_num_threads(int(os.environ["FREQLIB_THREADS"]))


def shared_tmp(tmp_path_factory) -> Path:
    """A folder every pytest-xdist worker of this run sees (the parent of the workers'
    temporary folders); without xdist, this process's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory) -> Path:
    """Where smoke-executed chapters go, one folder for all workers (``$FREQLIB_SMOKE_DIR``
    keeps them between runs)."""
    keep = os.environ.get("FREQLIB_SMOKE_DIR")
    path = Path(keep) if keep else shared_tmp(tmp_path_factory) / "executed"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def device_report(tmp_path_factory) -> Path:
    """Where the smoke kernels report their device-discipline checks (tools/device_shadow):
    each bootstrap statistic is re-run on meta tensors, refusing meta/CPU mixes. One file
    for all workers, as a chapter is executed by one of them."""
    report = shared_tmp(tmp_path_factory) / "devices" / "report.jsonl"
    report.parent.mkdir(exist_ok=True)
    report.touch()
    shadow = str(ROOT / "tools" / "device_shadow")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (shadow, os.environ.get("PYTHONPATH")) if p)
    os.environ["FREQLIB_DEVICE_REPORT"] = str(report)
    return report


@pytest.fixture(scope="session")
def executed_chapter(smoke_dir, device_report, tmp_path_factory):
    """``executed_chapter("01")`` -> (path, glued values) of that chapter run at profile=smoke.
    Each chapter is executed once per test run: the first worker to ask executes it under a
    file lock, and a worker asking later (or waiting on the lock) reads that copy."""
    import hashlib

    from filelock import FileLock

    from freqlib.notebooks import read_glue
    from freqlib.runner import execute_chapter, resolve_chapter
    cache: dict[str, tuple[Path, dict]] = {}
    marks = shared_tmp(tmp_path_factory) / "executed-marks"
    marks.mkdir(exist_ok=True)

    def run(name: str, **params):
        key = name + repr(sorted(params.items()))
        if key not in cache:
            mark = marks / hashlib.sha1(key.encode()).hexdigest()[:16]
            with FileLock(f"{mark}.lock"):
                if mark.exists():                  # another worker executed it in this run
                    path = Path(mark.read_text())
                else:
                    # other parameters, another folder: the chapter's default copy stays as it was
                    out = smoke_dir / f"params-{mark.name}" if params else smoke_dir
                    path = execute_chapter(resolve_chapter(name), {"profile": "smoke", "device": "cpu", **params},
                                           out, log=lambda *a: None)
                    mark.write_text(str(path))
            cache[key] = (path, read_glue(path))
        return cache[key]
    return run


@pytest.fixture(scope="session")
def unglued():
    """``unglued(path, glued)`` -> names the chapter's prose pastes with ``{glue:text}`` but
    never glued (a format spec is ignored; ``other.ipynb::key`` references another chapter)."""
    import re

    import nbformat

    def missing(path: Path, glued: dict) -> list[str]:
        nb = nbformat.read(path, as_version=4)
        refs = {m for c in nb.cells if c.cell_type == "markdown"
                for m in re.findall(r"\{glue:text\}`([^`]+)`", c.source)}
        return sorted(r for r in refs if "::" not in r and r.split(":")[0] not in glued)
    return missing


@pytest.fixture(scope="session")
def two_seeds_pooled():
    """``two_seeds_pooled(path, glued)`` checks a claim chapter executed with ``seeds=2`` and returns
    its claims by id: each seed judged on its own, every number pooled over both (or set aside by a
    budget check), the verdict from the pooled states, no stderr on any page, and one deviations row
    setting the first seed's verdicts against the pooled ones."""
    import json

    import nbformat

    from freqlib.runner import stderr_outputs
    from freqlib.verdicts import NOT_JUDGED, VERDICTS, seeds_text, verdict

    def check(path: Path, glued: dict) -> dict:
        assert not stderr_outputs(nbformat.read(path, as_version=4))
        rows = {r["claim"]: r for r in json.loads(glued["claims"])}
        for cid, row in rows.items():
            assert len(row["seed_verdicts"]) == 2 and set(row["seed_verdicts"]) <= set(VERDICTS), cid
            assert row["verdict"] == verdict(row["states"])
            assert row["seeds"] == glued[f"{cid}_seeds"] == seeds_text(row["verdict"], row["seed_verdicts"])
            for key, number in row["numbers"].items():      # a budget check may set a number aside
                assert number["over"].startswith(("2 seeds × ", NOT_JUDGED)), (cid, key, number["over"])
        effects = [r["effect"] for r in json.loads(glued["deviations"])["rows"]
                   if r["effect"].startswith("verdicts on the first seed alone: ")]
        assert len(effects) == 1, effects
        first = ", ".join(f"{cid} {r['seed_verdicts'][0]}" for cid, r in rows.items())
        pooled = ", ".join(f"{cid} {r['verdict']}" for cid, r in rows.items())
        assert effects[0].startswith(f"verdicts on the first seed alone: {first}; pooled over 2 seeds: {pooled} ")
        return rows
    return check
