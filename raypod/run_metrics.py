"""The run's metrics, pushed once to a Prometheus Pushgateway at exit (the way Prometheus
recommends for batch jobs), when ``RAYPOD_PUSHGATEWAY`` or ``--pushgateway`` names one.

Every figure is taken from where the run already holds it: the ``RunResult`` (the outcome, the
keys written, the exit code, what was collected), Ray's times of the last attempt, and the polls
the runner hears. The push comes after the final status is written and never changes the run: it
is bounded in time (it fits within the pod's grace period after SIGTERM, after the last status
write), and a failure is logged once, as a warning without a secret.

The group is ``job="raypod"``, ``namespace``, ``bridgejob``: a BridgeJob's metrics replace those of
its earlier pods. With ``RAYPOD_PUSHGATEWAY_DELETE=true`` the group is also deleted when a pod
starts (a dashboard never shows a previous job's end under the same name while a new one runs), and
deleted instead of pushed when the BridgeJob itself is deleted (no series outlive it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from raypod.artifacts import Collected
from raypod.contract import JOB_STATUS, REASON, assert_never
from raypod.errors import reportable
from raypod.http import Timeouts
from raypod.outcome import Ending
from raypod.pushgateway import GatewayAddress, Metric, Pushgateway, Sample, grouping_path
from raypod.ray import JobInfo, RayStatus
from raypod.run_record import attempt_number, is_final
from raypod.runner import RunResult
from raypod.safetext import Scrubber, basic_auth_secrets, bounded_text

log = logging.getLogger(__name__)

GATEWAY_VARIABLE = "RAYPOD_PUSHGATEWAY"
DELETE_VARIABLE = "RAYPOD_PUSHGATEWAY_DELETE"
#: The grouping key's job: the metrics of every BridgeJob's pod are told apart by namespace and name.
JOB = "raypod"
#: The most a push (or the delete at the start) takes, answer or not. After SIGTERM the pod has 30 s
#: in all: 5 s for the last status write (``LAST_FLUSH_WAIT``), or 20 s to stop a deleted BridgeJob's
#: Ray job, leave room for this.
PUSH_WAIT = 3.0
PUSH_TIMEOUTS = Timeouts(connect=2.0, read=PUSH_WAIT, total=PUSH_WAIT)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


@dataclass(frozen=True)
class GatewaySettings:
    """Where the metrics go (None: nowhere), and whether the group is deleted on request."""

    address: GatewayAddress | None = None
    delete: bool = False
    #: Why the settings could not be used, said once at exit (never quoting the URL's password).
    problem: str = ""

    @classmethod
    def parse(cls, gateway: str | None, delete: str | None) -> GatewaySettings:
        if not gateway:
            return cls()
        flag = (delete or "").strip().lower()
        problem = ""
        if flag not in (*_TRUE, *_FALSE):
            shown = bounded_text(flag, 20)
            problem = f"{DELETE_VARIABLE}: expected true or false, not {shown!r}; the group is not deleted"
        try:
            address = GatewayAddress.parse(gateway)
        except ValueError as error:
            return cls(problem=f"{GATEWAY_VARIABLE} (--pushgateway): {error}; no metrics are pushed")
        return cls(address, flag in _TRUE, problem)


class QueueClock:
    """When this pod first saw each attempt RUNNING, from the polls the runner hears.

    Ray's JobInfo has no start of RUNNING (its ``start_time`` is the submission), so the queue time
    is measured at the polls: at most one poll interval late. It is known only when this pod saw the
    start: the attempt was submitted after the pod started, or a poll saw it PENDING."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self.started_at = now()
        self._pending: set[str] = set()
        #: When a poll first saw each attempt RUNNING; None when it was running before this pod saw it.
        self._running: dict[str, float | None] = {}
        self._lock = threading.Lock()

    def observe(self, job: JobInfo) -> None:
        submission_id = job.submission_id
        with self._lock:
            if job.status is RayStatus.PENDING:
                self._pending.add(submission_id)
            elif job.status is RayStatus.RUNNING and submission_id not in self._running:
                watched_from_submission = job.start_time_ms is not None and job.start_time_ms / 1000 >= self.started_at
                seen_start = submission_id in self._pending or watched_from_submission
                self._running[submission_id] = self.now() if seen_start else None

    def queue_seconds(self, job: JobInfo | None) -> float | None:
        """From the submission (Ray's ``start_time``) to the first poll that saw ``job`` RUNNING."""
        if job is None or job.start_time_ms is None:
            return None
        with self._lock:
            running = self._running.get(job.submission_id)
        if running is None:
            return None
        seconds = running - job.start_time_ms / 1000
        return seconds if seconds >= 0 else None  # the pod's and the head's clocks disagree


