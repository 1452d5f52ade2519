"""What the human-facing commands print: tables, a progress line for long waits and for bytes on
their way (zipping, uploading), and, under ``--log-format json``, every line on stderr as one JSON
object: lines for people, Python's warnings, argparse's refusals and an unexpected error alike.

Import-light on purpose (standard library only): ``python -m raypod --help`` must stay fast.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Protocol, TextIO

from raypod.clock import now_text
from raypod.exits import EXIT_FAILED
from raypod.log_context import json_line, json_lines, set_json_lines

#: Without a terminal, a progress line is printed at most this often (a heartbeat for CI logs).
PLAIN_EVERY = 30.0
#: Without a terminal, a transfer's first line comes after this long: a quick one prints nothing.
PLAIN_FIRST = 2.0
#: On a terminal, the line is rewritten at most this often (an upload counts every few KiB).
TTY_EVERY = 0.1
MIB = 1024 * 1024


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 60) -> str:
    """Left-aligned columns; cells longer than ``max_width`` are cut with an ellipsis."""

    def cut(cell: str) -> str:
        cell = " ".join(cell.split())  # one line per row, whatever the cell holds
        return cell if len(cell) <= max_width else cell[: max_width - 3] + "..."

    cells = [[cut(h) for h in headers], *[[cut(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, str]]) -> str:
    """``key: value`` lines with the values aligned."""
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{key + ':':<{width + 1}} {value}" for key, value in pairs)


def elapsed_text(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s"


def print_bad_input(lines: Sequence[str], stream: TextIO | None = None) -> None:
    """Every problem of a bad input, one per line, each naming its key (``run`` and every command)."""
    for line in lines:
        print_error(f"raypod: bad input: {line}", stream)


def print_error(text: str, stream: TextIO | None = None) -> None:
    """A line saying why a command failed (stderr by default): level ERROR as a JSON line."""
    target = stream or sys.stderr
    if isinstance(target, JsonLines):
        target.emit(text, "ERROR")
    else:
        print(text, file=target, flush=True)


#: The timestamp the status lines start with: a JSON line carries it as ``ts`` instead.
_LEADING_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


class JsonLines:
    """A text stream under ``--log-format json``: each line written to it goes out as one JSON
    object (``raypod.log_context.json_line``, level INFO unless ``emit`` says otherwise). Whatever
    prints to it, a status line, a progress line, a warning, even a traceback, a log collector
    gets JSON. Never a terminal: progress is a plain line, not one rewritten in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._partial = ""

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._emit_line(line)
        return len(text)

    def emit(self, msg: str, level: str, **extra: object) -> None:
        self.end_line()
        self.stream.write(json_line(msg, level, None, **extra) + "\n")
        self.stream.flush()

    def end_line(self) -> None:
        """Send a line that was left without its newline."""
        partial, self._partial = self._partial, ""
        self._emit_line(partial)

    def _emit_line(self, line: str) -> None:
        line = _LEADING_TIME.sub("", line.rstrip("\r"))
        if line.strip():
            self.stream.write(json_line(line, "INFO") + "\n")
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False


@contextmanager
def json_stderr(on: bool) -> Iterator[None]:
    """``--log-format json`` for one command: every line on stderr is a JSON object meanwhile.

    Besides what raypod prints: a Python warning (a library's too) is one line at WARNING, and an
    error that escapes the command (a bug, in raypod or its thread) one line at ERROR, where Python
    would print a plain traceback; then the command exits 1, as after a traceback."""
    if not on:
        yield
        return
    original = sys.stderr
    stream = JsonLines(original)
    hooks = (warnings.showwarning, threading.excepthook)
    set_json_lines(True)
    sys.stderr = stream
    warnings.showwarning = _warning_line(stream)
    threading.excepthook = _thread_error_line(stream)
    try:
        yield
    except Exception as error:  # noqa: BLE001 - a bug's traceback would be the one plain line
        _error_line(stream, error.__class__, error.__traceback__)
        raise SystemExit(EXIT_FAILED) from None
    finally:
        stream.end_line()
        sys.stderr = original
        warnings.showwarning, threading.excepthook = hooks
        set_json_lines(False)


def _warning_line(stream: JsonLines) -> Callable[..., None]:
    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        stream.emit(f"{category.__name__}: {message} ({filename}:{lineno})", "WARNING")

    return show


def _thread_error_line(stream: JsonLines) -> Callable[[threading.ExceptHookArgs], None]:
    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:  # as Python's own hook: a thread's exit is no error
            _error_line(stream, args.exc_type, args.exc_traceback)

    return hook


def _error_line(stream: JsonLines, kind: type[BaseException], frames: TracebackType | None) -> None:
    """A bug's one line: its type in ``error``, where it was in ``traceback``; not the exception's
    text, which may quote what no line shows (as ``raypod.process.JsonLineFormatter``)."""
    stream.emit(
        f"raypod: unexpected {kind.__name__} (a bug in raypod: please report it with this line)",
        "ERROR",
        error=kind.__name__,
        traceback="".join(traceback.format_tb(frames)),
    )


