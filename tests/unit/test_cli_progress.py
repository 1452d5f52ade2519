"""The progress line of ``submit --wait`` and ``logs --follow`` (``raypod.output.Progress``), in memory."""

from __future__ import annotations

import io

from raypod.terminal import PLAIN_EVERY, Progress


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
