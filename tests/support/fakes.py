"""In-memory test doubles of the lifecycle's protocols: a Ray, a clock, a status sink.

They run a ``JobSession`` without a network and without real sleeping:

- ``FakeRay`` implements ``raypod.jobs.RayJobs``: jobs keyed by submission_id, each with a scripted
  life that ``get_job`` steps through, every call recorded, failures scripted per method;
- ``FakeClock`` implements ``raypod.clock.Clock``: time moves only in ``wait``, instantly, and
  SIGTERM (or any other event) can be scheduled at a fake time;
- ``MemorySink`` implements ``raypod.status.StatusSink``: a dict, the list of writes, and writes
  that fail on demand.

``Harness`` wires the three to a ``JobSession`` the way the runner does.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from raypod.contract import ID
from raypod.errors import RayApiError, RaypodError, Terminated
from raypod.http import Timeouts
from raypod.outcome import Outcome
from raypod.ray import RAY_TERMINAL_STATUSES, JobInfo
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.runner import finish
from raypod.session import JobSession, SessionSettings
from raypod.source import ConfigMapJob, MappingSource
from raypod.status_store import StatusReporter
from raypod.submission import RaySubmitter, SubmissionSettings
from raypod.terminal import ByteProgress, no_progress
from raypod.watch_schedule import OutputActivity
from tests.support.ray_job_json import job_json

T = TypeVar("T")
RAY_URL = "http://ray.test:8265"
#: The BridgeJob the Harness runs.
JOB_NAME = "train"
NAMESPACE = "bridge"

#: The ConfigMap of a plain job: a script already on the Ray nodes.
BASE_CONFIG = {
    "resourceURL": RAY_URL,
    "jobdata.scriptLocation": "remote",
    "jobdata.jobScript": "/opt/jobs/train.py",
    "updateInterval": "5",
}
INLINE_SCRIPT = "print('hello from the job')\n"

#: Ray's answer to a POST whose submission_id exists (the last line of its traceback).
DUPLICATE_MESSAGE = "Job with submission_id {} already exists. Please use a different submission_id."
#: The dashboard's 500 around its job agent's 4xx.
WRAPPED_REJECTION_BODY = (
    "Traceback (most recent call last):\n"
    '  File "ray/dashboard/modules/job/job_head.py", line 1, in submit_job\n'
    "aiohttp.web_exceptions.HTTPInternalServerError: Request failed with status code 400: "
    "runtime_env field 'pip' is not valid"
)
FAILED_MESSAGE = (
    "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
    "Traceback (most recent call last):\nValueError: bad input"
)


# -- Ray's error answers ------------------------------------------------------------------------
def ray_error(
    status: int | None, method: str = "GET", path: str = "/api/jobs/", reason: str = "", body: str = ""
) -> RayApiError:
    """An error as ``raypod.http`` raises it: status None is "no answer" (transient)."""
    if not reason:
        reason = "ConnectionError: [Errno 111] Connection refused" if status is None else f"HTTP error {status}"
    return RayApiError(method, RAY_URL + path, status, reason, body)


def no_answer(method: str = "GET", path: str = "/api/jobs/") -> RayApiError:
    return ray_error(None, method, path)


def duplicate_id_error(submission_id: str) -> RayApiError:
    message = DUPLICATE_MESSAGE.format(submission_id)
    body = f"Traceback (most recent call last):\n  ...\nValueError: {message}"
    return ray_error(500, "POST", "/api/jobs/", message, body)


def wrapped_rejection(reason: str = "Internal Server Error") -> RayApiError:
    return ray_error(500, "POST", "/api/jobs/", reason, WRAPPED_REJECTION_BODY)


class _Lost:
    """A scripted POST answer that is lost: Ray creates the job, the caller sees a timeout."""

    def __repr__(self) -> str:
        return "LOST"


class _Ok:
    """A scripted call that goes through normally."""

    def __repr__(self) -> str:
        return "OK"


LOST = _Lost()
OK = _Ok()
Action = RayApiError | _Lost | _Ok


@dataclass
class _Persistent:
    error: RayApiError
    #: Fails every call until this fake elapsed time (None: for ever).
    until: float | None


# -- the job --------------------------------------------------------------------------------------
#: A Ray status, or (status, message), or (status, message, more fields of Ray's answer: ``error_type``,
#: ``driver_exit_code``).
Step = str | tuple[str, str] | tuple[str, str, Mapping[str, Any]]
Life = Sequence[Step] | Callable[[int], Step]


@dataclass
class FakeJob:
    submission_id: str
    #: What ``get_job`` answers, one entry per answer (the last one repeats), or a function of
    #: the answer's index. An entry is a Ray status, or (status, message).
    life: Life
    payload: Mapping[str, Any] = field(default_factory=dict)
    #: Statuses in which the job takes a stop request (``stopped: true``) but goes on (Ray 2.60's PENDING).
    ignore_stop_in: Collection[str] = ()
    status: str = ""
    message: str = ""
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    answers: int = 0
    stopped: bool = False
    #: The step's other fields of Ray's answer (``error_type``, ``driver_exit_code``).
    fields: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status, self.message, self.fields = self._entry(0)

    def _entry(self, index: int) -> tuple[str, str, Mapping[str, Any]]:
        step = self.life(index) if callable(self.life) else self.life[min(index, len(self.life) - 1)]
        if isinstance(step, str):
            return step, "", {}
        if len(step) == 2:
            return step[0], step[1], {}
        return step

    @property
    def terminal(self) -> bool:
        return self.status in RAY_TERMINAL_STATUSES

    def advance(self, now_ms: int) -> None:
        """The answer to one ``get_job``: the next step of the life, unless the job ended."""
        if not self.terminal:
            self.status, self.message, self.fields = self._entry(self.answers)
            if self.terminal and self.end_time_ms is None:
                self.end_time_ms = now_ms
        self.answers += 1

    def as_api(self) -> dict[str, Any]:
        return job_json(
            self.submission_id,
            self.status,
            entrypoint=str(self.payload.get("entrypoint", "python job.py")),
            message=self.message,
            start_time=self.start_time_ms or 0,
            end_time=self.end_time_ms or 0,
            metadata=self.payload.get("metadata"),
            runtime_env=self.payload.get("runtime_env"),
            **self.fields,
        )


class FakeRay:
    """An in-memory Ray dashboard with Ray's job semantics (``raypod.jobs.RayJobs``).

    Every call attempt is recorded in ``calls`` as (method, argument). A ``retry`` policy given
    to a call is applied as the real client applies it, with its waits cut to a millisecond
    (its attempts, deadline and SIGTERM event stay), so scripted failures go through the
    caller's retries. Scripted answers are consumed one per attempt, before the normal one.
    """

    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        life: Life = ("PENDING", "RUNNING", "SUCCEEDED"),
        ignore_stop_in: Collection[str] = (),
        journal: list[tuple[str, Any]] | None = None,
        ray_version: str = "2.60.0",
    ) -> None:
        self.clock = clock or FakeClock()
        self.life = life
        self.ignore_stop_in = ignore_stop_in
        self.journal = journal if journal is not None else []
        self.ray_version = ray_version
        self.jobs: dict[str, FakeJob] = {}
        #: The lives of the jobs POSTed from now on, in order (a retried job's attempts); then ``life``.
        self.next_lives: deque[Life] = deque()
        self.packages: dict[str, int] = {}
        self.calls: list[tuple[str, Any]] = []
        self.submitted: list[str] = []
        #: How far the head's clock is from the pod's (its start_time and end_time show it).
        self.clock_skew_ms = 0
        #: Fake seconds after which Ray writes a deleted job back as FAILED, as Ray 2.60's job monitor
        #: does when it finds the supervisor gone and the job deleted (once: the monitor then ends);
        #: None: a delete holds. ``write_backs`` is how many times a job is written back.
        self.writes_back_deleted_after: float | None = None
        self.write_backs = 1
        self._written_back: dict[str, int] = {}
        self._script: dict[str, deque[Action]] = {}
        self._persistent: dict[str, _Persistent] = {}

    # -- scripting ------------------------------------------------------------------------------
    def script(self, method: str, actions: Iterable[Action]) -> None:
        """Answer the next attempts of ``method`` with these (an error, LOST for submit_job, OK)."""
        self._script.setdefault(method, deque()).extend(actions)

    def fail(self, method: str, error: RayApiError, times: int | None = 1, *, until: float | None = None) -> None:
        """Fail ``times`` attempts of ``method``; None: every attempt, up to fake elapsed time ``until``."""
        if times is None:
            self._persistent[method] = _Persistent(error, until)
        else:
            self.script(method, [error] * times)

    def heal(self, method: str) -> None:
        self._persistent.pop(method, None)
        self._script.pop(method, None)

    def lose_answers(self, times: int = 1) -> None:
        """The next ``times`` POSTs reach Ray, but their answers are lost (a read timeout)."""
        self.script("submit_job", [LOST] * times)

    def add_job(self, submission_id: str, life: Life | None = None, **fields: Any) -> FakeJob:
        """A job Ray already has (submitted by an earlier pod)."""
        job = FakeJob(
            submission_id,
            life if life is not None else self.life,
            ignore_stop_in=fields.pop("ignore_stop_in", self.ignore_stop_in),
            start_time_ms=fields.pop("start_time_ms", self._now_ms()),
            **fields,
        )
        self.jobs[submission_id] = job
        return job

    def forget(self, submission_id: str) -> None:
        """Ray loses the job (a head restart without persistence)."""
        self.jobs.pop(submission_id, None)

    # -- what happened --------------------------------------------------------------------------
    def calls_of(self, method: str) -> list[Any]:
        return [argument for name, argument in self.calls if name == method]

    @property
    def posts(self) -> list[str]:
        """The submission_id of every POST attempt."""
        return self.calls_of("submit_job")

    @property
    def request_count(self) -> int:
        return len(self.calls)

    # -- RayJobs --------------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return RAY_URL

    def version(self, retry: RetryPolicy | None = None) -> dict[str, Any]:
        def once() -> dict[str, Any]:
            self._record("version", None)
            self._scripted("version")
            return {"version": "4", "ray_version": self.ray_version, "ray_commit": "0" * 40}

        return self._call(once, retry)

    def package_exists(self, name: str) -> bool:
        self._record("package_exists", name)
        self._scripted("package_exists")
        return name in self.packages

    def upload_package(self, name: str, path: Path, progress: ByteProgress = no_progress) -> None:
        self._record("upload_package", name)
        self._scripted("upload_package")
        self.packages[name] = path.stat().st_size

    def submit_job(self, payload: Mapping[str, Any], retry: RetryPolicy | None = None) -> str:
        submission_id = str(payload["submission_id"])

        def once() -> str:
            self._record("submit_job", submission_id)
            action = self._scripted("submit_job")
            if submission_id in self.jobs:
                raise duplicate_id_error(submission_id)
            self.jobs[submission_id] = FakeJob(
                submission_id,
                self.next_lives.popleft() if self.next_lives else self.life,
                payload=dict(payload),
                ignore_stop_in=self.ignore_stop_in,
                start_time_ms=self._now_ms(),
            )
            self.submitted.append(submission_id)
            if action is LOST:
                raise ray_error(None, "POST", "/api/jobs/", "ReadTimeout: read timed out. (read timeout=60)")
            return submission_id

        return self._call(once, retry)

    def get_job(
        self, submission_id: str, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None
    ) -> JobInfo:
        def once() -> JobInfo:
            job = self._known_job("get_job", submission_id, "GET", f"/api/jobs/{submission_id}")
            job.advance(self._now_ms())
            return JobInfo.from_api(job.as_api())

        return self._call(once, retry)

    def stop_job(self, submission_id: str, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None) -> bool:
        def once() -> bool:
            job = self._known_job("stop_job", submission_id, "POST", f"/api/jobs/{submission_id}/stop")
            if job.terminal:
                return False
            if job.status not in job.ignore_stop_in:
                job.stopped = True
                job.status, job.message = "STOPPED", "Job was intentionally stopped."
                job.end_time_ms = self._now_ms()
            return True

        return self._call(once, retry)

    def delete_job(self, submission_id: str) -> bool:
        job = self._known_job("delete_job", submission_id, "DELETE", f"/api/jobs/{submission_id}")
        if not job.terminal:
            raise ray_error(500, "DELETE", f"/api/jobs/{submission_id}", "Internal Server Error", "non-terminal")
        del self.jobs[submission_id]
        written_back = self._written_back.get(submission_id, 0)
        if self.writes_back_deleted_after is not None and written_back < self.write_backs:
            self._written_back[submission_id] = written_back + 1
            self.clock.at(self.clock.elapsed + self.writes_back_deleted_after, lambda: self._write_back(submission_id))
        return True

    def _write_back(self, submission_id: str) -> None:
        written = self.add_job(
            submission_id, (("FAILED", "Job supervisor actor died"),), payload={"entrypoint": "Entrypoint not found."}
        )
        written.end_time_ms = self._now_ms()

    # -- internals ------------------------------------------------------------------------------
    def _known_job(self, method: str, submission_id: str, verb: str, path: str) -> FakeJob:
        """One attempt of ``method`` on a job: recorded, scripted, and Ray's own 404 if it has no such job."""
        self._record(method, submission_id)
        self._scripted(method)
        job = self.jobs.get(submission_id)
        if job is None:
            raise ray_error(404, verb, path, "Not Found", f"Job {submission_id} does not exist")
        return job

    def _record(self, method: str, argument: Any) -> None:
        self.calls.append((method, argument))
        self.journal.append(("ray", (method, argument)))

    def _scripted(self, method: str) -> Action | None:
        queue = self._script.get(method)
        if queue:
            action = queue.popleft()
            if isinstance(action, RayApiError):
                raise action
            return action
        persistent = self._persistent.get(method)
        if persistent is not None and (persistent.until is None or self.clock.elapsed < persistent.until):
            raise persistent.error
        return None

    def _call(self, once: Callable[[], T], retry: RetryPolicy | None) -> T:
        policy = retry or NO_RETRY
        quick = replace(policy, initial_wait=min(policy.initial_wait, 0.001), max_wait=min(policy.max_wait, 0.001))
        return quick.call(once, what="fake Ray call")

    def _now_ms(self) -> int:
        return int(self.clock.now().timestamp() * 1000) + self.clock_skew_ms


