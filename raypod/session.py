"""One Bridge job's lifecycle as a state machine: attach or submit exactly once, watch, stop.

A ``JobSession`` talks to Ray, the submitter, the status sink, ``kill`` and the clock only through
the protocols it is given, so every branch runs in tests without a network. It never prints and
never decides an exit code: it returns an ``Outcome``, and the runner acts on it. Where it is
lives in the state alone: the session itself holds nothing that changes.

The states, each handled by one method, and where they lead:

- ``Attach``: Ray has the attempt -> ``Watch``; Ray never accepted it -> ``Submit``;
  Ray lost it, or cannot say -> a final ``Outcome``.
- ``Submit``: prepare, persist the id, POST once -> ``Watch`` (``DETACHED`` when nobody watches).
- ``Watch``: one poll -> ``Watch`` again, a final ``Outcome`` when the job ended, a stop on
  kill or a passed deadline, ``TERMINATED`` on SIGTERM.
- ``Retry``: an attempt ended FAILED and ``jobproperties.retries`` allows another: wait
  ``retryDelaySeconds`` (kill, the deadline and SIGTERM still apply) -> ``Submit`` of the next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from raypod.clock import Clock, format_ray_time, format_ray_time_not_before, format_time, parse_time
from raypod.config import BridgeConfig
from raypod.contract import (
    ATTEMPT,
    ID,
    JOB_STATUS,
    MESSAGE,
    REASON,
    RESOURCE_URL,
    START_TIME,
    SUBMIT_TIME,
    BridgeStatus,
    Reason,
    assert_never,
)
from raypod.errors import ConfigError, RayApiError, RaypodError, SubmissionRejected, Terminated
from raypod.events import NULL_EVENTS, EventReasons, EventRecorder
from raypod.http import Timeouts
from raypod.jobs import WAIT_POLL, PendingStop, RayJobs
from raypod.outcome import Outcome, outcome_of_error, recorded_final
from raypod.ray import JobInfo, RayStatus
from raypod.retry import RetryPolicy
from raypod.safetext import one_line
from raypod.status_store import StatusReporter
from raypod.submission import NotOnRay, Submitter, attempt_id, attempt_number, recorded_attempt, resolve_attempt
from raypod.watch_schedule import FIRST_LOOK, REPLAN_WAIT, OutputActivity

log = logging.getLogger(__name__)

#: Read timeout of one status poll: short enough that SIGTERM is honoured well within 30 s.
POLL_READ_TIMEOUT = 10.0
KILL_MESSAGE = "Stopped at the operator's request (kill=true)."
#: The reasons raypod stops a job for on its own.
DEADLINE_REASONS = (Reason.DEADLINE_EXCEEDED, Reason.START_DEADLINE_EXCEEDED)
#: How long a stop of a job past its start deadline may take to show, before raypod says that Ray
#: did not stop it (a job in the middle of starting may still stop).
START_STOP_CONFIRM = 10.0


class KillSwitch(Protocol):
    """Where the operator's ``kill`` is read again on every poll (the ConfigMap, or nothing)."""

    description: str

    def kill_requested(self) -> bool:
        """Re-read ``kill``; a RaypodError when it cannot be read now."""
        ...


@dataclass(frozen=True)
class SessionSettings:
    """The lifecycle's knobs (the CLI's flags)."""

    #: How long the dashboard may stay silent about a running job before UNKNOWN; None: never.
    status_timeout: float | None = 600.0
    #: How long an unreachable dashboard is retried at start-up.
    connect_timeout: float = 60.0
    #: How long to wait for Ray to confirm a stop.
    stop_timeout: float = 60.0
    #: Return as soon as Ray has the job (``submit`` without ``--wait``).
    submit_only: bool = False
    #: Fractions in [0, 1) that shorten the watch's first wait, so pods started together do not
    #: poll in lockstep (``random.random`` in a pod); None: every wait is ``updateInterval``.
    first_poll_jitter: Callable[[], float] | None = None
    #: A recorded UNKNOWN is the job's end (kept, Ray not asked); False: re-attach by its id
    #: (a Kubernetes Job's next pod, ``exits.lost_is_final``).
    lost_is_final: bool = True
    #: Where the dashboard's address came from (``resourceURL``, ``--address``, a variable): bad
    #: input about the address names it.
    address_origin: str = RESOURCE_URL
    #: The patient policy of every call but the polls. Give it the SIGTERM event
    #: (``RetryPolicy.interruptible``): a wait between retries then ends at once.
    retry: RetryPolicy = RetryPolicy()


