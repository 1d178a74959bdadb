"""One-line error messages: what the book prints when something a user gave it fails."""
from __future__ import annotations

__all__ = ["first_line"]


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (200 characters at most): error messages stay one line."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()[:200]}" if lines else type(exc).__name__
