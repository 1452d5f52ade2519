"""One Bridge job's lifecycle as a state machine: attach or submit exactly once, watch, stop.

A ``JobSession`` talks to Ray, the status sink, the ConfigMap and the clock only through the
protocols it is given, so every branch runs in tests without a network. It never prints and
never decides an exit code: it returns an ``Outcome``, and the runner acts on it.

The states, each handled by one method, and where they lead:

- ``Attach(id)``: Ray has the job -> ``Watch``; Ray never accepted it -> ``Submit(id)``;
  Ray lost it, or cannot say -> a final ``Outcome``.
- ``Submit(id?)``: persist the id, POST once -> ``Watch`` (``DETACHED`` when nobody watches).
- ``Watch``: one poll -> ``Watch`` again, a final ``Outcome`` when the job ended, ``Stop`` on
  kill or a passed deadline, ``TERMINATED`` on SIGTERM.
- ``Stop``: ask Ray to stop the job and wait for it -> a final ``Outcome``.
- ``Retry``: an attempt ended FAILED and ``jobproperties.retries`` allows another: wait
  ``retryDelaySeconds`` (kill, the deadline and SIGTERM still apply) -> ``Submit(<id>-r<n>)``.
"""

from __future__ import annotations

import enum
import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from raypod import status as st
from raypod.clock import Clock, format_ray_time, format_time, parse_time
from raypod.config import RESOURCE_URL, BridgeConfig, kill_requested
from raypod.entrypoint import new_submission_id, plan_submission
from raypod.errors import ConfigError, RayApiError, RaypodError, SubmissionRejected, Terminated
from raypod.http import Timeouts
from raypod.inputs import build_packages, fetch_inputs, local_inputs_of
from raypod.jobs import WAIT_POLL, PendingStop, RayJobs
from raypod.ray import RAY_STOPPED, JobInfo, is_duplicate_submission, is_wrapped_rejection
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.s3 import S3Store
from raypod.source import ConfigSource
from raypod.status import StatusReporter, one_line

log = logging.getLogger(__name__)

#: Statuses that say Ray accepted the job; a 404 for such an id means Ray lost it.
CONFIRMED = (st.SUBMITTED, st.PENDING, st.RUNNING, st.SUCCEEDED, st.FAILED, st.KILL)
#: Read timeout of one status poll: short enough that SIGTERM is honoured well within 30 s.
POLL_READ_TIMEOUT = 10.0
KILL_MESSAGE = "Stopped at the operator's request (kill=true)."
#: How long a stop of a job past its start deadline may take to show, before raypod says that Ray
#: did not stop it (a job in the middle of starting may still stop).
START_STOP_CONFIRM = 10.0


@dataclass(frozen=True)
class SessionSettings:
    """The lifecycle's knobs (the CLI's flags)."""

    job_name: str
    namespace: str
    #: How long the dashboard may stay silent about a running job before UNKNOWN.
    status_timeout: float = 600.0
    #: How long an unreachable dashboard is retried before the submission is given up.
    connect_timeout: float = 60.0
    #: How long to wait for Ray to confirm a stop.
    stop_timeout: float = 60.0
    #: Return as soon as Ray has the job (``submit`` without ``--wait``).
    submit_only: bool = False
    #: Fractions in [0, 1) that shorten the watch's first wait, so pods started together do not
    #: poll in lockstep (``random.random`` in a pod); None: every wait is ``updateInterval``.
    first_poll_jitter: Callable[[], float] | None = None
    #: The patient policy of every call but the polls. Give it the SIGTERM event
    #: (``RetryPolicy.interruptible``): a wait between retries then ends at once.
    retry: RetryPolicy = RetryPolicy()


