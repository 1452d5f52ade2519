"""One Bridge job from start to end: submit exactly once, watch, stop on kill, upload the log."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from raypod import status as st
from raypod.config import KILL, RESOURCE_URL, BridgeConfig, parse_bool, parse_config, value_of
from raypod.credentials import RayCredentials, S3Credentials
from raypod.entrypoint import (
    build_entrypoint,
    build_runtime_env,
    build_submission,
    job_metadata,
    kwargs_tokens,
    new_submission_id,
)
from raypod.errors import ConfigError, RayApiError, RaypodError, Terminated
from raypod.http import Timeouts
from raypod.inputs import JobInputs, fetch_inputs
from raypod.logs import LineEcho, LogFollower, echo_rest, upload_log
from raypod.package import JOB_FOLDER, build_package
from raypod.ray import JobInfo, RayJobsClient, is_duplicate_submission, is_wrapped_rejection
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.s3 import S3Store
from raypod.source import ConfigSource

log = logging.getLogger(__name__)

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: 128 + SIGTERM: the pod was asked to go; the Ray job keeps running.
EXIT_TERMINATED = 143

#: Statuses that say Ray accepted the job; a 404 for such an id means Ray lost it.
_CONFIRMED = (st.SUBMITTED, st.PENDING, st.RUNNING, st.SUCCEEDED, st.FAILED, st.KILL)
MAX_MESSAGE = 300
#: Read timeout of one status poll: short enough that SIGTERM is honoured well within 30 s.
POLL_READ_TIMEOUT = 10.0


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line, bounded: status.message is one human sentence."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


@dataclass
class RunOptions:
    job_name: str
    namespace: str
    s3_credentials_dir: Path
    ray_credentials: RayCredentials = field(default_factory=RayCredentials)
    follow_logs: bool = True
    #: How long the dashboard may stay silent about a running job before UNKNOWN.
    status_timeout: float = 600.0
    #: How long an unreachable dashboard is retried before the submission is given up.
    connect_timeout: float = 60.0
    #: How long to wait for Ray to confirm a stop.
    stop_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str
    end_time: str | None = None


class JobRunner:
    """Runs one job for one ConfigMap. ``run()`` returns the process exit code."""

    def __init__(
        self,
        source: ConfigSource,
        sink: st.StatusSink,
        options: RunOptions,
        *,
        out: TextIO,
        terminate: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.options = options
        self.out = out
        self.terminate = terminate or threading.Event()
        # SIGTERM cuts short any wait between retries (the pod has 30 s to go).
        options.retry = options.retry.interruptible(self.terminate)
        self.reporter = st.StatusReporter(sink, out)
        self.ray: RayJobsClient | None = None
        self.s3: S3Store | None = None
        self.echo = LineEcho(out, enabled=options.follow_logs)
        self._submitted = False
        #: The CLI's `submit` without --wait: return once Ray has the job, without watching it.
        self.submit_only = False
        #: Called with every status Ray answers while watching (the CLI's progress line).
        self.on_poll: Callable[[JobInfo], None] | None = None

    # -- entry point ---------------------------------------------------------------
    def run(self) -> int:
        try:
            config, persisted = self._load()
            return self._run(config, persisted)
        except ConfigError as error:
            return self._bad_input(error)
        except SubmissionRejected as error:
            log.error("%s", error)
            return self._finish(Outcome(st.FAILED, one_line(str(error), 400)), None)
        except Terminated:
            return self._leave(self.reporter.get(st.ID))
        except RaypodError as error:
            log.error("%s", error)
            if not self._submitted:
                return self._finish(Outcome(st.FAILED, one_line(f"Not submitted: {error}", 400)), None)
            # The job may be running on Ray: say that its state is unknown rather than leave a stale
            # status (the operator calls a pod that fails without a final status a pod error).
            job_id = self.reporter.get(st.ID)
            try:
                message = one_line(f"Lost track of Ray job {job_id}: {error}", 400)
                return self._finish(Outcome(st.UNKNOWN, message), None)
            except RaypodError as write_error:
                log.error("could not write the final status: %s", write_error)
                return EXIT_FAILED
        finally:
            if self.ray is not None:
                self.ray.close()

    def _load(self) -> tuple[BridgeConfig, dict[str, str]]:
        persisted = {k: v for k, v in self.sink.load().items() if k in st.OWNED_KEYS and v}
        self.reporter.current.update(persisted)
        return parse_config(self.source.read()), persisted

    def _bad_input(self, error: ConfigError) -> int:
        for line in error.lines:
            log.error("bad input: %s", line)
        self.reporter.update(
            {st.JOB_STATUS: st.FAILED, st.MESSAGE: one_line("Bad input: " + error.lines[0]), st.END_TIME: st.now_text()}
        )
        return EXIT_BAD_INPUT

    def _run(self, config: BridgeConfig, persisted: Mapping[str, str]) -> int:
        options = self.options
        self.ray = RayJobsClient.connect(
            config.resource_url,
            options.ray_credentials,
            basic_auth=config.properties.auth == "basic",
            retry=options.retry,
        )
        if config.s3 is not None:
            self.s3 = S3Store(config.s3, S3Credentials.from_dir(options.s3_credentials_dir), options.retry)
        if config.properties.follow_logs is not None:
            self.echo.enabled = config.properties.follow_logs

        submission_id = config.submission_id or persisted.get(st.ID)
        attached = self._attach(submission_id, persisted) if submission_id else None
        if isinstance(attached, Outcome):
            return self._finish(attached, None)
        if attached is None:
            if config.kill:
                return self._finish(Outcome(st.KILL, "Not submitted: kill was set before the job started."), None)
            submission_id = self._submit(config, submission_id)
        assert submission_id is not None
        self._submitted = True
        if self.submit_only:
            return EXIT_SUCCEEDED
        outcome, job = self._watch(config, submission_id)
        if outcome is None:
            return EXIT_TERMINATED
        return self._finish(outcome, job, config)

    # -- attach / submit -------------------------------------------------------------
    def _attach(self, submission_id: str, persisted: Mapping[str, str]) -> JobInfo | Outcome | None:
        """The job Ray knows for this id; None if it was never accepted (submit it with this id)."""
        assert self.ray is not None
        self.reporter.update({st.ID: submission_id})
        try:
            job = self.ray.get_job(submission_id, retry=self._connect_policy())
        except RayApiError as error:
            confirmed = persisted.get(st.JOB_STATUS) in _CONFIRMED
            if error.transient and confirmed:
                # Ray had this job: the watch loop rides out the outage, up to --status-timeout.
                log.warning("cannot reach Ray to re-attach to %s yet (%s); watching it", submission_id, error)
                return JobInfo(submission_id, "UNKNOWN")
            if error.transient:
                # Its POST may have reached Ray: FAILED could be a lie about a running job.
                return Outcome(
                    st.UNKNOWN,
                    one_line(f"Cannot tell whether Ray has job {submission_id}: {error}", 400),
                )
            if not error.not_found:
                raise self._unreachable(error) from error
            if confirmed:
                return Outcome(st.UNKNOWN, f"Ray no longer knows job {submission_id} (was the head restarted?)")
            log.info("job %s was never accepted by Ray; submitting it with that id", submission_id)
            return None
        log.info("re-attached to Ray job %s (%s)", submission_id, job.status)
        print(f"{st.now_text()} attached to existing Ray job {submission_id} ({job.status})", file=self.out, flush=True)
        return job

    def _connect_policy(self) -> RetryPolicy:
        return self.options.retry.with_deadline(self.options.connect_timeout)

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

    def _leave(self, submission_id: str) -> int:
        """SIGTERM: write what is pending and go; the Ray job is not touched."""
        try:
            self.reporter.flush()
        except RaypodError as error:
            log.error("could not write the last status: %s", error)
        where = "nothing was submitted"
        if submission_id:
            where = f"Ray job {submission_id} keeps running; the next pod re-attaches to it by id"
        print(f"{st.now_text()} terminating: {where}", file=self.out, flush=True)
        return EXIT_TERMINATED

    def _submit(self, config: BridgeConfig, submission_id: str | None) -> str:
        assert self.ray is not None
        options = self.options
        with tempfile.TemporaryDirectory(prefix="raypod-") as temp:
            workdir = Path(temp)
            inputs = fetch_inputs(config, self.s3, workdir)
            package = build_package(inputs.files, workdir) if inputs.files else None
            submission_id = submission_id or new_submission_id(options.job_name, config.properties.submission_id_prefix)
            payload = plan_submission(
                config, inputs, options.job_name, options.namespace, package.uri if package else None, submission_id
            )
            try:
                version = self.ray.version(retry=self._connect_policy())
            except RayApiError as error:
                raise self._unreachable(error) from error
            log.info("Ray dashboard %s answers (Ray %s)", config.resource_url, version.get("ray_version", "?"))
            if package is not None and not self.ray.package_exists(package.name):
                log.info("uploading working-dir package %s", package.name)
                self.ray.upload_package(package.name, package.path)
        # The id is persisted before the POST, so a lost answer or a new pod never submits twice.
        self.reporter.update({st.ID: submission_id}, must_persist=True)
        self._submitted = True
        try:
            self._post_once(payload, submission_id)
        except RayApiError as error:
            if error.transient:
                raise  # Ray may have the job: run() reports UNKNOWN, not a rejection
            raise SubmissionRejected(error) from error
        self.reporter.update(
            {
                st.JOB_STATUS: st.SUBMITTED,
                st.SUBMIT_TIME: st.now_text(),
                st.MESSAGE: f"Submitted to {config.resource_url} as {submission_id}.",
            }
        )
        return submission_id

    def _post_once(self, payload: Mapping[str, Any], submission_id: str) -> None:
        assert self.ray is not None
        ray = self.ray

        def attempt() -> None:
            try:
                ray.submit_job(payload, retry=NO_RETRY)
            except RayApiError as error:
                if is_duplicate_submission(error):
                    log.info("Ray already has %s: the earlier POST went through", submission_id)
                    return
                if is_wrapped_rejection(error):
                    raise SubmissionRejected(error) from error
                if not error.transient:
                    raise
                # The answer may be lost after Ray accepted the job: ask before posting again.
                try:
                    ray.get_job(submission_id, retry=NO_RETRY)
                except RayApiError as lookup_error:
                    if lookup_error.not_found:
                        raise error from lookup_error
                    raise error from None
                log.info("Ray accepted %s although its answer was lost", submission_id)

        self._connect_policy().call(attempt, what=f"submission of {submission_id}")

    # -- watch -----------------------------------------------------------------------------
    def _watch(self, config: BridgeConfig, submission_id: str) -> tuple[Outcome | None, JobInfo | None]:
        assert self.ray is not None
        ray = self.ray
        follower: LogFollower | None = None
        poll_policy = RetryPolicy(
            attempts=3, initial_wait=0.5, max_wait=2.0, deadline=min(10.0, config.update_interval)
        ).interruptible(self.terminate)
        # A poll that hangs must not keep SIGTERM waiting past the pod's 30 s grace period.
        poll_timeouts = Timeouts(ray.http.timeouts.connect, POLL_READ_TIMEOUT)
        last_answer = time.monotonic()
        job: JobInfo | None = None
        try:
            while True:
                if self._kill_requested(config):
                    return self._stop(submission_id, st.KILL, "Stopped at the operator's request (kill=true)."), job
                try:
                    job = ray.get_job(submission_id, retry=poll_policy, timeouts=poll_timeouts)
                    last_answer = time.monotonic()
                    if self.on_poll is not None:
                        self.on_poll(job)
                except RayApiError as error:
                    if error.not_found:
                        return Outcome(
                            st.UNKNOWN, f"Ray no longer knows job {submission_id} (was the head restarted?)"
                        ), None
                    silent = time.monotonic() - last_answer
                    if silent > self.options.status_timeout:
                        return Outcome(
                            st.UNKNOWN,
                            f"No answer from the Ray dashboard for {int(silent)} s: {one_line(error.reason, 150)}",
                        ), job
                    log.warning("status check failed (%s); keeping the last status", error)
                else:
                    if job.terminal:
                        return self._outcome_of(job), job
                    if follower is None and self.echo.enabled and job.status == "RUNNING" and job.driver_node_id:
                        # Only a running driver has a log file to follow.
                        follower = LogFollower(ray, submission_id, job.driver_node_id, self.echo)
                        follower.start()
                    self.reporter.update(
                        {
                            st.JOB_STATUS: st.bridge_status(job.status),
                            st.START_TIME: st.format_ray_time(job.start_time_ms),
                            st.MESSAGE: one_line(job.message) or None,
                        }
                    )
                if self._deadline_passed(config):
                    seconds = config.properties.active_deadline_seconds
                    return self._stop(
                        submission_id, st.FAILED, f"activeDeadlineSeconds ({seconds:g} s) passed; the job was stopped."
                    ), job
                self.reporter.flush()
                if self.terminate.wait(config.update_interval):
                    self.reporter.flush()
                    print(
                        f"{st.now_text()} terminating: Ray job {submission_id} keeps running; "
                        "the next pod re-attaches to it by id",
                        file=self.out,
                        flush=True,
                    )
                    return None, job
        finally:
            if follower is not None:
                follower.stop()

    def _kill_requested(self, config: BridgeConfig) -> bool:
        try:
            text = value_of(self.source.read(), KILL)
            return parse_bool(text, KILL, False)
        except RaypodError as error:
            log.warning("could not re-read kill from %s: %s", self.source.description, error)
            return False

    def _deadline_passed(self, config: BridgeConfig) -> bool:
        deadline = config.properties.active_deadline_seconds
        submitted = st.parse_time(self.reporter.get(st.SUBMIT_TIME))
        if deadline is None or submitted is None:
            return False
        return time.time() - submitted.timestamp() > deadline

    def _stop(self, submission_id: str, final: str, message: str) -> Outcome:
        assert self.ray is not None
        log.info("stopping Ray job %s: %s", submission_id, message)
        try:
            self.ray.stop_job(submission_id)
        except RayApiError as error:
            return Outcome(final, f"{message[:-1]}, but the stop call failed: {one_line(error.reason, 150)}")
        limit = time.monotonic() + self.options.stop_timeout
        while time.monotonic() < limit:
            try:
                job = self.ray.get_job(submission_id)
            except RayApiError:
                job = None
            if job is not None and job.terminal:
                return Outcome(final, message, st.format_ray_time(job.end_time_ms))
            if self.terminate.wait(1.0):
                break
        return Outcome(final, message)

    def _outcome_of(self, job: JobInfo) -> Outcome:
        status = st.bridge_status(job.status)
        if status == st.SUCCEEDED:
            message = "Job succeeded."
        elif status == st.KILL:
            message = "Job was stopped on Ray."
        else:
            # Ray appends "last available logs (truncated ...):" and the log itself; the log goes to S3.
            reason = one_line(job.message.split(", last available logs", 1)[0], 200).rstrip(":.")
            message = f"Job failed: {reason}." if reason else "Job failed."
        return Outcome(status, message, st.format_ray_time(job.end_time_ms))

    # -- finish ----------------------------------------------------------------------------
    def _finish(self, outcome: Outcome, job: JobInfo | None, config: BridgeConfig | None = None) -> int:
        message = outcome.message
        # UNKNOWN: the job may still be running, so its log is not complete yet.
        if job is not None and config is not None and outcome.status != st.UNKNOWN:
            message = f"{message.rstrip('.')}; {self._upload_results(config, job)}"
        try:
            self.reporter.update(
                {
                    st.JOB_STATUS: outcome.status,
                    st.START_TIME: st.format_ray_time(job.start_time_ms) if job else None,
                    st.END_TIME: outcome.end_time or st.now_text(),
                    st.MESSAGE: one_line(message, 500),
                },
                must_persist=True,
            )
        except RaypodError as error:
            # Every retry is spent (or the write is refused): say so and fail the pod, which the
            # operator then reports as a pod error instead of waiting on a stale status.
            log.error("could not write the final status %s to %s: %s", outcome.status, self.sink.description, error)
            return EXIT_FAILED
        return st.exit_code(outcome.status)

    def _upload_results(self, config: BridgeConfig, job: JobInfo) -> str:
        """Upload the log and check the expected result files; say how it went, in words."""
        assert self.ray is not None
        if self.s3 is None or not config.upload_bucket:
            if self.echo.enabled:
                # A short job can end before the live stream starts: show what was not shown.
                try:
                    echo_rest(self.ray, job, self.echo)
                except RaypodError as error:
                    log.warning("could not print the rest of the job's output: %s", error)
            return "the log was not uploaded (no s3.endpoint and s3upload.bucket)."
        bucket, prefix = config.upload_bucket, f"{self.options.job_name}/"
        object_name = f"{prefix}logs"
        try:
            size = upload_log(self.ray, self.s3, job, bucket, object_name, self.echo, self.options.retry)
        except RaypodError as error:
            log.error("log upload failed: %s", error)
            return f"the log could not be uploaded to s3://{bucket}/{object_name}: {one_line(str(error), 200)}."
        log.info("uploaded %d bytes of log to s3://%s/%s", size, bucket, object_name)
        text = f"log uploaded to s3://{bucket}/{object_name}"
        if config.upload_files:
            try:
                missing = [name for name in config.upload_files if not self.s3.object_exists(bucket, prefix + name)]
            except RaypodError as error:
                log.error("result file check failed: %s", error)
                return f"{text}; the result files could not be checked: {one_line(str(error), 150)}."
            if missing:
                text += f"; result file(s) missing under s3://{bucket}/{prefix}: {', '.join(missing)}"
            else:
                text += f"; result files present under s3://{bucket}/{prefix}"
        return text + "."


class SubmissionRejected(RaypodError):
    """Ray refused the job (e.g. a bad runtime_env)."""

    def __init__(self, error: RayApiError) -> None:
        self.error = error
        super().__init__(f"Ray rejected the job: {error.reason}")


def plan_submission(
    config: BridgeConfig,
    inputs: JobInputs,
    job_name: str,
    namespace: str,
    package_uri: str | None,
    submission_id: str,
) -> dict[str, Any]:
    """The POST body for this job. Pure, so it is checked before anything is contacted."""
    tokens = kwargs_tokens(inputs.parameters, s3=config.s3, bucket=config.upload_bucket, job_name=job_name)
    return build_submission(
        submission_id=submission_id,
        entrypoint=build_entrypoint(inputs.script, tokens, JOB_FOLDER if package_uri else None),
        runtime_env=build_runtime_env(package_uri, inputs.metadata, config.properties.runtime_env),
        metadata=job_metadata(config.properties, job_name, namespace),
        properties=config.properties,
    )
