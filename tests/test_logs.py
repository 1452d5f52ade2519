"""The job's log: streamed to S3 in flat memory, and shown live in raypod's stdout once per line."""

from __future__ import annotations

import hashlib
import io
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.measure import run_measured
from devtools.proxy import Proxy
from raypod.logs import JOB_LINE_PREFIX, MAX_LINE, BlockSplitter, LineEcho
from tests.helpers import BridgeJob

BIG_LINES = 2_100_000  # 100 bytes each: 210 MB, above the 200 MB the issue asks for
LINE_WIDTH = 100
#: Measured 38.1, 38.7 and 39.0 MiB here (Python 3.11, the test venv, live output on), once minio's
#: admin client was no longer loaded by mistake (test_dependencies.py): the bound leaves 3 MiB, so a
#: regression of a few MiB (a second part buffer, a log held whole) fails. The 40 MiB goal is
#: `make bench`'s own check.
RSS_LIMIT_KIB = 42 * 1024

# Numbered 100-byte lines, written 1 MB at a time (print per line would take Ray minutes).
BIG_JOB = f"""\
import sys
out = sys.stdout
for start in range(0, {BIG_LINES}, 10000):
    out.write("".join(f"line {{i:010d}} " + "x" * 83 + "\\n" for i in range(start, min(start + 10000, {BIG_LINES}))))
out.flush()
"""


def big_job_lines() -> Iterator[bytes]:
    for i in range(BIG_LINES):
        yield f"line {i:010d} ".encode() + b"x" * 83 + b"\n"


def run_raypod_measured(job: BridgeJob, *extra: str, stdout: Path) -> int:
    """Run raypod to the end; return its own peak RSS (KiB), from wait4 in a small launcher
    (a child spawned straight from pytest would report pytest's RSS: see devtools/measure.py)."""
    job.write_config()
    with stdout.open("wb") as out:
        usage = run_measured(job.command(*extra), env=job.env(), stdout=out, timeout=600)
    assert usage.returncode == 0, usage.stderr
    return usage.peak_rss_kib


def scan_object(job: BridgeJob) -> tuple[int, int, bytes, str]:
    """Stream the uploaded log: its size, where the job's first line starts, its last line, and
    the sha256 of everything from that line on. Never holds the object in memory."""
    client = job.services.s3.client()
    response = client.get_object(job.bucket, f"{job.name}/logs")
    marker = b"line 0000000000 "
    size, first_at, digest, tail = 0, -1, hashlib.sha256(), b""
    try:
        for chunk in response.stream(1024 * 1024):
            window = tail + chunk  # tail: the previous chunk's end, so a line cut in two is still found
            if first_at < 0:
                found = window.find(marker)
                if found >= 0:
                    first_at = size - len(tail) + found
                    digest.update(window[found:])
            else:
                digest.update(chunk)
            size += len(chunk)
            tail = window[-2 * LINE_WIDTH :]
    finally:
        response.close()
        response.release_conn()
    last_line = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return size, first_at, last_line, digest.hexdigest()


def test_a_210_mb_log_is_uploaded_whole_while_peak_memory_stays_flat(bridge_job: BridgeJob, tmp_path: Path) -> None:
    # Live output stays on: both streams at once is the pod's default and its worst case for memory.
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript=BIG_JOB)
    stdout = tmp_path / "raypod-stdout.txt"
    peak_kib = run_raypod_measured(bridge_job, stdout=stdout)
    print(f"raypod's peak RSS for a {BIG_LINES * LINE_WIDTH // 10**6} MB log: {peak_kib / 1024:.1f} MiB")

    expected = hashlib.sha256()
    for line in big_job_lines():
        expected.update(line)
    size, first_at, last_line, digest = scan_object(bridge_job)
    assert first_at >= 0, "the job's first line is not in the uploaded log"
    assert first_at < 4096, "only Ray's few start-up lines may come before the job's output"
    assert size - first_at == BIG_LINES * LINE_WIDTH
    assert last_line == f"line {BIG_LINES - 1:010d} ".encode() + b"x" * 83
    assert digest == expected.hexdigest()

    # Each of the job's lines reached raypod's stdout exactly once, in order.
    numbered = 0
    with stdout.open("rb") as printed:
        for line in printed:
            if line.startswith(b"[job] line "):
                assert line == JOB_LINE_PREFIX.encode() + f"line {numbered:010d} ".encode() + b"x" * 83 + b"\n"
                numbered += 1
    assert numbered == BIG_LINES

    assert peak_kib < RSS_LIMIT_KIB, f"raypod's peak RSS was {peak_kib / 1024:.1f} MiB"


LIVE_LINES = 12
# Prints half its lines, then waits (bounded) for the test to have seen them in raypod's
# stdout: proof that they were shown while the job was still running.
LIVE_JOB = f"""\
import os, sys, time
gate = sys.argv[sys.argv.index("--kwargs") + 1:]
gate = dict(token.split("=", 1) for token in gate)["gate"]
for i in range({LIVE_LINES}):
    if i == {LIVE_LINES // 2}:
        limit = time.monotonic() + 120
        while not os.path.exists(gate) and time.monotonic() < limit:
            time.sleep(0.1)
        print("gate " + ("open" if os.path.exists(gate) else "timed out"), flush=True)
    print(f"n {{i}}", flush=True)
    time.sleep(0.3)
"""