class Ending(enum.Enum):
    #: A final Bridge status to write; the exit code follows it.
    FINAL = "final"
    #: Bad configuration or inputs: nothing was submitted.
    BAD_INPUT = "bad input"
    #: SIGTERM: write what is pending and leave; the Ray job keeps running.
    TERMINATED = "terminated"
    #: Ray has the job and nobody watches it (``submit`` without ``--wait``).
    DETACHED = "detached"
    #: An earlier pod recorded a final status for this job: it is kept as it is.
    ALREADY_FINAL = "already final"


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    submission_id: str = ""
    status: str = ""
    message: str = ""
    #: Ray's end time, when Ray reported one.
    end_time: str | None = None
    #: The watched job, when its log and results are to be collected.
    job: JobInfo | None = None
    #: With BAD_INPUT: every problem, each naming its key.
    problems: tuple[str, ...] = ()
    #: Why it ended, for machines (``status.Reason``); empty while it has not.
    reason: str = ""

    @classmethod
    def final(
        cls, submission_id: str, status: str, message: str, job: JobInfo | None = None, *, reason: str | None = None
    ) -> Outcome:
        end_time = format_ray_time(job.end_time_ms) if job is not None and job.terminal else None
        return cls(
            Ending.FINAL, submission_id, status, message, end_time, job, reason=reason or st.default_reason(status)
        )

    @classmethod
    def bad_input(cls, error: ConfigError) -> Outcome:
        return cls(
            Ending.BAD_INPUT,
            status=st.FAILED,
            message=one_line("Bad input: " + error.lines[0]),
            problems=tuple(error.lines),
            reason=st.Reason.BAD_INPUT,
        )


def attempt_id(base_id: str, attempt: int) -> str:
    """The submission id of an attempt: the job's id, then ``<id>-r1``, ``<id>-r2`` for the retries."""
    return base_id if attempt <= 1 else f"{base_id}-r{attempt - 1}"


def base_of(submission_id: str, attempt: int) -> str:
    """The job's id from the id of one of its attempts."""
    return submission_id.removesuffix(f"-r{attempt - 1}") if attempt > 1 else submission_id


def recorded_attempt(text: str) -> int:
    """``status.attempt`` as an earlier pod wrote it; 1 when absent or unreadable."""
    try:
        attempt = int(text) if text else 1
    except ValueError:
        attempt = 0
    if attempt < 1:
        log.warning("%s=%r is not an attempt number; taking it as 1", st.ATTEMPT, text)
        return 1
    return attempt


def is_refusal(error: RayApiError) -> bool:
    """Ray said no to the request itself (a 4xx): it did not take it, and asking again cannot help."""
    return not error.transient and error.status is not None and 400 <= error.status < 500


def outcome_of_error(error: RaypodError, submission_id: str = "", *, submitted: bool = False) -> Outcome:
    """How an error ends the run. ``submission_id`` is the id known so far; ``submitted`` says
    whether Ray may have the job (then an error means "unknown", not "not submitted")."""
    if isinstance(error, ConfigError):
        return Outcome.bad_input(error)
    if isinstance(error, Terminated):
        return Outcome(Ending.TERMINATED, submission_id)
    log.error("%s", error)
    if isinstance(error, SubmissionRejected):
        return Outcome.final(submission_id, st.FAILED, one_line(str(error), 400), reason=st.Reason.SUBMISSION_REJECTED)
    if not submitted:
        return Outcome.final("", st.FAILED, one_line(f"Not submitted: {error}", 400), reason=st.Reason.NOT_SUBMITTED)
    # The job may be running on Ray: say that its state is unknown rather than leave a stale
    # status (the operator calls a pod that fails without a final status a pod error).
    return Outcome.final(submission_id, st.UNKNOWN, one_line(f"Lost track of Ray job {submission_id}: {error}", 400))


def recorded_final(recorded: Mapping[str, str]) -> Outcome | None:
    """The final status an earlier pod wrote once the job had ended: never downgraded later."""
    recorded_id, recorded_status = recorded.get(st.ID, ""), recorded.get(st.JOB_STATUS, "")
    if recorded_id and recorded_status in st.FINAL_STATUSES:
        reason = recorded.get(st.REASON) or st.default_reason(recorded_status)
        return Outcome(Ending.ALREADY_FINAL, recorded_id, recorded_status, recorded.get(st.MESSAGE, ""), reason=reason)
    return None


