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
def executed_chapter(smoke_dir):
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
