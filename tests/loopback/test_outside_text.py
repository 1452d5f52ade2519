"""Text from the dashboard is made safe where it enters: a lone surrogate in Ray's message (valid
JSON) never crashes a pod or the next one, and a token the dashboard echoes, cut anywhere (by Ray's
4096-character message cap, by an error body's cap, by a summary), leaves no piece of itself in
stdout, stderr, the log or the status. Whole pods in-process against a scripted dashboard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raypod.cli import main
from raypod.http import MAX_ERROR_BODY
from raypod.ray import MAX_MESSAGE
from tests.support.hostile import (
    TOKEN,
    Pod,
    PodRun,
    Step,
    capture_logs,
    check_exit_matches_status,
    job_answer,
    pod_environment,
    scratch,
)
from tests.support.scripted_server import ECHO_AUTH, Answer, ScriptedServer, Seen

#: A run of this many characters of the token, anywhere, is a leak.
PIECE = 8
SURROGATE_MESSAGE = "Job is running: caf\\ud800 \\udfff done"


def leaks(text: str) -> list[str]:
    return [TOKEN[i : i + PIECE] for i in range(len(TOKEN) - PIECE + 1) if TOKEN[i : i + PIECE] in text]


def surrogate_job(seen: Seen, status: str) -> Answer:
    """Ray's job answer whose message holds lone surrogates, spelled as JSON escapes (valid JSON)."""
    submission_id = seen.bare_path.rsplit("/", 1)[1]
    body = job_answer(submission_id, status).body.decode()
    quoted = json.dumps(f"Job is {status.lower()}.")
    return Answer(body=body.replace(quoted, f'"{SURROGATE_MESSAGE}"').encode())


@pytest.fixture
def pods(server: ScriptedServer, caplog: pytest.LogCaptureFixture) -> Iterator[ScriptedServer]:
    server.reset()
    capture_logs(caplog)
    yield server


def run_with_result(
    pod: Pod, result_file: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> PodRun:
    capsys.readouterr()
    caplog.clear()
    with pod_environment():
        code = main([*pod.argv(600, 0.5), "--result", str(result_file)])
    out, err = capsys.readouterr()
    status = json.loads(pod.status_file.read_text()) if pod.status_file.is_file() else {}
    return PodRun(code, out, err, caplog.text, status, list(pod.server.seen))


def test_a_lone_surrogate_in_rays_message_reaches_status_stdout_and_result_without_a_crash(
    pods: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pod = Pod(tmp_path / "pod", pods)
    pod.dashboard.script(
        "poll", lambda seen: surrogate_job(seen, "RUNNING"), lambda seen: surrogate_job(seen, "SUCCEEDED")
    )

    result = run_with_result(pod, tmp_path / "result.json", capsys, caplog)

    result.assert_clean()
    check_exit_matches_status(result)
    assert result.code == 0 and result.status["status.jobStatus"] == "SUCCEEDED"
    assert "Job is running: caf? ? done" in result.out  # the RUNNING status line, as printed
    for text in (result.out, result.err, result.log, (tmp_path / "result.json").read_text(), json.dumps(result.status)):
        text.encode("utf-8")  # strict: raises on a surrogate
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "SUCCEEDED"


def test_the_next_pod_attaches_and_ends_although_ray_and_the_record_hold_a_lone_surrogate(
    pods: ScriptedServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    submission_id = "raypod-hostile-0123456789ab"
    recorded = {"id": submission_id, "status.jobStatus": "RUNNING", "status.message": "Ray said \ud800"}
    pod = Pod(tmp_path / "pod", pods, recorded=recorded)  # json.dumps writes it as the escape \\ud800
    pod.dashboard.has(submission_id)
    running: Step = lambda seen: surrogate_job(seen, "RUNNING")  # noqa: E731 - a step of the script
    pod.dashboard.script("poll", running, running, running, lambda seen: surrogate_job(seen, "SUCCEEDED"))

    result = run_with_result(pod, tmp_path / "result.json", capsys, caplog)

    result.assert_clean()
    assert result.code == 0 and result.status["id"] == submission_id
    assert result.status["status.jobStatus"] == "SUCCEEDED" and pod.dashboard.posts == 0
    for text in (result.out, result.err, result.log, (tmp_path / "result.json").read_text()):
        text.encode("utf-8")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kept=st.integers(0, len(TOKEN)))
def test_rays_message_cut_inside_an_echoed_token_leaks_no_piece_of_it(
    pods: ScriptedServer, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, kept: int
) -> None:
    # Ray's message is kept to MAX_MESSAGE characters: the cut leaves ``kept`` characters of the token,
    # which one_line then finds as the first line of the message.
    message = "\n" * (MAX_MESSAGE - kept) + "@AUTH@-tail"

    def failed_echoing(seen: Seen) -> Answer:
        submission_id = seen.bare_path.rsplit("/", 1)[1]
        body = json.dumps(json.loads(job_answer(submission_id, "FAILED").body) | {"message": message})
        return Answer(body=body.replace("@AUTH@", seen.credentials.removeprefix("Bearer ")).encode())

    pods.reset()
    with scratch() as root:
        pod = Pod(root / "pod", pods)
        pod.dashboard.script("poll", "RUNNING", failed_echoing)
        result = pod.run(capsys, caplog, status_timeout=600)
    check_exit_matches_status(result)
    assert result.status["status.jobStatus"] == "FAILED"
    assert leaks(result.text) == [], result.status


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(MAX_ERROR_BODY - len("Bearer ") - len(TOKEN) - 2, MAX_ERROR_BODY + 2), utf8=st.booleans())
def test_an_error_body_cut_inside_an_echoed_token_leaks_no_piece_of_it(
    pods: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    offset: int,
    utf8: bool,
) -> None:
    # Two-byte characters before the token move its bytes past the body cap while its characters are not.
    padding = ("é" * (offset // 2) if utf8 else "x" * offset).encode()
    refusal = Answer(400, padding + b"\n" + ECHO_AUTH + b" was refused", "text/plain; charset=utf-8")

    pods.reset()
    with scratch() as root:
        pod = Pod(root / "pod", pods)
        pod.dashboard.script("post", refusal)
        result = pod.run(capsys, caplog, status_timeout=600)
    check_exit_matches_status(result)
    assert result.status["status.jobStatus"] == "FAILED"
    assert leaks(result.text) == [], result.status
