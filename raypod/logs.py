"""The job's log: followed live into raypod's stdout, and streamed to S3 at the end.

Neither path holds the log in memory: bytes pass through in chunks of at most
``raypod.ray.LOG_CHUNK`` bytes, and S3 gets multipart parts from one fixed buffer. Lines are handled
in blocks (one ``rfind``/``replace`` per chunk, not Python work per line), so a
gigabyte of output costs little CPU.

What is shown is the log's text with universal newlines (``\r\n`` and a lone ``\r`` end a
line, as ``\n`` does), because that is all Ray's WebSocket tail can give: it reads the file in
Python's text mode. The file's bytes (read at the end) are translated the same way for the echo, so
a line is shown the same whichever read brought it, and one offset says how far the echo got. What
goes to S3 is always the file's own bytes, read once the job has ended: the tail's text cannot
stand in for them (see ``LogFollower``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TextIO

from raypod.errors import RayApiError, Terminated, os_error_text
from raypod.objectstore import ObjectStore
from raypod.ray import JobInfo, RayJobsClient, RayStatus
from raypod.retry import RetryPolicy
from raypod.terminal import ByteProgress, no_progress

log = logging.getLogger(__name__)

JOB_LINE_PREFIX = "[job] "
#: A line longer than this is printed in pieces rather than held whole.
MAX_LINE = 64 * 1024
_RECONNECT_WAIT = 2.0
#: Ray's tail of a PENDING job costs the head about 1.4 ms of CPU a second (it reads the job table
#: every second; docs/benchmark.md), about what a status poll costs. So a job still PENDING this long
#: after the follower started (about 0.1 s of the head's CPU; it is queued for resources, and its start
#: is no longer close) has its tail closed, and the first poll that finds it running opens it again.
PENDING_TAIL_FOR = 60.0
_TAIL = "Ray's WebSocket log tail"


class LineEcho:
    """Prints the job's output with a prefix on each line, each byte once, in order.

    Shared by the live follower and the final upload. Both read the same log from its
    first byte, fed as text with universal newlines (``EchoPass``), so an offset in that
    text says what was printed already: the upload pass prints only what the follower had
    not reached.
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
            try:
                self._write(fresh)
            except OSError as error:
                # A closed output (a pipe whose reader left) must not cost the log its upload.
                self.enabled = False
                log.warning("the job's output is no longer printed: %s", os_error_text(error))
            return True

    def _write(self, block: bytes) -> None:
        raw = getattr(self.out, "buffer", None)
        if raw is not None and _is_utf8(block):
            # Valid UTF-8 goes to the binary layer as it is: decoding, prefixing and re-encoding
            # every byte as text costs about 4 s of CPU per GB, this under 1 s. The text layer
            # is flushed first, so status lines printed through it keep their place.
            self.out.flush()
            prefix = self.prefix.encode()
            raw.write(prefix)
            # One copy of the block (the prefixed one); a view drops what follows its last newline.
            text = block.replace(b"\n", b"\n" + prefix) if prefix else block
            raw.write(memoryview(text)[: -len(prefix)] if prefix and block.endswith(b"\n") else text)
            if not block.endswith(b"\n"):
                raw.write(b"\n")
            raw.flush()
            return
        self.out.write(format_block(block, self.prefix))
        self.out.flush()

    def cut_off(self, owner: object) -> None:
        with self._lock:
            self._closed_for = owner


