"""Every HTTP call has a total deadline: a server that trickles its answer one byte at a time (never
hitting the read timeout) cannot hold a call, a poll or the watch. On loopback, against the
scripted server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from raypod.call_deadline import CallDeadline
from raypod.config import S3Settings
from raypod.credentials import S3Credentials
from raypod.errors import ApiError, RayApiError, S3Error
from raypod.http import HttpClient, Timeouts
from raypod.jobdata import S3Location
from raypod.retry import NO_RETRY
from raypod.s3 import S3Store
from tests.support.hostile import Pod, PodRun, capture_logs, check_exit_matches_status, job_answer
from tests.support.scripted_server import Answer, ScriptedServer, Seen

#: A job answer of ~400 bytes sent a byte every 0.2 s: far longer than any bound below, and each
#: byte comes well within every read timeout.
TRICKLE = 0.2
SLOW_JOB = json.dumps({"status": "RUNNING", "message": "x" * 400}).encode()


def test_a_trickled_answer_ends_at_the_calls_total_deadline_as_a_transient_error(server: ScriptedServer) -> None:
    server.reset()
    server.script("GET", "/slow", Answer(body=SLOW_JOB, trickle=TRICKLE))
    client = HttpClient(server.url, error_class=RayApiError, retry=NO_RETRY)

    with pytest.raises(RayApiError) as raised:
        client.json("GET", "/slow", timeouts=Timeouts(connect=2.0, read=2.0, total=1.0))

    assert raised.value.transient and raised.value.status is None
    assert "no complete answer within 1 s" in raised.value.reason
    assert 0 < server.sent < len(SLOW_JOB)


def test_the_default_total_is_connect_plus_read(server: ScriptedServer) -> None:
    server.reset()
    server.script("GET", "/slow", Answer(body=SLOW_JOB, trickle=TRICKLE))
    client = HttpClient(server.url, retry=NO_RETRY, timeouts=Timeouts(connect=0.5, read=1.0))

    with pytest.raises(ApiError, match=r"within 1\.5 s"):
        client.request("GET", "/slow")  # the whole body is read: stream=False


def test_a_call_within_its_deadline_is_untouched_and_a_late_timer_spares_the_pooled_connection(
    server: ScriptedServer,
) -> None:
    server.reset()
    server.json("GET", "/fast", {"ok": True})
    client = HttpClient(server.url, retry=NO_RETRY, timeouts=Timeouts(connect=2.0, read=2.0, total=0.3))
    for _ in range(3):
        assert client.json("GET", "/fast") == {"ok": True}
    # The timers of the calls above have passed by now, after their calls ended: nothing was cut.
    done = threading.Event()
    done.wait(0.5)
    assert client.json("GET", "/fast") == {"ok": True}


def test_a_deadline_without_a_call_expires_harmlessly() -> None:
    with CallDeadline(0.01) as deadline:
        threading.Event().wait(0.2)
    assert deadline.expired


# -- the watch, while the dashboard trickles -------------------------------------------------------------
@pytest.fixture
def make_pod(tmp_path: Path, server: ScriptedServer, caplog: pytest.LogCaptureFixture) -> Callable[..., Pod]:
    server.reset()
    capture_logs(caplog)
    return lambda: Pod(tmp_path / "pod", server)


def run(pod: Pod, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, **timeouts: float) -> PodRun:
    result = pod.run(capsys, caplog, **timeouts)
    result.assert_clean()
    check_exit_matches_status(result)
    return result


def test_kill_is_honoured_while_the_dashboard_trickles_its_answers(
    make_pod: Callable[..., Pod], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod()

    def trickle_until_stopped(seen: Seen) -> Answer:
        submission_id = seen.bare_path.rsplit("/", 1)[1]
        if submission_id in pod.dashboard.stopped:
            return job_answer(submission_id, "STOPPED", message="Job was intentionally stopped.")
        (pod.config_dir / "kill").write_text("true")  # the operator sets kill while the poll hangs
        return Answer(body=SLOW_JOB, trickle=TRICKLE)

    pod.dashboard.script("poll", trickle_until_stopped)

    result = run(pod, capsys, caplog, status_timeout=600)

    assert result.status["status.jobStatus"] == "KILL" and result.code == 1
    assert pod.dashboard.count("POST", "/api/jobs/*/stop") >= 1
    assert "total deadline" in result.log  # the slow poll ended as a failed poll


def test_the_status_timeout_ends_the_run_while_the_dashboard_trickles(
    make_pod: Callable[..., Pod], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod()
    pod.dashboard.script("poll", Answer(body=SLOW_JOB, trickle=TRICKLE))

    result = run(pod, capsys, caplog, status_timeout=5)

    assert result.status["status.jobStatus"] == "UNKNOWN" and result.code == 1
    assert result.message.startswith("No answer from the Ray dashboard for ")
    assert "total deadline" in result.message
    assert pod.dashboard.count("POST", "/api/jobs/*/stop") == 0  # the job is left alone, as documented


def test_an_s3_read_trickled_a_byte_at_a_time_ends_at_its_total_deadline(server: ScriptedServer) -> None:
    server.reset()
    location = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">us-east-1</LocationConstraint>'
    )
    server.script("GET", "/inputs", Answer(body=location, content_type="application/xml"))
    server.script("GET", "/inputs/params.json", Answer(body=SLOW_JOB, content_type="application/json", trickle=TRICKLE))
    store = S3Store(
        S3Settings(server.url.removeprefix("http://"), secure=False, secret_name="s3"),
        S3Credentials("access-key-1234", "secret-key-5678"),
        retry=NO_RETRY,
    )
    store.call_deadline = 1.0

    with pytest.raises(S3Error) as raised:
        store.read_text(S3Location("inputs", "params.json"), "jobdata.jobParameters")

    assert raised.value.transient and "no complete answer within 1 s" in str(raised.value)
    assert 0 < server.sent < len(location) + len(SLOW_JOB)


def test_one_trickled_version_answer_leaves_the_connect_phase_time_to_ask_again(server: ScriptedServer) -> None:
    # The soak's seed 4068: one trickled /api/version held the call past the whole connect budget,
    # and a retry's submission ended the job with retries left.
    from raypod.ray import VERSION_TIMEOUTS, RayJobsClient
    from raypod.retry import RetryPolicy

    server.reset()
    server.route(
        "GET",
        "/api/version",
        Answer(body=SLOW_JOB, trickle=TRICKLE),
        Answer(body=b'{"version": "4", "ray_version": "2.60.0"}'),
    )
    client = RayJobsClient.connect(server.url, retry=NO_RETRY)
    connect_budget = RetryPolicy(initial_wait=0.1, max_wait=0.5).with_deadline(VERSION_TIMEOUTS.total * 2.5)

    assert client.version(retry=connect_budget)["ray_version"] == "2.60.0"
    client.close()
    assert server.count("GET", "/api/version") == 2