def run_metrics(
    result: RunResult, *, duration: float, queue_seconds: float | None, completed_at: float
) -> list[Metric]:
    """The metrics of one run, from what it holds; a figure that is not known is left out."""
    outcome, written = result.outcome, result.status
    labels = {
        "status": str(written.get(JOB_STATUS) or outcome.status or ""),
        "reason": (written.get(REASON) or outcome.reason or "") if is_final(outcome.ending) else "",
        "ending": ending_label(outcome.ending),
    }
    metrics = [
        _gauge(
            "raypod_run_outcome",
            "How the run ended: 1, labelled with the Bridge status written (or kept), its reason, and the ending "
            "(final, bad_input, terminated, detached, already_final, deleted).",
            1,
            labels,
        ),
        _gauge("raypod_run_exit_code", "The exit code of the raypod run.", result.exit_code),
        _gauge("raypod_run_duration_seconds", "How long this raypod run took, from its start to its end.", duration),
        _gauge(
            "raypod_last_completion_timestamp_seconds",
            "When this raypod run ended, in seconds since the Unix epoch.",
            completed_at,
        ),
    ]
    job = outcome.job
    if job is not None and job.start_time_ms is not None and job.end_time_ms is not None:
        seconds = (job.end_time_ms - job.start_time_ms) / 1000
        if seconds >= 0:
            metrics.append(
                _gauge(
                    "raypod_job_duration_seconds",
                    "How long the last attempt took on Ray, from its submission to its end (Ray's times).",
                    seconds,
                )
            )
    if queue_seconds is not None:
        metrics.append(
            _gauge(
                "raypod_job_queue_seconds",
                "From the last attempt's submission to the first poll that saw it RUNNING on Ray.",
                queue_seconds,
            )
        )
    attempts = attempt_number(written)
    if attempts is not None:
        metrics.append(_gauge("raypod_job_attempts", "How many attempts of the job were submitted.", attempts))
    log_bytes = _log_bytes(result.collected)
    if log_bytes is not None:
        metrics.append(
            _gauge("raypod_log_uploaded_bytes", "How many bytes of the job's log were uploaded to S3.", log_bytes)
        )
    return metrics


def _gauge(name: str, help_text: str, value: float, labels: Mapping[str, str] | None = None) -> Metric:
    return Metric(name, help_text, [Sample(value, dict(labels or {}))])


def _log_bytes(collected: Collected | None) -> int | None:
    return collected.log_bytes if collected is not None else None


def ending_label(ending: Ending) -> str:
    match ending:
        case Ending.FINAL:
            return "final"
        case Ending.BAD_INPUT:
            return "bad_input"
        case Ending.TERMINATED:
            return "terminated"
        case Ending.DETACHED:
            return "detached"
        case Ending.ALREADY_FINAL:
            return "already_final"
        case Ending.DELETED:
            return "deleted"
        case _:
            assert_never(ending)


@dataclass
class MetricsAtExit:
    """The one push of a run (and the delete on request), each bounded by ``wait`` seconds."""

    settings: GatewaySettings
    bridgejob: str
    namespace: str
    queue: QueueClock = field(default_factory=QueueClock)
    wait: float = PUSH_WAIT
    timeouts: Timeouts = PUSH_TIMEOUTS
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    #: How the gateway is reached (the model of the pod mounts its own).
    connect: Callable[[GatewayAddress, Timeouts], Pushgateway] = Pushgateway
    started: float = field(init=False)
    _warned: bool = field(default=False, init=False)
    _pushed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.started = self.monotonic()

    @property
    def group(self) -> str:
        return grouping_path(JOB, {"namespace": self.namespace, "bridgejob": self.bridgejob})

    def delete_at_start(self) -> None:
        """``RAYPOD_PUSHGATEWAY_DELETE``: the group of an earlier run goes before this one starts."""
        address = self.settings.address
        if address is not None and self.settings.delete:
            self._bounded("delete the metrics of", lambda gateway: gateway.delete(self.group))

    def push(self, result: RunResult) -> None:
        """Once, after the final status is written: PUT the run's metrics (or, when the BridgeJob was
        deleted and deleting was asked for, DELETE its group)."""
        if self._pushed:
            return
        self._pushed = True
        if self.settings.problem:
            self._warn(self.settings.problem)
        if self.settings.address is None:
            return
        if result.outcome.ending is Ending.DELETED and self.settings.delete:
            self._bounded("delete the metrics of", lambda gateway: gateway.delete(self.group))
            return
        metrics = run_metrics(
            result,
            duration=max(0.0, self.monotonic() - self.started),
            queue_seconds=self.queue.queue_seconds(result.outcome.job),
            completed_at=self.wall(),
        )
        self._bounded("push metrics to", lambda gateway: gateway.push(self.group, metrics))

    def _bounded(self, what: str, call: Callable[[Pushgateway], None]) -> None:
        """``call`` in a daemon thread, waited for at most ``wait`` seconds (it dies with the pod)."""
        address = self.settings.address
        assert address is not None
        failures: list[Exception] = []
        done = threading.Event()

        def attempt() -> None:
            try:
                gateway = self.connect(address, self.timeouts)
                try:
                    call(gateway)
                finally:
                    gateway.close()
            except Exception as error:  # noqa: BLE001 - a push never ends the run, whatever it raises
                failures.append(error)
            finally:
                done.set()

        threading.Thread(target=attempt, name="raypod-pushgateway", daemon=True).start()
        where = f"the Pushgateway at {address.url}"
        if not done.wait(self.wait):
            self._warn(f"could not {what} {where}: no answer within {self.wait:g} s; the run ends as it would have")
        elif failures:
            problem = reportable(failures[0])
            self._warn(f"could not {what} {where}: {problem}; the run ends as it would have")

    def _warn(self, text: str) -> None:
        """The first problem of the run, as one warning; any later one only at debug level."""
        address = self.settings.address
        secrets = basic_auth_secrets(*address.auth) if address is not None and address.auth else []
        line = bounded_text(Scrubber(secrets).scrub(text), 500)
        log.log(logging.DEBUG if self._warned else logging.WARNING, "%s", line)
        self._warned = True
