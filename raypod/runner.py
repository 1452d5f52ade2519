"""The thin runner: wires the real clients to a ``JobSession``, collects the results, and turns
the outcome into the final status and the exit code, in one place."""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TextIO

from raypod import exits
from raypod.artifacts import Collected, collect_results, keep_attempt_log
from raypod.background import CLOSE_WAIT, LAST_FLUSH_WAIT, BackgroundKillSwitch, BackgroundReporter
from raypod.clock import Clock, SystemClock, format_ray_time_not_before, format_time
from raypod.config import BridgeConfig
from raypod.contract import (
    ATTEMPT,
    END_TIME,
    ID,
    JOB_STATUS,
    MESSAGE,
    REASON,
    START_TIME,
    SUBMIT_TIME,
    BridgeStatus,
    assert_never,
)
from raypod.credentials import RayAuthSources, S3CredentialSources
from raypod.entrypoint import submitted_by
from raypod.errors import ConfigError, NeverRead, RayApiError, RaypodError, Terminated, os_error_text, reportable
from raypod.events import CLOSE_WAIT as EVENTS_CLOSE_WAIT
from raypod.events import NULL_EVENTS, EventRecorder, final_reason
from raypod.exits import ExitCodes
from raypod.inputs import LocalInputs
from raypod.interrupt import TerminateEvent
from raypod.jobs import stop_and_wait
from raypod.log_context import set_log_submission
from raypod.logs import LineEcho, LiveLog
from raypod.objectstore import ObjectStore
from raypod.outcome import Ending, Outcome, load_for_run, outcome_of_error, recorded_final
from raypod.pod_identity import PodIdentity
from raypod.ray import JobInfo, RayJobsClient
from raypod.s3 import S3Store
from raypod.safetext import one_line
from raypod.session import JobSession, SessionSettings
from raypod.source import JobSource
from raypod.status_store import StatusReporter, StatusSink, status_line
from raypod.submission import RaySubmitter, SubmissionSettings, parse_attempt, split_recorded
from raypod.terminal import ByteProgress, no_progress, print_bad_input
from raypod.voice import Voice, cli_status_line
from raypod.watch_schedule import OutputActivity

log = logging.getLogger(__name__)

#: The status timeout for people and CI (ten minutes); the operator's pod has none by default.
DEFAULT_STATUS_TIMEOUT = 600.0
#: After SIGTERM, how long the ConfigMap is watched for its deletion: the garbage collector deletes
#: a BridgeJob's pod and ConfigMap at about the same time, in no set order.
DELETION_WINDOW = 5.0
DELETION_POLL = 0.5
#: How long a deleted BridgeJob's Ray job is waited for once asked to stop (the grace period is 30 s).
DELETION_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class RunOptions:
    """Everything ``run`` and ``submit`` choose from their flags: the lifecycle's settings, and
    what only the process around it uses."""

    #: The BridgeJob's name (``<JOBNAME>/logs`` in S3, the id's default prefix) and namespace.
    job_name: str
    namespace: str
    session: SessionSettings = SessionSettings()
    #: ``submit``'s files from this machine (``--working-dir``, ``--wheel``); none in the pod.
    local_inputs: LocalInputs = LocalInputs()
    #: The resource secret and Ray's other token sources: read once the ConfigMap says what it needs
    #: (username and password only for auth 'basic'), so a problem is reported where the status goes.
    ray_auth: RayAuthSources = field(default_factory=RayAuthSources)
    #: Where the S3 keys are read from once the ConfigMap says S3 is used: the pod's mounted secret
    #: (the default), or the command line's sources.
    s3_keys: S3CredentialSources = field(default_factory=S3CredentialSources)
    #: Copy the job's output to ``job_out`` while it runs (jobproperties' followLogs wins).
    follow_logs: bool = True
    #: Hears every status Ray answers while the job is watched (the CLI's progress line).
    on_poll: Callable[[JobInfo], None] | None = None
    #: Which convention the exit code follows (``raypod.exits``).
    exit_codes: ExitCodes = ExitCodes.POSIX
    #: ``--status-timeout``, when given: it wins over ``jobproperties.statusTimeoutSeconds`` and the
    #: convention's default (see ``status_timeout``).
    status_timeout: float | None = None
    #: What a signal leaves on Ray, said to whoever reads it (given the job's id); None: the pod's words.
    left_running: Callable[[str], str] | None = None
    #: The operator's pod's status keys, or a command line's words (``raypod.voice``).
    voice: Voice = Voice.POD
    #: How to run the job again when an earlier run's final status is kept (a command line's hint).
    run_again: str = ""
    #: This pod and the caller's trace context (read from the environment by the command), for the
    #: Ray job's metadata.
    pod: PodIdentity = PodIdentity()
    #: How the package's zipping and upload, and the log's upload to S3, are shown (``submit``'s progress
    #: line; nothing in the pod).
    progress: ByteProgress = no_progress

    def status_timeout_for(self, config: BridgeConfig) -> float | None:
        """How long the dashboard may stay silent before the job is UNKNOWN; None: never.

        The flag, else ``statusTimeoutSeconds``, else: never for the operator's pod (UNKNOWN ends a
        BridgeJob for good, while Ray may still run the job), and ten minutes for people and CI."""
        if self.status_timeout is not None:
            return self.status_timeout
        if config.properties.status_timeout_seconds is not None:
            return config.properties.status_timeout_seconds
        return None if self.exit_codes is ExitCodes.BRIDGE else DEFAULT_STATUS_TIMEOUT


