"""Kubernetes Events on the BridgeJob's ConfigMap: what happened to the job, for ``kubectl describe``.

One table of reasons (``REASONS``), one protocol (``EventRecorder``), and two recorders:

- ``NULL_EVENTS``: outside a cluster (or when the status does not go to the ConfigMap through the
  API) there are no Events;
- ``KubeEvents``: ``events.k8s.io/v1`` Events in the ConfigMap's namespace, ``regarding`` the
  ConfigMap with the uid raypod read, ``reportingController: raypod``, ``reportingInstance`` the
  pod's name; wrapped by ``BackgroundEvents`` in the pod so that no write ever waits in the poll.

Repeats are aggregated as client-go's ``tools/events`` broadcaster does: an Event that repeats one
already written (the same reason, note and object) is not created again; its ``series`` is patched
(``count`` from 2 up, ``lastObservedTime``). A series not observed for ``SERIES_FINISHED_AFTER`` is
finished (client-go's ``finishTime``): a later repeat starts a new Event. A patch answered 404 (the
Event expired, the API server's ``--event-ttl``) creates the Event again. The patch is a JSON merge
patch: client-go sends a strategic merge patch of the same ``series`` object, which for that field
means the same.

Best effort, always: one try per Event, bounded by ``EVENT_TIMEOUTS``; no failure ever reaches the
job's lifecycle. The first failure is logged once (a warning); after that:

- denied (401/403 from the API server: the Role lacks ``create``/``patch`` on events): no Event is
  tried again in this run, since the rights of a service account do not change under a running pod;
- anything else (the API down or slow, a proxy's page, a garbled answer): later Events are still
  tried, quietly (debug level), so Events come back when the API does.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import quote

from raypod.contract import BridgeStatus, Reason, assert_never
from raypod.errors import KubeApiError, RaypodError, Terminated
from raypod.http import Timeouts
from raypod.kube import MERGE_PATCH, KubeConfigMap
from raypod.pod_identity import PodIdentity
from raypod.retry import NO_RETRY
from raypod.safetext import Scrubber, printable, valid_text

log = logging.getLogger(__name__)

REPORTING_CONTROLLER = "raypod"
#: events.k8s.io/v1 validation: ``note`` at most 1 kB, ``reportingInstance`` and ``action`` 128 characters.
NOTE_LIMIT = 1024
INSTANCE_LIMIT = 128
#: One Event write: short, never retried (the next Event is the next try).
EVENT_TIMEOUTS = Timeouts(connect=2.0, read=3.0, total=5.0)
#: client-go's ``finishTime``: a series not observed for this long is over; a repeat starts a new Event.
SERIES_FINISHED_AFTER = 6 * 60.0
#: How long the end of the run waits for the Events still queued (the final one above all).
CLOSE_WAIT = 5.0
#: Events queued for the background writer at most; more are dropped (never a wait in the poll).
QUEUE_LIMIT = 100
RBAC_RULE = 'apiGroups: ["events.k8s.io"], resources: ["events"], verbs: ["create", "patch"]'


class EventType(str, enum.Enum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class EventReason:
    type: EventType
    #: What raypod did, or saw (the Event's ``action``).
    action: str


class EventReasons:
    """The Event reasons raypod records (``Event.reason``)."""

    SUBMITTED = "Submitted"
    REATTACHED = "Reattached"
    RUNNING = "Running"
    RETRY_SCHEDULED = "RetryScheduled"
    KILL_REQUESTED = "KillRequested"
    STOPPED = "Stopped"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LOST = "Lost"
    BAD_INPUT = "BadInput"


#: Every reason, its type and action: the one table (docs/kubernetes.md#events shows it).
REASONS: Mapping[str, EventReason] = {
    EventReasons.SUBMITTED: EventReason(EventType.NORMAL, "Submit"),
    EventReasons.REATTACHED: EventReason(EventType.NORMAL, "Attach"),
    EventReasons.RUNNING: EventReason(EventType.NORMAL, "Watch"),
    EventReasons.RETRY_SCHEDULED: EventReason(EventType.WARNING, "Retry"),
    EventReasons.KILL_REQUESTED: EventReason(EventType.NORMAL, "Stop"),
    EventReasons.STOPPED: EventReason(EventType.NORMAL, "Finish"),
    EventReasons.DEADLINE_EXCEEDED: EventReason(EventType.WARNING, "Stop"),
    EventReasons.SUCCEEDED: EventReason(EventType.NORMAL, "Finish"),
    EventReasons.FAILED: EventReason(EventType.WARNING, "Finish"),
    EventReasons.LOST: EventReason(EventType.WARNING, "Finish"),
    EventReasons.BAD_INPUT: EventReason(EventType.WARNING, "Validate"),
}


def final_reason(status: BridgeStatus, reason: str) -> str:
    """The Event that goes with a final status and its ``status.reason``."""
    match status:
        case BridgeStatus.SUCCEEDED:
            return EventReasons.SUCCEEDED
        case BridgeStatus.KILL:
            return EventReasons.STOPPED
        case BridgeStatus.UNKNOWN:
            return EventReasons.LOST
        case BridgeStatus.FAILED:
            if reason in (Reason.DEADLINE_EXCEEDED, Reason.START_DEADLINE_EXCEEDED):
                return EventReasons.DEADLINE_EXCEEDED
            if reason == Reason.BAD_INPUT:
                return EventReasons.BAD_INPUT
            return EventReasons.FAILED
        case BridgeStatus.SUBMITTED | BridgeStatus.PENDING | BridgeStatus.RUNNING:
            raise AssertionError(f"{status} is not final")
        case _:
            assert_never(status)


class EventRecorder(Protocol):
    """Where the lifecycle says what happened. ``record`` never raises and never waits long."""

    def record(self, reason: str, note: str) -> None: ...

    def close(self, timeout: float) -> None:
        """The end of the run: wait up to ``timeout`` for what is still being written."""
        ...


class NullEvents:
    """No Events: outside a cluster, and in tests on fakes."""

    def record(self, reason: str, note: str) -> None:
        return None

    def close(self, timeout: float) -> None:
        return None


NULL_EVENTS = NullEvents()


def bounded_note(note: str, scrubber: Scrubber, limit: int = NOTE_LIMIT) -> str:
    """Scrubbed first, then printable and at most ``limit`` bytes of UTF-8 (the API's limit is in bytes)."""
    text = printable(scrubber.scrub(valid_text(note))).strip()
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    # Cut on a character boundary, with room for the ellipsis.
    return encoded[: limit - 3].decode("utf-8", "ignore") + "..."


def micro_time(at: datetime) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, in UTC."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reporting_instance(environ: Mapping[str, str]) -> str:
    """The pod's name; else, as client-go does, ``raypod-<hostname>``."""
    name = PodIdentity.from_environ(environ).name or f"{REPORTING_CONTROLLER}-{socket.gethostname()}"
    return printable(name)[:INSTANCE_LIMIT]


@dataclass
class _Series:
    """An Event written, and how often it was observed since."""

    name: str
    count: int
    last_observed: float


class _Denied(Exception):
    """The API server refused Events to this service account."""


class KubeEvents:
    """Writes each Event at once (one bounded try); ``BackgroundEvents`` takes it off the caller's path."""

    def __init__(
        self,
        api: KubeConfigMap,
        instance: str,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        timeouts: Timeouts = EVENT_TIMEOUTS,
    ) -> None:
        self.api = api
        self.instance = instance
        self.now = now
        self.timeouts = timeouts
        self.path = f"/apis/events.k8s.io/v1/namespaces/{quote(api.namespace, safe='')}/events"
        #: (reason, note, ConfigMap uid) -> the Event written for it.
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._denied = False
        self._logged = False
        self._last_name = 0

    def record(self, reason: str, note: str) -> None:
        self.write(reason, note, self.now())

    def close(self, timeout: float) -> None:
        return None

    def write(self, reason: str, note: str, at: datetime) -> None:
        """One Event observed at ``at``: created, or its series patched. Never raises."""
        uid = self.api.uid
        if self._denied or uid is None or self.api.foreign is not None:
            # Never read (no uid to name), or another object now: no Event about it.
            return
        try:
            self._write(reason, note, at, uid)
        except Terminated:
            return  # SIGTERM cut the call: the run sees the signal on its own
        except Exception as error:  # noqa: BLE001 - an Event must never change the job's outcome
            self._failed(error)

    def _write(self, reason: str, note: str, at: datetime, uid: str) -> None:
        kind = REASONS[reason]
        text = bounded_note(note, self.api.http.scrubber())
        key = (reason, text, uid)
        seen = at.timestamp()
        series = self._series.get(key)
        if series is not None and seen - series.last_observed < SERIES_FINISHED_AFTER:
            patched = _Series(series.name, series.count + 1, seen)
            body = {"series": {"count": patched.count, "lastObservedTime": micro_time(at)}}
            try:
                self._call("PATCH", f"{self.path}/{quote(series.name, safe='')}", body, MERGE_PATCH)
            except KubeApiError as error:
                if error.status != 404 or not error.from_the_api_server:
                    raise
                # Expired (the API server's event TTL): a new Event, as client-go does.
            else:
                self._series[key] = patched
                return
        name = self._name()
        event = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": self.api.namespace},
            "eventTime": micro_time(at),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "action": kind.action,
            "reason": reason,
            "type": kind.type.value,
            "regarding": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": self.api.name,
                "namespace": self.api.namespace,
                "uid": uid,
            },
            "note": text,
        }
        self._call("POST", self.path, event, "application/json")
        self._series[key] = _Series(name, 1, seen)

    def _name(self) -> str:
        """``<configmap>.<hex>`` as client-go names Events (the time in ns), never the same twice."""
        unique = max(time.time_ns(), self._last_name + 1)
        self._last_name = unique
        suffix = f".{unique:x}"
        return f"{self.api.name[: 253 - len(suffix)]}{suffix}"

    def _call(self, method: str, path: str, body: Mapping[str, Any], content_type: str) -> None:
        try:
            answer = self.api.http.json_answer(
                method,
                path,
                data=json.dumps(body),
                headers={"Content-Type": content_type},
                retry=NO_RETRY,
                timeouts=self.timeouts,
            )
        except KubeApiError as error:
            if error.status in (401, 403) and error.from_the_api_server:
                raise _Denied(str(error)) from error
            raise
        document = answer.value
        if not isinstance(document, dict) or document.get("kind") != "Event":
            raise KubeApiError(method, self.api.http.url(path), answer.status, "the answer is not an Event object")

    def _failed(self, error: Exception) -> None:
        if isinstance(error, _Denied):
            self._denied = True
            why = (
                f"Events are not written in this run: {error} (the pod's service account needs a Role with "
                f"{{{RBAC_RULE}}}); the job goes on"
            )
        else:
            problem = error if isinstance(error, RaypodError) else type(error).__name__
            why = f"an Event could not be written ({problem}); the job goes on, and later Events are still tried"
        if self._logged:
            log.debug("%s", why)
            return
        self._logged = True
        log.warning("%s", why)


