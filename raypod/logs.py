"""The job's log: followed live into raypod's stdout, and streamed to S3 at the end.

Neither path holds the log in memory: bytes pass through in chunks of at most
``CHUNK`` bytes, and S3 gets multipart parts from one fixed buffer. Lines are handled
in blocks (one ``rfind``/``replace`` per chunk, not Python work per line), so a
gigabyte of output costs little CPU.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, TextIO

from raypod.errors import RayApiError, Terminated
from raypod.http import abort_stream
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.s3 import S3Store

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

JOB_LINE_PREFIX = "[job] "
#: A line longer than this is printed in pieces rather than held whole.
MAX_LINE = 64 * 1024
#: Read size for both log streams: bounds what one read holds.
CHUNK = 256 * 1024
_RECONNECT_WAIT = 2.0


class LineEcho:
    """Prints the job's output with a prefix on each line, each byte once, in order.

    Shared by the live follower and the final upload. Both read the same log file from
    its first byte, so a byte offset says what was printed already: the upload pass
    prints only what the follower had not reached.
    """

    def __init__(self, out: TextIO, enabled: bool = True, prefix: str = JOB_LINE_PREFIX) -> None:
        self.out = out
        self.enabled = enabled
        self.prefix = prefix
        #: Bytes of the log printed so far (always at a block boundary).
        self.printed = 0
        self._lock = threading.Lock()
        self._closed_for: object | None = None

    def feed(self, owner: object, offset: int, block: bytes) -> bool:
        """Print the part of ``block`` (log bytes from ``offset``) not printed yet.

        Returns False once ``owner`` was cut off, so a stopped follower cannot print
        after the upload pass took over.
        """
        with self._lock:
            if self._closed_for is owner:
                return False
            end = offset + len(block)
            if not self.enabled or end <= self.printed:
                return True
            fresh = block[max(0, self.printed - offset) :]
            self.printed = end
            self._write(fresh)
            return True

    def _write(self, block: bytes) -> None:
        raw = getattr(self.out, "buffer", None)
        data = block.replace(b"\r\n", b"\n") if b"\r" in block else block
        if data.endswith(b"\n"):
            data = data[:-1]
        if raw is not None and _is_utf8(data):
            # Valid UTF-8 goes to the binary layer as it is: decoding, prefixing and re-encoding
            # every byte as text costs about 4 s of CPU per GB, this under 1 s. The text layer
            # is flushed first, so status lines printed through it keep their place.
            self.out.flush()
            prefix = self.prefix.encode()
            raw.write(prefix)
            raw.write(data.replace(b"\n", b"\n" + prefix) if prefix else data)
            raw.write(b"\n")
            raw.flush()
            return
        self.out.write(format_block(data, self.prefix))
        self.out.flush()

    def cut_off(self, owner: object) -> None:
        with self._lock:
            self._closed_for = owner


def format_block(block: bytes, prefix: str = JOB_LINE_PREFIX) -> str:
    """Whole lines (or one piece of an over-long line) as prefixed text, ending in a newline."""
    data = block.replace(b"\r\n", b"\n")
    if data.endswith(b"\n"):
        data = data[:-1]
    text = data.decode("utf-8", "replace")
    return prefix + text.replace("\n", "\n" + prefix) + "\n" if prefix else text + "\n"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class BlockSplitter:
    """Cuts a byte stream into blocks of whole lines, each with its offset in the stream.

    The unfinished last line is held back until its newline arrives, up to ``MAX_LINE``
    bytes; beyond that it is given out in pieces, so memory stays bounded.
    """

    def __init__(self) -> None:
        self._partial = b""
        self.offset = 0

    def push(self, chunk: bytes) -> Iterator[tuple[int, bytes]]:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._partial += chunk
        else:
            block = self._partial + chunk[: cut + 1] if self._partial else chunk[: cut + 1]
            self._partial = chunk[cut + 1 :]
            yield self._emit(block)
        while len(self._partial) >= MAX_LINE:
            piece, self._partial = self._partial[:MAX_LINE], self._partial[MAX_LINE:]
            yield self._emit(piece)

    def finish(self) -> Iterator[tuple[int, bytes]]:
        if self._partial:
            piece, self._partial = self._partial, b""
            yield self._emit(piece)

    def _emit(self, block: bytes) -> tuple[int, bytes]:
        offset = self.offset
        self.offset += len(block)
        return offset, block


class LogFollower:
    """A background thread that streams the live log into stdout (for ``kubectl logs``).

    One long-lived ``/api/v0/logs/stream`` request: the dashboard pushes new bytes as the
    job writes them, so nothing is downloaded twice. Only after a broken stream does it
    reconnect, and then it skips what was printed already.
    """

    def __init__(self, ray: RayJobsClient, submission_id: str, node_id: str, echo: LineEcho) -> None:
        self.ray = ray
        self.submission_id = submission_id
        self.node_id = node_id
        self.echo = echo
        self.connections = 0
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
        self.connections += 1
        splitter = BlockSplitter()
        # A chunked response: each read returns what has arrived, up to CHUNK bytes.
        for chunk in self.ray.http.iter_chunks(response, CHUNK):
            for offset, block in splitter.push(chunk):
                if not self.echo.feed(self, offset, block):
                    return


class LiveLog:
    """The job's output, followed while the driver runs: one follower, started when there is a log.

    ``observe`` is fed every status answer; only a running driver has a log file to follow.
    """

    def __init__(self, ray: RayJobsClient, echo: LineEcho) -> None:
        self.ray = ray
        self.echo = echo
        self.follower: LogFollower | None = None

    def observe(self, job: JobInfo) -> None:
        if self.follower is None and self.echo.enabled and job.status == "RUNNING" and job.driver_node_id:
            self.follower = LogFollower(self.ray, job.submission_id, job.driver_node_id, self.echo)
            self.follower.start()

    def stop(self) -> None:
        """Stop following; what it had not printed yet is printed by the final pass."""
        if self.follower is not None:
            self.follower.stop()


def upload_log(
    ray: RayJobsClient,
    s3: S3Store,
    job: JobInfo,
    bucket: str,
    object_name: str,
    echo: LineEcho | None,
    retry: RetryPolicy,
) -> int:
    """Stream the job's whole log from the dashboard into one S3 object. Returns its size in bytes.

    The object is written without asking first whether the bucket exists (a policy may grant
    only s3:PutObject); a missing bucket is created when the write says so. When the policy's
    ``interrupt`` (SIGTERM) is set, the upload is aborted between chunks and Terminated raised:
    nothing is completed after it, and no multipart upload is left open.
    """
    interrupt = retry.interrupt

    def check_interrupt() -> None:
        if interrupt is not None and interrupt.is_set():
            raise Terminated(f"terminated during the log upload to s3://{bucket}/{object_name}")

    def attempt() -> int:
        check_interrupt()
        upload = s3.open_part_upload(bucket, object_name, create_bucket=True)
        source = log_chunks(ray, job)
        chunks = _echoed(source, echo)
        try:
            for chunk in chunks:
                check_interrupt()
                upload.write(chunk)
            check_interrupt()
            upload.finish()
        except BaseException:
            upload.abort()
            raise
        finally:
            # Closes the dashboard's stream now, not whenever the generators are collected.
            chunks.close()
            source.close()
        return upload.size

    return retry.call(attempt, what=f"log upload to s3://{bucket}/{object_name}")


def echo_rest(ray: RayJobsClient, job: JobInfo, echo: LineEcho) -> None:
    """Print the lines the live stream had not reached, without uploading (no S3, or the CLI)."""
    for _ in _echoed(log_chunks(ray, job), echo):
        pass


def _echoed(chunks: Iterator[bytes], echo: LineEcho | None) -> Generator[bytes, None, None]:
    """Pass the chunks through, showing each line once: the echo skips what it printed already."""
    if echo is None or not echo.enabled:
        yield from chunks
        return
    owner = object()
    splitter = BlockSplitter()
    for chunk in chunks:
        for offset, block in splitter.push(chunk):
            echo.feed(owner, offset, block)
        yield chunk
    for offset, block in splitter.finish():
        echo.feed(owner, offset, block)


def log_chunks(ray: RayJobsClient, job: JobInfo) -> Generator[bytes, None, None]:
    """The driver's whole log as a stream; Ray's one-string answer when no driver ran."""
    if job.driver_node_id is None:
        # The driver never started (e.g. the runtime_env failed): nothing to stream from a node.
        yield from _pieces(ray.job_logs(job.submission_id).encode("utf-8"))
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
        yield from _pieces(ray.job_logs(job.submission_id).encode("utf-8"))
        return
    yield from ray.http.iter_chunks(response, CHUNK)


def _pieces(data: bytes) -> Iterator[bytes]:
    """A log held whole (the fallback) in CHUNK-sized pieces, so the echo works on bounded blocks."""
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]
