"""The progress line of ``submit --wait`` and ``stop`` (``raypod.terminal.Progress``), and of a package
zipped and uploaded (``TransferProgress``), in memory on an injected clock."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from raypod.package import build_package
from raypod.terminal import PLAIN_EVERY, PLAIN_FIRST, TTY_EVERY, Progress, TransferProgress, wiping_progress


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    stream = io.StringIO()
    clock = iter([0.0, 5.0, 65.0]).__next__
    progress = Progress(stream, tty=True, clock=clock)
    progress.show("job-1", "PENDING")
    progress.show("job-1", "RUNNING")
    out = progress.clearing(stream)
    out.write("a line of output\n")
    assert stream.getvalue() == (
        "\r\x1b[Kjob-1: PENDING, 5s elapsed"
        "\r\x1b[Kjob-1: RUNNING, 1m05s elapsed"
        "\r\x1b[K"  # the progress line is wiped before the output
        "a line of output\n"
    )


def test_progress_prints_plain_lines_without_a_terminal() -> None:
    stream = io.StringIO()
    times = iter([0.0, 1.0, 2.0, 3.0, 3.0 + PLAIN_EVERY])
    progress = Progress(stream, tty=False, clock=times.__next__)
    for status in ("PENDING", "PENDING", "RUNNING", "RUNNING"):
        progress.show("job-1", status)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "job-1: PENDING, 1s elapsed",
        "job-1: RUNNING, 3s elapsed",
        f"job-1: RUNNING, {int(3 + PLAIN_EVERY)}s elapsed",
    ]


# -- bytes on their way: a package zipped, uploaded (``TransferProgress``) -----------------------
MIB = 1024 * 1024


class Ticks:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_transfer_is_one_line_rewritten_on_a_terminal_with_mib_and_percent_then_wiped() -> None:
    stream, clock = io.StringIO(), Ticks()
    with TransferProgress(stream, tty=True, clock=clock)("uploading pkg.zip", 60 * MIB) as sent:
        sent(12 * MIB)
        clock.now = 3.0
        sent(18 * MIB)
    assert stream.getvalue() == (
        "\r\x1b[Kuploading pkg.zip: 12.0 of 60.0 MiB (20%), 0s elapsed"
        "\r\x1b[Kuploading pkg.zip: 30.0 of 60.0 MiB (50%), 3s elapsed"
        "\r\x1b[K"  # wiped at the end: what comes next starts on a clean line
    )


def test_a_terminal_line_is_rewritten_at_most_every_tty_every_seconds() -> None:
    stream, clock = io.StringIO(), Ticks()
    with TransferProgress(stream, tty=True, clock=clock)("uploading pkg.zip", None) as sent:
        for _ in range(1000):  # an upload counts every block the HTTP client reads
            sent(16 * 1024)
        clock.now = TTY_EVERY
        sent(0)
    shown = stream.getvalue().split("\r\x1b[K")
    assert shown == ["", "uploading pkg.zip: 0.0 MiB, 0s elapsed", "uploading pkg.zip: 15.6 MiB, 0s elapsed", ""]


def test_without_a_terminal_a_transfer_prints_occasional_lines_and_its_end() -> None:
    stream, clock = io.StringIO(), Ticks()
    with TransferProgress(stream, tty=False, clock=clock)("zipping --working-dir", 100 * MIB) as zipped:
        for second in range(1, 80):
            clock.now = float(second)
            zipped(MIB)
        clock.now = 81.0
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert "\r" not in stream.getvalue()
    assert (PLAIN_FIRST, PLAIN_EVERY) == (2.0, 30.0)  # the times the lines below are printed at
    assert lines == [
        "zipping --working-dir: 2.0 of 100.0 MiB (2%), 2s elapsed",
        "zipping --working-dir: 32.0 of 100.0 MiB (32%), 32s elapsed",
        "zipping --working-dir: 62.0 of 100.0 MiB (62%), 1m02s elapsed",
        "zipping --working-dir: 79.0 MiB in 1m21s",
    ]


def test_without_a_terminal_a_quick_transfer_prints_nothing() -> None:
    stream, clock = io.StringIO(), Ticks()
    with TransferProgress(stream, tty=False, clock=clock)("uploading pkg.zip", 5 * MIB) as sent:
        sent(5 * MIB)
        clock.now = PLAIN_FIRST - 0.5
    assert stream.getvalue() == ""


def test_zipping_counts_every_byte_of_the_files_out_of_their_total(tmp_path: Path) -> None:
    files = {}
    for name, size in {"a.bin": 3 * MIB + 5, "sub/b.txt": 10, "c.bin": MIB}.items():
        path = tmp_path / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
        files[name] = path
    (tmp_path / "src" / "empty").mkdir()
    files["empty"] = tmp_path / "src" / "empty"
    heard: list[tuple[str, int | None, list[int]]] = []

    @contextmanager
    def recording(what: str, total: int | None) -> Iterator[Callable[[int], None]]:
        counts: list[int] = []
        heard.append((what, total, counts))
        yield counts.append

    build_package(files, tmp_path, key="--working-dir", progress=recording)

    ((what, total, counts),) = heard
    assert what == "zipping --working-dir"
    assert total == sum(counts) == 4 * MIB + 15


def test_a_log_line_wipes_the_progress_line_on_the_terminal_first() -> None:
    stream = io.StringIO()
    progress = Progress(stream, tty=True, clock=iter([0.0, 65.0]).__next__)
    progress.show("job-1", "RUNNING")
    # As raypod.process.configure_logging sets up stderr's handler.
    handler = logging.StreamHandler(wiping_progress(stream))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    for text in ("the dashboard went away", "the dashboard is back"):
        handler.emit(logging.makeLogRecord({"msg": text, "levelname": "WARNING"}))
    progress.clear()  # nothing left to wipe

    assert stream.getvalue() == (
        "\r\x1b[Kjob-1: RUNNING, 1m05s elapsed\r\x1b[KWARNING the dashboard went away\nWARNING the dashboard is back\n"
    )
