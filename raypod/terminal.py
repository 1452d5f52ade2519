"""What the human-facing commands print: tables, a progress line for long waits, and, under
``--log-format json``, every line for people as one JSON object.

Import-light on purpose (standard library only): ``python -m raypod --help`` must stay fast.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from raypod.clock import now_text
from raypod.log_context import json_line, json_lines, set_json_lines

#: Without a terminal, a progress line is printed at most this often (a heartbeat for CI logs).
PLAIN_EVERY = 30.0


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

    def emit(self, msg: str, level: str) -> None:
        self.end_line()
        self.stream.write(json_line(msg, level) + "\n")
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
    """``--log-format json`` for one command: every line on stderr is a JSON object meanwhile."""
    if not on:
        yield
        return
    original = sys.stderr
    stream = JsonLines(original)
    set_json_lines(True)
    sys.stderr = stream
    try:
        yield
    finally:
        stream.end_line()
        sys.stderr = original
        set_json_lines(False)


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
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.clock = clock
        self.plain_on_change = plain_on_change
        self.started = clock()
        self._shown = False
        self._last_status = ""
        self._last_plain = self.started

    def show(self, what: str, status: str) -> None:
        now = self.clock()
        text = f"{what}: {status}, {elapsed_text(now - self.started)} elapsed"
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._shown = True
            return
        changed = status != self._last_status and self.plain_on_change
        if changed or now - self._last_plain >= PLAIN_EVERY:
            self.stream.write(f"{now_text()} {text}\n")
            self.stream.flush()
            self._last_status, self._last_plain = status, now

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def clearing(self, stream: TextIO) -> TextIO:
        """``stream``, wiping the progress line before anything is written to it."""
        if not self.tty:
            return stream
        return _Clearing(stream, self)  # type: ignore[return-value]


class _Clearing:
    """The few TextIO methods raypod's printers use (write, flush, isatty)."""

    def __init__(self, stream: TextIO, progress: Progress) -> None:
        self._stream = stream
        self._progress = progress

    def write(self, text: str) -> int:
        self._progress.clear()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()
