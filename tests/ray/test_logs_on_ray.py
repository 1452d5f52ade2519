"""The job's log on the real Ray head: streamed to S3 in flat memory, and shown live in raypod's
stdout once per line."""

from __future__ import annotations

import hashlib
import io
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools.measure import run_measured
from devtools.proxy import Proxy
from raypod.logs import (
    JOB_LINE_PREFIX,
    LineEcho,
    LiveLog,
    echo_rest,
)
from raypod.ray import RayJobsClient
from tests.support.helpers import BridgeJob, wait_until
from tests.support.log_text import universal

BIG_LINES = 2_100_000  # 100 bytes each: 210 MB, above the 200 MB the issue asks for
LINE_WIDTH = 100
#: Measured 38.1, 38.7 and 39.0 MiB here (Python 3.11, the test venv, live output on), once minio's
#: admin client was no longer loaded by mistake (test_run_without_ray_sdk.py): the bound leaves 3 MiB,
#: so a regression of a few MiB (a second part buffer, a log held whole) fails. The 40 MiB goal is
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

    # One live connection for the whole run (Ray's tail) and one final read: the log is never fetched
    # per poll.
    submission_id = bridge_job.read_status()["id"]
    paths = [request.path.split("?")[0] for request in requests]
    assert paths.count(f"/api/jobs/{submission_id}/logs/tail") == 1
    assert paths.count("/api/v0/logs/stream") == 0
    assert paths.count("/api/v0/logs/file") == 1
    # Read by the file's name on the driver's node: Ray need not look the job up among all it has.
    [file_read] = [request.path for request in requests if request.path.startswith("/api/v0/logs/file?")]
    assert parse_qs(urlsplit(file_read).query)["filename"] == [f"job-driver-{submission_id}.log"]
    assert "submission_id" not in parse_qs(urlsplit(file_read).query)
    assert paths.count(f"/api/jobs/{submission_id}") >= 3, "the job should span several polls"
    assert f"/api/jobs/{submission_id}/logs" not in paths