class DeletionProbe(Protocol):
    """Tells a deleted BridgeJob from an eviction, once SIGTERM has come (``KubeConfigMap``)."""

    def being_deleted(self) -> bool | None:
        """True when the ConfigMap is gone or going with its BridgeJob; False when it is there;
        None when the API cannot say now."""
        ...


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    outcome: Outcome
    #: The log upload and the result-file check, when the job ended and they were done.
    collected: Collected | None = None
    #: raypod's keys as the run left them (the status written, or kept).
    status: Mapping[str, str] = field(default_factory=dict)
    #: Why the final status in ``status`` is not where the status goes ("": it is, or none was due).
    not_written: str = ""


class Runner:
    """Runs one job for one ConfigMap: ``run()`` returns the exit code and the outcome."""

    def __init__(
        self,
        job: JobSource,
        sink: StatusSink,
        options: RunOptions,
        *,
        status_out: TextIO | None = None,
        job_out: TextIO | None = None,
        terminate: threading.Event | None = None,
        deletion: DeletionProbe | None = None,
        events: EventRecorder = NULL_EVENTS,
    ) -> None:
        self.job = job
        #: Kubernetes Events on the ConfigMap (raypod.events): best effort, never the outcome.
        self.events = events
        #: Present in a cluster: on SIGTERM, a deleted BridgeJob takes its Ray job down with it.
        self.deletion = deletion
        self.options = options
        self.status_out = status_out or sys.stdout
        self.job_out = job_out or self.status_out
        self.clock = SystemClock(terminate)
        # SIGTERM cuts short any wait between retries (the pod has 30 s to go).
        self.retry = options.session.retry.interruptible(self.clock.terminate)
        self.say = timestamped_printer(self.clock, self.status_out)
        # Its ordinary writes go through a background writer while the session runs (a slow API).
        self.reporter = BackgroundReporter(sink, on_change=self._status_changed)
        #: The session's end, once it returned one: an error after it does not change how the job ended.
        self._ended: Outcome | None = None
        #: What went wrong keeping a retried attempt's log, for the final message.
        self._kept_logs_failed: list[str] = []

    def _status_changed(self, changes: Mapping[str, str]) -> None:
        if ID in changes or ATTEMPT in changes:
            log_attempt_of(self.reporter.current)
        line = status_words(self.options.voice, changes, self.reporter.current)
        if line is not None:
            self.say(line)

    def _attached(self, job: JobInfo) -> None:
        # Which pod submitted it (its metadata, when raypod did): where to look for the earlier log.
        by = submitted_by(job.metadata)
        submitter = f", submitted by {by}" if by else ""
        self.say(f"attached to existing Ray job {job.submission_id} ({job.status}){submitter}")

    def run(self) -> RunResult:
        """The one guarantee of every way out: whatever is raised (a full disk, a file-size limit, a
        broken stream, a bug), the run ends here with a final status written where it can be, and a
        result the caller turns into the termination message and the ``--result`` file."""
        try:
            return self._run()
        except Terminated:
            return self._finish(Outcome.terminated(self.reporter.get(ID)))
        except Exception as error:  # noqa: BLE001 - the one place every unexpected error ends in a status
            return self._finish(outcome_of_unexpected(reportable(error), self._ended, self.reporter.current))
        finally:
            # A late background write is waited for (and repaired), unless the pod is going.
            self.reporter.close(0.0 if self.clock.terminated else CLOSE_WAIT)
            self.events.close(0.0 if self.clock.terminated else EVENTS_CLOSE_WAIT)

    def _run(self) -> RunResult:
        ray: RayJobsClient | None = None
        try:
            try:
                if self.clock.terminated:
                    # SIGTERM before the start-up read, with no call in flight to cut: a read started
                    # now (a hung API) would hold the pod past its grace period.
                    raise Terminated("terminated before the ConfigMap was read")
                recorded = self.reporter.load()
                log_attempt_of(recorded)  # a re-attaching pod's lines name the job before any change
                loaded = load_for_run(self.job, recorded)
                if isinstance(loaded, Outcome):
                    return self._finish(loaded)
                config = loaded
                for key, problem in config.set_aside:
                    submitted = config.submission_id or recorded.get(ID)
                    log.warning("%s: %s (set aside: Ray job %s was submitted already)", key, problem, submitted)
                ray = self._connect(config)
                store = self._store(config)
            except RaypodError as error:
                return self._finish(outcome_of_error(error))
            except Terminated:
                # SIGTERM while the ConfigMap was still being read: nothing was submitted by this pod.
                return self._finish(Outcome.terminated(self.reporter.get(ID)))
            for note in config.notes:
                log.warning("%s", note)
            follow = config.properties.follow_logs
            enabled = self.options.follow_logs if follow is None else follow
            # The live log tells the watch when the output goes quiet (early polls then) and when the
            # tail ends (the job's end): the final poll comes soon after, not an interval later.
            activity = OutputActivity(self.clock.monotonic) if enabled else None
            output = JobOutput(
                ray,
                self.job_out,
                enabled=enabled,
                activity=activity,
                wake=self.clock.wake,
                monotonic=self.clock.monotonic,
            )
            options = self.options
            submitter = RaySubmitter(
                config,
                ray,
                store,
                self.clock,
                SubmissionSettings(
                    options.job_name,
                    options.namespace,
                    options.session.connect_timeout,
                    self.retry,
                    options.pod,
                    options.session.address_origin,
                    options.progress,
                ),
                local=options.local_inputs,
                identity=self.job.identity,
            )
            # A slow API must not stall the watch: kill is re-read, and the status written, aside.
            kill_switch = BackgroundKillSwitch(self.job)
            session = JobSession(
                config,
                ray,
                submitter,
                self.reporter,
                kill_switch,
                self.clock,
                self._settings(config),
                on_attach=self._attached,
                on_poll=lambda job: self._polled(job, output.live),
                on_attempt_failed=lambda job, attempt: self._attempt_failed(ray, store, config, output, job, attempt),
                events=self.events,
                activity=activity,
            )
            self.reporter.start()
            try:
                outcome = session.run()
            finally:
                output.live.stop()
                kill_switch.close()
                self.reporter.stop(hurry=self.clock.terminated)
            self._ended = outcome
            if (
                outcome.ending is Ending.FINAL
                and outcome.job is not None
                and outcome.status is not BridgeStatus.UNKNOWN
            ):
                # UNKNOWN: the job may still be running, so its log is not complete yet.
                try:
                    collected = collect_results(
                        ray, store, config, outcome.job, options.job_name, output.echo, self.retry, options.progress
                    )
                except Terminated:
                    # The upload was aborted: the next pod re-attaches, uploads the log and writes the end.
                    outcome = Outcome.terminated(outcome.submission_id)
                else:
                    message = self._with_collected(outcome.message, collected)
                    outcome = replace(outcome, message=self._final_message(message, config))
                    return self._finish(outcome, collected)
            if outcome.ending is Ending.TERMINATED:
                outcome = self._stopped_if_deleted(ray, outcome)
            elif outcome.ending is Ending.FINAL:
                outcome = replace(outcome, message=self._final_message(outcome.message, config))
            return self._finish(outcome)
        finally:
            if ray is not None:
                ray.close()

    def _with_collected(self, message: str, collected: Collected) -> str:
        """The job's end, then what became of its log: a command line says nothing of an upload the
        user never asked for (no S3 at all), but with -v."""
        if self.options.voice is Voice.CLI and not collected.asked:
            log.debug("%s", collected.text)
            return message
        return f"{message.rstrip('.')}; {collected.text}"

    def _final_message(self, message: str, config: BridgeConfig) -> str:
        """The job's end, every retried attempt's log that could not be kept, then the notes."""
        for problem in self._kept_logs_failed:
            message = f"{message.rstrip('.')}; {problem}"
        return with_notes(message, config)

    def _stopped_if_deleted(self, ray: RayJobsClient, outcome: Outcome) -> Outcome:
        """SIGTERM came. If the BridgeJob is being deleted (its ConfigMap goes with it, within a few
        seconds of the pod), stop its Ray job, as deleting a KubeRay RayJob does; after an eviction
        the ConfigMap stays, the Ray job runs on, and the next pod re-attaches to it."""
        if self.deletion is None:
            return outcome
        # A clock of its own: SIGTERM is set, and the run's clock would not wait at all.
        clock = SystemClock()
        deadline = clock.monotonic() + DELETION_WINDOW
        while not self.deletion.being_deleted():
            if clock.monotonic() >= deadline:
                return outcome
            clock.wait(DELETION_POLL)
        submission_id = outcome.submission_id or self.reporter.get(ID)
        if not submission_id:
            return Outcome.deleted("", "The BridgeJob was deleted before anything was submitted.")
        log.warning("the BridgeJob is being deleted (its ConfigMap is gone): stopping Ray job %s", submission_id)
        try:
            _, job = stop_and_wait(ray, submission_id, clock=clock, timeout=DELETION_STOP_TIMEOUT)
        except RayApiError as error:
            if error.job_unknown:
                return Outcome.deleted(submission_id, f"The BridgeJob was deleted; Ray has no job {submission_id}.")
            return Outcome.deleted(
                submission_id, one_line(f"The BridgeJob was deleted; Ray job {submission_id} was not stopped: {error}")
            )
        except Terminated:
            job = None
        if job is not None and job.terminal:
            return Outcome.deleted(
                submission_id, f"The BridgeJob was deleted; Ray job {submission_id} is {job.status}."
            )
        still = job.status if job is not None else "in an unknown state"
        return Outcome.deleted(
            submission_id,
            f"The BridgeJob was deleted; Ray job {submission_id} was asked to stop and is still {still}.",
        )

    def _connect(self, config: BridgeConfig) -> RayJobsClient:
        basic = config.properties.auth == "basic"
        credentials = self.options.ray_auth.read(basic=basic)
        return RayJobsClient.connect(config.resource_url, credentials, basic_auth=basic, retry=self.retry)

    def _store(self, config: BridgeConfig) -> ObjectStore | None:
        if config.s3 is None:
            return None
        return S3Store(config.s3, self.options.s3_keys.read(), self.retry)

    def _settings(self, config: BridgeConfig) -> SessionSettings:
        jitter = self.options.session.first_poll_jitter or random.random
        return replace(
            self.options.session,
            retry=self.retry,
            first_poll_jitter=jitter,
            status_timeout=self.options.status_timeout_for(config),
            lost_is_final=exits.lost_is_final(self.options.exit_codes),
        )

    def _attempt_failed(
        self,
        ray: RayJobsClient,
        s3: ObjectStore | None,
        config: BridgeConfig,
        output: JobOutput,
        job: JobInfo,
        attempt: int,
    ) -> None:
        """Keep the log of an attempt that is retried, and start the next one's output afresh."""
        output.live.stop()
        problem = keep_attempt_log(
            ray, s3, config, job, self.options.job_name, attempt, output.echo, self.retry, self.options.progress
        )
        if problem is not None:
            self._kept_logs_failed.append(problem)
        output.next_attempt()

    def _polled(self, job: JobInfo, live: LiveLog) -> None:
        live.observe(job)
        if self.options.on_poll is not None:
            self.options.on_poll(job)

    # -- the one place an outcome becomes a status and an exit code ---------------------------
    def _finish(self, outcome: Outcome, collected: Collected | None = None) -> RunResult:
        codes, options = self.options.exit_codes, self.options
        terminate = self.clock.terminate
        interrupted = isinstance(terminate, TerminateEvent) and terminate.interrupted
        try:
            code = finish(
                outcome,
                self.reporter,
                self.clock,
                self.say,
                codes,
                left_running=options.left_running,
                voice=options.voice,
                interrupted=interrupted,
                run_again=options.run_again,
            )
        except Exception as error:  # noqa: BLE001 - the last resort: the caller still writes the result
            log.error("the end of the run could not be recorded: %s", reportable(error))
            code = exits.for_unrecorded(codes)
        if outcome.ending in (Ending.FINAL, Ending.BAD_INPUT) and self.clock.terminated and self.reporter.has_pending:
            # SIGTERM cut the final write: the pod leaves as terminated (the next pod writes the end),
            # and its record must not claim a final status the ConfigMap does not hold.
            outcome = Outcome.terminated(outcome.submission_id)
        self._record_final_event(outcome)
        return RunResult(code, outcome, collected, dict(self.reporter.current), self.reporter.not_written)

    def _record_final_event(self, outcome: Outcome) -> None:
        """The Event of the final status, once it is written (it says what the ConfigMap says)."""
        if outcome.ending not in (Ending.FINAL, Ending.BAD_INPUT) or outcome.status is None:
            return
        if self.reporter.has_pending or self.reporter.not_written:
            return
        self.events.record(final_reason(outcome.status, outcome.reason), self.reporter.get(MESSAGE) or outcome.message)


