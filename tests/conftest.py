"""Shared fixtures: smoke-executed chapters (each run once per test session)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("FREQLIB_THREADS", "2")


@pytest.fixture(scope="session")
def smoke_dir(tmp_path_factory) -> Path:
    """Where smoke-executed chapters go (``$FREQLIB_SMOKE_DIR`` keeps them between runs)."""
    keep = os.environ.get("FREQLIB_SMOKE_DIR")
    return Path(keep) if keep else tmp_path_factory.mktemp("executed")


@pytest.fixture(scope="session")
def device_report(tmp_path_factory) -> Path:
    """Where the smoke kernels report their device-discipline checks (tools/device_shadow):
    each bootstrap statistic is re-run on meta tensors, refusing meta/CPU mixes."""
    report = tmp_path_factory.mktemp("devices") / "report.jsonl"
    report.touch()
    shadow = str(ROOT / "tools" / "device_shadow")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (shadow, os.environ.get("PYTHONPATH")) if p)
    os.environ["FREQLIB_DEVICE_REPORT"] = str(report)
    return report


@pytest.fixture(scope="session")
def executed_chapter(smoke_dir, device_report):
    """``executed_chapter("01")`` -> (path, glued values) of that chapter run at profile=smoke."""
    from freqlib.notebooks import read_glue
    from freqlib.runner import execute_chapter, resolve_chapter
    cache: dict[str, tuple[Path, dict]] = {}

    def run(name: str, **params):
        key = name + repr(sorted(params.items()))
        if key not in cache:
            path = execute_chapter(resolve_chapter(name), {"profile": "smoke", "device": "cpu", **params},
                                   smoke_dir, log=lambda *a: None)
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
