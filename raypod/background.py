"""The watch's calls to a slow Kubernetes API, taken off the poll's path (issue 25, class 7).

An API that holds each request for a long time must not hold the polls of Ray with it. Two
wrappers, wired in by the runner around the session only, each with at most one call in flight:

- ``BackgroundKillSwitch``: ``kill`` is re-read in a daemon thread; the poll waits for a fresh
  answer only briefly, and otherwise goes on with the latest known one. A read that is still
  pending is never doubled; a failing read is logged once per spell of failures.
- ``BackgroundReporter``: a ``StatusReporter`` whose ordinary flushes (the watch's status) are
  sent by a daemon writer, the newest changes merged. ``persist`` and a write that must persist
  (the id before the POST, the final status) stay synchronous: they first wait (bounded) for the
  write in flight, then send every key it or the queue still holds. Should the write in flight
  outlast that wait, it is superseded: once it returns, the keys it wrote are written again with
  their current values, under the same lock as the synchronous writes, so a late write never
  leaves a stale value after the final one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from raypod.errors import RaypodError, Terminated, reportable
from raypod.session import KillSwitch
from raypod.status_store import StatusReporter, StatusSink

log = logging.getLogger(__name__)

#: How long a poll waits for the re-read of ``kill`` it started: the normal answer comes well within
#: it, so ``kill`` is as fresh as without the thread; a held API costs a poll this much at most.
KILL_FRESH_WAIT = 1.0
#: How long a synchronous write waits for the background write in flight before superseding it.
SUPERSEDE_AFTER = 5.0
#: How long the end of the run waits for a superseded write to return (and be repaired).
CLOSE_WAIT = 30.0
#: After SIGTERM, how long the last status write is waited for: the pod has 30 s of grace in all.
LAST_FLUSH_WAIT = 5.0


class _Spell:
    """Logs the first failure of a spell (what ``failure`` says of it), and the recovery; not every
    failure of it."""

    def __init__(self, failure: Callable[[RaypodError], str], recovery: str) -> None:
        self.failure, self.recovery = failure, recovery
        self.failing = False

    def failed(self, error: Exception) -> None:
        if not self.failing:
            log.warning("%s", self.failure(reportable(error)))
        self.failing = True

    def succeeded(self) -> None:
        if self.failing:
            log.info("%s", self.recovery)
        self.failing = False


class BackgroundKillSwitch:
    """A ``KillSwitch`` that re-reads ``inner`` in a daemon thread and answers without waiting on it."""

    def __init__(self, inner: KillSwitch, *, fresh_wait: float = KILL_FRESH_WAIT) -> None:
        self.inner = inner
        self.description = inner.description
        self.fresh_wait = fresh_wait
        #: The latest value read; False until a read succeeds.
        self.known = False
        self._reader: threading.Thread | None = None
        self._done = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._spell = _Spell(
            lambda error: (
                f"could not re-read kill from {inner.description}: {error}; the watch goes on with the last value read"
            ),
            f"kill can be read from {inner.description} again",
        )

    def kill_requested(self) -> bool:
        with self._lock:
            if self._closed or self._reader is not None:
                # A read is pending (a held API): never a second one; the latest known value now.
                return self.known
            self._done.clear()
            self._reader = threading.Thread(target=self._read, name="raypod-kill-reader", daemon=True)
            self._reader.start()
        self._done.wait(self.fresh_wait)
        with self._lock:
            return self.known

    def _read(self) -> None:
        try:
            value = self.inner.kill_requested()
        except Terminated:
            value = None  # SIGTERM: the run is ending; nothing to report
        except Exception as error:  # noqa: BLE001 - a reader thread must never die with a traceback
            self._spell.failed(error)
            value = None
        else:
            self._spell.succeeded()
        with self._lock:
            if value is not None:
                self.known = value
            self._reader = None
            self._done.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the pending read, if any; whether none is pending now."""
        with self._lock:
            reader = self._reader
        if reader is not None:
            reader.join(timeout)
        return reader is None or not reader.is_alive()

    def close(self, timeout: float = 0.0) -> None:
        """No more reads; wait up to ``timeout`` for the one pending (a daemon: it never holds the exit)."""
        with self._lock:
            self._closed = True
        self.wait_idle(timeout)