class JobOutput:
    """The job's output printed live: each attempt has its own log, so its own echo and follower.

    The followers tell ``activity`` of the output and of the tail's end, and ``wake`` the watch then."""

    def __init__(
        self,
        ray: RayJobsClient,
        out: TextIO,
        *,
        enabled: bool,
        activity: OutputActivity | None = None,
        wake: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray, self.out, self.enabled, self.activity, self.wake = ray, out, enabled, activity, wake
        self.monotonic = monotonic
        self.echo = LineEcho(out, enabled=enabled)
        self.live = self._live()

    def next_attempt(self) -> None:
        self.echo = LineEcho(self.out, enabled=self.enabled)
        self.live = self._live()

    def _live(self) -> LiveLog:
        activity = self.activity
        return LiveLog(
            self.ray,
            self.echo,
            on_end=self._poll_now,
            # The watch polls at once when the driver starts (no poll said RUNNING yet): its answer writes it.
            on_driver_start=self._poll_now if activity is not None and self.wake is not None else None,
            on_output=self._heard_output if activity is not None else None,
            monotonic=self.monotonic,
        )

    def _heard_output(self, piece: bytes) -> None:
        # A drop (the job wrote less in the last second than before) may make a poll due in
        # DROP_WAIT: the watch looks at its plan again now, not at its next replan.
        if self.activity is not None and self.activity.output(piece) and self.wake is not None:
            self.wake()

    def _poll_now(self) -> None:
        if self.activity is not None:
            self.activity.poll_now()
        if self.wake is not None:
            self.wake()


def log_attempt_of(status: Mapping[str, str]) -> None:
    """The JSON lines name the attempt ``status`` records (``id``, ``status.attempt``)."""
    submission_id = status.get(ID, "")
    # An earlier pod's record is data: anything but an attempt number counts as 1, and so does a
    # number the id does not carry (an id set apart from its attempt), as the session reads them.
    recorded = parse_attempt(status.get(ATTEMPT, "")) or 1
    set_log_submission(submission_id, split_recorded(submission_id, recorded)[1])


def timestamped_printer(clock: Clock, out: TextIO) -> Callable[[str], None]:
    """Prints a line that starts with the time, as every line raypod prints about the job does."""

    unprinted: list[str] = []

    def say(text: str) -> None:
        try:
            print(f"{format_time(clock.now())} {text}", file=out, flush=True)
        except OSError as error:
            # A closed or full output (a pipe whose reader left) must never stop a status write.
            log.log(
                logging.DEBUG if unprinted else logging.WARNING,
                "could not print a status line: %s",
                os_error_text(error),
            )
            unprinted.append(text)

    return say


def status_words(voice: Voice, changes: Mapping[str, str], current: Mapping[str, str]) -> str | None:
    """The line a status change prints, in the run's voice (None: nothing to say)."""
    match voice:
        case Voice.POD:
            return status_line(changes)
        case Voice.CLI:
            return cli_status_line(changes, current)
        case _:
            assert_never(voice)


def report_bad_input(error: ConfigError, sink: StatusSink, status_out: TextIO, voice: Voice = Voice.POD) -> RunResult:
    """A problem found before the run could start: FAILED where the status goes, and exit 2."""
    clock = SystemClock()
    say = timestamped_printer(clock, status_out)

    def changed(changes: Mapping[str, str]) -> None:
        line = status_words(voice, changes, reporter.current)
        if line is not None:
            say(line)

    reporter = StatusReporter(sink, on_change=changed)
    outcome = Outcome.bad_input(error)
    code = finish(outcome, reporter, clock, say, voice=voice)
    return RunResult(code, outcome, None, dict(reporter.current), reporter.not_written)


def outcome_of_unexpected(error: RaypodError, ended: Outcome | None, recorded: Mapping[str, str]) -> Outcome:
    """How an error no part handled ends the run, from what is known: the session's end (``ended``),
    else a final status an earlier pod recorded (never downgraded), else whether Ray may have the
    job: an id is saved before every POST, so without one in ``recorded`` nothing was submitted."""
    if ended is not None:
        log.error("after the job's end: %s", error)
        if ended.ending is not Ending.FINAL:
            return ended
        return replace(ended, message=f"{ended.message.rstrip('.')}; then {one_line(str(error), 200)}.")
    final = recorded_final(recorded)
    if final is not None:
        log.error("%s", error)
        return final
    submission_id = recorded.get(ID, "")
    return outcome_of_error(error, submission_id, submitted=bool(submission_id))


def with_notes(message: str, config: BridgeConfig) -> str:
    """The final message, with what was taken otherwise than written (where the BridgeJob shows it)."""
    if not config.notes:
        return message
    return f"{message.rstrip('.')} ({'; '.join(config.notes)})."


def finish(
    outcome: Outcome,
    reporter: StatusReporter,
    clock: Clock,
    say: Callable[[str], None],
    codes: ExitCodes = ExitCodes.POSIX,
    *,
    left_running: Callable[[str], str] | None = None,
    voice: Voice = Voice.POD,
    interrupted: bool = False,
    run_again: str = "",
) -> int:
    """Write what the outcome says, and return the exit code that goes with it. ``interrupted``:
    Ctrl-C, not SIGTERM, cut the run short; ``run_again``: how to run a job whose end is kept."""
    match outcome.ending:
        case Ending.DETACHED:
            return exits.EXIT_OK
        case Ending.ALREADY_FINAL:
            assert outcome.status is not None
            hint = f"; {run_again}" if run_again else ""
            say(f"Ray job {outcome.submission_id} already ended {outcome.status}: the recorded status is kept{hint}")
            return exits.for_status(outcome.status, codes)
        case Ending.TERMINATED:
            if not _flushed_briefly(reporter, LAST_FLUSH_WAIT):
                log.warning("the last status changes were not written: the pod is going (the next pod writes them)")
            where = "nothing was submitted"
            if outcome.submission_id and left_running is not None:
                where = left_running(outcome.submission_id)
            elif outcome.submission_id:
                where = f"Ray job {outcome.submission_id} keeps running; the next pod re-attaches to it by id"
            cut = "terminating" if voice is Voice.POD else ("interrupted" if interrupted else "terminated")
            say(f"{cut}: {where}")
            return exits.for_termination(codes, interrupted=interrupted)
        case Ending.DELETED:
            say(outcome.message)
            return exits.for_termination(codes)
        case Ending.BAD_INPUT:
            print_bad_input(outcome.problems)
            # A final status like any other: written through an outage, or the pod fails plainly.
            try:
                reporter.update(
                    {
                        JOB_STATUS: BridgeStatus.FAILED,
                        MESSAGE: outcome.message,
                        END_TIME: format_time(clock.now()),
                        REASON: outcome.reason,
                    },
                    must_persist=True,
                )
            except Terminated:
                log.warning("the bad-input status was not written: the pod is going")
            except NeverRead as error:
                # The ConfigMap itself could not be read (missing, forbidden): that is the bad input.
                _final_not_written(BridgeStatus.FAILED, reporter, error)
            except Exception as error:  # noqa: BLE001 - as for any final status that cannot be written
                _final_not_written(BridgeStatus.FAILED, reporter, error)
                return exits.for_unrecorded(codes)
            return exits.EXIT_BAD_INPUT
        case Ending.FINAL:
            return _write_final(outcome, reporter, clock, say, codes, left_running, voice, interrupted)
        case _:
            assert_never(outcome.ending)


def _flushed_briefly(reporter: StatusReporter, seconds: float) -> bool:
    """The pending status, written on a best-effort basis after SIGTERM: a hung API must not keep the
    pod past its grace period, so the write is waited for only ``seconds`` (it dies with the pod)."""
    written = threading.Event()

    def flush() -> None:
        try:
            reporter.flush()
            written.set()
        except (RaypodError, Terminated):
            pass

    threading.Thread(target=flush, name="raypod-last-status", daemon=True).start()
    return written.wait(seconds) and not reporter.has_pending


def _write_final(
    outcome: Outcome,
    reporter: StatusReporter,
    clock: Clock,
    say: Callable[[str], None],
    codes: ExitCodes,
    left_running: Callable[[str], str] | None,
    voice: Voice,
    interrupted: bool,
) -> int:
    status, job = outcome.status, outcome.job
    assert status is not None
    changes: Mapping[str, str | None] = {
        JOB_STATUS: status,
        START_TIME: format_ray_time_not_before(job.start_time_ms, reporter.get(SUBMIT_TIME)) if job else None,
        END_TIME: outcome.end_time or format_time(clock.now()),
        MESSAGE: one_line(outcome.message, 500),
        REASON: outcome.reason or None,
    }
    try:
        reporter.update(changes, must_persist=True)
    except Terminated:
        # SIGTERM while the write was retried: the status stays as it was, and the next pod writes it.
        return finish(
            Outcome.terminated(outcome.submission_id),
            reporter,
            clock,
            say,
            codes,
            left_running=left_running,
            voice=voice,
            interrupted=interrupted,
        )
    except Exception as error:  # noqa: BLE001 - any failed final write fails the pod the same way
        _final_not_written(status, reporter, error)
        return exits.for_unrecorded(codes)
    return exits.for_status(status, codes)


def _final_not_written(status: BridgeStatus, reporter: StatusReporter, error: Exception) -> None:
    """Every retry is spent, the write is refused, or the disk is full: say so (the pod then fails,
    and the operator reports a pod error instead of waiting on a stale status)."""
    problem = reportable(error)
    log.error("could not write the final status %s to %s: %s", status, reporter.sink.description, problem)
