"""Status values and times as the operator reads them, and where they are written."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol, TextIO

from raypod.errors import ConfigError, RaypodError

log = logging.getLogger(__name__)

JOB_STATUS = "status.jobStatus"
SUBMIT_TIME = "status.submitTime"
START_TIME = "status.startTime"
END_TIME = "status.endTime"
MESSAGE = "status.message"
ID = "id"
OWNED_KEYS = (ID, JOB_STATUS, SUBMIT_TIME, START_TIME, END_TIME, MESSAGE)

SUBMITTED = "SUBMITTED"
PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
KILL = "KILL"
UNKNOWN = "UNKNOWN"
FINAL_STATUSES = (SUCCEEDED, FAILED, KILL, UNKNOWN)

_RAY_TO_BRIDGE = {"PENDING": PENDING, "RUNNING": RUNNING, "SUCCEEDED": SUCCEEDED, "FAILED": FAILED, "STOPPED": KILL}

#: Go's 2006-01-02T15:04:05Z, the layout the operator parses.
TIME_LAYOUT = "%Y-%m-%dT%H:%M:%SZ"


def bridge_status(ray_status: str) -> str:
    return _RAY_TO_BRIDGE.get(ray_status, UNKNOWN)


def exit_code(status: str) -> int:
    return 0 if status == SUCCEEDED else 1


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIME_LAYOUT)


def format_ray_time(milliseconds: int | None) -> str | None:
    if not milliseconds:
        return None
    return format_time(datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc))


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, TIME_LAYOUT).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def now_text() -> str:
    return format_time(datetime.now(timezone.utc))


class StatusSink(Protocol):
    """Where raypod's own keys go: the ConfigMap (through the API) or a status file."""

    description: str

    def load(self) -> dict[str, str]:
        """The keys written so far (by this pod or an earlier one)."""
        ...

    def write(self, changes: Mapping[str, str]) -> None:
        """Write these keys, and only these."""
        ...


class NullSink:
    """No status file and no cluster: the stdout lines are the only record."""

    description = "stdout only"

    def load(self) -> dict[str, str]:
        return {}

    def write(self, changes: Mapping[str, str]) -> None:
        return None


class StatusFile:
    """A JSON object of every key raypod has written, replaced atomically on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"status file {path}"

    def load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise ConfigError.single("--status-file", f"cannot read {self.path}: {error.strerror}") from error
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ConfigError.single("--status-file", f"{self.path} is not a JSON object") from error
        if not isinstance(data, dict):
            raise ConfigError.single("--status-file", f"{self.path} is not a JSON object")
        return {str(k): str(v) for k, v in data.items()}

    def write(self, changes: Mapping[str, str]) -> None:
        merged = {**self.load(), **changes}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".status-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(merged, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


class StatusReporter:
    """Keeps the last written values, writes only what changed, and prints one line per change.

    A write that fails (the API is down) is kept pending and retried on the next update,
    so an outage never fails the job.
    """

    def __init__(self, sink: StatusSink, out: TextIO | None = None, initial: Mapping[str, str] | None = None) -> None:
        self.sink = sink
        self.out = out or sys.stdout
        self.current: dict[str, str] = dict(initial or {})
        self._pending: dict[str, str] = {}

    def get(self, key: str) -> str:
        return self.current.get(key, "")

    def update(self, changes: Mapping[str, str | None], *, must_persist: bool = False) -> None:
        fresh = {k: v for k, v in changes.items() if v is not None and self.current.get(k) != v}
        if fresh:
            self.current.update(fresh)
            self._pending.update(fresh)
            self._print(fresh)
        self.flush(must_persist=must_persist)

    def flush(self, *, must_persist: bool = False) -> None:
        if not self._pending:
            return
        try:
            self.sink.write(dict(self._pending))
        except RaypodError as error:
            if must_persist:
                raise
            log.warning("status not written to %s yet (%s); will retry on the next poll", self.sink.description, error)
            return
        self._pending.clear()

    def _print(self, fresh: Mapping[str, str]) -> None:
        parts = [f"{key}={fresh[key]}" for key in OWNED_KEYS if key in fresh]
        parts += [f"{key}={value}" for key, value in fresh.items() if key not in OWNED_KEYS]
        print(f"{now_text()} status {' '.join(parts)}", file=self.out, flush=True)