def test_no_follow_logs_prints_no_job_lines_but_uploads_the_log(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('quiet line')\n")
    result = bridge_job.run("--no-follow-logs")
    assert result.returncode == 0, result.stderr
    assert result.job_lines == []
    assert bridge_job.log_text().rstrip("\n").endswith("quiet line")


# -- what Ray's tail sends, and how raypod shows it -------------------------------------------
#: Windows line ends, a progress bar redrawn with \r, and a last line without a newline.
NEWLINES_JOB = """\
import sys, time
out = sys.stdout
out.write("crlf line\\r\\n")
out.write("progress 1\\rprogress 2\\rprogress 3\\n")
out.flush()
time.sleep(2)
out.write("no newline at the end")
out.flush()
"""
#: A byte that is not UTF-8, while the job runs on for a while after it.
NOT_UTF8_JOB = """\
import sys, time
print("before", flush=True)
sys.stdout.buffer.write(b"bad \\xff byte\\n")
sys.stdout.flush()
for i in range(6):
    print("after", i, flush=True)
    time.sleep(0.5)
"""


def submit_script(job: BridgeJob, text: str) -> tuple[RayJobsClient, str]:
    script = job.root / "tail-job.py"
    script.write_text(text)
    ray = RayJobsClient.connect(job.services.ray_address)
    return ray, ray.submit_job({"entrypoint": f"{sys.executable} {script}"})


def tail_and_file(ray: RayJobsClient, submission_id: str) -> tuple[bytes, int | None, str, bytes]:
    """Everything Ray's tail sends (until it closes), its close code, the job's status as it closed,
    then (once the job ended) the file's own bytes."""
    tail = ray.open_log_tail(submission_id)
    sent = b"".join(ray.tail_chunks(tail))
    status_at_close = ray.get_job(submission_id).status
    wait_until(lambda: ray.get_job(submission_id).terminal, "the job's end")
    return sent, tail.close_code, status_at_close, b"".join(ray.log_chunks(ray.get_job(submission_id)))


def test_rays_tail_sends_the_log_as_text_with_universal_newlines(bridge_job: BridgeJob) -> None:
    ray, submission_id = submit_script(bridge_job, NEWLINES_JOB)
    sent, code, status_at_close, file_bytes = tail_and_file(ray, submission_id)
    assert (code, status_at_close) == (1000, "SUCCEEDED")
    assert file_bytes.endswith(b"crlf line\r\nprogress 1\rprogress 2\rprogress 3\nno newline at the end")
    # Ray's job agent reads the file with open(path, "r"): \r\n and \r arrive as \n. The byte count
    # differs by the \r\n; the \r that became \n leaves no trace at all.
    assert sent == universal(file_bytes)
    assert len(sent) == len(file_bytes) - 1


def test_a_normal_close_of_rays_tail_does_not_prove_the_log_complete(bridge_job: BridgeJob) -> None:
    ray, submission_id = submit_script(bridge_job, NOT_UTF8_JOB)
    sent, code, status_at_close, file_bytes = tail_and_file(ray, submission_id)
    assert b"bad \xff byte\nafter 0\n" in file_bytes and b"after 5\n" in file_bytes
    # The agent's text reader fails on the byte; the tail still closes with 1000, as after a
    # complete log, while the job runs on, having sent nothing from the failing read on.
    assert code == 1000
    assert status_at_close == "RUNNING"
    assert b"after" not in sent
    assert len(sent) < len(file_bytes)


def job_lines(stdout: str) -> list[str]:
    """The job's own lines raypod printed (Ray's start-up lines left out)."""
    lines = [line[len(JOB_LINE_PREFIX) :] for line in stdout.splitlines() if line.startswith(JOB_LINE_PREFIX)]
    return [line for line in lines if "job_manager.py" not in line and not line.startswith("Running entrypoint")]


def test_lines_are_shown_alike_whether_the_tail_or_the_final_read_brought_them(bridge_job: BridgeJob) -> None:
    with Proxy("127.0.0.1", bridge_job.services.ray.port) as proxy:
        bridge_job.set(resourceURL=proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript=NEWLINES_JOB)
        result = bridge_job.run()
        paths = [request.path.split("?")[0] for request in proxy.recorded()]
    assert result.returncode == 0, result.stderr
    assert job_lines(result.stdout) == ["crlf line", "progress 1", "progress 2", "progress 3", "no newline at the end"]
    # S3 gets the file's own bytes, whatever was shown.
    assert bridge_job.log_text().endswith("crlf line\r\nprogress 1\rprogress 2\rprogress 3\nno newline at the end")
    # Ray's tail while it runs (none when the first look found the short job ended), then the file's read.
    assert len([path for path in paths if path.endswith("/logs/tail")]) <= 1
    assert paths.count("/api/v0/logs/stream") == 0
    assert paths.count("/api/v0/logs/file") == 1


TICKS_JOB = "import time\nfor i in range(12):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"


def test_behind_a_proxy_that_drops_the_upgrade_the_output_is_shown_whole_at_the_end_and_no_stream_is_opened(
    bridge_job: BridgeJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray 2.60 answers such a request only once the job has ended: raypod waits this long, not that.
    monkeypatch.setattr("raypod.ray.TAIL_HANDSHAKE_TIMEOUT", 1.0)
    with Proxy("127.0.0.1", bridge_job.services.ray.port, websockets=False) as proxy:
        ray, submission_id = submit_script(bridge_job, TICKS_JOB)
        ray = RayJobsClient.connect(proxy.url)
        out = io.StringIO()
        echo = LineEcho(out)
        live = LiveLog(ray, echo)
        job = ray.get_job(submission_id)
        while not job.terminal:  # the session's polls, bounded by the job's own length
            live.observe(job)
            time.sleep(0.3)
            job = ray.get_job(submission_id)
        shown_while_running = out.getvalue()
        live.stop()
        echo_rest(ray, job, echo)
        paths = [request.path.split("?")[0] for request in proxy.recorded()]
    # The tail refused, nothing is shown live (the state API's stream would hold a request of Ray's
    # for good); the final pass prints every line once.
    assert job_lines(shown_while_running) == []
    assert job_lines(out.getvalue()) == [f"tick {i}" for i in range(12)]
    assert len([path for path in paths if path.endswith("/logs/tail")]) == 1
    assert paths.count("/api/v0/logs/stream") == 0


def test_a_job_that_prints_bytes_that_are_not_utf8_shows_each_line_once(bridge_job: BridgeJob) -> None:
    with Proxy("127.0.0.1", bridge_job.services.ray.port, keep_alive=True) as proxy:
        bridge_job.set(resourceURL=proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript=NOT_UTF8_JOB)
        result = bridge_job.run()
        paths = [request.path.split("?")[0] for request in proxy.recorded()]
    assert result.returncode == 0, result.stderr
    assert job_lines(result.stdout) == ["before", "bad \ufffd byte", *[f"after {i}" for i in range(6)]]
    assert "\\xff" not in result.stdout
    client = bridge_job.services.s3.client()
    response = client.get_object(bridge_job.bucket, f"{bridge_job.name}/logs")
    try:
        assert b"bad \xff byte\n" in response.read()
    finally:
        response.close()
        response.release_conn()
    # Ray's tail stops at such a byte; the final read of the file's bytes prints the rest.
    assert len([path for path in paths if path.endswith("/logs/tail")]) <= 1
    assert paths.count("/api/v0/logs/stream") == 0
