"""The commands for humans and CI, run as subprocesses against the real Ray head (no HTTP mocking)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import client_args, raypod
from tests.support.helpers import BridgeJob, Services, ray_job, unique, wait_for_ray_status


@dataclass
class FinishedJob:
    submission_id: str
    submit: subprocess.CompletedProcess[str]


FLAGS_SCRIPT = """\
import json, os, sys
print("ARGV " + json.dumps(sys.argv[1:]))
print("MODE " + os.environ["MODE"])
for i in range(3):
    print("line", i)
"""


@pytest.fixture(scope="module")
def finished_job(services: Services, tmp_path_factory: pytest.TempPathFactory) -> FinishedJob:
    """One job submitted with flags and followed to its end, shared by the read-only commands."""
    root = tmp_path_factory.mktemp("flags")
    script = root / "flags_job.py"
    script.write_text(FLAGS_SCRIPT)
    completed = raypod(
        "submit",
        *client_args(services, root),
        "--script",
        str(script),
        "--param",
        "greeting=hello  world",
        "--param",
        "count=3",
        "--env",
        "MODE=batch=1",
        "--wait",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return FinishedJob(completed.stdout.splitlines()[0], completed)


# -- against the real Ray ------------------------------------------------------------------------
def test_submit_with_flags_prints_the_id_first_and_wait_exits_0_with_the_output(
    finished_job: FinishedJob, services: Services
) -> None:
    lines = finished_job.submit.stdout.splitlines()
    assert finished_job.submission_id.startswith("raypod-flags-job-")
    job_lines = [line.removeprefix("[job] ") for line in lines[1:]]
    assert 'ARGV ["--kwargs", "greeting=hello  world", "count=3"]' in job_lines
    assert "MODE batch=1" in job_lines
    assert "line 2" in job_lines
    assert "SUCCEEDED: Job succeeded." in finished_job.submit.stderr
    info = ray_job(services, finished_job.submission_id)
    assert info["status"] == "SUCCEEDED"
    assert info["metadata"] == {"bridge-job": "flags-job"}


def test_submit_passes_the_callers_trace_context_to_the_ray_job(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "traced.py"
    script.write_text("print('traced')\n")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # as CI sets it

    completed = raypod(
        "submit", *client_args(services, tmp_path), "--script", str(script), "--job-name", "traced",
        env={"TRACEPARENT": traceparent, "HOSTNAME": "ci-runner"},
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    # Outside a pod the hostname names no pod: only the trace context joins the job's own key.
    metadata = ray_job(services, completed.stdout.strip())["metadata"]
    assert metadata == {"bridge-job": "traced", "traceparent": traceparent}


def test_submit_without_wait_prints_only_the_id(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "quick.py"
    script.write_text("print('quick')\n")
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--job-name", "quick")
    assert completed.returncode == 0, completed.stderr
    submission_id = completed.stdout.strip()
    assert "\n" not in submission_id and submission_id.startswith("raypod-quick-")
    assert wait_for_ray_status(services, submission_id, {"SUCCEEDED"}) == "SUCCEEDED"


def test_submit_config_wait_exits_1_when_the_job_fails_and_uploads_its_log(bridge_job: BridgeJob) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import sys\nprint('failing on purpose')\nsys.exit(4)\n",
    )
    bridge_job.write_config()
    completed = raypod(
        "submit",
        "--config",
        str(bridge_job.config_dir),
        "--job-name",
        bridge_job.name,
        "--credentials",
        str(bridge_job.credentials_dir),
        "--s3-credentials",
        str(bridge_job.s3_credentials_dir),
        "--wait",
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    submission_id = completed.stdout.splitlines()[0]
    assert ray_job(bridge_job.services, submission_id)["status"] == "FAILED"
    assert "[job] failing on purpose" in completed.stdout
    assert "FAILED: Job failed" in completed.stderr
    assert "failing on purpose" in bridge_job.log_text()


def test_submit_with_a_bad_flag_exits_2_naming_the_flag_and_submits_nothing(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "never.py"
    script.write_text("print('never')\n")
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--param", "expr=a=b")
    assert completed.returncode == 2
    assert "--param: parameter 'expr' has '='" in completed.stderr
    assert completed.stdout == ""


def test_status_prints_a_readable_summary(finished_job: FinishedJob, services: Services, tmp_path: Path) -> None:
    completed = raypod("status", finished_job.submission_id, *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    fields = dict(line.split(":", 1) for line in completed.stdout.splitlines())
    assert fields["submission id"].strip() == finished_job.submission_id
    assert fields["status"].strip() == "SUCCEEDED"  # Ray's word, no Bridge vocabulary
    assert fields["driver exit code"].strip() == "0"
    assert fields["start"].strip().endswith("Z")


def test_status_json_is_rays_job_info(finished_job: FinishedJob, services: Services, tmp_path: Path) -> None:
    completed = raypod("status", finished_job.submission_id, "--json", *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    info = json.loads(completed.stdout)
    assert info["submission_id"] == finished_job.submission_id
    assert info["status"] == "SUCCEEDED"
    assert info["runtime_env"]["env_vars"] == {"MODE": "batch=1"}


def test_status_of_an_unknown_job_exits_1_saying_so(services: Services, tmp_path: Path) -> None:
    missing = unique("no-such-job")
    completed = raypod("status", missing, *client_args(services, tmp_path))
    assert completed.returncode == 1
    assert f"Ray has no job {missing}" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_list_shows_the_job_in_a_table_and_as_json(
    finished_job: FinishedJob, services: Services, tmp_path: Path
) -> None:
    completed = raypod("list", *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    header, *rows = completed.stdout.splitlines()
    assert header.split()[:3] == ["SUBMISSION", "ID", "STATUS"]
    row = next(row for row in rows if row.startswith(finished_job.submission_id + " "))
    assert row.split()[1:3] == ["SUCCEEDED", "flags-job"]
    completed = raypod("list", "--json", *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    jobs = {job["submission_id"]: job for job in json.loads(completed.stdout)}
    assert jobs[finished_job.submission_id]["status"] == "SUCCEEDED"


def test_logs_prints_the_jobs_output_as_written(finished_job: FinishedJob, services: Services, tmp_path: Path) -> None:
    completed = raypod("logs", finished_job.submission_id, *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert "MODE batch=1" in lines
    assert lines[-3:] == ["line 0", "line 1", "line 2"]
    assert not any(line.startswith("[job]") for line in lines)


def test_logs_follow_streams_every_line_once_until_the_job_ends(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "ticker.py"
    script.write_text("import time\nfor i in range(12):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n")
    submitted = raypod("submit", *client_args(services, tmp_path), "--script", str(script))
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.strip()
    completed = raypod("logs", submission_id, "--follow", *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    ticks = [line for line in completed.stdout.splitlines() if line.startswith("tick ")]
    assert ticks == [f"tick {i}" for i in range(12)]
    assert f"job {submission_id} ended SUCCEEDED" in completed.stderr


def test_stop_stops_a_running_job_and_waits_for_ray(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n")
    submitted = raypod("submit", *client_args(services, tmp_path), "--script", str(script))
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.strip()
    wait_for_ray_status(services, submission_id, {"RUNNING"})
    completed = raypod("stop", submission_id, *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"{submission_id}: STOPPED"
    assert ray_job(services, submission_id)["status"] == "STOPPED"
    again = raypod("stop", submission_id, *client_args(services, tmp_path))
    assert again.returncode == 0
    assert "had already ended: STOPPED" in again.stdout


def test_address_comes_from_the_environment_like_the_ray_cli(
    finished_job: FinishedJob, services: Services, tmp_path: Path
) -> None:
    status = ["status", finished_job.submission_id, "--credentials", str(tmp_path)]
    # RAY_API_SERVER_ADDRESS wins over RAY_ADDRESS.
    completed = raypod(
        *status, env={"RAY_API_SERVER_ADDRESS": services.ray_address, "RAY_ADDRESS": "http://127.0.0.1:9"}
    )
    assert completed.returncode == 0, completed.stderr
    # RAY_ADDRESS alone, as a bare host:port, means http.
    completed = raypod(*status, env={"RAY_ADDRESS": services.ray_address.removeprefix("http://")})
    assert completed.returncode == 0, completed.stderr
    assert finished_job.submission_id in completed.stdout
    # --address wins over both.
    completed = raypod(*status, "--address", services.ray_address, env={"RAY_ADDRESS": "http://127.0.0.1:9"})
    assert completed.returncode == 0, completed.stderr
    # A Ray Client address is not the dashboard's: a clear error, nothing contacted.
    completed = raypod(*status, env={"RAY_ADDRESS": "ray://127.0.0.1:10001"})
    assert completed.returncode == 2
    assert "RAY_ADDRESS: 'ray://127.0.0.1:10001' is a Ray Client address" in completed.stderr
    completed = raypod(*status)
    assert completed.returncode == 2
    assert "--address: missing" in completed.stderr