# -- the clock ------------------------------------------------------------------------------------
class FakeClock:
    """Time moves only when ``wait`` (or ``advance``) is called, at once.

    ``at(t, fn)`` runs ``fn`` when fake elapsed time reaches ``t``; ``terminate_at(t)`` is
    SIGTERM at ``t``: the wait that reaches it stops there and returns True, as do all later
    ones, and ``event`` is set (give it to ``RetryPolicy.interruptible``, as the runner gives
    the SIGTERM event). ``limit`` ends a runaway loop with an AssertionError.
    """

    START = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)

    def __init__(self, start: datetime = START, *, limit: float = 30 * 24 * 3600.0) -> None:
        self.start = start
        self.elapsed = 0.0
        self.limit = limit
        self.waits: list[float] = []
        self.event = threading.Event()
        self._terminate_at: float | None = None
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._woken = False

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    @property
    def terminated(self) -> bool:
        return self.event.is_set()

    def terminate_at(self, elapsed: float) -> None:
        self._terminate_at = elapsed
        if elapsed <= self.elapsed:
            self.event.set()

    def at(self, elapsed: float, action: Callable[[], None]) -> None:
        self._events.append((elapsed, len(self._events), action))
        self._events.sort(key=lambda event: event[:2])

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if self.event.is_set():
            return True
        target = self.elapsed + max(0.0, seconds)
        if self._terminate_at is not None and self._terminate_at <= target:
            self._move_to(max(self.elapsed, self._terminate_at))
            self.event.set()
            return True
        self._move_to(target)
        return False

    def advance(self, seconds: float) -> None:
        self._move_to(self.elapsed + seconds)

    def wake(self) -> None:
        """As ``SystemClock.wake``: an event that calls it ends the wait under way at its time."""
        self._woken = True

    def _move_to(self, target: float) -> None:
        if target > self.limit:
            raise AssertionError(f"fake time ran past {self.limit} s: a loop that never ends?")
        self._woken = False
        while self._events and self._events[0][0] <= target:
            when, _, action = self._events.pop(0)
            self.elapsed = max(self.elapsed, when)
            action()
            if self._woken:
                self._woken = False
                return
        self.elapsed = max(self.elapsed, target)


