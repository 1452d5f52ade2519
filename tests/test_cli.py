"""The commands for humans and CI, run as subprocesses against the real Ray head (no HTTP mocking)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from raypod.output import PLAIN_EVERY, Progress
from tests.support.helpers import BridgeJob, Services, ray_job, unique, wait_for_ray_status

#: The caller's Ray settings must not leak into a test.
_SCRUBBED = ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "JOBNAME", "NAMESPACE")


def raypod(*args: str, env: Mapping[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    return subprocess.run(
        [sys.executable, "-m", "raypod", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def client_args(services: Services, credentials: Path) -> list[str]:
    return ["--address", services.ray_address, "--credentials", str(credentials)]


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


# -- without Ray ------------------------------------------------------------------------------
def test_every_command_help_has_an_example_and_help_imports_no_http_library() -> None:
    for command in ("run", "submit", "status", "logs", "stop", "list", "validate"):
        completed = raypod(command, "--help")
        assert completed.returncode == 0, completed.stderr
        assert "example" in completed.stdout and "python -m raypod" in completed.stdout, command
    probe = (
        "import sys\nfrom raypod.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('requests', 'minio', 'tenacity', 'urllib3') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in completed.stdout, completed.stdout
    for command in ("submit", "status", "logs", "stop", "list", "validate"):
        assert command in completed.stdout


def test_version_prints_the_package_version() -> None:
    from raypod import __version__

    completed = raypod("--version")
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"raypod {__version__}"


def test_validate_lists_every_problem_naming_its_key_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "cm"
    config.mkdir()
    for key, value in {
        "resourceURL": "ftp://ray:8265",
        "updateInterval": "twenty",
        "jobdata.scriptLocation": "ftp",
        "jobdata.jobScript": "print(1)",
        "jobdata.jobParameters": '{"expr": "a=b"}',
        "jobproperties": '{"entrypoint_num_cpu": 1, "activeDeadlineSeconds": -5}',
    }.items():
        (config / key).write_text(value)
    completed = raypod("validate", "--config", str(config))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    errors = [line for line in completed.stdout.splitlines() if line.startswith("error: ")]
    keys = [line.split(":")[1].strip() for line in errors]
    assert keys == [
        "resourceURL",
        "updateInterval",
        "jobdata.scriptLocation",
        "jobdata.jobParameters",
        "jobproperties",
        "jobproperties",
    ], errors
    assert any("entrypoint_num_cpu" in line and "known keys" in line for line in errors)
    assert any("activeDeadlineSeconds" in line for line in errors)
    assert "6 problem(s)" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_validate_reports_a_runtime_env_clash_found_only_at_submission(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.json"
    data = {
        "resourceURL": "http://ray.example:8265",
        "jobdata.scriptLocation": "inline",
        "jobdata.jobScript": "print(1)",
        "jobproperties": json.dumps({"runtime_env": {"working_dir": "s3://elsewhere/dir.zip"}}),
    }
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
    completed = raypod("validate", "--config", str(manifest))
    assert completed.returncode == 2
    assert "error: jobproperties: runtime_env.working_dir clashes" in completed.stdout


def test_validate_accepts_a_good_manifest_and_exits_0(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.json"
    data = {
        "resourceURL": "http://ray.example:8265",
        "jobdata.scriptLocation": "inline",
        "jobdata.jobScript": "print(1)",
        "jobdata.jobParameters": '{"epochs": 3}',
        "jobproperties": json.dumps({"entrypoint_num_cpus": 1, "activeDeadlineSeconds": 3600}),
    }
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
    completed = raypod("validate", "--config", str(manifest))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "OK" in completed.stdout


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


# -- against the real Ray ------------------------------------------------------------------------


@pytest.mark.integration
def test_submit_with_flags_prints_the_id_first_and_wait_exits_0_with_the_output(
    finished_job: FinishedJob, services: Services
) -> None:
    lines = finished_job.submit.stdout.splitlines()
    assert finished_job.submission_id.startswith("raypod-flags-job-")
    job_lines = [line.removeprefix("[job] ") for line in lines[1:]]
    assert 'ARGV ["--kwargs", "greeting=hello  world", "count=3"]' in job_lines
    assert "MODE batch=1" in job_lines
    assert "line 2" in job_lines
    assert "status.jobStatus=SUCCEEDED" in finished_job.submit.stderr
    info = ray_job(services, finished_job.submission_id)
    assert info["status"] == "SUCCEEDED"
    assert info["metadata"] == {"bridge-job": "flags-job"}


@pytest.mark.integration
def test_submit_without_wait_prints_only_the_id(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "quick.py"
    script.write_text("print('quick')\n")
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--job-name", "quick")
    assert completed.returncode == 0, completed.stderr
    submission_id = completed.stdout.strip()
    assert "\n" not in submission_id and submission_id.startswith("raypod-quick-")
    assert wait_for_ray_status(services, submission_id, {"SUCCEEDED"}) == "SUCCEEDED"


@pytest.mark.integration
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
    assert "status.jobStatus=FAILED" in completed.stderr
    assert "failing on purpose" in bridge_job.log_text()


@pytest.mark.integration
def test_submit_with_a_bad_flag_exits_2_naming_the_flag_and_submits_nothing(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "never.py"
    script.write_text("print('never')\n")
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--param", "expr=a=b")
    assert completed.returncode == 2
    assert "--param: parameter 'expr' has '='" in completed.stderr
    assert completed.stdout == ""


@pytest.mark.integration
def test_status_prints_a_readable_summary(finished_job: FinishedJob, services: Services, tmp_path: Path) -> None:
    completed = raypod("status", finished_job.submission_id, *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    fields = dict(line.split(":", 1) for line in completed.stdout.splitlines())
    assert fields["submission id"].strip() == finished_job.submission_id
    assert fields["status"].strip() == "SUCCEEDED (Bridge: SUCCEEDED)"
    assert fields["driver exit code"].strip() == "0"
    assert fields["start"].strip().endswith("Z")


@pytest.mark.integration
def test_status_json_is_rays_job_info(finished_job: FinishedJob, services: Services, tmp_path: Path) -> None:
    completed = raypod("status", finished_job.submission_id, "--json", *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    info = json.loads(completed.stdout)
    assert info["submission_id"] == finished_job.submission_id
    assert info["status"] == "SUCCEEDED"
    assert info["runtime_env"]["env_vars"] == {"MODE": "batch=1"}


@pytest.mark.integration
def test_status_of_an_unknown_job_exits_1_saying_so(services: Services, tmp_path: Path) -> None:
    missing = unique("no-such-job")
    completed = raypod("status", missing, *client_args(services, tmp_path))
    assert completed.returncode == 1
    assert f"Ray has no job {missing}" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.integration
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


@pytest.mark.integration
def test_logs_prints_the_jobs_output_as_written(finished_job: FinishedJob, services: Services, tmp_path: Path) -> None:
    completed = raypod("logs", finished_job.submission_id, *client_args(services, tmp_path))
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert "MODE batch=1" in lines
    assert lines[-3:] == ["line 0", "line 1", "line 2"]
    assert not any(line.startswith("[job]") for line in lines)


@pytest.mark.integration
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


@pytest.mark.integration
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


@pytest.mark.integration
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