class BackgroundEvents:
    """Events written by a daemon thread: ``record`` only queues (the time is taken then), so the
    poll never waits on the API; ``close`` waits (bounded) for what is queued, then ends the thread."""

    def __init__(self, writer: KubeEvents, *, limit: int = QUEUE_LIMIT) -> None:
        self.writer = writer
        self._queue: queue.Queue[tuple[str, str, datetime] | None] = queue.Queue(limit)
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="raypod-events", daemon=True)
        self._thread.start()

    def record(self, reason: str, note: str) -> None:
        if self._closed:
            return
        try:
            self._queue.put_nowait((reason, note, self.writer.now()))
        except queue.Full:
            log.debug("Event %s dropped: %d Events wait to be written already", reason, self._queue.maxsize)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is not None:
                    self.writer.write(*item)
            finally:
                self._queue.task_done()
            # Closed: what is queued still goes out, then the thread ends (a full queue had no room
            # for the None that wakes it).
            if item is None or (self._closed and self._queue.empty()):
                return

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the Events queued; the thread ends after the one it writes."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.debug("%d Event(s) not written at the end of the run", self._queue.unfinished_tasks)
                    break
                self._queue.all_tasks_done.wait(left)
        self._closed = True
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # a daemon: it never holds the exit


def events_for(api: KubeConfigMap | None, environ: Mapping[str, str] | None = None) -> EventRecorder:
    """Events on ``api``'s ConfigMap when the status goes there through the API; else none."""
    if api is None:
        return NULL_EVENTS
    return BackgroundEvents(KubeEvents(api, reporting_instance(os.environ if environ is None else environ)))