def outcome_of_unusable_config(error: ConfigError, recorded: Mapping[str, str]) -> Outcome:
    """The ConfigMap cannot even say where Ray is. With an id recorded, Ray may run the job, so
    "bad input" (nothing was submitted) would be false: the recorded end is kept, or the job's
    state is unknown."""
    recorded_id = recorded.get(st.ID, "")
    if not recorded_id:
        return Outcome.bad_input(error)
    final = recorded_final(recorded)
    if final is not None:
        return final
    log.error("cannot watch Ray job %s: %s", recorded_id, error)
    return Outcome.final(recorded_id, st.UNKNOWN, one_line(f"Cannot watch Ray job {recorded_id}: {error}", 400))


# -- states ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attach:
    """An id is known (from the ConfigMap or an earlier pod): find the job on Ray."""

    submission_id: str
    #: The status recorded with it, which tells whether Ray ever confirmed the job.
    recorded_status: str


@dataclass(frozen=True)
class Submit:
    """Submit the job, under this id when an earlier pod chose one but Ray never accepted it."""

    submission_id: str | None


@dataclass(frozen=True)
class Stopping:
    """Kill or a deadline asked Ray to stop the job: the watch goes on until Ray confirms it."""

    #: The Bridge status when Ray confirms the stop (KILL for kill, FAILED for a deadline).
    status: str
    message: str
    #: Its ``status.reason`` (Killed, DeadlineExceeded, StartDeadlineExceeded).
    reason: str
    #: When the stop was first asked (the clock's monotonic time).
    since: float
    request: PendingStop


@dataclass(frozen=True)
class Retry:
    """Attempt ``attempt - 1`` ended FAILED: ``attempt`` is submitted once the delay has passed."""

    attempt: int
    #: The attempt that failed, as Ray last reported it (its log is the last one if no other follows).
    failed: JobInfo
    #: Its final message, kept should nothing follow it.
    message: str
    #: When the wait began (the clock's monotonic time).
    since: float


@dataclass(frozen=True)
class Watch:
    submission_id: str
    #: The last answer from Ray, if any.
    job: JobInfo | None
    #: When Ray last answered (the clock's monotonic time).
    last_answer: float
    stopping: Stopping | None = None


State = Attach | Submit | Watch | Retry


