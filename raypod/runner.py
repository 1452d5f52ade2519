"""The thin runner: wires the real clients to a ``JobSession``, collects the results, and turns
the outcome into the final status and the exit code, in one place."""

from __future__ import annotations

import logging
import random
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from raypod import exits
from raypod.artifacts import Collected, collect_results, keep_attempt_log
from raypod.clock import Clock, SystemClock, format_ray_time, format_time
from raypod.config import BridgeConfig
from raypod.contract import END_TIME, ID, JOB_STATUS, MESSAGE, REASON, START_TIME, BridgeStatus, assert_never
from raypod.credentials import DEFAULT_S3_CREDENTIALS_DIR, RayAuthSources, S3Credentials
from raypod.errors import ConfigError, RaypodError, Terminated
from raypod.inputs import LocalInputs
from raypod.log_context import set_log_job_id
from raypod.logs import LineEcho, LiveLog
from raypod.objectstore import ObjectStore
from raypod.outcome import Ending, Outcome, outcome_of_error, outcome_of_unusable_config
from raypod.ray import JobInfo, RayJobsClient
from raypod.s3 import S3Store
from raypod.safetext import one_line
from raypod.session import JobSession, SessionSettings
from raypod.source import JobSource
from raypod.status_store import StatusReporter, StatusSink, status_line
from raypod.submission import RaySubmitter, SubmissionSettings
from raypod.terminal import print_bad_input

log = logging.getLogger(__name__)


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
    s3_credentials_dir: Path = DEFAULT_S3_CREDENTIALS_DIR
    #: Copy the job's output to ``job_out`` while it runs (jobproperties' followLogs wins).
    follow_logs: bool = True
    #: Hears every status Ray answers while the job is watched (the CLI's progress line).
    on_poll: Callable[[JobInfo], None] | None = None


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    outcome: Outcome
    #: The log upload and the result-file check, when the job ended and they were done.
    collected: Collected | None = None
    #: raypod's keys as the run left them (the status written, or kept).
    status: Mapping[str, str] = field(default_factory=dict)


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
    ) -> None:
        self.job = job
        self.options = options
        self.status_out = status_out or sys.stdout
        self.job_out = job_out or self.status_out
        self.clock = SystemClock(terminate)
        # SIGTERM cuts short any wait between retries (the pod has 30 s to go).
        self.retry = options.session.retry.interruptible(self.clock.terminate)
        self.say = timestamped_printer(self.clock, self.status_out)
        self.reporter = StatusReporter(sink, on_change=self._status_changed)

    def _status_changed(self, changes: Mapping[str, str]) -> None:
        if ID in changes:
            set_log_job_id(changes[ID])
        self.say(status_line(changes))

    def run(self) -> RunResult:
        ray: RayJobsClient | None = None
        try:
            try:
                recorded = self.reporter.load()
                try:
                    config = self.job.load(submitted=bool(recorded.get(ID)))
                except ConfigError as error:
                    return self._finish(outcome_of_unusable_config(error, self.reporter.current))
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
            follow = config.properties.follow_logs
            enabled = self.options.follow_logs if follow is None else follow
            # The live tail's end (the job's) wakes the watch: the final poll comes now, not an interval later.
            output = JobOutput(ray, self.job_out, enabled=enabled, on_log_end=self.clock.wake)
            options = self.options
            submitter = RaySubmitter(
                config,
                ray,
                store,
                self.clock,
                SubmissionSettings(options.job_name, options.namespace, options.session.connect_timeout, self.retry),
                local=options.local_inputs,
                identity=self.job.identity,
            )
            session = JobSession(
                config,
                ray,
                submitter,
                self.reporter,
                self.job,
                self.clock,
                self._settings(),
                on_attach=lambda job: self.say(f"attached to existing Ray job {job.submission_id} ({job.status})"),
                on_poll=lambda job: self._polled(job, output.live),
                on_attempt_failed=lambda job, attempt: self._attempt_failed(ray, store, config, output, job, attempt),
            )
            try:
                outcome = session.run()
            finally:
                output.live.stop()
            if (
                outcome.ending is Ending.FINAL
                and outcome.job is not None
                and outcome.status is not BridgeStatus.UNKNOWN
            ):
                # UNKNOWN: the job may still be running, so its log is not complete yet.
                try:
                    collected = collect_results(
                        ray, store, config, outcome.job, options.job_name, output.echo, self.retry
                    )
                except Terminated:
                    # The upload was aborted: the next pod re-attaches, uploads the log and writes the end.
                    return self._finish(Outcome.terminated(outcome.submission_id))
                outcome = replace(outcome, message=f"{outcome.message.rstrip('.')}; {collected.text}")
                return self._finish(outcome, collected)
            return self._finish(outcome)
        finally:
            if ray is not None:
                ray.close()

    def _connect(self, config: BridgeConfig) -> RayJobsClient:
        basic = config.properties.auth == "basic"
        credentials = self.options.ray_auth.read(basic=basic)
        return RayJobsClient.connect(config.resource_url, credentials, basic_auth=basic, retry=self.retry)

    def _store(self, config: BridgeConfig) -> ObjectStore | None:
        if config.s3 is None:
            return None
        return S3Store(config.s3, S3Credentials.from_dir(self.options.s3_credentials_dir), self.retry)

    def _settings(self) -> SessionSettings:
        jitter = self.options.session.first_poll_jitter or random.random
        return replace(self.options.session, retry=self.retry, first_poll_jitter=jitter)

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
        keep_attempt_log(ray, s3, config, job, self.options.job_name, attempt, output.echo, self.retry)
        output.next_attempt()

    def _polled(self, job: JobInfo, live: LiveLog) -> None:
        live.observe(job)
        if self.options.on_poll is not None:
            self.options.on_poll(job)

    # -- the one place an outcome becomes a status and an exit code ---------------------------
    def _finish(self, outcome: Outcome, collected: Collected | None = None) -> RunResult:
        code = finish(outcome, self.reporter, self.clock, self.say)
        return RunResult(code, outcome, collected, dict(self.reporter.current))


