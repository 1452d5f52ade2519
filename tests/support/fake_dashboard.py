"""A Ray 2.60 dashboard in memory, behind ``requests``' transport seam, that holds the truth.

``FakeDashboard`` is a ``requests`` adapter: mounted on a real ``RayJobsClient``'s session, every
call raypod makes goes through raypod's own HTTP client and answer checks (``raypod.http``,
``raypod.ray``) and reaches this object instead of a socket. It answers as Ray 2.60 does (its JSON,
its ``text/plain`` 404 ``Job <id> does not exist``, its 500 traceback for a duplicate id) and keeps
what really happened: every job Ray created and when, every stop request and the job's state at that
moment, every answer that told a pod a job was RUNNING, the jobs a head restart lost.

Faults come in front of Ray or behind it, per route (``version``, ``submit``, ``get``, ``stop``):

- in front (Ray never sees the request): a refused connection, an ingress's HTML 503 or HTML 404;
- Ray's own 500 (a traceback, ``text/plain``);
- behind (Ray acts, the answer is lost or spoiled): a reset connection, a read timeout, an answer
  that trickles in a byte at a time, JSON cut short.

Time is the model clock's (``tests.support.pod_world.ModelClock``): a job starts and ends at fake
times, a timeout or a trickle moves the clock as it would pass.
"""

from __future__ import annotations

import enum
import io
import json
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from tests.support.ray_job_json import job_json

#: The dashboard's token: raypod sends it on every call; no output may ever show it.
TOKEN = "rtok-9f2c4e1ab7d8e3c5"
#: An auth proxy's cookie (``RAY_JOB_HEADERS``), a second secret on every call.
COOKIE = "session=ck-51d0be77aa29c3f4"
SECRETS = (TOKEN, COOKIE.split("=", 1)[1])
RAY_URL = "http://ray.test:8265"

FAILED_MESSAGE = (
    "Job entrypoint command failed with exit code 1, last available logs (truncated to 20,000 chars):\n"
    f"requests.exceptions.HTTPError: 401 for headers {{'Authorization': 'Bearer {TOKEN}'}}"
)
STOPPED_MESSAGE = "Job was intentionally stopped."
#: How long a trickled answer takes per byte (a dashboard behind a struggling proxy).
TRICKLE_SECONDS_PER_BYTE = 3.0


class Clock(Protocol):
    elapsed: float

    def epoch_ms(self) -> int: ...

    def advance(self, seconds: float) -> None: ...


class Fault(enum.Enum):
    REFUSED = "refused"
    INGRESS_503 = "ingress 503"
    INGRESS_404 = "ingress 404"
    RAY_500 = "ray 500"
    RESET = "reset"
    TIMEOUT = "timeout"
    TRICKLE = "trickle"
    GARBLED = "garbled"

    @property
    def reaches_ray(self) -> bool:
        """Whether Ray acts on the request (its answer is then lost or spoiled on the way back)."""
        return self in (Fault.RESET, Fault.TIMEOUT, Fault.TRICKLE, Fault.GARBLED)


ROUTES = ("version", "submit", "get", "stop")
#: Ray's ``error_type`` for a driver that exited non-zero.
COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"
PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"
TERMINAL = (SUCCEEDED, FAILED, STOPPED)


@dataclass(frozen=True)
class JobPlan:
    """How one job created on Ray lives: PENDING for ``start_after`` s (None: for ever), then RUNNING
    for ``run_for`` s (None: until told otherwise), then ``end``."""

    start_after: float | None = 5.0
    run_for: float | None = 40.0
    end: str = SUCCEEDED
    #: Ray's ``error_type`` when ``end`` is FAILED: the driver's exit 1 (``COMMAND_ERROR``), another
    #: of Ray's reasons (no driver exit code then), or a name Ray 2.60 does not have. The job ends at
    #: the same moment whatever the reason: the model is about what raypod does with it.
    error_type: str = COMMAND_ERROR