class JobSession:
    """Runs one job's lifecycle to an ``Outcome``. Clients are given; nothing is built here."""

    def __init__(
        self,
        config: BridgeConfig,
        ray: RayJobs,
        s3: S3Store | None,
        reporter: StatusReporter,
        source: ConfigSource,
        clock: Clock,
        settings: SessionSettings,
        *,
        on_attach: Callable[[JobInfo], None] | None = None,
        on_poll: Callable[[JobInfo], None] | None = None,
        on_attempt_failed: Callable[[JobInfo, int], None] | None = None,
    ) -> None:
        self.config = config
        self.ray = ray
        self.s3 = s3
        self.reporter = reporter
        self.source = source
        self.clock = clock
        self.settings = settings
        self.retry = settings.retry
        self.on_attach = on_attach
        self.on_poll = on_poll
        #: Hears each attempt that failed and is retried, with its number (the runner keeps its log).
        self.on_attempt_failed = on_attempt_failed
        #: The attempt being run (1 for the first) and the job's id, of which retries are ``<id>-r<n>``.
        self.attempt = 1
        self.base_id = ""
        #: When this pod POSTed the current attempt (the clock's monotonic time), for its start deadline.
        self.attempt_posted_at: float | None = None
        #: While a retry is being submitted: the failed attempt it follows.
        self.retrying: Retry | None = None
        self._jittered = False
        #: Whether Ray may have the job: from here on, an error means "unknown", not "not submitted".
        self.submitted = False

    # -- the machine -------------------------------------------------------------------------
    def run(self) -> Outcome:
        try:
            state: State | Outcome = self.first_state()
            while not isinstance(state, Outcome):
                state = self.step(state)
        except RaypodError as error:
            if self.retrying is not None and not self.submitted and not isinstance(error, Terminated):
                return self._retry_not_submitted(self.retrying, error)
            return outcome_of_error(error, self.submission_id, submitted=self.submitted)
        return state

    @property
    def submission_id(self) -> str:
        return self.reporter.get(st.ID)

    def first_state(self) -> State | Outcome:
        final = recorded_final(self.reporter.current)
        if final is not None:
            return final
        recorded_id, configured = self.reporter.get(st.ID), self.config.submission_id
        attempt = recorded_attempt(self.reporter.get(st.ATTEMPT))
        if recorded_id and attempt > 1 and (not configured or attempt_id(configured, attempt) == recorded_id):
            # A retry is under way: with a status file, the ConfigMap's id is the job's, not the attempt's.
            configured = recorded_id
        elif configured and configured != recorded_id:
            attempt = 1  # the ConfigMap names another job than the one recorded
        submission_id = configured or recorded_id
        if submission_id:
            self.attempt, self.base_id = attempt, base_of(submission_id, attempt)
            return Attach(submission_id, self.reporter.get(st.JOB_STATUS))
        return Submit(None)

    def step(self, state: State) -> State | Outcome:
        if isinstance(state, Attach):
            return self._attach(state)
        if isinstance(state, Submit):
            return self._submit(state)
        if isinstance(state, Retry):
            return self._wait_to_retry(state)
        return self._watch_once(state)

    # -- attach --------------------------------------------------------------------------------
    def _attach(self, state: Attach) -> State | Outcome:
        submission_id = state.submission_id
        self.reporter.update({st.ID: submission_id})
        confirmed = state.recorded_status in CONFIRMED
        try:
            job = self.ray.get_job(submission_id, retry=self._connect_policy())
        except RayApiError as error:
            if error.not_found and self.attempt > 1:
                return self._attach_unposted_retry(submission_id)
            if error.not_found and confirmed:
                return Outcome.final(
                    submission_id, st.UNKNOWN, f"Ray no longer knows job {submission_id} (was the head restarted?)"
                )
            if error.not_found:
                log.info("job %s was never accepted by Ray; submitting it with that id", submission_id)
                return Submit(submission_id)
            if confirmed:
                # Ray had this job: whatever the dashboard answers now (an outage, a rotated token, an
                # ingress page), the watch rides it out, up to --status-timeout.
                log.warning("cannot re-attach to %s yet (%s); watching it", submission_id, error)
                self.submitted = True
                return Watch(submission_id, None, self.clock.monotonic())
            # Its POST may have reached Ray: neither FAILED nor "bad input" would be true.
            self.submitted = True
            message = one_line(f"Cannot tell whether Ray has job {submission_id}: {error}", 400)
            return Outcome.final(submission_id, st.UNKNOWN, message)
        log.info("re-attached to Ray job %s (%s)", submission_id, job.status)
        self.submitted = True
        if self.on_attach is not None:
            self.on_attach(job)
        return Watch(submission_id, job, self.clock.monotonic())

    def _attach_unposted_retry(self, submission_id: str) -> State | Outcome:
        """Ray does not know this retry. If it still knows the attempt before it, the head kept its
        jobs, so this one was persisted but never POSTed: submit it. Otherwise Ray lost them all."""
        previous = attempt_id(self.base_id, self.attempt - 1)
        try:
            self.ray.get_job(previous, retry=self._connect_policy())
        except RayApiError as error:
            self.submitted = True
            if error.not_found:
                message = f"Ray no longer knows job {submission_id} nor {previous} before it (was the head restarted?)"
            else:
                message = one_line(f"Cannot tell whether Ray has job {submission_id}: {error}", 400)
            return Outcome.final(submission_id, st.UNKNOWN, message)
        log.info("attempt %d (%s) was never accepted by Ray; submitting it", self.attempt, submission_id)
        return Submit(submission_id)

    def _connect_policy(self) -> RetryPolicy:
        return self.retry.with_deadline(self.settings.connect_timeout)

    def _unreachable(self, error: RayApiError) -> ConfigError:
        """resourceURL is wrong, refuses raypod, or does not answer: say which, and what to check."""
        if error.unauthorized:
            return ConfigError.single(
                RESOURCE_URL,
                f"the Ray dashboard refused access (HTTP {error.status}: {one_line(error.reason, 80)}); check the "
                "token file in the credentials directory (Ray token auth) or, with auth 'basic', username/password",
            )
        if "TLS" in error.reason:
            return ConfigError.single(
                RESOURCE_URL,
                "the dashboard's https certificate did not verify; give its CA in RAYPOD_RAY_CA_BUNDLE or as "
                f"ca.crt in the credentials directory ({error})",
            )
        return ConfigError.single(RESOURCE_URL, f"cannot reach the Ray dashboard: {error}")

    # -- submit --------------------------------------------------------------------------------
    def _submit(self, state: Submit) -> State | Outcome:
        config, settings = self.config, self.settings
        if config.set_aside:
            # Read as a config for a job Ray has; Ray does not have it, so nothing was submitted.
            return Outcome.bad_input(ConfigError(config.set_aside))
        if config.kill:
            return Outcome.final(
                state.submission_id or "", st.KILL, "Not submitted: kill was set before the job started."
            )
        with tempfile.TemporaryDirectory(prefix="raypod-") as temp:
            workdir = Path(temp)
            inputs = fetch_inputs(config, self.s3, workdir, local_inputs_of(self.source))
            packages = build_packages(inputs, workdir)
            submission_id = state.submission_id or new_submission_id(
                settings.job_name, config.properties.submission_id_prefix, self.source.identity
            )
            if not self.base_id:
                self.base_id = submission_id
            payload = plan_submission(config, inputs, settings.job_name, settings.namespace, packages, submission_id)
            try:
                version = self.ray.version(retry=self._connect_policy())
            except RayApiError as error:
                raise self._unreachable(error) from error
            log.info("Ray dashboard %s answers (Ray %s)", config.resource_url, version.get("ray_version", "?"))
            try:
                for package in packages.all:  # the working dir's, then each wheel's: once per content
                    if not self.ray.package_exists(package.name):
                        log.info("uploading package %s", package.name)
                        self.ray.upload_package(package.name, package.path)
            except RayApiError as error:
                if not error.unauthorized:
                    raise
                # /api/version may answer without auth; the package calls are where a token is checked.
                raise self._unreachable(error) from error
        self._raise_if_terminated()
        # The id and its attempt are persisted before the POST, so a lost answer or a new pod never
        # submits twice, and a replacement pod continues the count.
        self.reporter.update({st.ID: submission_id, st.ATTEMPT: str(self.attempt)}, must_persist=True)
        self.submitted = True
        try:
            self._post_once(payload, submission_id)
        except RayApiError as error:
            if not is_refusal(error):
                raise  # Ray may have the job: run() reports UNKNOWN, not a rejection
            raise SubmissionRejected(error) from error
        first_submission = self.attempt == 1 or not self.reporter.get(st.SUBMIT_TIME)
        what = "Submitted" if self.attempt == 1 else f"Submitted attempt {self.attempt} of {self._attempts}"
        self.reporter.update(
            {
                st.JOB_STATUS: st.SUBMITTED,
                # The BridgeJob's submission: activeDeadlineSeconds and its duration count from the first.
                st.SUBMIT_TIME: format_time(self.clock.now()) if first_submission else None,
                st.MESSAGE: f"{what} to {config.resource_url} as {submission_id}.",
            }
        )
        self.attempt_posted_at = self.clock.monotonic()
        if settings.submit_only:
            return Outcome(Ending.DETACHED, submission_id, st.SUBMITTED)
        return Watch(submission_id, None, self.clock.monotonic())

    def _post_once(self, payload: dict[str, Any], submission_id: str) -> None:
        """POST until Ray has the job, asking after every lost answer whether it arrived."""
        ray = self.ray

        def attempt() -> None:
            self._raise_if_terminated()
            try:
                ray.submit_job(payload, retry=NO_RETRY)
            except RayApiError as error:
                if is_duplicate_submission(error):
                    log.info("Ray already has %s: the earlier POST went through", submission_id)
                    return
                if is_wrapped_rejection(error):
                    raise SubmissionRejected(error) from error
                if is_refusal(error):
                    raise
                # The answer may be lost, or garbled on its way (an ingress page), after Ray accepted
                # the job: ask before posting again, or before calling it anything.
                try:
                    ray.get_job(submission_id, retry=NO_RETRY)
                except RayApiError as lookup_error:
                    if lookup_error.not_found:
                        raise error from lookup_error
                    raise error from None
                log.info("Ray accepted %s although its answer was lost", submission_id)

        self._connect_policy().call(attempt, what=f"submission of {submission_id}")

    @property
    def _attempts(self) -> int:
        return self.config.properties.retries + 1

    def _raise_if_terminated(self) -> None:
        """Nothing is persisted or POSTed once SIGTERM has arrived."""
        if self.clock.terminated:
            raise Terminated("terminated before the submission")

    # -- watch ---------------------------------------------------------------------------------
    def _watch_once(self, state: Watch) -> State | Outcome:
        """One poll: kill, Ray's status, the deadline, then the wait until the next poll."""
        submission_id, job, last_answer, stopping = state.submission_id, state.job, state.last_answer, state.stopping
        if stopping is None and self._kill_requested():
            stopping = self._start_stopping(submission_id, st.KILL, KILL_MESSAGE, st.Reason.KILLED)
        try:
            if stopping is not None:
                stopping.request.ask()
            job = self.ray.get_job(submission_id, retry=self._poll_policy(), timeouts=self._poll_timeouts())
        except RayApiError as error:
            if error.not_found:
                return Outcome.final(
                    submission_id, st.UNKNOWN, f"Ray no longer knows job {submission_id} (was the head restarted?)"
                )
            silent = self.clock.monotonic() - last_answer
            if silent > self.settings.status_timeout:
                message = f"No answer from the Ray dashboard for {int(silent)} s: {one_line(error.reason, 150)}"
                return Outcome.final(submission_id, st.UNKNOWN, message, job)
            log.warning("status check failed (%s); keeping the last status", error)
        else:
            last_answer = self.clock.monotonic()
            if self.on_poll is not None:
                self.on_poll(job)
            if job.terminal:
                if stopping is not None and job.status == RAY_STOPPED:
                    return Outcome.final(submission_id, stopping.status, stopping.message, job, reason=stopping.reason)
                # It ended on its own (before any stop took): Ray's own status is the true one.
                return self._ended_or_retried(job)
            self.reporter.update(
                {
                    st.JOB_STATUS: st.bridge_status(job.status),
                    st.START_TIME: format_ray_time(job.start_time_ms),
                    st.MESSAGE: self._running_message(job, stopping),
                }
            )
        if stopping is None:
            stopping = self._deadline_stop(submission_id, job)
            if stopping is not None:
                # Asked at once, in the next step, not after another interval.
                return Watch(submission_id, job, last_answer, stopping)
        elif self._never_started(stopping, job):
            assert job is not None
            message = (
                f"{stopping.message[:-1]}, but Ray cannot stop a job that has not started: it stays {job.status} "
                "on Ray, and the stop request waits there for the job's start."
            )
            return Outcome.final(submission_id, st.FAILED, message, job, reason=stopping.reason)
        self.reporter.flush()
        if self.clock.wait(self._next_wait(stopping)):
            return Outcome(Ending.TERMINATED, submission_id)
        return Watch(submission_id, job, last_answer, stopping)

    def _deadline_stop(self, submission_id: str, job: JobInfo | None) -> Stopping | None:
        """The stop a passed deadline calls for: activeDeadlineSeconds, or startDeadlineSeconds
        for a job not RUNNING yet."""
        properties = self.config.properties
        deadline, start_deadline = properties.active_deadline_seconds, properties.start_deadline_seconds
        if deadline is not None and self._deadline_passed(deadline):
            message = f"activeDeadlineSeconds ({deadline:g} s) passed; the job was stopped."
            return self._start_stopping(submission_id, st.FAILED, message, st.Reason.DEADLINE_EXCEEDED)
        not_started = job is None or job.status == "PENDING"
        if start_deadline is not None and not_started and self._start_deadline_passed(start_deadline, job):
            message = f"The job did not start within startDeadlineSeconds ({start_deadline:g} s); it was stopped."
            return self._start_stopping(submission_id, st.FAILED, message, st.Reason.START_DEADLINE_EXCEEDED)
        return None

    def _never_started(self, stopping: Stopping, job: JobInfo | None) -> bool:
        """Ray took the stop of a job that has not started, and it stays PENDING: Ray 2.60 only queues
        such a stop (its supervisor actor does not exist yet), so waiting longer changes nothing."""
        return (
            stopping.reason == st.Reason.START_DEADLINE_EXCEEDED
            and stopping.request.taken is True
            and job is not None
            and job.status == "PENDING"
            and self.clock.monotonic() - stopping.since >= min(self.settings.stop_timeout, START_STOP_CONFIRM)
        )

    def _start_stopping(self, submission_id: str, status: str, message: str, reason: str) -> Stopping:
        log.info("stopping Ray job %s: %s", submission_id, message)
        request = PendingStop(self.ray, submission_id, self._poll_timeouts())
        return Stopping(status, message, reason, self.clock.monotonic(), request)

    def _next_wait(self, stopping: Stopping | None) -> float:
        interval = self._interval(stopping)
        jitter = self.settings.first_poll_jitter
        if self._jittered or jitter is None or stopping is not None:
            return interval
        self._jittered = True
        # A random phase: the number of polls per job stays the same, only their moment moves.
        return interval * min(max(jitter(), 0.0), 1.0)

    def _stop_overdue(self, stopping: Stopping | None) -> bool:
        return stopping is not None and self.clock.monotonic() - stopping.since >= self.settings.stop_timeout

    def _interval(self, stopping: Stopping | None) -> float:
        # While a stop is awaited, Ray is asked every WAIT_POLL s, up to stop_timeout.
        if stopping is not None and not self._stop_overdue(stopping):
            return min(WAIT_POLL, self.config.update_interval)
        return self.config.update_interval

    def _running_message(self, job: JobInfo, stopping: Stopping | None) -> str | None:
        """Ray's message; once a stop is overdue, what Ray reports instead of the stop."""
        if stopping is None or not self._stop_overdue(stopping):
            return one_line(job.message) or None
        refused = stopping.request.refusal
        why = f" (the stop call failed: {one_line(refused.reason, 150)})" if refused is not None else ""
        overdue = f"{self.settings.stop_timeout:g} s after the stop request"
        return one_line(f"{stopping.message[:-1]}, but Ray still reports the job {job.status} {overdue}{why}.")

    def _poll_policy(self) -> RetryPolicy:
        # A few quick tries inside one poll; the watch itself rides out longer outages.
        policy = RetryPolicy(
            attempts=3, initial_wait=0.5, max_wait=2.0, deadline=min(10.0, self.config.update_interval)
        )
        return policy.interruptible(self.retry.interrupt) if self.retry.interrupt is not None else policy

    def _poll_timeouts(self) -> Timeouts:
        # A poll that hangs must not keep SIGTERM waiting past the pod's 30 s grace period.
        return Timeouts(read=POLL_READ_TIMEOUT)

    def _kill_requested(self) -> bool:
        try:
            return kill_requested(self.source.read())
        except RaypodError as error:
            log.warning("could not re-read kill from %s: %s", self.source.description, error)
            return False

    def _deadline_passed(self, deadline: float) -> bool:
        submitted = parse_time(self.reporter.get(st.SUBMIT_TIME))
        return submitted is not None and (self.clock.now() - submitted).total_seconds() > deadline

    def _start_deadline_passed(self, deadline: float, job: JobInfo | None) -> bool:
        """Each attempt has the whole start deadline, counted from its own submission."""
        if self.attempt == 1:
            return self._deadline_passed(deadline)
        if self.attempt_posted_at is not None:
            return self.clock.monotonic() - self.attempt_posted_at > deadline
        # Re-attached to a retry: Ray's creation time of it is the one record of its submission.
        if job is None or not job.start_time_ms:
            return False
        return self.clock.now().timestamp() - job.start_time_ms / 1000 > deadline

    def _ended_or_retried(self, job: JobInfo) -> State | Outcome:
        """The attempt's end: final, unless it failed on its own and retries are left."""
        ended = self._ended(job)
        outcome = ended
        if self._attempts > 1:
            counted = f"{ended.message.rstrip('.')} (attempt {self.attempt} of {self._attempts})."
            outcome = replace(ended, message=counted)
        if outcome.reason != st.Reason.APP_FAILED or self.attempt >= self._attempts:
            return outcome
        if self.config.set_aside:
            log.warning("attempt %d failed; not retried: the ConfigMap has problems (set aside above)", self.attempt)
            return outcome
        failed = self.attempt
        if self.on_attempt_failed is not None:
            self.on_attempt_failed(job, failed)
        delay = self.config.properties.retry_delay_seconds
        message = one_line(
            f"Attempt {failed} of {self._attempts} ({outcome.submission_id}) failed: "
            f"{ended.message.removeprefix('Job failed: ').rstrip('.')}; "
            f"attempt {failed + 1} starts in {delay:g} s.",
        )
        log.info("%s", message)
        self.reporter.update({st.JOB_STATUS: st.PENDING, st.MESSAGE: message})
        return Retry(failed + 1, job, outcome.message, self.clock.monotonic())

    def _wait_to_retry(self, state: Retry) -> State | Outcome:
        """The delay before the next attempt, cut short by kill, the deadline or SIGTERM."""
        failed_id = attempt_id(self.base_id, state.attempt - 1)
        if self._kill_requested():
            message = f"Stopped at the operator's request (kill=true) before attempt {state.attempt}; {state.message}"
            return Outcome.final(failed_id, st.KILL, message, state.failed, reason=st.Reason.KILLED)
        deadline = self.config.properties.active_deadline_seconds
        if deadline is not None and self._deadline_passed(deadline):
            message = f"activeDeadlineSeconds ({deadline:g} s) passed before attempt {state.attempt}; {state.message}"
            return Outcome.final(failed_id, st.FAILED, message, state.failed, reason=st.Reason.DEADLINE_EXCEEDED)
        remaining = self.config.properties.retry_delay_seconds - (self.clock.monotonic() - state.since)
        if remaining <= 0:
            self.attempt, self.attempt_posted_at = state.attempt, None
            # Until its id is persisted, nothing of this attempt is on Ray: an error ends the job with
            # the failed attempt's end, not as "unknown".
            self.retrying, self.submitted = state, False
            return Submit(attempt_id(self.base_id, state.attempt))
        self.reporter.flush()
        if self.clock.wait(min(remaining, self.config.update_interval)):
            return Outcome(Ending.TERMINATED, failed_id)
        return state

    def _retry_not_submitted(self, state: Retry, error: RaypodError) -> Outcome:
        failed_id = attempt_id(self.base_id, state.attempt - 1)
        log.error("attempt %d could not be submitted: %s", state.attempt, error)
        message = (
            f"{state.message.rstrip('.')}; attempt {state.attempt} could not be submitted: {one_line(str(error), 150)}"
        )
        return Outcome.final(failed_id, st.FAILED, message, state.failed, reason=st.Reason.APP_FAILED)

    def _ended(self, job: JobInfo) -> Outcome:
        status = st.bridge_status(job.status)
        if status == st.SUCCEEDED:
            message = "Job succeeded."
        elif status == st.KILL:
            message = "Job was stopped on Ray."
        else:
            # Ray appends "last available logs (truncated ...):" and the log itself; the log goes to S3.
            reason = one_line(job.message.split(", last available logs", 1)[0], 200).rstrip(":.")
            message = f"Job failed: {reason}." if reason else "Job failed."
        return Outcome.final(job.submission_id or self.submission_id, status, message, job)