class BackgroundReporter(StatusReporter):
    """A ``StatusReporter`` whose ordinary flushes go through a background writer while it runs
    (``start``/``stop``); outside it, and for every write that must persist, it is the plain reporter."""

    def __init__(
        self,
        sink: StatusSink,
        on_change: Callable[[Mapping[str, str]], None] | None = None,
        initial: Mapping[str, str] | None = None,
        *,
        supersede_after: float = SUPERSEDE_AFTER,
    ) -> None:
        super().__init__(sink, on_change, initial)
        self.supersede_after = supersede_after
        #: Serializes the synchronous writes with the repair of a superseded one.
        self._sync = threading.RLock()
        self._state = threading.Condition()
        self._queued: dict[str, str] = {}
        self._kicked = False
        self._in_flight: dict[str, str] | None = None
        self._superseded = False
        self._stopping = False
        self._writer: threading.Thread | None = None
        self._spell = _Spell(
            lambda error: f"status not written to {sink.description} yet ({error}); will retry on the next poll",
            f"the status is written to {sink.description} again",
        )

    # -- the writer's life ---------------------------------------------------------------------
    def start(self) -> None:
        with self._state:
            self._stopping = False
        self._writer = threading.Thread(target=self._write_loop, name="raypod-status-writer", daemon=True)
        self._writer.start()

    def stop(self, *, hurry: bool = False) -> None:
        """Back to synchronous writes: what the writer still holds is pending again (none is lost).
        ``hurry`` (SIGTERM): a write in flight is superseded at once, not waited for."""
        with self._state:
            self._stopping = True
            self._state.notify_all()
        self._take_back(0.0 if hurry else self.supersede_after)

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """At the end of the run: wait up to ``timeout`` for a write still in flight (and its repair)."""
        self.stop(hurry=timeout <= 0)
        writer = self._writer
        if writer is not None:
            writer.join(timeout)
            with self._state:
                # An idle writer told to stop may not have left yet (a zero timeout): only a write
                # truly in flight is worth a warning.
                in_flight = writer.is_alive() and self._in_flight is not None
            if in_flight:
                log.warning("a status write to %s was still in flight at the end of the run", self.sink.description)

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` until the writer holds nothing, queued or in flight."""
        with self._state:
            return self._state.wait_for(lambda: self._in_flight is None and not self._kicked, timeout)

    @property
    def running(self) -> bool:
        return self._writer is not None and self._writer.is_alive() and not self._stopping

    # -- StatusReporter --------------------------------------------------------------------------
    def flush(self, *, must_persist: bool = False) -> None:
        if must_persist or not self.running:
            with self._sync:
                self._take_back()
                super().flush(must_persist=must_persist)
            return
        if not self._pending:
            return
        with self._state:
            self._queued.update(self._pending)
            self._kicked = True
            self._state.notify_all()
        self._pending.clear()

    def persist(self, changes: Mapping[str, str]) -> None:
        with self._sync:
            self._take_back()
            super().persist(changes)

    # -- internals ---------------------------------------------------------------------------------
    def _take_back(self, wait: float | None = None) -> None:
        """Wait (bounded) for the write in flight; then the queue, and a write still in flight
        (superseded), are pending again, with current values, for the synchronous write to send."""
        bound = self.supersede_after if wait is None else wait
        with self._state:
            self._state.wait_for(lambda: self._in_flight is None or self._superseded, bound)
            keys = set(self._queued)
            if self._in_flight is not None:
                self._superseded = True
                keys |= set(self._in_flight)
            self._queued.clear()
        for key in keys:
            self._pending.setdefault(key, self.current[key])

    def _write_loop(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(lambda: self._kicked or self._stopping)
                if self._stopping:
                    self._state.notify_all()
                    return
                changes, self._queued, self._kicked = self._queued, {}, False
                if not changes:
                    continue
                self._in_flight = changes
            ok = self._send(changes)
            with self._state:
                superseded, self._superseded, self._in_flight = self._superseded, False, None
                if not ok and not superseded:
                    # Sent again with the next flush (the next poll), under newer values.
                    self._queued = {**changes, **self._queued}
                self._state.notify_all()
            if superseded and ok:
                self._repair(changes)

    def _send(self, changes: Mapping[str, str]) -> bool:
        try:
            self.sink.write(dict(changes))
        except Terminated:
            return False
        except Exception as error:  # noqa: BLE001 - a writer thread must never die with a traceback
            self._spell.failed(error)
            return False
        self._spell.succeeded()
        return True

    def _repair(self, written: Mapping[str, str]) -> None:
        """A superseded write returned after a synchronous one began: whatever it wrote that is no
        longer current is written again, serialized with the synchronous writes."""
        with self._sync:
            stale = {key: self.current[key] for key, value in written.items() if self.current.get(key) != value}
            if not stale:
                return
            log.info("a late status write landed; writing %s again", ", ".join(sorted(stale)))
            try:
                self.sink.write(stale)
            except (RaypodError, Terminated) as error:
                log.error("could not write %s again after a late write: %s", ", ".join(sorted(stale)), error)
