"""The time a time-boxed call has left, as seen from inside a chapter.

``paper-run`` gives each chapter's kernel ``FREQLIB_DEADLINE`` (Unix seconds);
work that can be split into stored pieces (zoo training, :mod:`freqlib.results`)
checks it before starting a piece and raises :class:`OutOfTime` once it has
passed, so the chapter stops between pieces and nothing is half-written.
Unset (the default), nothing ever stops.
"""
from __future__ import annotations

import os
import time

__all__ = ["DEADLINE_ENV", "OutOfTime", "check_deadline"]

DEADLINE_ENV = "FREQLIB_DEADLINE"      # Unix time after which no new piece of work is started


class OutOfTime(RuntimeError):
    """The call's time is up before a piece of work that is not stored yet: nothing was
    half-written; running the chapter again continues from what was stored."""


def check_deadline(what: str, done: int | None = None) -> None:
    """Raise :class:`OutOfTime` when ``FREQLIB_DEADLINE`` is set and has passed
    (``what``: the piece about to start; ``done``: pieces stored so far in this run)."""
    raw = os.environ.get(DEADLINE_ENV)
    if not raw:
        return
    try:
        deadline = float(raw)
    except ValueError:
        raise ValueError(f"{DEADLINE_ENV}={raw!r} is not a Unix time in seconds; unset it or set a number") from None
    if time.time() > deadline:
        stored = f"{done} result(s) were stored in this run: " if done is not None else ""
        raise OutOfTime(f"the call's time is up before {what} (not stored yet); {stored}executing the chapter "
                        "again continues from what was stored")
