"""A job's log as Ray's tail sends it."""

from __future__ import annotations

import io


def universal(data: bytes) -> bytes:
    """The log as Ray's tail reads it: Python's text mode, universal newlines."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=None).read().encode("utf-8")