# -- states ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attempt:
    """One attempt of the job: the job's id (attempt n is ``<id>-r<n-1>``) and its number."""

    #: The job's id; empty until the first submission chooses it.
    base_id: str = ""
    number: int = 1
    #: When this pod POSTed it (the clock's monotonic time): its start deadline counts from then.
    posted_at: float | None = None

    @property
    def submission_id(self) -> str:
        return attempt_id(self.base_id, self.number) if self.base_id else ""


@dataclass(frozen=True)
class Attach:
    """An id is known (from the ConfigMap or an earlier pod): find the attempt on Ray."""

    attempt: Attempt
    #: The status recorded with it, which tells whether Ray ever confirmed the job.
    recorded_status: str
    #: When the dashboard first failed to say whether it has the job (the clock's monotonic time).
    since: float | None = None


@dataclass(frozen=True)
class Stopping:
    """Kill or a deadline asked Ray to stop the job: the watch goes on until Ray confirms it."""

    #: The Bridge status when Ray confirms the stop (KILL for kill, FAILED for a deadline).
    status: BridgeStatus
    message: str
    #: Its ``status.reason`` (Killed, DeadlineExceeded, StartDeadlineExceeded).
    reason: str
    #: When the stop was first asked (the clock's monotonic time).
    since: float
    request: PendingStop


@dataclass(frozen=True)
class Retry:
    """``attempt`` ended FAILED: the next one is submitted once the delay has passed."""

    attempt: Attempt
    #: The attempt that failed, as Ray last reported it (its log is the last one if no other follows).
    failed: JobInfo
    #: Its final message, kept should nothing follow it.
    message: str
    #: When the wait began (the clock's monotonic time; Ray's end of the attempt, for a pod that re-attached).
    since: float


@dataclass(frozen=True)
class Submit:
    """Submit ``attempt``; a new job's id is chosen when its ``base_id`` is empty."""

    attempt: Attempt
    #: The failed attempt this one retries: should it not even be submitted, that one's end stands.
    follows: Retry | None = None


@dataclass(frozen=True)
class Watch:
    attempt: Attempt
    #: The last answer from Ray, if any.
    job: JobInfo | None
    #: When Ray last answered (the clock's monotonic time).
    last_answer: float
    stopping: Stopping | None = None
    #: The first wait (with its random phase) is behind.
    waited: bool = False
    #: Ray said RUNNING for this attempt, and the Event said so (once per attempt).
    running_recorded: bool = False
    #: Wait this long before the first poll (right after the POST: ``raypod.watch_schedule.FIRST_LOOK``).
    first_look: float = 0.0

    @property
    def submission_id(self) -> str:
        return self.attempt.submission_id


State = Attach | Submit | Watch | Retry


