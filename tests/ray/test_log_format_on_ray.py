"""``--log-format json``: stderr's log lines become one JSON object each (ts, level, msg, configmap,
submission_id, attempt), for log collectors; stdout (status lines, the job's output, data) is unchanged.
The pod's identity from the Downward API's variables reaches Ray's own record of the job. And every
command of the command line (``submit --wait`` of a job that succeeds and of one that fails, ``status``,
``logs``, ``list``, ``stop``, ``delete``, an unreachable address, a refused token) writes nothing on
stderr but JSON objects."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

from devtools.services import LocalRay
from tests.support.cli import client_args, raypod
from tests.support.helpers import BridgeJob, Services, ray_job, unique, wait_for_ray_status
from tests.support.ray_auth import credentials_dir

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # the operator's 2006-01-02T15:04:05Z


def test_every_log_line_is_a_json_object_naming_the_job_once_its_id_is_known(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('to stdout', flush=True)\n")

    result = bridge_job.run("--log-format", "json")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, "a run logs at INFO"
    for line in lines:
        assert set(line) == {"ts", "level", "msg", "configmap", "submission_id", "attempt"}, line
        assert TIME.match(line["ts"]) and line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert line["configmap"] == f"test-ns/{bridge_job.name}-bridge-cm", line
    submission_id = result.status["id"]
    assert any(line["submission_id"] == submission_id for line in lines)
    assert {(line["submission_id"], line["attempt"]) for line in lines} <= {(None, None), (submission_id, 1)}
    # stdout keeps its plain lines: the status changes and the job's output.
    assert "[job] to stdout" in result.stdout
    assert "SUCCEEDED: Job succeeded" in result.stdout


UID = "0b6c9a52-3d0e-4a53-9a57-2f3c1d6e9b10"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_pods_identity_and_the_trace_context_reach_rays_record_of_the_job(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('traced', flush=True)\n")
    pod = {"POD_NAME": f"{bridge_job.name}-pod", "POD_UID": UID, "NODE_NAME": "node-1", "TRACEPARENT": TRACEPARENT}

    result = bridge_job.run("--log-format", "json", env=pod)

    assert result.returncode == 0, result.stderr
    # Ray's own job info, as its dashboard, `ray job list` and `raypod status` show it.
    assert ray_job(bridge_job.services, result.status["id"])["metadata"] == {
        "bridge-job": bridge_job.name,
        "bridge-namespace": "test-ns",
        "bridge-pod": f"{bridge_job.name}-pod",
        "bridge-pod-uid": UID,
        "bridge-pod-node": "node-1",
        "traceparent": TRACEPARENT,
    }


def test_a_malformed_trace_context_is_left_out_and_the_job_runs(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('traced', flush=True)\n")

    result = bridge_job.run(env={"POD_NAME": "Not A Pod", "TRACEPARENT": "00-zz-00f067aa0ba902b7-01"})

    assert result.returncode == 0, result.stderr
    metadata = ray_job(bridge_job.services, result.status["id"])["metadata"]
    assert metadata == {"bridge-job": bridge_job.name, "bridge-namespace": "test-ns"}


# -- every command of the command line, on the real head: every stderr line a JSON object ------------
SHAPE = {"ts", "level", "msg", "configmap", "submission_id", "attempt"}


def json_stderr(completed: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """Every line of stderr as a JSON object of the documented shape (a plain line fails here)."""
    lines = [json.loads(line) for line in completed.stderr.splitlines() if line.strip()]
    for line in lines:
        assert isinstance(line, dict) and set(line) >= SHAPE, line
        assert TIME.match(line["ts"]) and line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR"), line
    return lines


def cli(services: Services, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return raypod(*args, *client_args(services, tmp_path), "--log-format", "json", env={"HOME": str(tmp_path)})


def test_submit_wait_of_a_succeeding_and_a_failing_job_prints_only_json_lines(
    services: Services, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "ok.py").write_text("print('fine', flush=True)\n")
    (project / "fails.py").write_text("import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n")
    (project / "weights.bin").write_bytes(os.urandom(8 * 1024 * 1024))  # a package worth zipping

    ok = cli(services, tmp_path, "submit", "--working-dir", str(project), "--script", "ok.py", "--wait")
    failed = cli(services, tmp_path, "submit", "--working-dir", str(project), "--script", "fails.py", "--wait")

    assert ok.returncode == 0, ok.stderr
    said = json_stderr(ok)
    assert any(line["msg"].startswith("SUCCEEDED: ") for line in said), said
    assert ok.stdout.splitlines()[0].startswith("raypod-ok-")  # data: the id, then the job's output
    assert "fine" in ok.stdout
    assert failed.returncode == 1, failed.stderr
    said = json_stderr(failed)
    assert any(line["msg"].startswith("FAILED: ") for line in said), said
    assert "about to fail" in failed.stdout


def test_status_logs_list_stop_and_delete_print_only_json_lines(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    submitted = cli(services, tmp_path, "submit", "--script", str(script), "--job-name", unique("json-lines"))
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.strip()
    wait_for_ray_status(services, submission_id, {"RUNNING"})

    finished = [
        cli(services, tmp_path, "status", submission_id),
        cli(services, tmp_path, "logs", submission_id),
        cli(services, tmp_path, "list"),
        cli(services, tmp_path, "delete", submission_id),  # refused: still running
        cli(services, tmp_path, "stop", submission_id),
        cli(services, tmp_path, "delete", submission_id),
        cli(services, tmp_path, "status", submission_id),  # Ray has no such job any more
    ]

    assert [completed.returncode for completed in finished] == [0, 0, 0, 1, 0, 0, 1], [c.stderr for c in finished]
    for completed in (submitted, *finished):
        json_stderr(completed)
    assert all(line["level"] == "ERROR" for line in json_stderr(finished[3])), finished[3].stderr
    assert json_stderr(finished[-1])[-1]["level"] == "ERROR"
    assert "status:" in finished[0].stdout and submission_id in finished[2].stdout  # data, plain


def test_an_unreachable_address_and_a_refused_token_end_in_json_lines_at_error(
    tmp_path: Path, token_ray: LocalRay
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}"
    home = {"HOME": str(tmp_path)}
    unreachable = raypod("list", "--address", nobody, "--credentials", str(tmp_path), "--log-format", "json", env=home)
    refused = raypod(
        "status", "raypod-x-0", "--address", token_ray.address, "--credentials", str(credentials_dir(tmp_path)),
        "--log-format", "json", env=home,
    )  # fmt: skip

    for completed, said in ((unreachable, nobody), (refused, "401")):
        assert completed.returncode == 1, completed.stderr
        lines = json_stderr(completed)
        assert lines[-1]["level"] == "ERROR" and said in lines[-1]["msg"], lines