@contextmanager
def json_refusal(on: bool) -> Iterator[None]:
    """argparse's refusal of a command line (its usage, then ``raypod X: error: ...``, exit 2) as one
    JSON line at ERROR, the usage in ``usage``. ``on`` comes from the raw arguments: until they are
    parsed, ``--log-format json`` is only a guess (see docs/cli.md#output)."""
    if not on:
        yield
        return
    original = sys.stderr
    captured = io.StringIO()
    sys.stderr = captured
    try:
        yield
    finally:
        sys.stderr = original
        lines = [line for line in captured.getvalue().splitlines() if line.strip()]
        if lines:
            usage = {"usage": "\n".join(lines[:-1])} if lines[:-1] else {}
            original.write(json_line(lines[-1], "ERROR", None, **usage) + "\n")
            original.flush()


def people_out(stream: TextIO) -> TextIO:
    """``stream`` for lines meant for people (not data): JSON lines under ``--log-format json``."""
    return JsonLines(stream) if json_lines() else stream  # type: ignore[return-value]


class Progress:
    """The status and elapsed time of a long wait.

    On a terminal it is one line rewritten in place (carriage return); the streams made
    by ``clearing`` wipe it before they print, so output and progress never mix. Without
    a terminal (CI logs, pipes) it is a plain line every ``PLAIN_EVERY`` seconds, and on
    each status change unless ``plain_on_change`` is off (when status lines are printed
    anyway).
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        plain_on_change: bool = True,
        plain_after: float = PLAIN_EVERY,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.plain_on_change = plain_on_change
        self.started = clock()
        self._shown = False
        self._last_status = ""
        self._next_plain = self.started + plain_after
        self._plain_printed = False
        self._last_tty = -PLAIN_EVERY

    def show(self, what: str, status: str) -> None:
        now = self.clock()
        text = f"{what}: {status}, {elapsed_text(now - self.started)} elapsed"
        if self.tty:
            if now - self._last_tty >= TTY_EVERY:
                self.stream.write("\r\x1b[K" + text)
                self.stream.flush()
                self._shown, self._last_tty = True, now
                _Screen.line = self
            return
        changed = status != self._last_status and self.plain_on_change
        if changed or now >= self._next_plain:
            self._plain(text)
            self._last_status, self._next_plain = status, now + PLAIN_EVERY

    def done(self, what: str, status: str) -> None:
        """The end: the line on a terminal is wiped; without one, a last line if any was printed."""
        self.clear()
        if not self.tty and self._plain_printed:
            self._plain(f"{what}: {status} in {elapsed_text(self.clock() - self.started)}")

    def _plain(self, text: str) -> None:
        self.stream.write(f"{now_text()} {text}\n")
        self.stream.flush()
        self._plain_printed = True

    def clear(self) -> None:
        if _Screen.line is self:
            _Screen.line = None
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def clearing(self, stream: TextIO) -> TextIO:
        """``stream``, wiping the progress line on the terminal (this one's, or a transfer's meanwhile)
        before anything is written to it."""
        return wiping_progress(stream) if self.tty else stream


class _Screen:
    """The progress line on the terminal now, if any (a command shows one at a time)."""

    line: Progress | None = None


def wiping_progress(stream: TextIO) -> TextIO:
    """``stream``, wiping whatever progress line is on the terminal before anything is written to it:
    the log's lines (a retry's warning while a package uploads) start on a clean line."""

    def wipe() -> None:
        line = _Screen.line
        if line is not None:
            line.clear()

    return _Clearing(stream, wipe)  # type: ignore[return-value]


class _Clearing:
    """The few TextIO methods raypod's printers and the log handler use (write, flush, isatty)."""

    def __init__(self, stream: TextIO, wipe: Callable[[], None]) -> None:
        self._stream = stream
        self._wipe = wipe

    def write(self, text: str) -> int:
        self._wipe()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()


#: Hears how many more bytes have moved.
ByteCounter = Callable[[int], None]


class ByteProgress(Protocol):
    """Progress of bytes on their way (a package zipped, uploaded): ``with progress(what, total) as
    moved: moved(n)``. ``total`` in bytes; None when unknown."""

    def __call__(self, what: str, total: int | None) -> AbstractContextManager[ByteCounter]: ...


@contextmanager
def no_progress(what: str, total: int | None) -> Iterator[ByteCounter]:
    """The pod's: it logs what it does, and nobody watches a terminal."""
    yield lambda count: None


class TransferProgress:
    """A ``ByteProgress`` for people (``Progress``): on a terminal one line rewritten in place and
    wiped at the end; without one, a line once the transfer has taken ``PLAIN_FIRST`` seconds, then
    every ``PLAIN_EVERY``, and a last one at its end (a JSON line each under ``--log-format json``).
    Sizes in MiB, with the percent when the total is known."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.tty = tty
        self.clock = clock

    @contextmanager
    def __call__(self, what: str, total: int | None) -> Iterator[ByteCounter]:
        progress = Progress(self.stream, tty=self.tty, clock=self.clock, plain_on_change=False, plain_after=PLAIN_FIRST)
        moved = 0

        def count(more: int) -> None:
            nonlocal moved
            moved += more
            progress.show(what, moved_text(moved, total))

        try:
            yield count
        finally:
            progress.done(what, f"{moved / MIB:.1f} MiB")


def moved_text(moved: int, total: int | None) -> str:
    """``12.0 of 60.0 MiB (20%)``, or ``12.0 MiB`` without a total."""
    if not total:
        return f"{moved / MIB:.1f} MiB"
    return f"{moved / MIB:.1f} of {total / MIB:.1f} MiB ({min(100, 100 * moved // total)}%)"
