"""The job the log lines are about, for ``--log-format json``: set once its id is known.

A module of its own so that the runner (which learns the id) and the log formatter (in
``raypod.process``) share it without importing each other.
"""

from __future__ import annotations

_job_id: str | None = None


def set_log_job_id(submission_id: str | None) -> None:
    global _job_id
    _job_id = submission_id or None


def log_job_id() -> str | None:
    return _job_id