# -- the status sink --------------------------------------------------------------------------------
class MemorySink:
    """raypod's keys in a dict; ``writes`` holds every successful write, in order."""

    description = "memory sink"

    def __init__(
        self, initial: Mapping[str, str] | None = None, *, journal: list[tuple[str, Any]] | None = None
    ) -> None:
        self.data: dict[str, str] = dict(initial or {})
        self.writes: list[dict[str, str]] = []
        self.failed_writes: list[dict[str, str]] = []
        self.journal = journal if journal is not None else []
        self._error: RaypodError | None = None
        self._failures_left: float = 0

    def fail_writes(self, error: RaypodError | Terminated, times: int | None = 1) -> None:
        """Refuse the next ``times`` writes with ``error`` (None: every write from now on)."""
        self._error = error
        self._failures_left = math.inf if times is None else times

    def load(self) -> dict[str, str]:
        return dict(self.data)

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        if self._failures_left > 0 and self._error is not None:
            self._failures_left -= 1
            self.failed_writes.append(dict(changes))
            raise self._error
        self.data.update(changes)
        self.writes.append(dict(changes))
        self.journal.append(("sink", dict(changes)))

    def written(self, key: str) -> list[str]:
        """Every value written to ``key``, in order."""
        return [write[key] for write in self.writes if key in write]


