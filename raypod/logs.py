"""The job's log: followed live into raypod's stdout, and streamed to S3 at the end.

Neither path holds the log in memory: bytes pass through in chunks of at most
``raypod.ray.LOG_CHUNK`` bytes, and S3 gets multipart parts from one fixed buffer. Lines are handled
in blocks (one ``rfind``/``replace`` per chunk, not Python work per line), so a
gigabyte of output costs little CPU.

What is shown is the log's text with universal newlines (``\r\n`` and a lone ``\r`` end a
line, as ``\n`` does), because that is all Ray's WebSocket tail can give: it reads the file in
Python's text mode. The byte streams are translated the same way for the echo, so a line is
shown the same whichever stream brought it, and one offset says how far the echo got. What
goes to S3 is always the file's own bytes, read once the job has ended: the tail's text cannot
stand in for them (see ``LogFollower``).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import TextIO

from raypod.errors import RayApiError, Terminated, os_error_text
from raypod.http import abort_stream
from raypod.objectstore import ObjectStore
from raypod.ray import JobInfo, RayJobsClient, RayStatus
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.terminal import ByteProgress, no_progress

log = logging.getLogger(__name__)

JOB_LINE_PREFIX = "[job] "
#: A line longer than this is printed in pieces rather than held whole.
MAX_LINE = 64 * 1024
_RECONNECT_WAIT = 2.0
#: A stream that breaks this many times in a row, bringing nothing, is given up for the tail.
STREAM_TRIES = 3
#: Ray's tail of a PENDING job costs the head about 1.4 ms of CPU a second (it reads the job table
#: every second; docs/benchmark.md), about what a status poll costs. So a job still PENDING this long
#: after the follower started (about 0.1 s of the head's CPU; it is queued for resources, and its start
#: is no longer close) has its tail closed, and the first poll that finds it running opens the stream.
PENDING_TAIL_FOR = 60.0
#: At the tail's first bytes the watch polls at once (``on_driver_start``); the follower waits this
#: long for that poll to tell the driver's node before it asks Ray itself.
NODE_FROM_POLL_WAIT = 5.0


class _TailEnd(enum.Enum):
    DONE = "the job ended, or stop"
    DRIVER_RUNS = "the tail's first bytes came: the stream may take over"
    RUNS_ON = "the tail closed while the job runs on"


_SOURCE_PATHS = {"stream": "/api/v0/logs/stream", "tail": "Ray's WebSocket log tail"}


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

    It reads Ray's state API stream (``/api/v0/logs/stream``, which Ray's agent reads from the file
    every 0.5 s): the job's last line comes through about 0.3 s before Ray's end_time, where Ray's
    WebSocket tail brings it about 1 s after (docs/benchmark.md). The stream never ends by itself:
    the watch's final poll ends the job, and ``stop``.

    The stream needs the driver's node (Ray 2.60 answers a 500 without it), known once the driver
    runs. So a job not yet RUNNING (or an answer without the node) is followed through Ray's
    WebSocket tail (``/api/jobs/<id>/logs/tail``), which waits for the driver by itself; at the
    tail's first bytes the driver runs: if no poll told its node yet, the watch polls at once
    (``on_driver_start``; its answer also says RUNNING), else the follower asks Ray itself, and the
    stream takes over. A job that starts and ends between two polls is still followed, and its end
    seen soon; without a node the tail stays. A job still PENDING ``PENDING_TAIL_FOR`` after the
    follower started has its tail closed until a poll finds it running.

    The tail stays the source when the stream is refused (a 404 from an older Ray, a proxy that
    blocks it) or fails ``STREAM_TRIES`` times in a row. The tail ends when Ray saw the job end: a
    clean end calls ``on_end``, with which the runner wakes the watch. Ray's tail stops, closing
    normally, at bytes that are not UTF-8; when a poll then says the job runs on, the stream takes
    over if it is usable. A source found unusable is never tried again, so the thread ends by
    itself once neither is usable (the final pass prints what it had not).

    One connection serves the run (two when the tail hands over); only after a break does it
    reconnect, and the echo skips what was printed already.
    """

    def __init__(
        self,
        ray: RayJobsClient,
        submission_id: str,
        echo: LineEcho,
        *,
        node_id: str | None = None,
        running: bool = True,
        on_end: Callable[[], None] | None = None,
        on_output: Callable[[], None] | None = None,
        on_driver_start: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray = ray
        self.submission_id = submission_id
        #: The driver's node, from a status answer (the stream needs it).
        self.node_id = node_id
        self._node_known = threading.Event()
        if node_id:
            self._node_known.set()
        self.echo = echo
        self.on_end = on_end
        self.on_output = on_output
        #: Asks the watch for a poll now (its answer comes to ``observe``); None: the follower asks Ray.
        self.on_driver_start = on_driver_start
        self.connections = 0
        #: Which source is followed: the tail while the job may not run yet, else the stream.
        self.use_tail = not running
        #: Sources found unusable ("stream", "tail"): never tried again.
        self.refused: set[str] = set()
        #: The tail closed normally (the job ended, or the tail stopped early).
        self.tail_ended = False
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
        """Hear a status answer: the driver's node, and whether the job runs on after the tail ended."""
        if job.driver_node_id and not self.node_id:
            self.node_id = job.driver_node_id
            self._node_known.set()
        if self.tail_ended and not job.terminal:
            self._runs_on.set()
        if job.status is RayStatus.PENDING:
            if self.use_tail and not self._parked.is_set() and self._monotonic() - self._started >= PENDING_TAIL_FOR:
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
        self._node_known.set()
        self.echo.cut_off(self)
        abort = self._abort
        if abort is not None:
            abort()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self._parked.is_set():
                self._resume.wait()
                self._parked.clear()
                # The job runs: the stream, if a poll told the driver's node (else the tail, for it).
                self.use_tail = not self.node_id or "stream" in self.refused
                continue
            source = "tail" if self.use_tail else "stream"
            problem = "it ended without a byte"
            try:
                if self.use_tail:
                    match self._follow_tail():
                        case _TailEnd.DONE:
                            return
                        case _TailEnd.DRIVER_RUNS:
                            self.use_tail = False
                        case _TailEnd.RUNS_ON:
                            if not self._switch("tail", "it ended while the job runs on"):
                                return
                    continue
                if self._follow_stream():
                    failures = 0
                    continue
            except RayApiError as error:
                if self._stop.is_set():
                    return
                if self._parked.is_set():
                    continue  # the tail was closed on purpose
                if not error.transient:
                    if not self._switch(source, str(error)):
                        return
                    failures = 0
                    continue
                problem = str(error)
                log.debug("live log %s interrupted (%s); reconnecting", source, error)
            except Exception as error:  # noqa: BLE001 - stop() closes the socket under the reader
                if self._stop.is_set():
                    return
                if self._parked.is_set():
                    continue
                problem = str(error)
                log.debug("live log %s interrupted (%s); reconnecting", source, error)
            failures += 1
            if source == "stream" and failures >= STREAM_TRIES:
                # Broken again and again without a byte (or a hostile empty answer): the tail instead.
                if not self._switch(source, f"{failures} tries in a row: {problem}"):
                    return
                failures = 0
                continue
            self._stop.wait(_RECONNECT_WAIT)

    def _switch(self, unusable: str, why: str) -> bool:
        """Follow the other source from now on; False when it is unusable too (the thread ends)."""
        self.refused.add(unusable)
        other = "stream" if unusable == "tail" else "tail"
        if other in self.refused:
            log.warning(
                "the job's output is no longer shown live (%s: %s); the rest is printed when it ends",
                _SOURCE_PATHS[unusable],
                why,
            )
            return False
        shown = (_SOURCE_PATHS[other], _SOURCE_PATHS[unusable], why)
        log.warning("following the job's log through %s: %s is not usable (%s)", *shown)
        self.use_tail = other == "tail"
        return True

    def _follow_tail(self) -> _TailEnd:
        """Read the tail until Ray closes it, or until its first bytes show that the driver runs
        (when the stream may take over)."""
        tail = self.ray.open_log_tail(self.submission_id, on_socket=lambda socket: self._hold(socket.abort))
        self.connections += 1
        reading = EchoPass(self.echo, self, translate=False)
        seen = 0
        hand_over = "stream" not in self.refused
        try:
            for chunk in self.ray.tail_chunks(tail):
                seen = self._heard(seen, chunk)
                if not reading.push(chunk):
                    return _TailEnd.DONE
                if hand_over:
                    if self._learn_node():
                        return _TailEnd.DRIVER_RUNS
                    hand_over = False  # no node to ask the stream for: the tail it is
        finally:
            if hand_over:
                tail.abort()
        # Ray closed the tail normally. Its last line without a newline is left to the upload
        # pass, which reads to the true end: the tail may have stopped short of it.
        self.tail_ended = True
        if self.on_end is not None:
            self.on_end()
        self._runs_on.wait()
        return _TailEnd.DONE if self._stop.is_set() else _TailEnd.RUNS_ON

    def _learn_node(self) -> bool:
        """Whether the driver's node is known (the stream needs it: Ray 2.60 answers a 500 without
        it). The driver runs: a poll the watch makes now tells it, and RUNNING with it; without one
        within ``NODE_FROM_POLL_WAIT``, Ray is asked once here."""
        if not self.node_id and self.on_driver_start is not None:
            self.on_driver_start()
            self._node_known.wait(NODE_FROM_POLL_WAIT)
            if self._stop.is_set():
                return False
        if not self.node_id:
            try:
                self.observe(self.ray.get_job(self.submission_id, retry=NO_RETRY))
            except RayApiError as error:
                log.debug("the driver's node is not known (%s): following Ray's tail on", error)
        return bool(self.node_id)

    def _follow_stream(self) -> bool:
        """Read the stream until it breaks or ends. True when it brought anything."""
        # No read timeout: a quiet job may print nothing for hours; stop() closes the socket.
        response = self.ray.open_log_stream(
            self.submission_id, self.node_id, follow=True, read_timeout=None, retry=NO_RETRY
        )
        self._hold(lambda: abort_stream(response))
        self.connections += 1
        reading = EchoPass(self.echo, self, translate=True)
        seen = 0
        # A chunked response: each read returns what has arrived, up to LOG_CHUNK bytes.
        for chunk in self.ray.stream_chunks(response):
            seen = self._heard(seen, chunk)
            if not reading.push(chunk):
                break
        return seen > 0

    def _heard(self, seen: int, chunk: bytes) -> int:
        """Count a chunk of this connection; past what any connection reached, it is new output."""
        seen += len(chunk)
        if seen > self._reached:
            self._reached = seen
            if self.on_output is not None:
                self.on_output()
        return seen

    def _hold(self, abort: Callable[[], None]) -> None:
        """Keep how to end the current connection, for stop(); end it now if stop() came first."""
        self._abort = abort
        if self._stop.is_set() or self._parked.is_set():
            abort()


class LiveLog:
    """The job's output, followed while it runs: one follower, started by the first status answer
    that says the job has not ended (it opens a connection once the job runs).

    ``observe`` is fed every status answer; ``on_end`` hears the (fallback) tail's clean end,
    ``on_driver_start`` the tail's first bytes when the driver's node is not known yet, and ``on_output``
    each chunk of the log (the runner tells the watch, ``raypod.watch_schedule``).
    """

    def __init__(
        self,
        ray: RayJobsClient,
        echo: LineEcho,
        on_end: Callable[[], None] | None = None,
        on_output: Callable[[], None] | None = None,
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
                node_id=job.driver_node_id,
                # The stream needs the driver's node: without it, the tail first.
                running=job.status is RayStatus.RUNNING and job.driver_node_id is not None,
                on_end=self.on_end,
                on_output=self.on_output,
                on_driver_start=self.on_driver_start,
                monotonic=self.monotonic,
            )
            self.follower.start()
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
    """Print the lines the live stream had not reached, without uploading (no S3, or the CLI)."""
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