@dataclass
class RayJob:
    submission_id: str
    created: float
    created_ms: int
    plan: JobPlan
    entrypoint: str = "python job.py"
    metadata: dict[str, str] = field(default_factory=dict)
    status: str = PENDING
    message: str = "Job has not started yet. It may be waiting for resources."
    started: float | None = None
    end_ms: int | None = None
    #: Ray 2.60 queues a stop of a job that has not started: it stops when it would start.
    stop_queued: bool = False
    #: Some answer told a pod that the job is RUNNING.
    reported_running: bool = False
    #: Ray's ``error_type`` once it FAILED the job.
    error_type: str | None = None

    def settle(self, now: float, now_ms: int) -> None:
        """The job's status at fake time ``now``, from its plan."""
        if self.status == PENDING and self.plan.start_after is not None and now >= self.created + self.plan.start_after:
            if self.stop_queued:
                self.end(STOPPED, STOPPED_MESSAGE, now_ms)
                return
            self.status, self.message, self.started = RUNNING, "Job is currently running.", now
        run_for, started = self.plan.run_for, self.started
        if self.status == RUNNING and run_for is not None and started is not None and now >= started + run_for:
            if self.plan.end == FAILED:
                self.end(FAILED, FAILED_MESSAGE, now_ms, self.plan.error_type)
            else:
                self.end(self.plan.end, "Job finished successfully.", now_ms)

    def end(self, status: str, message: str, now_ms: int, error_type: str | None = None) -> None:
        if self.status not in TERMINAL:
            self.status, self.message, self.end_ms = status, message, now_ms
            self.error_type = error_type if status == FAILED else None

    @property
    def driver_exit_code(self) -> int | None:
        """Only a driver that ran and exited has one (Ray's other reasons come without)."""
        return {FAILED: 1 if self.error_type in (None, COMMAND_ERROR) else None, SUCCEEDED: 0}.get(self.status)

    def as_api(self) -> dict[str, Any]:
        return job_json(
            self.submission_id,
            self.status,
            entrypoint=self.entrypoint,
            message=self.message,
            error_type=self.error_type,
            start_time=self.created_ms,
            end_time=self.end_ms,
            metadata=self.metadata,
            driver_agent_http_address="http://10.0.0.1:52365",
            driver_exit_code=self.driver_exit_code,
        )


@dataclass(frozen=True)
class StopRecord:
    submission_id: str
    at: float
    #: The job's status when the stop reached Ray.
    status: str
    reported_running: bool


@dataclass
class Outage:
    route: str | None
    fault: Fault
    start: float
    end: float


