"""Outside the operator's pod raypod speaks like a command line (docs/cli.md#output): a status line is
Ray's status and message, nothing is said about an S3 upload nobody asked for, a submit that never
reached Ray prints only its error, Ctrl-C says how to find the job again and exits 130, and a bare
``raypod`` prints the usage. The operator's pod (its status in the ConfigMap, started with no
arguments) keeps its key lines. Each runs the real command line, a child process, against a
scripted dashboard and, for the pod, the fake Kubernetes API."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fake_kube import FakeKube
from tests.support.cli import raypod, raypod_process
from tests.support.helpers import Watched
from tests.support.hostile import BASE_CONFIG, Dashboard, job_answer
from tests.support.scripted_server import ScriptedServer

#: A line of a command line's status: the time, then Ray's status and the message.
CLI_STATUS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (SUBMITTED|PENDING|RUNNING|SUCCEEDED|FAILED): \S", re.M)
NOT_UPLOADED = "the log was not uploaded"
#: Bounds of the tests' own waits (real seconds).
WITHIN = 60.0


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    with ScriptedServer() as server:
        yield Dashboard(server, tmp_path)


def client(dashboard: Dashboard, tmp_path: Path) -> list[str]:
    return ["--address", dashboard.server.url, "--credentials", str(tmp_path)]


def script_file(tmp_path: Path) -> str:
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    return str(script)


def config_dir(dashboard: Dashboard, tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    for key, value in {"resourceURL": dashboard.server.url, **BASE_CONFIG}.items():
        (config / key).write_text(value)
    return config


# -- status lines and the upload nobody asked for -------------------------------------------------------
def test_submit_wait_prints_rays_status_and_message_not_the_pods_keys(dashboard: Dashboard, tmp_path: Path) -> None:
    dashboard.script("poll", "PENDING", "RUNNING", "SUCCEEDED")

    completed = raypod(
        "submit", *client(dashboard, tmp_path), "--script", script_file(tmp_path), "--interval", "0.5",
        "--no-follow-logs", "--wait",
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert CLI_STATUS.findall(completed.stderr)[0] == "SUBMITTED"
    assert "SUCCEEDED: Job succeeded." in completed.stderr.splitlines()[-1]
    assert "status." not in completed.stderr  # no ConfigMap key
    assert NOT_UPLOADED not in completed.stderr  # no S3 was asked for: nothing to say
    assert completed.stdout.splitlines() == [dashboard.accepted[0]]


def test_verbose_still_says_the_log_was_not_uploaded(dashboard: Dashboard, tmp_path: Path) -> None:
    completed = raypod(
        "submit", *client(dashboard, tmp_path), "--script", script_file(tmp_path), "--no-follow-logs", "--wait", "-v"
    )

    assert completed.returncode == 0, completed.stderr
    assert NOT_UPLOADED in completed.stderr


def test_run_without_kubernetes_speaks_like_a_cli_and_its_status_file_keeps_the_keys(
    dashboard: Dashboard, tmp_path: Path
) -> None:
    status_file = tmp_path / "status.json"

    completed = raypod(
        "run", "--config", str(config_dir(dashboard, tmp_path)), "--status-file", str(status_file),
        "--credentials", str(tmp_path), "--no-follow-logs", env={"JOBNAME": "words"},
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert CLI_STATUS.findall(completed.stdout)[-1] == "SUCCEEDED"
    assert "status.jobStatus=" not in completed.stdout
    status = json.loads(status_file.read_text())
    assert (status["status.jobStatus"], status["status.message"]) == ("SUCCEEDED", "Job succeeded.")


def test_the_operators_pod_started_with_no_arguments_keeps_its_key_lines(
    dashboard: Dashboard, fake_kube: FakeKube, tmp_path: Path
) -> None:
    name = "podvoice"
    fake_kube.create_configmap(f"{name}-bridge-cm", {"resourceURL": dashboard.server.url, **BASE_CONFIG})
    env = {**fake_kube.env(), "JOBNAME": name, "NAMESPACE": fake_kube.namespace}

    completed = raypod(env=env)  # no arguments, as the operator starts the image

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "status.jobStatus=SUCCEEDED" in completed.stdout  # the keys it writes, as the pod's log shows them
    message = fake_kube.data(f"{name}-bridge-cm")["status.message"]
    assert message == f"Job succeeded; {NOT_UPLOADED} (no s3.endpoint and s3upload.bucket)."


# -- a submit that never reached Ray ----------------------------------------------------------------------
def test_a_submit_that_never_reached_ray_prints_only_the_error_once(tmp_path: Path) -> None:
    completed = raypod(
        "submit", "--address", "http://127.0.0.1:1", "--connect-timeout", "1", "--credentials", str(tmp_path),
        "--script", script_file(tmp_path),
    )  # fmt: skip

    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.count("cannot reach the Ray dashboard") == 1, completed.stderr
    assert "FAILED" not in completed.stderr and "endTime" not in completed.stderr
    assert completed.stdout == ""


def test_a_submission_ray_rejects_is_said_once(dashboard: Dashboard, tmp_path: Path) -> None:
    dashboard.script("post", "wrapped")  # Ray's 500 around a 400: bad runtime_env

    completed = raypod("submit", *client(dashboard, tmp_path), "--script", script_file(tmp_path), "--wait")

    assert completed.returncode == 1, completed.stderr  # Ray said no (docs/cli.md#exit-codes)
    assert completed.stderr.count("bad runtime_env") == 1, completed.stderr
    assert "FAILED" not in completed.stderr and "endTime" not in completed.stderr


# -- Ctrl-C and SIGTERM during submit --wait ------------------------------------------------------------
@pytest.mark.parametrize(
    ("signum", "code", "word"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_an_interrupted_submit_wait_says_how_to_follow_or_stop_the_job_and_exits_by_the_signal(
    dashboard: Dashboard, tmp_path: Path, signum: signal.Signals, code: int, word: str
) -> None:
    dashboard.script("poll", "RUNNING")
    args = ["submit", *client(dashboard, tmp_path), "--script", script_file(tmp_path), "--no-follow-logs", "--wait"]
    run = Watched(raypod_process(*args, "--interval", "0.5"))
    try:
        run.wait_for("RUNNING: ", timeout=WITHIN)
    finally:
        run.process.send_signal(signum)
    returncode, stdout, stderr = run.finish(timeout=WITHIN)

    submission_id = stdout.splitlines()[0]
    assert returncode == code, stderr
    said = stderr.splitlines()[-1]
    assert f"{word}: Ray job {submission_id} keeps running on Ray" in said
    assert f"raypod logs --follow {submission_id}" in said and f"raypod stop {submission_id}" in said
    assert "--stop-on-interrupt" in said
    assert "next pod" not in stderr and "writing the last status" not in stderr
    assert dashboard.stopped == set()


# -- status ---------------------------------------------------------------------------------------------
def test_status_shows_rays_status_and_error_type_without_bridge_words(dashboard: Dashboard, tmp_path: Path) -> None:
    dashboard.has("s1")
    failed = {"message": "Job entrypoint command failed with exit code 3", "error_type": "JOB_ENTRYPOINT_COMMAND_ERROR"}
    dashboard.script("poll", job_answer("s1", "FAILED", **failed))

    shown = raypod("status", "s1", *client(dashboard, tmp_path))
    raw = raypod("status", "s1", "--json", *client(dashboard, tmp_path))

    assert shown.returncode == 0, shown.stderr
    fields = {key: value.strip() for key, value in (line.split(":", 1) for line in shown.stdout.splitlines())}
    assert (fields["status"], fields["error type"]) == ("FAILED", "JOB_ENTRYPOINT_COMMAND_ERROR")
    assert fields["message"] == failed["message"]
    assert "Bridge" not in shown.stdout and "reason" not in fields
    assert json.loads(raw.stdout)["error_type"] == "JOB_ENTRYPOINT_COMMAND_ERROR"  # Ray's job info as it is


# -- a bare raypod, and a second run of a finished job ----------------------------------------------------
def test_a_bare_raypod_outside_a_pod_prints_the_usage_and_exits_2() -> None:
    completed = raypod()

    assert completed.returncode == 2
    assert completed.stderr.startswith("usage: raypod")
    assert "a command is required" in completed.stderr
    assert "JOBNAME" not in completed.stderr and "FAILED" not in completed.stderr
    assert completed.stdout == ""


@pytest.mark.parametrize("says_pod", [{"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, {"JOBNAME": "mine"}])
def test_a_bare_raypod_in_a_pod_runs_the_pod(says_pod: dict[str, str], tmp_path: Path) -> None:
    env = {**says_pod, "RAYPOD_SERVICE_ACCOUNT_DIR": str(tmp_path / "none")}

    completed = raypod(env=env)

    assert completed.returncode == 2
    assert "usage:" not in completed.stderr
    assert "raypod: bad input: " in completed.stderr  # the pod's own start-up problem: no JOBNAME, or no ConfigMap


def test_a_second_run_of_a_finished_job_says_how_to_run_it_again(dashboard: Dashboard, tmp_path: Path) -> None:
    status_file = tmp_path / "status.json"
    recorded = {"id": "raypod-again-0123456789ab", "status.jobStatus": "SUCCEEDED", "status.message": "Job succeeded."}
    status_file.write_text(json.dumps(recorded))

    completed = raypod(
        "run", "--config", str(config_dir(dashboard, tmp_path)), "--status-file", str(status_file),
        "--credentials", str(tmp_path), env={"JOBNAME": "again"},
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    assert "already ended SUCCEEDED" in completed.stdout
    assert f"to run the job again, delete {status_file} or pass another --status-file" in completed.stdout
    assert not dashboard.server.seen  # nothing contacted
