"""Where raypod's status keys go (the ConfigMap, a status file, nowhere), and the reporter that
writes only what changed and keeps a failed write for the next try."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from raypod.capped_read import MAX_CONFIG_FILE, read_capped_text
from raypod.contract import OWNED_KEYS
from raypod.errors import ConfigError, LocalFileError, RaypodError, reportable
from raypod.safetext import valid_json

log = logging.getLogger(__name__)

#: How long the ``id`` written before the POST is retried through an outage: the 60 s of one call.
ID_WRITE_BUDGET = 60.0
#: How long a final status (bad input too) is retried: the job is over and the pod has nothing else
#: to do, so most of its life if need be; SIGTERM still cuts it at once.
FINAL_WRITE_BUDGET = 300.0


class StatusSink(Protocol):
    """Where raypod's own keys go: the ConfigMap (through the API) or a status file."""

    description: str

    def load(self) -> dict[str, str]:
        """The keys written so far (by this pod or an earlier one)."""
        ...

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        """Write these keys, and only these. ``within``: a write that must land, retried through an
        outage for up to that many seconds (None: the sink's usual retries)."""
        ...


class NullSink:
    """No status file and no cluster: the stdout lines are the only record."""

    description = "stdout only"

    def load(self) -> dict[str, str]:
        return {}

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        return None


class StatusFile:
    """A JSON object of every key raypod has written, replaced atomically on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"status file {path}"

    def load(self) -> dict[str, str]:
        try:
            text = self._read()
        except OSError as error:
            raise ConfigError.single("--status-file", f"cannot read {self.path}: {error.strerror}") from None
        return self._parse(text)

    def _read(self) -> str:
        try:
            return read_capped_text(self.path, MAX_CONFIG_FILE, "--status-file")
        except FileNotFoundError:
            return ""

    def _parse(self, text: str) -> dict[str, str]:
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ConfigError.single("--status-file", f"{self.path} is not a JSON object") from error
        if not isinstance(data, dict):
            raise ConfigError.single("--status-file", f"{self.path} is not a JSON object")
        # JSON's escapes can spell a lone surrogate, which no later print or write could encode.
        return {str(k): str(v) for k, v in valid_json(data).items()}

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        """A file that cannot be written (a full or read-only disk) is a failed write like the API's:
        the reporter keeps the changes pending, and a write that must persist fails the run plainly."""
        try:
            recorded = self._parse(self._read())
            write_json_atomically(self.path, {**recorded, **changes}, sort_keys=True)
        except OSError as error:
            raise LocalFileError(f"cannot write {self.description}", error) from None


def write_json_atomically(path: Path, value: object, *, sort_keys: bool = False) -> None:
    """``value`` as indented JSON, replacing ``path`` in one step: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(value, handle, indent=2, sort_keys=sort_keys)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def recorded_keys(data: Mapping[str, str]) -> dict[str, str]:
    """What an earlier pod recorded among ``data``: raypod's own keys with a value."""
    return {k: v for k, v in data.items() if k in OWNED_KEYS and v}


class StatusReporter:
    """Keeps the last written values and writes only what changed.

    A write that fails (the API is down) is kept pending and retried on the next update,
    so an outage never fails the job. ``on_change`` hears each change once, whether or not
    it reached the sink yet (the runner prints it as a status line).
    """

    def __init__(
        self,
        sink: StatusSink,
        on_change: Callable[[Mapping[str, str]], None] | None = None,
        initial: Mapping[str, str] | None = None,
        *,
        id_budget: float = ID_WRITE_BUDGET,
        final_budget: float = FINAL_WRITE_BUDGET,
    ) -> None:
        self.sink = sink
        self.id_budget = id_budget
        self.final_budget = final_budget
        self.on_change = on_change
        self.current: dict[str, str] = dict(initial or {})
        self._pending: dict[str, str] = {}
        #: Why the last write that had to land (a final status) did not; "" once one lands. The
        #: result and the termination message say it, as the status is not where it should be.
        self.not_written = ""

    def load(self) -> dict[str, str]:
        """Take in what an earlier pod recorded: raypod's own keys with a value."""
        recorded = recorded_keys(self.sink.load())
        self.current.update(recorded)
        return recorded

    def get(self, key: str) -> str:
        return self.current.get(key, "")

    def persist(self, changes: Mapping[str, str]) -> None:
        """Write ``changes`` now, or keep nothing of them: a failed write raises, and no later write
        (nor the result) names what was never recorded, such as an attempt Ray never had."""
        fresh = {k: v for k, v in changes.items() if self.current.get(k) != v}
        self.sink.write({**self._pending, **fresh}, within=self.id_budget)
        self._pending.clear()
        self.current.update(fresh)
        if fresh and self.on_change is not None:
            self.on_change(fresh)

    def update(self, changes: Mapping[str, str | None], *, must_persist: bool = False) -> None:
        """Record ``changes`` (None: no change) and write them. A failed write is retried with the next
        one; ``must_persist``: it is retried for ``final_budget`` seconds, then raises, and the changes
        stay recorded (a final status)."""
        fresh = {k: v for k, v in changes.items() if v is not None and self.current.get(k) != v}
        if fresh:
            self.current.update(fresh)
            self._pending.update(fresh)
            if self.on_change is not None:
                self.on_change(fresh)
        self.flush(must_persist=must_persist)

    @property
    def has_pending(self) -> bool:
        """Changes recorded but not written yet."""
        return bool(self._pending)

    def flush(self, *, must_persist: bool = False) -> None:
        if not self._pending:
            return
        try:
            self.sink.write(dict(self._pending), within=self.final_budget if must_persist else None)
        except Exception as error:
            if must_persist:
                self.not_written = str(reportable(error))
                raise
            if not isinstance(error, RaypodError):
                raise
            log.warning("status not written to %s yet (%s); will retry on the next poll", self.sink.description, error)
            return
        self._pending.clear()
        self.not_written = ""


def status_line(changes: Mapping[str, str]) -> str:
    """``status key=value ...``: raypod's own keys in their fixed order, then any others."""
    parts = [f"{key}={changes[key]}" for key in OWNED_KEYS if key in changes]
    parts += [f"{key}={value}" for key, value in changes.items() if key not in OWNED_KEYS]
    return f"status {' '.join(parts)}"