def format_block(block: bytes, prefix: str = JOB_LINE_PREFIX) -> str:
    """Whole lines (or one piece of an over-long line) as prefixed text, ending in a newline."""
    data = block
    if data.endswith(b"\n"):
        data = data[:-1]
    text = data.decode("utf-8", "replace")
    return prefix + text.replace("\n", "\n" + prefix) + "\n" if prefix else text + "\n"


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True  # most logs: checked without decoding a copy
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
            # One copy at most (none when the chunk ends with its newline).
            block = b"".join((self._partial, memoryview(chunk)[: cut + 1])) if self._partial else chunk[: cut + 1]
            self._partial = chunk[cut + 1 :]
            yield self._emit(block)
        while len(self._partial) >= MAX_LINE:
            piece, self._partial = self._partial[:MAX_LINE], self._partial[MAX_LINE:]
            yield self._emit(piece)

    @property
    def pending(self) -> bool:
        """Whether an unfinished line is held back."""
        return bool(self._partial)

    def finish(self) -> Iterator[tuple[int, bytes]]:
        if self._partial:
            piece, self._partial = self._partial, b""
            yield self._emit(piece)

    def _emit(self, block: bytes) -> tuple[int, bytes]:
        offset = self.offset
        self.offset += len(block)
        return offset, block


class UniversalNewlines:
    """Turns ``\r\n`` and a lone ``\r`` into ``\n``, across chunk boundaries, as Python's text
    mode (and so Ray's log tail) reads a file. Costs one scan per chunk without ``\r``."""

    def __init__(self) -> None:
        #: The last chunk ended with ``\r``, given out as ``\n`` already: a ``\n`` next belongs to it.
        self._after_cr = False

    def push(self, chunk: bytes) -> bytes:
        if not chunk:
            return chunk
        if self._after_cr:
            self._after_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" not in chunk:
            return chunk
        self._after_cr = chunk.endswith(b"\r")
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


class EchoPass:
    """One reading of the log shown through the echo, from its first byte: whole-line blocks at
    offsets in the echo's text, and nothing split again below what the echo printed already
    (the upload pass after a live follower that got to the end costs a length per chunk)."""

    def __init__(self, echo: LineEcho, owner: object, *, translate: bool) -> None:
        self.echo = echo
        self.owner = owner
        #: The byte streams need translating; the tail's text has universal newlines already.
        self._newlines = UniversalNewlines() if translate else None
        self._splitter = BlockSplitter()

    def push(self, chunk: bytes) -> bool:
        """Show what is new in ``chunk``; False once the owner was cut off."""
        text = self._newlines.push(chunk) if self._newlines is not None else chunk
        splitter = self._splitter
        if not splitter.pending and splitter.offset + len(text) <= self.echo.printed:
            splitter.offset += len(text)
            return True
        return all(self.echo.feed(self.owner, offset, block) for offset, block in splitter.push(text))

    def finish(self) -> None:
        """The log ended: show its last line even without a newline."""
        for offset, block in self._splitter.finish():
            self.echo.feed(self.owner, offset, block)


