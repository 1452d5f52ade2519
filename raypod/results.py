"""What a finished job leaves behind: its log in S3 and the result files it was to write."""

from __future__ import annotations

import logging

from raypod.config import BridgeConfig
from raypod.errors import RaypodError, Terminated
from raypod.logs import LineEcho, echo_rest, upload_log
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import RetryPolicy
from raypod.s3 import S3Store
from raypod.status import one_line

log = logging.getLogger(__name__)


def collect_results(
    ray: RayJobsClient,
    s3: S3Store | None,
    config: BridgeConfig,
    job: JobInfo,
    job_name: str,
    echo: LineEcho,
    retry: RetryPolicy,
) -> str:
    """Upload the log and check the expected result files; say how it went, in words."""
    if s3 is None or not config.upload_bucket:
        if echo.enabled:
            # A short job can end before the live stream starts: show what was not shown.
            try:
                echo_rest(ray, job, echo)
            except RaypodError as error:
                log.warning("could not print the rest of the job's output: %s", error)
        return "the log was not uploaded (no s3.endpoint and s3upload.bucket)."
    bucket, prefix = config.upload_bucket, f"{job_name}/"
    object_name = f"{prefix}logs"
    try:
        size = upload_log(ray, s3, job, bucket, object_name, echo, retry)
    except Terminated:
        raise  # SIGTERM: the runner leaves, and the next pod uploads the log
    except RaypodError as error:
        log.error("log upload failed: %s", error)
        return f"the log could not be uploaded to s3://{bucket}/{object_name}: {one_line(str(error), 200)}."
    log.info("uploaded %d bytes of log to s3://%s/%s", size, bucket, object_name)
    text = f"log uploaded to s3://{bucket}/{object_name}"
    if config.upload_files:
        try:
            missing = [name for name in config.upload_files if not s3.object_exists(bucket, prefix + name)]
        except RaypodError as error:
            log.error("result file check failed: %s", error)
            return f"{text}; the result files could not be checked: {one_line(str(error), 150)}."
        if missing:
            text += f"; result file(s) missing under s3://{bucket}/{prefix}: {', '.join(missing)}"
        else:
            text += f"; result files present under s3://{bucket}/{prefix}"
    return text + "."
