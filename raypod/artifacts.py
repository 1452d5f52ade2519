"""What a finished job leaves in the object store: its log, and the result files it was to write."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from raypod.config import BridgeConfig
from raypod.errors import RaypodError
from raypod.logs import LineEcho, echo_rest, upload_log
from raypod.objectstore import ObjectStore
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import RetryPolicy
from raypod.safetext import one_line
from raypod.terminal import ByteProgress, no_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collected:
    """What ``collect_results`` did, in words (for the status message) and as data (for ``--result``)."""

    text: str
    #: ``s3://bucket/JOBNAME/logs`` once the log is there.
    log_uri: str | None = None
    #: The expected result files (``s3upload.files``) found and missing; both empty when not checked.
    files_found: tuple[str, ...] = ()
    files_missing: tuple[str, ...] = ()
    #: The bytes of the log uploaded to ``log_uri`` (the metrics at exit); None when it was not.
    log_bytes: int | None = None
    #: Whether the job asked for an upload at all (an S3 endpoint or an upload bucket).
    asked: bool = True


def log_object_name(job_name: str, attempt: int | None = None) -> str:
    """``<JOBNAME>/logs`` for the job's last attempt; ``<JOBNAME>/logs.<n>`` for attempt n that was retried."""
    return f"{job_name}/logs" if attempt is None else f"{job_name}/logs.{attempt}"


def keep_attempt_log(
    ray: RayJobsClient,
    s3: ObjectStore | None,
    config: BridgeConfig,
    job: JobInfo,
    job_name: str,
    attempt: int,
    echo: LineEcho,
    retry: RetryPolicy,
    progress: ByteProgress = no_progress,
) -> str | None:
    """Upload the log of a failed attempt that is retried, before the next attempt starts. Returns
    what went wrong, in words for the final message, or None when the log is kept (or not asked for)."""
    if s3 is None or not config.upload_bucket:
        _echo_rest_quietly(ray, job, echo)
        return None
    log_uri, text, _ = _upload_job_log(
        ray, s3, job, config.upload_bucket, log_object_name(job_name, attempt), echo, retry, progress
    )
    return None if log_uri is not None else f"attempt {attempt}'s {text.removeprefix('the ')}"


def _echo_rest_quietly(ray: RayJobsClient, job: JobInfo, echo: LineEcho) -> None:
    if echo.enabled:
        # A short job can end before the live stream starts: show what was not shown.
        try:
            echo_rest(ray, job, echo)
        except RaypodError as error:
            log.warning("could not print the rest of the job's output: %s", error)


def _upload_job_log(
    ray: RayJobsClient,
    s3: ObjectStore,
    job: JobInfo,
    bucket: str,
    object_name: str,
    echo: LineEcho,
    retry: RetryPolicy,
    progress: ByteProgress,
) -> tuple[str | None, str, int | None]:
    """The log's URI once it is in S3, what happened in words, and the bytes uploaded."""
    try:
        size = upload_log(ray, s3, job, bucket, object_name, echo, retry, progress)
    except RaypodError as error:
        log.error("log upload failed: %s", error)
        return None, f"the log could not be uploaded to s3://{bucket}/{object_name}: {one_line(str(error), 200)}", None
    log_uri = s3.url(bucket, object_name)
    log.info("uploaded %d bytes of log to %s", size, log_uri)
    return log_uri, f"log uploaded to {log_uri}", size


def collect_results(
    ray: RayJobsClient,
    s3: ObjectStore | None,
    config: BridgeConfig,
    job: JobInfo,
    job_name: str,
    echo: LineEcho,
    retry: RetryPolicy,
    progress: ByteProgress = no_progress,
) -> Collected:
    """Upload the log and check the expected result files."""
    if s3 is None or not config.upload_bucket:
        _echo_rest_quietly(ray, job, echo)
        asked = s3 is not None or bool(config.upload_bucket)
        return Collected("the log was not uploaded (no s3.endpoint and s3upload.bucket).", asked=asked)
    bucket, prefix = config.upload_bucket, f"{job_name}/"
    log_uri, text, size = _upload_job_log(ray, s3, job, bucket, log_object_name(job_name), echo, retry, progress)
    if log_uri is None:
        return Collected(text + ".")
    if not config.upload_files:
        return Collected(text + ".", log_uri, log_bytes=size)
    try:
        missing = tuple(name for name in config.upload_files if not s3.object_exists(bucket, prefix + name))
    except RaypodError as error:
        log.error("result file check failed: %s", error)
        problem = f"{text}; the result files could not be checked: {one_line(str(error), 150)}."
        return Collected(problem, log_uri, log_bytes=size)
    found = tuple(name for name in config.upload_files if name not in missing)
    if missing:
        text += f"; result file(s) missing under s3://{bucket}/{prefix}: {', '.join(missing)}"
    else:
        text += f"; result files present under s3://{bucket}/{prefix}"
    return Collected(text + ".", log_uri, found, missing, size)