class JobOutput:
    """The job's output printed live: each attempt has its own log, so its own echo and follower."""

    def __init__(
        self, ray: RayJobsClient, out: TextIO, *, enabled: bool, on_log_end: Callable[[], None] | None = None
    ) -> None:
        self.ray, self.out, self.enabled, self.on_log_end = ray, out, enabled, on_log_end
        self.echo = LineEcho(out, enabled=enabled)
        self.live = LiveLog(ray, self.echo, on_log_end)

    def next_attempt(self) -> None:
        self.echo = LineEcho(self.out, enabled=self.enabled)
        self.live = LiveLog(self.ray, self.echo, self.on_log_end)


def timestamped_printer(clock: Clock, out: TextIO) -> Callable[[str], None]:
    """Prints a line that starts with the time, as every line raypod prints about the job does."""

    def say(text: str) -> None:
        print(f"{format_time(clock.now())} {text}", file=out, flush=True)

    return say


def report_bad_input(error: ConfigError, sink: StatusSink, status_out: TextIO) -> RunResult:
    """A problem found before the run could start: FAILED where the status goes, and exit 2."""
    clock = SystemClock()
    say = timestamped_printer(clock, status_out)
    reporter = StatusReporter(sink, on_change=lambda changes: say(status_line(changes)))
    outcome = Outcome.bad_input(error)
    return RunResult(finish(outcome, reporter, clock, say), outcome, None, dict(reporter.current))


def finish(outcome: Outcome, reporter: StatusReporter, clock: Clock, say: Callable[[str], None]) -> int:
    """Write what the outcome says, and return the exit code that goes with it."""
    match outcome.ending:
        case Ending.DETACHED:
            return exits.EXIT_OK
        case Ending.ALREADY_FINAL:
            assert outcome.status is not None
            say(f"Ray job {outcome.submission_id} already ended {outcome.status}: the recorded status is kept")
            return exits.for_status(outcome.status)
        case Ending.TERMINATED:
            try:
                reporter.flush()  # best effort: a write that fails stays pending, and the pod is going
            except Terminated:
                log.warning("the last status changes were not written: the pod is going (the next pod writes them)")
            where = "nothing was submitted"
            if outcome.submission_id:
                where = f"Ray job {outcome.submission_id} keeps running; the next pod re-attaches to it by id"
            say(f"terminating: {where}")
            return exits.EXIT_TERMINATED
        case Ending.BAD_INPUT:
            print_bad_input(outcome.problems)
            reporter.update(
                {
                    JOB_STATUS: BridgeStatus.FAILED,
                    MESSAGE: outcome.message,
                    END_TIME: format_time(clock.now()),
                    REASON: outcome.reason,
                }
            )
            return exits.EXIT_BAD_INPUT
        case Ending.FINAL:
            return _write_final(outcome, reporter, clock, say)
        case _:
            assert_never(outcome.ending)


def _write_final(outcome: Outcome, reporter: StatusReporter, clock: Clock, say: Callable[[str], None]) -> int:
    status, job = outcome.status, outcome.job
    assert status is not None
    changes: Mapping[str, str | None] = {
        JOB_STATUS: status,
        START_TIME: format_ray_time(job.start_time_ms) if job is not None else None,
        END_TIME: outcome.end_time or format_time(clock.now()),
        MESSAGE: one_line(outcome.message, 500),
        REASON: outcome.reason or None,
    }
    try:
        reporter.update(changes, must_persist=True)
    except Terminated:
        # SIGTERM while the write was retried: the status stays as it was, and the next pod writes it.
        return finish(Outcome.terminated(outcome.submission_id), reporter, clock, say)
    except RaypodError as error:
        # Every retry is spent (or the write is refused): say so and fail the pod, which the
        # operator then reports as a pod error instead of waiting on a stale status.
        log.error("could not write the final status %s to %s: %s", status, reporter.sink.description, error)
        return exits.EXIT_FAILED
    return exits.for_status(status)