class LogFollower:
    """A background thread that copies the live log to stdout (for ``kubectl logs``), and tells the
    watch when the output comes (``on_output``: the early polls count the quiet from it).

    It reads Ray's WebSocket tail (``/api/jobs/<id>/logs/tail``, the one ``ray job logs --follow``
    uses): it waits for the driver by itself, so it opens while the job is PENDING, and Ray closes it
    2 to 5 s after the job's end, a clean end that calls ``on_end`` (the runner wakes the watch). At
    its first bytes the driver runs: unless a poll said RUNNING already, ``on_driver_start`` asks the
    watch for a poll now, which writes RUNNING. A job still PENDING ``PENDING_TAIL_FOR`` after the
    follower started has its tail closed until a poll finds it running.

    Ray's state API stream (``/api/v0/logs/stream``) is never followed, though it brings the last line
    sooner: Ray 2.60 keeps a follow stream's request open after its client has gone until the log
    grows again, which a finished job's never does, so each one would hold one of the state API's
    100 in-progress requests (and a file read every 0.5 s) until the dashboard restarts, and after
    about 100 jobs every log read (raypod's upload too) is refused with a 429 (docs/benchmark.md).

    Ray's tail stops, closing normally, at bytes that are not UTF-8, and one the dashboard refuses
    (an ingress without WebSocket support) cannot be followed at all: live output then stops with a
    warning and the rest is printed at the end. A broken tail is opened again (its resent bytes are
    skipped by the echo).
    """

    def __init__(
        self,
        ray: RayJobsClient,
        submission_id: str,
        echo: LineEcho,
        *,
        on_end: Callable[[], None] | None = None,
        on_output: Callable[[bytes], object] | None = None,
        on_driver_start: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray = ray
        self.submission_id = submission_id
        self.echo = echo
        self.on_end = on_end
        self.on_output = on_output
        #: Asks the watch for a poll now (the driver runs); only while no poll said RUNNING.
        self.on_driver_start = on_driver_start
        self.connections = 0
        #: The tail closed normally (the job ended, or the tail stopped early).
        self.tail_ended = False
        #: A poll said RUNNING (or the driver's start was told already).
        self._running_known = False
        self._stop = threading.Event()
        #: Set by a poll that finds the job running after the tail ended (and by stop).
        self._runs_on = threading.Event()
        self._monotonic = monotonic
        self._started = monotonic()
        #: The tail of a long PENDING job was closed (``PENDING_TAIL_FOR``) ...
        self._parked = threading.Event()
        #: ... until a poll finds the job no longer PENDING (or stop).
        self._resume = threading.Event()
        #: How far into the log any connection got: a reconnect's resent bytes are no new output.
        self._reached = 0
        self._abort: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="raypod-log-follower", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def observe(self, job: JobInfo) -> None:
        """Hear a status answer: whether the job runs, and whether it runs on after the tail ended."""
        if job.status is RayStatus.RUNNING:
            self._running_known = True
        if self.tail_ended and not job.terminal:
            self._runs_on.set()
        if job.status is RayStatus.PENDING:
            if not self._parked.is_set() and self._monotonic() - self._started >= PENDING_TAIL_FOR:
                self._park()
        elif self._parked.is_set() and not job.terminal:
            self._resume.set()

    def _park(self) -> None:
        log.info(
            "job %s is still PENDING after %g s: its log tail is closed until a poll finds it running",
            self.submission_id,
            PENDING_TAIL_FOR,
        )
        self._parked.set()
        abort = self._abort
        if abort is not None:
            abort()

    def stop(self) -> None:
        """Stop following; lines not printed yet are printed by the final upload instead."""
        self._stop.set()
        self._runs_on.set()
        self._resume.set()
        self.echo.cut_off(self)
        abort = self._abort
        if abort is not None:
            abort()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._parked.is_set():
                self._resume.wait()
                self._parked.clear()
                continue
            try:
                if self._follow_tail():
                    return
                log.warning(
                    "the job's output is no longer shown live (%s ended while the job runs on: it stops at "
                    "bytes that are not UTF-8); the rest is printed when it ends",
                    _TAIL,
                )
                return
            except RayApiError as error:
                if self._stop.is_set():
                    return
                if self._parked.is_set():
                    continue  # the tail was closed on purpose
                if not error.transient:
                    log.warning(
                        "the job's output is not shown live (%s is not usable: %s); it is printed when it ends",
                        _TAIL,
                        error,
                    )
                    return
                log.debug("live log tail interrupted (%s); reconnecting", error)
            except Exception as error:  # noqa: BLE001 - stop() closes the socket under the reader
                if self._stop.is_set():
                    return
                if self._parked.is_set():
                    continue
                log.debug("live log tail interrupted (%s); reconnecting", error)
            self._stop.wait(_RECONNECT_WAIT)

    def _follow_tail(self) -> bool:
        """Read the tail until Ray closes it. True: done (the job ended, or stop); False: a poll
        says the job runs on after the tail's clean close."""
        tail = self.ray.open_log_tail(self.submission_id, on_socket=lambda socket: self._hold(socket.abort))
        self.connections += 1
        reading = EchoPass(self.echo, self, translate=False)
        seen = 0
        for chunk in self.ray.tail_chunks(tail):
            seen = self._heard(seen, chunk)
            if not reading.push(chunk):
                return True
            if not self._running_known:
                self._running_known = True
                if self.on_driver_start is not None:
                    self.on_driver_start()
        # Ray closed the tail normally. Its last line without a newline is left to the upload
        # pass, which reads to the true end: the tail may have stopped short of it.
        self.tail_ended = True
        if self.on_end is not None:
            self.on_end()
        self._runs_on.wait()
        return self._stop.is_set()

    def _heard(self, seen: int, chunk: bytes) -> int:
        """Count a chunk of this connection; past what any connection reached, it is new output."""
        seen += len(chunk)
        if seen > self._reached:
            new = seen - self._reached
            self._reached = seen
            if self.on_output is not None:
                self.on_output(chunk[-new:])
        return seen

    def _hold(self, abort: Callable[[], None]) -> None:
        """Keep how to end the current connection, for stop(); end it now if stop() came first."""
        self._abort = abort
        if self._stop.is_set() or self._parked.is_set():
            abort()


class LiveLog:
    """The job's output, followed while it runs: one follower, started by the first status answer
    that says the job has not ended (Ray's tail waits for the driver by itself).

    ``observe`` is fed every status answer; ``on_end`` hears the tail's clean end, ``on_driver_start``
    its first bytes when no poll said RUNNING yet, and ``on_output`` each chunk of the log (the runner
    tells the watch, ``raypod.watch_schedule``).
    """

    def __init__(
        self,
        ray: RayJobsClient,
        echo: LineEcho,
        on_end: Callable[[], None] | None = None,
        on_output: Callable[[bytes], object] | None = None,
        on_driver_start: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray = ray
        self.echo = echo
        self.on_end = on_end
        self.on_output = on_output
        self.on_driver_start = on_driver_start
        self.monotonic = monotonic
        self.follower: LogFollower | None = None

    def observe(self, job: JobInfo) -> None:
        if self.follower is None and self.echo.enabled and not job.terminal:
            self.follower = LogFollower(
                self.ray,
                job.submission_id,
                self.echo,
                on_end=self.on_end,
                on_output=self.on_output,
                on_driver_start=self.on_driver_start,
                monotonic=self.monotonic,
            )
            # Told this answer before its thread reads anything: a RUNNING one needs no poll at the first bytes.
            self.follower.observe(job)
            self.follower.start()
            return
        if self.follower is not None:
            self.follower.observe(job)

    def stop(self) -> None:
        """Stop following; what it had not printed yet is printed by the final pass."""
        if self.follower is not None:
            self.follower.stop()


def upload_log(
    ray: RayJobsClient,
    s3: ObjectStore,
    job: JobInfo,
    bucket: str,
    object_name: str,
    echo: LineEcho | None,
    retry: RetryPolicy,
    progress: ByteProgress = no_progress,
) -> int:
    """Stream the job's whole log from the dashboard into one S3 object. Returns its size in bytes.
    ``progress`` hears each chunk written (the log's size is not known before its end).

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
        source = ray.log_chunks(job)
        chunks = _echoed(source, echo)
        try:
            with progress(f"uploading the log to s3://{bucket}/{object_name}", None) as sent:
                for chunk in chunks:
                    check_interrupt()
                    upload.write(chunk)
                    sent(len(chunk))
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
    """Print the lines the live tail had not reached, without uploading (no S3, or the CLI)."""
    for _ in _echoed(ray.log_chunks(job), echo):
        pass


def _echoed(chunks: Iterator[bytes], echo: LineEcho | None) -> Generator[bytes, None, None]:
    """Pass the chunks through unchanged, showing each line once: the echo skips what it printed already."""
    if echo is None or not echo.enabled:
        yield from chunks
        return
    reading = EchoPass(echo, object(), translate=True)
    for chunk in chunks:
        reading.push(chunk)
        yield chunk
    reading.finish()
