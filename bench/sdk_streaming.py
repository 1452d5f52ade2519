"""The second baseline: the Ray SDK as a careful user would use it, with minio.

Submit the job; follow its log with ``JobSubmissionClient.tail_job_logs`` (one WebSocket through
the dashboard, from the log's first byte until the job ends) straight into an S3 multipart upload,
so the log is never held whole; then ask the job's status once. minio is imported only when the
log's first chunk arrives, so it costs nothing before the submission. The job's own status decides
the exit code. Run by bench/run.py in the baseline's virtualenv (``ray[default]``, ``minio``).

The state API's ``ray.util.state.get_log`` would stream too, but it needs the cluster's GCS
address: a submitter that only reaches the dashboard (a pod outside the cluster) cannot use it.
"""

from __future__ import annotations

import asyncio
import io
import queue
import threading
import time
from typing import Any, BinaryIO, cast

from ray.job_submission import JobStatus, JobSubmissionClient
from sdk_arguments import baseline_arguments

#: S3's smallest part: the upload holds about one part (minio copies it a few times).
PART_SIZE = 5 * 1024 * 1024
#: Chunks waiting for the upload: bounded, so a slow S3 slows the tail instead of filling memory.
QUEUE_CHUNKS = 64


class LogReader(io.RawIOBase):
    """The log's chunks as a file for ``put_object``, read as they arrive from the tail."""

    def __init__(self, chunks: queue.Queue[bytes | None]) -> None:
        self._chunks = chunks
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._ended:
            chunk = self._chunks.get()
            if chunk is None:
                self._ended = True
            else:
                self._pending = chunk
        taken = self._pending[: len(buffer)]
        buffer[: len(taken)] = taken
        self._pending = self._pending[len(taken) :]
        return len(taken)


def tail_into(client: JobSubmissionClient, submission_id: str, chunks: queue.Queue[bytes | None]) -> None:
    """The WebSocket tail, in a thread of its own (the SDK's API is async, minio's is not)."""

    async def follow() -> None:
        async for text in client.tail_job_logs(submission_id):
            chunks.put(text.encode("utf-8"))

    try:
        asyncio.run(follow())
    finally:
        chunks.put(None)


def main() -> int:
    args = baseline_arguments("status polls, only after the tail ended")

    client = JobSubmissionClient(args.address)
    submission_id = client.submit_job(entrypoint=args.entrypoint, submission_id=args.submission_id)
    chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
    tail = threading.Thread(target=tail_into, args=(client, submission_id, chunks), daemon=True)
    tail.start()

    from minio import Minio  # only now: the log is about to arrive

    s3 = Minio(args.s3_endpoint, access_key=args.access_key, secret_key=args.secret_key, secure=False)
    if not s3.bucket_exists(args.bucket):
        s3.make_bucket(args.bucket)
    s3.put_object(
        args.bucket,
        args.object,
        cast(BinaryIO, LogReader(chunks)),
        length=-1,
        part_size=PART_SIZE,
        content_type="text/plain",
    )
    tail.join(args.timeout)
    # The tail ends with the job; Ray may take a moment more to record its end.
    limit = time.monotonic() + args.timeout
    status = client.get_job_status(submission_id)
    while status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED) and time.monotonic() < limit:
        time.sleep(args.interval)
        status = client.get_job_status(submission_id)
    return 0 if status == JobStatus.SUCCEEDED else 1


if __name__ == "__main__":
    raise SystemExit(main())
