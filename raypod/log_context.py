"""What ``--log-format json`` needs wherever a line is written: whether it is on, the job the
lines are about (set once its id is known), and the one shape of a JSON line.

A module of its own so that the runner (which learns the id), the log formatter (in
``raypod.process``) and the printers (``raypod.terminal``) share it without importing each other.
"""

from __future__ import annotations

import json
import time

from raypod.clock import TIME_LAYOUT

_job_id: str | None = None
_json_lines = False


def set_log_job_id(submission_id: str | None) -> None:
    global _job_id
    _job_id = submission_id or None


def log_job_id() -> str | None:
    return _job_id


def set_json_lines(on: bool) -> None:
    """``--log-format json``: every line raypod writes for people is a JSON object."""
    global _json_lines
    _json_lines = on


def json_lines() -> bool:
    return _json_lines


def json_line(msg: str, level: str, created: float | None = None, **extra: object) -> str:
    """One line for log collectors: ``ts`` (the operator's time layout), ``level``, ``msg``, ``job_id``."""
    line: dict[str, object] = {
        "ts": time.strftime(TIME_LAYOUT, time.gmtime(time.time() if created is None else created)),
        "level": level,
        "msg": msg,
        "job_id": _job_id,
        **extra,
    }
    return json.dumps(line, ensure_ascii=False)