class JobSession:
    """Runs one job's lifecycle to an ``Outcome``. Clients are given; nothing is built here."""

    def __init__(
        self,
        config: BridgeConfig,
        ray: RayJobs,
        submitter: Submitter,
        reporter: StatusReporter,
        kill_switch: KillSwitch,
        clock: Clock,
        settings: SessionSettings,
        *,
        on_attach: Callable[[JobInfo], None] | None = None,
        on_poll: Callable[[JobInfo], None] | None = None,
        on_attempt_failed: Callable[[JobInfo, int], None] | None = None,
        events: EventRecorder = NULL_EVENTS,
        activity: OutputActivity | None = None,
    ) -> None:
        self.config = config
        self.ray = ray
        self.submitter = submitter
        self.reporter = reporter
        self.kill_switch = kill_switch
        self.clock = clock
        self.settings = settings
        self.on_attach = on_attach
        self.on_poll = on_poll
        #: Status checks failed since the dashboard last answered (an outage is told once, at a terminal).
        self._failed_polls = 0
        #: Hears each attempt that failed and is retried, with its number (the runner keeps its log).
        self.on_attempt_failed = on_attempt_failed
        #: Kubernetes Events on the ConfigMap (best effort; none outside a cluster).
        self.events = events
        #: The job's output as the live log sees it, for early polls once it goes quiet
        #: (``raypod.watch_schedule``); None: every wait is ``updateInterval`` (no live output).
        self.activity = activity

    # -- the machine -------------------------------------------------------------------------
    def run(self) -> Outcome:
        state: State | Outcome = self.first_state()
        while not isinstance(state, Outcome):
            current = state
            if self.clock.terminated:
                # SIGTERM came between calls (none was in flight to cut): a step would start a new
                # call, bounded only by its own deadline, longer than the grace period.
                return Outcome.terminated(self.reporter.get(ID))
            try:
                state = self.step(current)
            except Terminated:
                return Outcome.terminated(self.reporter.get(ID))
            except RaypodError as error:
                return self._failed(current, error)
        return state

    def first_state(self) -> State | Outcome:
        final = recorded_final(self.reporter.current, lost_is_final=self.settings.lost_is_final)
        if final is not None:
            return final
        recorded_id = self.reporter.get(ID)
        base_id, number = resolve_attempt(
            self.config.submission_id or "", recorded_id, recorded_attempt(self.reporter.get(ATTEMPT))
        )
        if not base_id:
            return Submit(Attempt())
        attempt = Attempt(base_id, number)
        # What was recorded of another job than this one says nothing about it.
        recorded_status = self.reporter.get(JOB_STATUS) if attempt_number(base_id, recorded_id) else ""
        return Attach(attempt, recorded_status)

    def step(self, state: State) -> State | Outcome:
        if isinstance(state, Attach):
            return self._attach(state)
        if isinstance(state, Submit):
            return self._submit(state)
        if isinstance(state, Retry):
            return self._wait_to_retry(state)
        return self._watch_once(state)

    def _failed(self, state: State, error: RaypodError) -> Outcome:
        """An error no step handled. Only a submission that did not get as far as its POST (which
        handles its own errors) leaves Ray without the job; every other state knows Ray may have it."""
        if isinstance(state, Submit):
            if state.follows is not None:
                return self._retry_not_submitted(state.follows, state.attempt, error)
            return outcome_of_error(error, submitted=False)
        return outcome_of_error(error, self.reporter.get(ID), submitted=True)

    # -- attach --------------------------------------------------------------------------------
    def _attach(self, state: Attach) -> State | Outcome:
        attempt = state.attempt
        submission_id = attempt.submission_id
        self.reporter.update({ID: submission_id})
        recorded = BridgeStatus.parse(state.recorded_status)
        confirmed = recorded is not None and recorded.confirmed
        try:
            job = self.ray.get_job(submission_id, retry=self._connect_policy())
        except RayApiError as error:
            if error.job_unknown and attempt.number > 1:
                return self._attach_unposted_retry(state)
            if error.job_unknown and confirmed:
                return Outcome.lost(submission_id, f"Ray no longer knows job {submission_id} (was the head restarted?)")
            if error.job_unknown:
                log.info("job %s was never accepted by Ray; submitting it with that id", submission_id)
                return Submit(attempt)
            if confirmed:
                # Ray had this job: whatever the dashboard answers now (an outage, a rotated token, an
                # ingress page), the watch rides it out, up to --status-timeout.
                log.warning("cannot re-attach to %s yet (%s); watching it", submission_id, error)
                return self._watch(attempt, None)
            return self._attach_again(state, error)
        newest = self._newest_attempt(attempt, job)
        if newest is not None:
            attempt, job = newest
            submission_id = attempt.submission_id
            self.reporter.update({ID: submission_id, ATTEMPT: str(attempt.number)})
        log.info("re-attached to Ray job %s (%s)", submission_id, job.status)
        self.events.record(EventReasons.REATTACHED, f"Re-attached to Ray job {submission_id} ({job.status}).")
        if self.on_attach is not None:
            self.on_attach(job)
        if self.settings.submit_only:
            return Outcome.detached(submission_id, job)  # Ray has it: submitted, as asked
        return self._watch(attempt, job)

    def _attach_again(self, state: Attach, error: RayApiError) -> State | Outcome:
        """Only Ray's own answer tells whether it has a job whose POST may have reached it: until
        the dashboard gives one, ask again, up to --status-timeout."""
        submission_id = state.attempt.submission_id
        now = self.clock.monotonic()
        since = now if state.since is None else state.since
        timeout = self.settings.status_timeout
        if timeout is not None and now - since >= timeout:
            # Its POST may have reached Ray: neither FAILED nor "bad input" would be true.
            return Outcome.lost(
                submission_id, one_line(f"Cannot tell whether Ray has job {submission_id}: {error}", 400)
            )
        log.warning("cannot tell yet whether Ray has job %s (%s); asking again", submission_id, error)
        if self.clock.wait(self.config.update_interval):
            return Outcome.terminated(submission_id)
        return replace(state, since=since)

    def _newest_attempt(self, attempt: Attempt, job: JobInfo) -> tuple[Attempt, JobInfo] | None:
        """A later attempt Ray has than the one recorded (a record that lags: a mounted ConfigMap, a
        write that failed), found before anything is decided: it, not the record, is the job now."""
        newest: tuple[Attempt, JobInfo] | None = None
        while attempt.number < self._attempts and job.terminal:
            following = Attempt(attempt.base_id, attempt.number + 1)
            try:
                job = self.ray.get_job(following.submission_id, retry=self._connect_policy())
            except RayApiError as error:
                if not error.job_unknown:
                    # Cannot tell now: a POST of an attempt Ray has is taken as that attempt, not run twice.
                    log.warning("cannot tell whether Ray has %s (%s)", following.submission_id, error)
                return newest
            log.info("Ray has attempt %d (%s), newer than the one recorded", following.number, job.submission_id)
            attempt = following
            newest = attempt, job
        return newest

    def _attach_unposted_retry(self, state: Attach) -> State | Outcome:
        """Ray does not know this retry. If it still knows the attempt before it, the head kept its
        jobs, so this one was persisted but never POSTed: submit it. Otherwise Ray lost them all."""
        attempt = state.attempt
        submission_id = attempt.submission_id
        previous = attempt_id(attempt.base_id, attempt.number - 1)
        try:
            self.ray.get_job(previous, retry=self._connect_policy())
        except RayApiError as error:
            if error.job_unknown:
                message = f"Ray no longer knows job {submission_id} nor {previous} before it (was the head restarted?)"
                return Outcome.lost(submission_id, message)
            return self._attach_again(state, error)
        log.info("attempt %d (%s) was never accepted by Ray; submitting it", attempt.number, submission_id)
        return Submit(attempt)

    def _connect_policy(self) -> RetryPolicy:
        return self.settings.retry.with_deadline(self.settings.connect_timeout)

    # -- submit --------------------------------------------------------------------------------
    def _submit(self, state: Submit) -> State | Outcome:
        config, attempt = self.config, state.attempt
        if config.set_aside:
            # Read as a config for a job Ray has; Ray does not have it, so nothing was submitted.
            return Outcome.bad_input(ConfigError(config.set_aside))
        if config.kill:
            return self._killed_before(state)
        prepared = self.submitter.prepare(attempt.submission_id or None)
        # Fetching and packing the inputs takes a while: kill set meanwhile is honoured before the POST.
        if self._kill_requested():
            return self._killed_before(state)
        if not attempt.base_id:
            attempt = replace(attempt, base_id=prepared.submission_id)
        submission_id = prepared.submission_id
        if self.clock.terminated:
            raise Terminated("terminated before the submission")
        # The id and its attempt are persisted before the POST, so a lost answer or a new pod never
        # submits twice, and a replacement pod continues the count.
        self.reporter.persist({ID: submission_id, ATTEMPT: str(attempt.number)})
        # Taken before the POST: Ray stamps its start_time (status.startTime) when the POST arrives.
        posted = self.clock.now()
        try:
            self.submitter.post(prepared)
        except SubmissionRejected as error:
            return outcome_of_error(error, submission_id)
        except NotOnRay as error:
            if state.follows is not None:
                return self._retry_not_submitted(state.follows, attempt, error)
            message = one_line(f"Not submitted: {error}", 400)
            return Outcome.final(submission_id, BridgeStatus.FAILED, message, reason=Reason.NOT_SUBMITTED)
        except RaypodError as error:
            return outcome_of_error(error, submission_id, submitted=True)  # Ray may have it
        first_submission = attempt.number == 1 or not self.reporter.get(SUBMIT_TIME)
        what = "Submitted" if attempt.number == 1 else f"Submitted attempt {attempt.number} of {self._attempts}"
        self.reporter.update(
            {
                JOB_STATUS: BridgeStatus.SUBMITTED,
                # The BridgeJob's submission: activeDeadlineSeconds and its duration count from the first.
                SUBMIT_TIME: format_time(posted) if first_submission else None,
                MESSAGE: f"{what} to {config.resource_url} as {submission_id}.",
            }
        )
        self.events.record(EventReasons.SUBMITTED, self.reporter.get(MESSAGE))
        attempt = replace(attempt, posted_at=self.clock.monotonic())
        if self.settings.submit_only:
            return Outcome.detached(submission_id)
        return self._watch(attempt, None, first_look=min(FIRST_LOOK, self.config.update_interval))

    def _killed_before(self, state: Submit) -> Outcome:
        """``kill`` before ``state``'s POST: nothing more is submitted; a retry's failed attempt stands."""
        failed = state.follows
        if failed is None:
            message = "Not submitted: kill was set before the job started."
            return Outcome.final(state.attempt.submission_id, BridgeStatus.KILL, message, reason=Reason.KILLED)
        message = (
            f"Stopped at the operator's request (kill=true) before attempt {state.attempt.number}; {failed.message}"
        )
        return Outcome.final(
            failed.attempt.submission_id, BridgeStatus.KILL, message, failed.failed, reason=Reason.KILLED
        )

    @property
    def _attempts(self) -> int:
        return self.config.properties.retries + 1

    # -- watch ---------------------------------------------------------------------------------
    def _watch(self, attempt: Attempt, job: JobInfo | None, first_look: float = 0.0) -> Watch:
        if self.activity is not None:
            self.activity.began()
        return Watch(attempt, job, self.clock.monotonic(), first_look=first_look)

    def _watch_once(self, state: Watch) -> State | Outcome:
        """One poll: kill, Ray's status, the deadline, then the wait until the next poll."""
        submission_id, job, last_answer, stopping = state.submission_id, state.job, state.last_answer, state.stopping
        if state.first_look > 0:
            # A job just posted is still starting: asked a moment later, Ray mostly says it runs, and
            # on which node (the live log's stream at once), or that a very short one has ended.
            if self.clock.wait(state.first_look):
                return Outcome.terminated(submission_id)
            return replace(state, first_look=0.0)
        running_recorded = state.running_recorded
        if stopping is None and self._kill_requested():
            stopping = self._start_stopping(submission_id, BridgeStatus.KILL, KILL_MESSAGE, Reason.KILLED)
        polled_at = self.clock.monotonic()
        try:
            if stopping is not None:
                stopping.request.ask()
            job = self.ray.get_job(submission_id, retry=self._poll_policy(), timeouts=self._poll_timeouts())
        except RayApiError as error:
            if error.job_unknown:
                return Outcome.lost(submission_id, f"Ray no longer knows job {submission_id} (was the head restarted?)")
            silent = self.clock.monotonic() - last_answer
            if self.settings.status_timeout is not None and silent > self.settings.status_timeout:
                message = f"No answer from the Ray dashboard for {int(silent)} s: {one_line(error.reason, 150)}"
                return Outcome.lost(submission_id, message, job)
            self._poll_failed(error)
        else:
            self._poll_answered()
            last_answer = self.clock.monotonic()
            self._record_submit_time(job)
            if self.on_poll is not None:
                self.on_poll(job)
            if job.terminal:
                if stopping is not None and job.status is RayStatus.STOPPED:
                    return Outcome.final(submission_id, stopping.status, stopping.message, job, reason=stopping.reason)
                # It ended on its own (before any stop took): Ray's own status is the true one.
                return self._ended_or_retried(state.attempt, job)
            if job.status is RayStatus.RUNNING and not running_recorded:
                self.events.record(EventReasons.RUNNING, f"Ray job {submission_id} is running.")
                running_recorded = True
            self.reporter.update(
                {
                    JOB_STATUS: job.status.bridge,
                    START_TIME: format_ray_time_not_before(job.start_time_ms, self.reporter.get(SUBMIT_TIME)),
                    MESSAGE: self._running_message(job, stopping),
                }
            )
        if stopping is None:
            stopping = self._deadline_stop(state.attempt, job)
            if stopping is not None:
                # Asked at once, in the next step, not after another interval.
                return replace(
                    state, job=job, last_answer=last_answer, stopping=stopping, running_recorded=running_recorded
                )
        elif self._never_started(stopping, job):
            assert job is not None
            message = (
                f"{stopping.message[:-1]}, but Ray cannot stop a job that has not started: it stays {job.status} "
                "on Ray, and the stop request waits there for the job's start."
            )
            return Outcome.final(submission_id, BridgeStatus.FAILED, message, job, reason=stopping.reason)
        self.reporter.flush()
        if self._wait_for_next_poll(polled_at, self._next_wait(state, stopping)):
            return Outcome.terminated(submission_id)
        return replace(
            state, job=job, last_answer=last_answer, stopping=stopping, waited=True, running_recorded=running_recorded
        )

    def _record_submit_time(self, job: JobInfo) -> None:
        """A job attached to without ``status.submitTime`` (its id written by hand or by KubeRay, or the
        submitting pod died before it wrote the time) takes Ray's own record of its submission: the
        operator copies the time into the BridgeJob, and activeDeadlineSeconds counts from it."""
        if not self.reporter.get(SUBMIT_TIME) and job.start_time_ms:
            self.reporter.update({SUBMIT_TIME: format_ray_time(job.start_time_ms)})

    def _deadline_stop(self, attempt: Attempt, job: JobInfo | None) -> Stopping | None:
        """The stop a passed deadline calls for: activeDeadlineSeconds, or startDeadlineSeconds
        for a job not RUNNING yet."""
        properties = self.config.properties
        deadline, start_deadline = properties.active_deadline_seconds, properties.start_deadline_seconds
        submission_id = attempt.submission_id
        if deadline is not None and self._deadline_passed(deadline):
            message = f"activeDeadlineSeconds ({deadline:g} s) passed; the job was stopped."
            return self._start_stopping(submission_id, BridgeStatus.FAILED, message, Reason.DEADLINE_EXCEEDED)
        # Only Ray's own PENDING says a job has not started: no answer (an outage, a new pod's first
        # polls) proves nothing, and a job once RUNNING never goes back to PENDING.
        not_started = job is not None and job.status is RayStatus.PENDING
        if start_deadline is not None and not_started and self._start_deadline_passed(start_deadline, attempt, job):
            message = f"The job did not start within startDeadlineSeconds ({start_deadline:g} s); it was stopped."
            return self._start_stopping(submission_id, BridgeStatus.FAILED, message, Reason.START_DEADLINE_EXCEEDED)
        return None

    def _never_started(self, stopping: Stopping, job: JobInfo | None) -> bool:
        """Ray took the stop of a job that has not started, and it stays PENDING: Ray 2.60 only queues
        such a stop (its supervisor actor does not exist yet), so waiting longer changes nothing."""
        return (
            stopping.reason == Reason.START_DEADLINE_EXCEEDED
            and stopping.request.taken is True
            and job is not None
            and job.status is RayStatus.PENDING
            and self.clock.monotonic() - stopping.since >= min(self.settings.stop_timeout, START_STOP_CONFIRM)
        )

    def _start_stopping(self, submission_id: str, status: BridgeStatus, message: str, reason: str) -> Stopping:
        log.info("stopping Ray job %s: %s", submission_id, message)
        if reason in DEADLINE_REASONS:
            # Recorded before the stop: a pod that replaces this one finds the job STOPPED on Ray and
            # must know it was a deadline (kill is in the ConfigMap already).
            self.reporter.update({REASON: reason, MESSAGE: message})
        if reason == Reason.KILLED:
            self.events.record(EventReasons.KILL_REQUESTED, f"kill=true: asked Ray to stop job {submission_id}.")
        else:
            self.events.record(EventReasons.DEADLINE_EXCEEDED, f"{message} Asked Ray to stop job {submission_id}.")
        request = PendingStop(self.ray, submission_id, self._poll_timeouts())
        return Stopping(status, message, reason, self.clock.monotonic(), request)

    def _next_wait(self, state: Watch, stopping: Stopping | None) -> float:
        interval = self._interval(stopping)
        jitter = self.settings.first_poll_jitter
        if state.waited or jitter is None or stopping is not None:
            return interval
        # A random phase: the number of polls per job stays the same, only their moment moves.
        return interval * min(max(jitter(), 0.0), 1.0)

    def _wait_for_next_poll(self, polled_at: float, wait: float) -> bool:
        """Wait until the next poll is due: ``wait`` from now, or earlier by the output's quiet
        schedule. Output that comes meanwhile moves the early poll later, so the wait is taken again
        (no call to Ray) until one is due. True: SIGTERM."""
        regular = self.clock.monotonic() + wait
        left = self._until_next_poll(polled_at, wait)
        while True:
            # At least one wait, even of 0 s: it takes a wake-up that came during the poll.
            if self.clock.wait(max(0.0, left)):
                return True
            left = self._until_next_poll(polled_at, regular - self.clock.monotonic())
            if left <= 0:
                return False

    def _until_next_poll(self, polled_at: float, regular_left: float) -> float:
        if self.activity is None:
            return regular_left
        early = self.activity.poll_due(polled_at, self.config.update_interval) - self.clock.monotonic()
        # Output that comes during a wait can make an early poll due: the plan is looked at again
        # this often (no call to Ray), well before any early poll the output can bring.
        return min(regular_left, early, REPLAN_WAIT)

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
        # At a terminal the watch says once that the dashboard went away (``_poll_failed``).
        policy = replace(policy, silent_retries=self.settings.retry.quiet_retries)
        interrupt = self.settings.retry.interrupt
        return policy.interruptible(interrupt) if interrupt is not None else policy

    def _poll_failed(self, error: RayApiError) -> None:
        """A failed status check: a warning each (the pod's log), or at a terminal one warning when the
        dashboard goes away and the rest at INFO (shown with -v)."""
        quiet = self.settings.retry.quiet_retries
        if quiet and self._failed_polls == 0:
            log.warning("the Ray dashboard stopped answering (%s); keeping the last status and asking again", error)
        else:
            log.log(
                logging.INFO if quiet else logging.WARNING, "status check failed (%s); keeping the last status", error
            )
        self._failed_polls += 1

    def _poll_answered(self) -> None:
        if self._failed_polls:
            log.warning("the Ray dashboard answers again, after %d failed status checks", self._failed_polls)
        self._failed_polls = 0

    def _poll_timeouts(self) -> Timeouts:
        # A poll that hangs must not keep SIGTERM waiting past the pod's 30 s grace period.
        return Timeouts(read=POLL_READ_TIMEOUT)

    def _kill_requested(self) -> bool:
        try:
            return self.kill_switch.kill_requested()
        except RaypodError as error:
            log.warning("could not re-read kill from %s: %s", self.kill_switch.description, error)
            return False

    def _deadline_passed(self, deadline: float) -> bool:
        submitted = parse_time(self.reporter.get(SUBMIT_TIME))
        return submitted is not None and (self.clock.now() - submitted).total_seconds() > deadline

    def _start_deadline_passed(self, deadline: float, attempt: Attempt, job: JobInfo | None) -> bool:
        """Each attempt has the whole start deadline, counted from its own submission."""
        if attempt.number == 1:
            return self._deadline_passed(deadline)
        if attempt.posted_at is not None:
            return self.clock.monotonic() - attempt.posted_at > deadline
        # Re-attached to a retry: Ray's creation time of it is the one record of its submission.
        if job is None or not job.start_time_ms:
            return False
        return self.clock.now().timestamp() - job.start_time_ms / 1000 > deadline

    # -- the end of an attempt, and retries -------------------------------------------------------
    def _ended_or_retried(self, attempt: Attempt, job: JobInfo) -> State | Outcome:
        """The attempt's end: final, unless it failed on its own and retries are left."""
        ended = self._ended(job)
        outcome = ended
        if self._attempts > 1:
            not_retried = ""
            if attempt.number < self._attempts and job.status is RayStatus.FAILED and not self._retriable(job):
                not_retried = f"; {ended.reason} is not retried"
                log.warning("attempt %d failed (%s), which another attempt cannot mend", attempt.number, ended.reason)
            counted = f"{ended.message.rstrip('.')} (attempt {attempt.number} of {self._attempts}{not_retried})."
            outcome = replace(ended, message=counted)
        if not self._retriable(job) or attempt.number >= self._attempts:
            return outcome
        if self.config.set_aside:
            log.warning("attempt %d failed; not retried: the ConfigMap has problems (set aside above)", attempt.number)
            return outcome
        if self.on_attempt_failed is not None:
            self.on_attempt_failed(job, attempt.number)
        delay = self.config.properties.retry_delay_seconds
        message = one_line(
            f"Attempt {attempt.number} of {self._attempts} ({outcome.submission_id}) failed: "
            f"{ended.message.removeprefix('Job failed: ').rstrip('.')}; "
            f"attempt {attempt.number + 1} starts in {delay:g} s.",
        )
        log.info("%s", message)
        self.reporter.update({JOB_STATUS: BridgeStatus.PENDING, MESSAGE: message})
        self.events.record(EventReasons.RETRY_SCHEDULED, message)
        return Retry(attempt, job, outcome.message, self.clock.monotonic() - self._since_end(job, delay))

    @staticmethod
    def _retriable(job: JobInfo) -> bool:
        """Only a job that failed on Ray on its own, for a reason another attempt can mend (the
        table in ``raypod.ray_failures``); not a deadline's stop, a kill or a job Ray stopped."""
        return job.status is RayStatus.FAILED and job.failure.retried

    def _since_end(self, job: JobInfo, delay: float) -> float:
        """How long ago Ray ended the attempt, by its end_time: a pod that re-attaches during the
        delay waits only what is left of it, not the whole delay again."""
        if not job.end_time_ms:
            return 0.0
        return min(max(self.clock.now().timestamp() - job.end_time_ms / 1000, 0.0), delay)

    def _wait_to_retry(self, state: Retry) -> State | Outcome:
        """The delay before the next attempt, cut short by kill, the deadline or SIGTERM."""
        failed_id, following = state.attempt.submission_id, state.attempt.number + 1
        if self._kill_requested():
            return self._killed_before(Submit(Attempt(state.attempt.base_id, following), follows=state))
        deadline = self.config.properties.active_deadline_seconds
        if deadline is not None and self._deadline_passed(deadline):
            message = f"activeDeadlineSeconds ({deadline:g} s) passed before attempt {following}; {state.message}"
            return Outcome.final(failed_id, BridgeStatus.FAILED, message, state.failed, reason=Reason.DEADLINE_EXCEEDED)
        remaining = self.config.properties.retry_delay_seconds - (self.clock.monotonic() - state.since)
        if remaining <= 0:
            # Until its id is persisted, nothing of this attempt is on Ray: an error ends the job with
            # the failed attempt's end, not as "unknown".
            return Submit(Attempt(state.attempt.base_id, following), follows=state)
        self.reporter.flush()
        if self.clock.wait(min(remaining, self.config.update_interval)):
            return Outcome.terminated(failed_id)
        return state

    def _retry_not_submitted(self, state: Retry, attempt: Attempt, error: RaypodError) -> Outcome:
        log.error("attempt %d could not be submitted: %s", attempt.number, error)
        message = (
            f"{state.message.rstrip('.')}; attempt {attempt.number} could not be submitted: {one_line(str(error), 150)}"
        )
        return Outcome.final(
            state.attempt.submission_id, BridgeStatus.FAILED, message, state.failed, reason=state.failed.failure.reason
        )

    def _ended(self, job: JobInfo) -> Outcome:
        status = job.status.bridge
        recorded_reason = self.reporter.get(REASON)
        if job.status is RayStatus.STOPPED and recorded_reason in DEADLINE_REASONS:
            # An earlier pod stopped it for a deadline and left before Ray confirmed the stop.
            message = self.reporter.get(MESSAGE) or "A deadline passed; the job was stopped."
            return Outcome.final(
                job.submission_id or self.reporter.get(ID), BridgeStatus.FAILED, message, job, reason=recorded_reason
            )
        message = self._end_message(job, status)
        # A job Ray failed carries Ray's own reason (its error_type), through the one table.
        reason = job.failure.reason if status is BridgeStatus.FAILED else None
        return Outcome.final(job.submission_id or self.reporter.get(ID), status, message, job, reason=reason)

    @staticmethod
    def _end_message(job: JobInfo, status: BridgeStatus) -> str:
        match status:
            case BridgeStatus.SUCCEEDED:
                return "Job succeeded."
            case BridgeStatus.KILL:
                return "Job was stopped on Ray."
            case BridgeStatus.FAILED:
                # Ray appends "last available logs (truncated ...):" and the log itself; the log goes to S3.
                reason = one_line(job.message.split(", last available logs", 1)[0], 200).rstrip(":.")
                code = job.driver_exit_code
                if code is not None and f"exit code {code}" not in reason:
                    reason = f"{reason} (exit code {code})" if reason else f"exit code {code}"
                return f"Job failed: {reason}." if reason else "Job failed."
            case BridgeStatus.SUBMITTED | BridgeStatus.PENDING | BridgeStatus.RUNNING | BridgeStatus.UNKNOWN:
                raise AssertionError(f"{status} is not the end of a job")
            case _:
                assert_never(status)