class FakeDashboard(BaseAdapter):
    """Ray's job API in memory, as a ``requests`` adapter (see the module's docstring)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.jobs: dict[str, RayJob] = {}
        #: The plans of the jobs POSTed from now on, in order; then ``default_plan``.
        self.plans: deque[JobPlan] = deque()
        self.default_plan = JobPlan()
        # -- the truth ---------------------------------------------------------------------
        #: Every job Ray created, (submission_id, fake time), in order; a head restart does not undo it.
        self.created: list[tuple[str, float]] = []
        #: Every stop request that reached Ray for a job it had.
        self.stops: list[StopRecord] = []
        #: The jobs a head restart lost.
        self.lost: set[str] = set()
        #: The jobs some pod was told Ray has (a whole answer to their POST, or about them).
        self.confirmed: set[str] = set()
        #: The jobs a head restart lost before any pod was told Ray had them: a pod cannot tell them
        #: from a POST that never arrived.
        self.lost_unconfirmed: set[str] = set()
        #: How the jobs a head restart lost had ended, if they had (a pod may have seen it before).
        self.lost_ended: dict[str, str] = {}
        #: Fake times of the good answers about each job (a 200 with its status).
        self.answered: dict[str, list[float]] = {}
        #: Every request as (fake time, route, fault or None).
        self.requests: list[tuple[float, str, Fault | None]] = []
        self._next: dict[str, deque[Fault]] = {}
        self._outages: list[Outage] = []

    # -- the world acting on Ray ------------------------------------------------------------------
    def add_job(self, submission_id: str, plan: JobPlan) -> RayJob:
        """A job Ray has that no pod submitted (written by the operator, or KubeRay's)."""
        job = RayJob(submission_id, self.clock.elapsed, self.clock.epoch_ms(), plan)
        self.jobs[submission_id] = job
        self.created.append((submission_id, self.clock.elapsed))
        return job

    def settle(self) -> None:
        for job in self.jobs.values():
            job.settle(self.clock.elapsed, self.clock.epoch_ms())

    def end_jobs(self, status: str) -> None:
        """Every job Ray runs ends now (its driver exits, or Ray fails it)."""
        self.settle()
        for job in self.jobs.values():
            if job.status == RUNNING or (job.status == PENDING and status == FAILED):
                if status == FAILED:
                    job.end(FAILED, FAILED_MESSAGE, self.clock.epoch_ms(), COMMAND_ERROR)
                else:
                    job.end(status, "Job finished successfully.", self.clock.epoch_ms())

    def start_jobs(self) -> None:
        self.settle()
        for job in self.jobs.values():
            if job.status == PENDING:
                job.plan = replace(job.plan, start_after=self.clock.elapsed - job.created)
        self.settle()

    def restart_head(self) -> None:
        """A head restart without persistence: Ray forgets every job."""
        self.settle()
        self.lost_ended.update({sid: job.status for sid, job in self.jobs.items() if job.status in TERMINAL})
        self.lost.update(self.jobs)
        self.lost_unconfirmed.update(set(self.jobs) - self.confirmed)
        self.jobs.clear()

    def fail_next(self, route: str, fault: Fault, count: int = 1) -> None:
        self._next.setdefault(route, deque()).extend([fault] * count)

    def outage(self, route: str | None, fault: Fault, start: float, duration: float) -> None:
        """Every call to ``route`` (None: every route) fails with ``fault`` from ``start`` for ``duration`` s."""
        self._outages.append(Outage(route, fault, start, start + duration))

    def heal(self) -> None:
        self._next.clear()
        self._outages.clear()

    # -- what the truth says ----------------------------------------------------------------------
    def created_ids(self) -> list[str]:
        return [submission_id for submission_id, _ in self.created]

    def created_at(self, submission_id: str) -> float | None:
        return next((at for sid, at in self.created if sid == submission_id), None)

    def last_answer(self, submission_id: str, since: float) -> float | None:
        times = [at for at in self.answered.get(submission_id, []) if at >= since]
        return times[-1] if times else None

    # -- requests' adapter ------------------------------------------------------------------------
    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> requests.Response:
        route, submission_id = self._route(request)
        fault = self._fault(route)
        self.requests.append((self.clock.elapsed, route, fault))
        read_timeout = _read_timeout(timeout)
        if fault is Fault.REFUSED:
            raise requests.ConnectionError(
                "HTTPConnectionPool(host='ray.test', port=8265): Max retries exceeded "
                "(Caused by NewConnectionError('[Errno 111] Connection refused'))"
            )
        if fault is Fault.INGRESS_503:
            return self._html(request, 503)
        if fault is Fault.INGRESS_404:
            return self._html(request, 404)
        if fault is Fault.RAY_500:
            traceback = (
                "Traceback (most recent call last):\n"
                f'  File "job_head.py", line 1, in get_job_info  # headers={dict(request.headers)}\n'
                "ray.exceptions.RpcError: GCS is unavailable"
            )
            return _response(request, 500, traceback.encode(), "text/plain; charset=utf-8")
        if not self._authorized(request):
            return _response(request, 401, b"Unauthorized", "text/plain; charset=utf-8")
        status, body, content_type = self._ray(request, route, submission_id)
        if fault is Fault.RESET:
            raise requests.ConnectionError(
                "('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
            )
        if fault is Fault.TIMEOUT:
            self.clock.advance(read_timeout)
            raise requests.ReadTimeout(
                f"HTTPConnectionPool(host='ray.test', port=8265): Read timed out. (read timeout={read_timeout:g})"
            )
        if fault is Fault.GARBLED:
            body = body[: max(1, len(body) // 2)]
        response = _response(request, status, body, content_type)
        if route == "submit":
            submission_id = str(json.loads(request.body or b"{}").get("submission_id") or "")
        delivered = (lambda: self._delivered(route, submission_id)) if status == 200 else None
        if fault is Fault.TRICKLE:
            response.raw = _Trickle(body, self.clock, delivered)
        elif fault is None and delivered is not None:
            delivered()
        return response

    def close(self) -> None:
        return None

    # -- internals ------------------------------------------------------------------------------
    def _delivered(self, route: str, submission_id: str) -> None:
        """An answer about a job reached the pod whole: what it said is what the pod knows."""
        job = self.jobs.get(submission_id)
        if job is None or route not in ("get", "submit"):
            return
        self.confirmed.add(submission_id)
        if route == "submit":
            return
        self.answered.setdefault(submission_id, []).append(self.clock.elapsed)
        if job.status == RUNNING:
            job.reported_running = True

    def _route(self, request: requests.PreparedRequest) -> tuple[str, str]:
        path = urlsplit(request.url or "").path
        if path == "/api/version":
            return "version", ""
        if request.method == "POST" and path == "/api/jobs/":
            return "submit", ""
        stop = re.fullmatch(r"/api/jobs/([^/]+)/stop", path)
        if request.method == "POST" and stop:
            return "stop", unquote(stop.group(1))
        job = re.fullmatch(r"/api/jobs/([^/]+)", path)
        if request.method == "GET" and job:
            return "get", unquote(job.group(1))
        raise AssertionError(f"the pod called {request.method} {path}, which the model does not serve")

    def _fault(self, route: str) -> Fault | None:
        queued = self._next.get(route)
        if queued:
            return queued.popleft()
        now = self.clock.elapsed
        for outage in self._outages:
            if outage.route in (None, route) and outage.start <= now < outage.end:
                return outage.fault
        return None

    def _authorized(self, request: requests.PreparedRequest) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    def _html(self, request: requests.PreparedRequest, status: int) -> requests.Response:
        """An ingress's own page; like many, it echoes the request's headers."""
        phrase = HTTPStatus(status).phrase
        headers = "".join(f"<li>{name}: {value}</li>" for name, value in request.headers.items())
        body = f"<html><head><title>{status} {phrase}</title></head><body><h1>{status} {phrase}</h1><ul>{headers}</ul>"
        return _response(request, status, (body + "<hr>nginx</body></html>").encode(), "text/html")

    def _ray(self, request: requests.PreparedRequest, route: str, submission_id: str) -> tuple[int, bytes, str]:
        self.settle()
        now, now_ms = self.clock.elapsed, self.clock.epoch_ms()
        if route == "version":
            return _json(200, {"version": "4", "ray_version": "2.60.0", "ray_commit": "0" * 40})
        if route == "submit":
            payload = json.loads(request.body or b"{}")
            asked = str(payload.get("submission_id") or "")
            if not asked:
                raise AssertionError("the pod POSTed a job without a submission_id")
            if asked in self.jobs:
                message = f"Job with submission_id {asked} already exists. Please use a different submission_id."
                text = f'Traceback (most recent call last):\n  File "job_manager.py", line 1\nValueError: {message}'
                return 500, text.encode(), "text/plain; charset=utf-8"
            plan = self.plans.popleft() if self.plans else self.default_plan
            metadata = dict(payload.get("metadata") or {})
            self.jobs[asked] = RayJob(asked, now, now_ms, plan, str(payload.get("entrypoint", "")), metadata)
            self.created.append((asked, now))
            return _json(200, {"job_id": None, "submission_id": asked})
        job = self.jobs.get(submission_id)
        if job is None:
            return 404, f"Job {submission_id} does not exist".encode(), "text/plain; charset=utf-8"
        if route == "get":
            return _json(200, job.as_api())
        # stop
        self.stops.append(StopRecord(submission_id, now, job.status, job.reported_running))
        if job.status in TERMINAL:
            return _json(200, {"stopped": False})
        if job.status == PENDING:
            job.stop_queued = True
        else:
            job.end(STOPPED, STOPPED_MESSAGE, now_ms)
        return _json(200, {"stopped": True})


class _Trickle(io.RawIOBase):
    """A body that arrives one byte at a time, ``TRICKLE_SECONDS_PER_BYTE`` apart: each read is
    well within a read timeout, the whole answer is not."""

    def __init__(self, body: bytes, clock: Clock, on_end: Callable[[], None] | None) -> None:
        super().__init__()
        self.body, self.clock, self.position, self.on_end = body, clock, 0, on_end

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.position >= len(self.body):
            return b""
        self.clock.advance(TRICKLE_SECONDS_PER_BYTE)
        self.position += 1
        if self.position == len(self.body) and self.on_end is not None:
            self.on_end()
        return self.body[self.position - 1 : self.position]


def _read_timeout(timeout: Any) -> float:
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    return float(timeout) if isinstance(timeout, (int, float)) else 60.0


def _json(status: int, value: Any) -> tuple[int, bytes, str]:
    return status, json.dumps(value).encode(), "application/json; charset=utf-8"


def _response(request: requests.PreparedRequest, status: int, body: bytes, content_type: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = HTTPStatus(status).phrase
    headers: Mapping[str, str] = {"Content-Type": content_type, "Content-Length": str(len(body))}
    response.headers = CaseInsensitiveDict(headers)
    response.raw = io.BytesIO(body)
    response.url = request.url or ""
    response.request = request
    response.encoding = "utf-8"
    return response
