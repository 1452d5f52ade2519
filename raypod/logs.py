"""The job's log: followed live into raypod's stdout, and streamed to S3 at the end.

Neither path holds the log in memory: lines pass through, and S3 gets bounded
multipart parts.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from typing import TextIO

import requests

from raypod.errors import RayApiError
from raypod.http import abort_stream
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.s3 import S3Store

log = logging.getLogger(__name__)

JOB_LINE_PREFIX = "[job] "
#: A line longer than this is printed in pieces rather than buffered whole.
MAX_LINE = 64 * 1024
_RECONNECT_WAIT = 2.0


class LineEcho:
    """Prints the job's lines with a prefix, skipping those already printed.

    Shared by the live follower and the final upload, so each line is shown once,
    in order: the upload pass prints only what the follower had not reached.
    """

    def __init__(self, out: TextIO, enabled: bool = True) -> None:
        self.out = out
        self.enabled = enabled
        self.printed = 0
        self._lock = threading.Lock()
        self._closed_for: object | None = None

    def feed(self, owner: object, lines_seen: int, line: bytes) -> bool:
        """Print line number ``lines_seen`` (0-based) if it is new. False once ``owner`` was cut off."""
        with self._lock:
            if self._closed_for is owner:
                return False
            if self.enabled and lines_seen == self.printed:
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self.out.write(f"{JOB_LINE_PREFIX}{text}\n")
                self.out.flush()
                self.printed += 1
            return True

    def cut_off(self, owner: object) -> None:
        with self._lock:
            self._closed_for = owner


class LineSplitter:
    """Splits a byte stream into lines (bounded length) and numbers them."""

    def __init__(self) -> None:
        self._partial = bytearray()
        self.count = 0

    def push(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            self._partial += chunk[start : end + 1]
            yield self._emit()
            start = end + 1
        self._partial += chunk[start:]
        while len(self._partial) >= MAX_LINE:
            piece = bytes(self._partial[:MAX_LINE])
            del self._partial[:MAX_LINE]
            yield self.count, piece
            self.count += 1

    def finish(self) -> Iterator[tuple[int, bytes]]:
        if self._partial:
            yield self._emit()

    def _emit(self) -> tuple[int, bytes]:
        line = bytes(self._partial)
        self._partial.clear()
        number = self.count
        self.count += 1
        return number, line


class LogFollower:
    """A background thread that streams the live log into stdout (for ``kubectl logs``)."""

    def __init__(self, ray: RayJobsClient, submission_id: str, node_id: str, echo: LineEcho) -> None:
        self.ray = ray
        self.submission_id = submission_id
        self.node_id = node_id
        self.echo = echo
        self._stop = threading.Event()
        self._response: requests.Response | None = None
        self._thread = threading.Thread(target=self._run, name="raypod-log-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop following; lines not printed yet are printed by the final upload instead."""
        self._stop.set()
        self.echo.cut_off(self)
        response = self._response
        if response is not None:
            abort_stream(response)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow_once()
            except Exception as error:  # noqa: BLE001 - stop() closes the socket under the reader
                if self._stop.is_set():
                    return
                log.debug("live log stream interrupted (%s); reconnecting", error)
            self._stop.wait(_RECONNECT_WAIT)

    def _follow_once(self) -> None:
        # No read timeout: a quiet job may print nothing for hours; stop() closes the socket.
        response = self.ray.open_log_stream(
            self.submission_id, self.node_id, follow=True, read_timeout=None, retry=NO_RETRY
        )
        self._response = response
        splitter = LineSplitter()
        for chunk in self.ray.http.iter_chunks(response, None):
            for number, line in splitter.push(chunk):
                if not self.echo.feed(self, number, line):
                    return


class _TeeReader(io.RawIOBase):
    """A file-like ``read(n)`` over a chunk iterator, echoing lines as they pass."""

    def __init__(self, chunks: Iterator[bytes], echo: LineEcho | None) -> None:
        self._chunks = chunks
        self._echo = echo
        self._splitter = LineSplitter()
        self._buffer = bytearray()
        self._done = False
        self.total = 0
        self.last_line = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        want = size if size is not None and size >= 0 else 1 << 62
        while len(self._buffer) < want and not self._done:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._done = True
                self._see(self._splitter.finish())
                break
            if chunk:
                self._buffer += chunk
                self._see(self._splitter.push(chunk))
        data = bytes(self._buffer[:want])
        del self._buffer[:want]
        self.total += len(data)
        return data

    def _see(self, lines: Iterator[tuple[int, bytes]]) -> None:
        for number, line in lines:
            if line.strip():
                self.last_line = line
            if self._echo is not None:
                self._echo.feed(self, number, line)


def upload_log(
    ray: RayJobsClient,
    s3: S3Store,
    job: JobInfo,
    bucket: str,
    object_name: str,
    echo: LineEcho | None,
    retry: RetryPolicy,
) -> int:
    """Stream the job's whole log from the dashboard into one S3 object. Returns its size in bytes."""
    s3.ensure_bucket(bucket)

    def attempt() -> int:
        reader = _TeeReader(_log_chunks(ray, job), echo)
        s3.upload_stream(bucket, object_name, reader)  # type: ignore[arg-type]
        return reader.total

    return retry.call(attempt, what=f"log upload to s3://{bucket}/{object_name}")


def _log_chunks(ray: RayJobsClient, job: JobInfo) -> Iterator[bytes]:
    if job.driver_node_id is None:
        # The driver never started (e.g. the runtime_env failed): nothing to stream from a node.
        yield ray.job_logs(job.submission_id).encode("utf-8")
        return
    try:
        response = ray.open_log_stream(job.submission_id, job.driver_node_id)
    except RayApiError as error:
        if error.status not in (404, 405):
            raise
        log.warning(
            "this Ray has no log stream endpoint (%s); falling back to /api/jobs/%s/logs (the log is held in memory)",
            error.reason,
            job.submission_id,
        )
        yield ray.job_logs(job.submission_id).encode("utf-8")
        return
    yield from ray.http.iter_chunks(response, 256 * 1024)