def test_live_output_shows_each_line_once_in_order_from_one_stream(bridge_job: BridgeJob, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    # Connections kept alive, as raypod pools them: a live stream stays one request.
    with Proxy("127.0.0.1", bridge_job.services.ray.port, keep_alive=True) as proxy:
        bridge_job.set(
            resourceURL=proxy.url,
            jobdata__scriptLocation="inline",
            jobdata__jobScript=LIVE_JOB,
            jobdata__jobParameters=f'{{"gate": "{gate}"}}',
        )
        process = bridge_job.start()
        assert process.stdout is not None
        lines: list[str] = []
        try:
            for line in process.stdout:  # ends when raypod exits; raypod's own timeouts bound it
                lines.append(line.rstrip("\n"))
                if line.startswith(f"{JOB_LINE_PREFIX}n {LIVE_LINES // 2 - 1}"):
                    gate.touch()
            returncode = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        requests = proxy.recorded()

    assert returncode == 0, process.stderr.read() if process.stderr else ""
    job_lines = [line[len(JOB_LINE_PREFIX) :] for line in lines if line.startswith(JOB_LINE_PREFIX)]
    numbered = [line for line in job_lines if line.startswith(("n ", "gate "))]
    expected = [f"n {i}" for i in range(LIVE_LINES)]
    expected.insert(LIVE_LINES // 2, "gate open")
    assert numbered == expected
    assert len(job_lines) == len(set(job_lines)), "a line was printed twice"

    # One live stream for the whole run and one final read: the log is never fetched per poll.
    paths = [request.path.split("?")[0] for request in requests]
    assert paths.count("/api/v0/logs/stream") == 1
    assert paths.count("/api/v0/logs/file") == 1
    assert paths.count("/api/jobs/" + bridge_job.read_status()["id"]) >= 3, "the job should span several polls"
    assert not any("/logs" in path and path.startswith("/api/jobs/") for path in paths)


def test_no_follow_logs_prints_no_job_lines_but_uploads_the_log(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('quiet line')\n")
    result = bridge_job.run("--no-follow-logs")
    assert result.returncode == 0, result.stderr
    assert result.job_lines == []
    assert bridge_job.log_text().rstrip("\n").endswith("quiet line")


# -- the echo's bookkeeping, without Ray ------------------------------------------------


def blocks(data: bytes, sizes: list[int], finish: bool = True) -> Iterator[tuple[int, bytes]]:
    splitter = BlockSplitter()
    start = 0
    for size in sizes:
        yield from splitter.push(data[start : start + size])
        start += size
    yield from splitter.push(data[start:])
    if finish:  # the live stream never ends: only the final pass flushes the last partial line
        yield from splitter.finish()


def test_echo_prints_each_line_once_when_the_upload_pass_takes_over_mid_line() -> None:
    log = b"".join(f"line {i}\r\n".encode() for i in range(50)) + b"no newline at the end"
    out = io.StringIO()
    echo = LineEcho(out)
    follower, upload = object(), object()
    # The follower sees a prefix, cut in the middle of a line, then is cut off.
    for offset, block in blocks(log[:203], [7, 50, 1, 90], finish=False):
        echo.feed(follower, offset, block)
    echo.cut_off(follower)
    assert not echo.feed(follower, 0, b"late\n")
    # The upload pass reads everything again, in other chunk sizes.
    for offset, block in blocks(log, [64, 3, 100, 1000]):
        echo.feed(upload, offset, block)
    expected = [f"line {i}" for i in range(50)] + ["no newline at the end"]
    assert out.getvalue().splitlines() == [JOB_LINE_PREFIX + line for line in expected]


def test_an_endless_line_is_printed_in_bounded_pieces() -> None:
    log = b"y" * (3 * MAX_LINE + 10) + b"\nnext\n"
    pieces = list(blocks(log, [1000] * 300))
    assert max(len(block) for _, block in pieces) <= MAX_LINE + 1000
    assert b"".join(block for _, block in pieces) == log
    assert [offset for offset, _ in pieces] == [sum(len(b) for _, b in pieces[:i]) for i in range(len(pieces))]


@pytest.mark.parametrize("enabled", [True, False])
def test_disabled_echo_prints_nothing(enabled: bool) -> None:
    out = io.StringIO()
    LineEcho(out, enabled=enabled).feed(object(), 0, b"a\nb\n")
    assert out.getvalue() == ("[job] a\n[job] b\n" if enabled else "")


def test_echo_keeps_order_with_text_lines_and_replaces_invalid_utf8() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    echo = LineEcho(out)
    owner = object()
    out.write("status one\n")  # still in the text layer's buffer when the echo writes bytes
    first = "héllo\r\nwörld\n".encode()
    assert echo.feed(owner, 0, first)
    out.write("status two\n")
    assert echo.feed(owner, len(first), b"bad \xff byte\n")
    out.flush()
    assert raw.getvalue().decode("utf-8").splitlines() == [
        "status one",
        "[job] héllo",
        "[job] wörld",
        "status two",
        "[job] bad \ufffd byte",
    ]
