"""What ``--log-format json`` needs wherever a line is written: whether it is on, what the lines
are about (each set at the moment it becomes known), and the one shape of a JSON line.

A module of its own so that the commands (which open the ConfigMap), the runner (which learns the
id and each attempt), the log formatter (in ``raypod.process``) and the printers
(``raypod.terminal``) share it without importing each other.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace

from raypod.clock import TIME_LAYOUT


@dataclass(frozen=True)
class LogContext:
    """The fields every JSON line carries; None until known.

    ``submission_id`` is Ray's submission id (``raypod-<job>-<hex>``, ``-r<n>`` for a retry), the id
    every raypod command takes. Not ``job_id``: in Ray that is another id, the driver's hex job id."""

    #: ``namespace/name`` of the ConfigMap ``run`` reads.
    configmap: str | None = None
    submission_id: str | None = None
    #: Which attempt ``submission_id`` is: 1, then 2, 3 for the retries of ``jobproperties.retries``.
    attempt: int | None = None


# Replaced whole, never changed in place: a line written from another thread sees one context.
_context = LogContext()
_json_lines = False


def set_log_configmap(namespace: str, name: str) -> None:
    global _context
    _context = replace(_context, configmap=f"{namespace}/{name}" if namespace and name else None)


def set_log_submission(submission_id: str | None, attempt: int | None = None) -> None:
    """The attempt the lines are about from now on (its number, when known)."""
    global _context
    _context = replace(_context, submission_id=submission_id or None, attempt=attempt if submission_id else None)


def log_context() -> LogContext:
    return _context


def set_json_lines(on: bool) -> None:
    """``--log-format json``: every line raypod writes for people is a JSON object."""
    global _json_lines
    _json_lines = on


def json_lines() -> bool:
    return _json_lines


def json_line(msg: str, level: str, created: float | None = None, **extra: object) -> str:
    """One line for log collectors: ``ts`` (the operator's time layout), ``level``, ``msg``,
    ``configmap``, ``submission_id``, ``attempt``, then ``extra``."""
    context = _context
    line: dict[str, object] = {
        "ts": time.strftime(TIME_LAYOUT, time.gmtime(time.time() if created is None else created)),
        "level": level,
        "msg": msg,
        "configmap": context.configmap,
        "submission_id": context.submission_id,
        "attempt": context.attempt,
        **extra,
    }
    text = json.dumps(line, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (undecodable bytes of the environment or a file name) cannot be written as
        # UTF-8: written as its \u escape, which JSON reads back as the same character.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