# -- the wiring -----------------------------------------------------------------------------------
#: The connect phase (the version check and the POST with its lookups) is retried on real time, the
#: retry waits being real: the default leaves a retry that is meant to succeed time to, on a loaded
#: machine too (0.5 s once ran out between two attempts); a test whose connect phase is meant to
#: run out passes this.
RUNS_OUT_CONNECT = {"connect_timeout": 0.5}


def fast_settings(**overrides: Any) -> SessionSettings:
    """Settings whose real retry waits are a millisecond; every other wait is on the fake clock."""
    values: dict[str, Any] = {
        "status_timeout": 30.0,
        "connect_timeout": 5.0,
        "stop_timeout": 10.0,
        "retry": RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, deadline=0.5),
    }
    values.update(overrides)
    return SessionSettings(**values)


class Harness:
    """One pod's world: the ConfigMap, a Ray, the status sink, the clock; the runner's wiring."""

    def __init__(
        self,
        data: Mapping[str, str] | None = None,
        *,
        recorded: Mapping[str, str] | None = None,
        life: Life = ("PENDING", "RUNNING", "SUCCEEDED"),
        **settings: Any,
    ) -> None:
        self.journal: list[tuple[str, Any]] = []
        self.clock = FakeClock()
        self.ray = FakeRay(self.clock, life=life, journal=self.journal)
        self.sink = MemorySink(recorded, journal=self.journal)
        self.source = MappingSource({**BASE_CONFIG, **(data or {})}, description="test ConfigMap")
        self.job = ConfigMapJob(self.source)
        self.reporter = StatusReporter(self.sink)
        self.settings = fast_settings(**settings)
        self.attached: list[JobInfo] = []
        self.polled: list[JobInfo] = []
        self.said: list[str] = []

    def session(self, *, hooks: bool = True) -> JobSession:
        """A session as the runner builds it; ``hooks=False``: without on_attach and on_poll."""
        self.reporter.load()
        config = self.job.load(submitted=bool(self.reporter.get(ID)))
        submission = SubmissionSettings(JOB_NAME, NAMESPACE, self.settings.connect_timeout, self.settings.retry)
        return JobSession(
            config,
            self.ray,
            RaySubmitter(config, self.ray, None, self.clock, submission, identity=self.job.identity),
            self.reporter,
            self.job,
            self.clock,
            self.settings,
            on_attach=self.attached.append if hooks else None,
            on_poll=self.polled.append if hooks else None,
        )

    def run(self) -> Outcome:
        return self.session().run()

    def watch(self, activity: OutputActivity) -> tuple[Outcome, list[tuple[float, str]]]:
        """Run a session whose watch hears ``activity`` (the live log's), and the polls it made: the
        clock's elapsed time and Ray's status at each."""
        polls: list[tuple[float, str]] = []

        def polled(job: JobInfo) -> None:
            polls.append((self.clock.elapsed, str(job.status)))

        session = self.session()
        session.on_poll = polled
        session.activity = activity
        return session.run(), polls

    def finish(self, outcome: Outcome) -> int:
        return finish(outcome, self.reporter, self.clock, self.said.append)

    def set_kill_at(self, elapsed: float) -> None:
        self.clock.at(elapsed, lambda: self.source.data.__setitem__("kill", "true"))
