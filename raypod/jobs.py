"""What raypod does with a job on Ray, over a small protocol: wait for its end, stop it, delete it.

``RayJobs`` is the part of the dashboard client that the lifecycle uses, so the lifecycle can
run against an in-memory Ray in tests. The waits here serve ``run`` and the CLI alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from raypod.clock import Clock
from raypod.errors import RayApiError
from raypod.http import Timeouts
from raypod.ray import JobInfo
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.terminal import ByteProgress, no_progress

log = logging.getLogger(__name__)

#: How often a wait for a job's end asks Ray.
WAIT_POLL = 1.0


class RayJobs(Protocol):
    """The dashboard calls of one job's lifecycle (``raypod.ray.RayJobsClient`` implements them)."""

    @property
    def address(self) -> str: ...

    def version(self, retry: RetryPolicy | None = None) -> dict[str, Any]: ...

    def package_exists(self, name: str) -> bool: ...

    def upload_package(self, name: str, path: Path, progress: ByteProgress = no_progress) -> None: ...

    def submit_job(self, payload: Mapping[str, Any], retry: RetryPolicy | None = None) -> str: ...

    def get_job(
        self, submission_id: str, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None
    ) -> JobInfo: ...

    def stop_job(
        self, submission_id: str, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None
    ) -> bool: ...

    def delete_job(self, submission_id: str) -> bool: ...


def wait_until_ended(
    ray: RayJobs,
    submission_id: str,
    *,
    clock: Clock,
    timeout: float = math.inf,
    max_silence: float | None = None,
    on_poll: Callable[[JobInfo], None] | None = None,
) -> JobInfo | None:
    """Poll until Ray says the job ended, ``timeout`` passes or SIGTERM arrives.

    Returns the last answer (None if Ray never answered). A failed poll is logged and the
    next one tried; after ``max_silence`` seconds without an answer its error is raised,
    and Ray's own 404 (it does not know the job) is raised at once.
    """
    started = last_answer = clock.monotonic()
    job: JobInfo | None = None
    while True:
        try:
            job = ray.get_job(submission_id)
        except RayApiError as error:
            if error.job_unknown or (max_silence is not None and clock.monotonic() - last_answer > max_silence):
                raise
            log.warning("status check of %s failed (%s); asking again", submission_id, error)
        else:
            last_answer = clock.monotonic()
            if on_poll is not None:
                on_poll(job)
            if job.terminal:
                return job
        if clock.monotonic() - started >= timeout or clock.wait(WAIT_POLL):
            return job


#: What Ray 2.60 does with the stop of a job that has not started (its job_manager.stop_job and
#: JobSupervisor): the stop is sent to the job's supervisor actor, which takes it only once it is
#: placed and starts the driver, then stops it at once; until then the job stays PENDING.
PENDING_STOP_HELD = (
    "Ray took the stop, but a job that has not started keeps it until its driver can start (its "
    "entrypoint resources or label selector met, its runtime_env set up): it then stops at once (STOPPED). "
    "One that never starts is FAILED by Ray after RAY_JOB_START_TIMEOUT_SECONDS (900 s by default)"
)


class PendingStop:
    """A stop request Ray has to take: asked again on each poll until Ray answers it.

    ``taken`` is Ray's answer once it gave one: True (it will stop the job) or False (the
    job had ended already). ``refusal`` is the last refused call while there is none.
    Each ask is one call by default: the polls are the retries, and a stop that keeps failing
    must not hold them up (the job may end on its own meanwhile). ``retry=None``: the client's policy.
    """

    def __init__(
        self,
        ray: RayJobs,
        submission_id: str,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = NO_RETRY,
    ) -> None:
        self.ray = ray
        self.submission_id = submission_id
        self.timeouts = timeouts
        self.retry = retry
        self.taken: bool | None = None
        self.refusal: RayApiError | None = None

    def ask(self) -> None:
        """Ask Ray to stop the job, unless it answered already. Ray's own 404 is raised: there is no job to stop."""
        if self.taken is not None:
            return
        try:
            self.taken = self.ray.stop_job(self.submission_id, self.timeouts, self.retry)
            self.refusal = None
        except RayApiError as error:
            if error.job_unknown:
                raise
            log.warning(
                "Ray did not take the stop of %s (%s); asking again on the next poll", self.submission_id, error
            )
            self.refusal = error


def stop_and_wait(
    ray: RayJobs,
    submission_id: str,
    *,
    clock: Clock,
    timeout: float,
    wait: bool = True,
    on_poll: Callable[[JobInfo], None] | None = None,
) -> tuple[PendingStop, JobInfo | None]:
    """Ask Ray to stop the job, asking again on each poll until it takes the request, and
    wait up to ``timeout`` for the job to end. Returns the stop request and Ray's last answer."""
    # Without a wait there are no polls to ask again: the one ask gets the client's retries.
    stop = PendingStop(ray, submission_id, retry=NO_RETRY if wait else None)
    stop.ask()
    if not wait:
        return stop, None

    def polled(job: JobInfo) -> None:
        if not job.terminal:
            stop.ask()
        if on_poll is not None:
            on_poll(job)

    return stop, wait_until_ended(ray, submission_id, clock=clock, timeout=timeout, on_poll=polled)


#: How long a deleted job is watched for Ray writing it back, and how often it is asked. Ray 2.60's
#: job manager pings a job's supervisor actor every second; when the ping fails (the actor exits just
#: after it writes the job's end) and the job's info is gone, it writes the job anew as FAILED ("Job
#: supervisor actor died", entrypoint "Entrypoint not found."). A job deleted within about a second of
#: its end therefore comes back.
DELETE_SETTLE = 3.0
DELETE_POLL = 0.5
#: Bounds the deletes of one job: Ray's monitor of a job ends once it has written it back.
MAX_DELETES = 3


def delete_ended_job(ray: RayJobs, submission_id: str, *, clock: Clock) -> bool:
    """Delete an ended job and see that it stays deleted: deleted again if Ray writes it back.

    Returns whether the job is gone: False if Ray did not delete it, or kept writing it back. Ray's
    own 404 while watching means the job is gone; any other failure of the watch is raised.
    """
    if not ray.delete_job(submission_id):
        return False
    deletes = 1
    quiet_since = clock.monotonic()
    while clock.monotonic() - quiet_since < DELETE_SETTLE and not clock.wait(DELETE_POLL):
        try:
            back = ray.get_job(submission_id)
        except RayApiError as error:
            if error.job_unknown:
                continue
            raise
        if deletes >= MAX_DELETES:
            log.warning("Ray wrote %s back (%s) after %d deletes; it is left so", submission_id, back.status, deletes)
            return False
        log.info("Ray wrote %s back after its delete (%s); deleting it again", submission_id, back.status)
        if not ray.delete_job(submission_id):
            return False
        deletes += 1
        quiet_since = clock.monotonic()
    return True
