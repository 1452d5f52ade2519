"""raypod's command line next to Ray 2.60's own ``ray job``, both run on the same real head: what each
prints and exits with (docs/comparison.md's CLI-to-CLI table).

raypod's assertions hold to behaviour (the exit code, the job's id, the status shown, where the job's
output goes), not to the wording of its status lines; ``ray job``'s are Ray 2.60's, fixed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.cli import SCRUBBED, client_args, raypod
from tests.support.helpers import Services, ray_job, stop_ray_job, unique, wait_for_ray_status, wait_until

#: Ray's own CLI, from the same environment as the head.
RAY = str(Path(sys.executable).parent / "ray")
#: A closed port: nothing answers there.
NOWHERE = "http://127.0.0.1:9"
#: Prints two lines, then exits with the code given.
PRINTS_THEN_EXITS = "import sys; print('first line'); print('second line'); sys.exit({code})"
SLEEPS = "import time; print('sleeping', flush=True); time.sleep(300)"


def ray_cli(services: Services, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``ray job ARGS`` against the session head (its address from RAY_API_SERVER_ADDRESS, as a user sets it)."""
    return subprocess.run([RAY, "job", *args], capture_output=True, text=True, timeout=timeout, env=_env(services))


def _env(services: Services | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    address = {"RAY_API_SERVER_ADDRESS": services.ray_address} if services else {}
    return {**base, **address, "PYTHONUNBUFFERED": "1"}


def _start(command: list[str], services: Services) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(services), start_new_session=True
    )


def _finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _submit_args(services: Services, tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "raypod", "submit", *client_args(services, tmp_path)]


def wait_until_running(services: Services, submission_id: str) -> None:
    """Until Ray has the job (a submitting process may not have sent it yet) and runs it; bounded."""
    wait_until(
        lambda: requests.get(f"{services.ray_address}/api/jobs/{submission_id}", timeout=30).status_code == 200,
        f"Ray to have {submission_id}",
        timeout=60,
    )
    wait_for_ray_status(services, submission_id, {"RUNNING"})


def rays_log(services: Services, submission_id: str) -> str:
    response = requests.get(f"{services.ray_address}/api/jobs/{submission_id}/logs", timeout=30)
    response.raise_for_status()
    return str(response.json()["logs"])


@dataclass(frozen=True)
class FailedJob:
    submission_id: str


@pytest.fixture(scope="module")
def failed_job(services: Services, tmp_path_factory: pytest.TempPathFactory) -> FailedJob:
    """One job that printed two lines and exited 3, submitted by raypod and followed to its end."""
    chosen = unique("next-to-ray-failed")
    completed = raypod(
        "submit",
        *client_args(services, tmp_path_factory.mktemp("failed")),
        "--submission-id",
        chosen,
        "--wait",
        "--",
        "python",
        "-c",
        PRINTS_THEN_EXITS.format(code=3),
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    return FailedJob(chosen)


@pytest.fixture
def running_job(services: Services, tmp_path: Path) -> Iterator[str]:
    """A job that sleeps, RUNNING on Ray; stopped at the end whatever the test did."""
    chosen = unique("next-to-ray-running")
    completed = raypod(
        "submit", *client_args(services, tmp_path), "--submission-id", chosen, "--", "python", "-c", SLEEPS
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    wait_for_ray_status(services, chosen, {"RUNNING"})
    try:
        yield chosen
    finally:
        stop_ray_job(services, chosen)


# -- submit ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "exit_code"), [(0, 0), (3, 1)], ids=["succeeds", "fails"])
def test_submit_wait_exits_0_or_1_as_ray_job_submit_and_keeps_stdout_for_the_id_and_the_jobs_output(
    services: Services, tmp_path: Path, code: int, exit_code: int
) -> None:
    command = ["--", "python", "-c", PRINTS_THEN_EXITS.format(code=code)]
    ours_id, rays_id = unique("ours"), unique("rays")
    ours = raypod("submit", *client_args(services, tmp_path), "--submission-id", ours_id, "--wait", *command)
    rays = ray_cli(services, "submit", "--submission-id", rays_id, *command)

    assert ours.returncode == rays.returncode == exit_code, ours.stderr + rays.stderr
    # raypod: the id is stdout's first line, then the job's own output, and nothing else of its own.
    first, *rest = ours.stdout.splitlines()
    assert first == ours_id
    assert [line for line in rest if line.endswith(" line")] == ["[job] first line", "[job] second line"]
    assert all(line.startswith("[job] ") for line in rest)
    assert "first line" not in ours.stderr
    # ray job: its own log lines (a banner, the next steps, the end) around the job's output, all on stdout.
    assert f"Job '{rays_id}' submitted successfully" in rays.stdout
    assert "first line\nsecond line\n" in rays.stdout
    ended = f"Job '{rays_id}' succeeded" if code == 0 else f"Job '{rays_id}' failed"
    assert ended in rays.stdout
    assert {ray_job(services, ours_id)["status"], ray_job(services, rays_id)["status"]} == {
        "SUCCEEDED" if code == 0 else "FAILED"
    }


def test_submit_wait_exits_1_for_a_job_stopped_elsewhere_where_ray_job_submit_exits_0(
    services: Services, tmp_path: Path
) -> None:
    command = ["--", "python", "-c", SLEEPS]
    ours_id, rays_id = unique("ours-stopped"), unique("rays-stopped")
    ours = _start([*_submit_args(services, tmp_path), "--submission-id", ours_id, "--wait", *command], services)
    rays = _start([RAY, "job", "submit", "--submission-id", rays_id, *command], services)
    try:
        for submission_id in (ours_id, rays_id):
            wait_until_running(services, submission_id)
            stop_ray_job(services, submission_id)
        _, ours_err = _finish(ours)
        rays_out, _ = _finish(rays)
    finally:
        stop_ray_job(services, ours_id)
        stop_ray_job(services, rays_id)
    assert ray_job(services, ours_id)["status"] == ray_job(services, rays_id)["status"] == "STOPPED"
    # ray job submit exits 1 only for FAILED; raypod says the job did not succeed.
    assert rays.returncode == 0
    assert f"Job '{rays_id}' was stopped" in rays_out
    assert ours.returncode == 1, ours_err
    assert "Traceback" not in ours_err


def test_ctrl_c_during_submit_wait_leaves_the_job_running_on_both_sides(services: Services, tmp_path: Path) -> None:
    command = ["--", "python", "-c", SLEEPS]
    ours_id, rays_id = unique("ours-ctrl-c"), unique("rays-ctrl-c")
    ours = _start([*_submit_args(services, tmp_path), "--submission-id", ours_id, "--wait", *command], services)
    rays = _start([RAY, "job", "submit", "--submission-id", rays_id, *command], services)
    try:
        for submission_id, process in ((ours_id, ours), (rays_id, rays)):
            wait_until_running(services, submission_id)
            process.send_signal(signal.SIGINT)
        _, ours_err = _finish(ours)
        _, rays_err = _finish(rays)
        assert ray_job(services, ours_id)["status"] == ray_job(services, rays_id)["status"] == "RUNNING"
    finally:
        stop_ray_job(services, ours_id)
        stop_ray_job(services, rays_id)
    # click's "Aborted!" and exit 1; raypod exits with an interrupt's code (130 or 143) and names the job.
    assert rays.returncode == 1
    assert rays_err.strip().endswith("Aborted!")
    assert ours.returncode in (130, 143), ours_err
    assert ours_id in ours_err
    assert "Traceback" not in ours_err


# -- status, logs ------------------------------------------------------------------------------------
def test_status_exits_0_whatever_the_jobs_status_and_shows_it_on_both_sides(
    failed_job: FailedJob, services: Services, tmp_path: Path
) -> None:
    ours = raypod("status", failed_job.submission_id, *client_args(services, tmp_path))
    rays = ray_cli(services, "status", failed_job.submission_id)
    assert ours.returncode == rays.returncode == 0, ours.stderr + rays.stderr
    assert failed_job.submission_id in ours.stdout
    assert "FAILED" in ours.stdout
    # raypod shows the driver's exit code, which `ray job status` leaves out.
    assert any(line.split()[-1:] == ["3"] for line in ours.stdout.splitlines() if "exit code" in line)
    assert f"Job '{failed_job.submission_id}' failed" in rays.stdout
    assert "exit code 3" in rays.stdout  # only inside Ray's message


def test_logs_prints_rays_log_alone_where_ray_job_logs_adds_a_line_of_its_own(
    failed_job: FailedJob, services: Services, tmp_path: Path
) -> None:
    log = rays_log(services, failed_job.submission_id)
    assert "first line\nsecond line\n" in log
    ours = raypod("logs", failed_job.submission_id, *client_args(services, tmp_path))
    rays = ray_cli(services, "logs", failed_job.submission_id)
    assert ours.returncode == rays.returncode == 0, ours.stderr + rays.stderr
    assert ours.stdout == log
    assert rays.stdout.endswith(log)
    assert "Job submission server address" in rays.stdout.removesuffix(log)


def test_logs_follow_ends_with_the_job_on_both_sides(services: Services, tmp_path: Path) -> None:
    submission_id = unique("next-to-ray-follow")
    ticker = "import time\nfor i in range(6):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"
    submitted = raypod(
        "submit", *client_args(services, tmp_path), "--submission-id", submission_id, "--", "python", "-c", ticker
    )
    assert submitted.returncode == 0, submitted.stderr
    ours = _start(
        [sys.executable, "-m", "raypod", "logs", submission_id, "--follow", *client_args(services, tmp_path)], services
    )
    rays = _start([RAY, "job", "logs", submission_id, "--follow"], services)
    ours_out, ours_err = _finish(ours)
    rays_out, _ = _finish(rays)
    ticks = [f"tick {i}" for i in range(6)]
    assert ours.returncode == rays.returncode == 0, ours_err
    assert [line for line in ours_out.splitlines() if line.startswith("tick ")] == ticks
    assert [line for line in rays_out.splitlines() if line.startswith("tick ")] == ticks
    # Both say how the job ended: raypod on stderr, ray job on stdout, after the log.
    assert "SUCCEEDED" in ours_err
    assert f"Job '{submission_id}' succeeded" in rays_out


# -- stop, delete, list --------------------------------------------------------------------------
def test_stop_waits_for_rays_confirmation_on_both_sides(running_job: str, services: Services, tmp_path: Path) -> None:
    ours = raypod("stop", running_job, *client_args(services, tmp_path))
    assert ours.returncode == 0, ours.stderr
    assert ray_job(services, running_job)["status"] == "STOPPED"
    assert "STOPPED" in ours.stdout + ours.stderr
    # `ray job stop` of the job that has ended: it asks Ray to stop it, then reports the end state.
    rays = ray_cli(services, "stop", running_job)
    assert rays.returncode == 0, rays.stderr
    assert f"Job '{running_job}' was stopped" in rays.stdout + rays.stderr


def test_delete_of_a_running_job_says_stop_it_first_where_ray_job_delete_prints_a_traceback(
    running_job: str, services: Services, tmp_path: Path
) -> None:
    ours = raypod("delete", running_job, *client_args(services, tmp_path))
    rays = ray_cli(services, "delete", running_job)
    assert ours.returncode == rays.returncode == 1
    assert "Traceback" in rays.stderr
    assert f"RuntimeError: Attempted to delete job '{running_job}', but it is in a non-terminal state RUNNING" in (
        rays.stderr
    )
    assert "Traceback" not in ours.stderr
    assert running_job in ours.stderr
    assert ray_job(services, running_job)["status"] == "RUNNING"
    # Once it has ended, both delete it, and Ray forgets it.
    requests.post(f"{services.ray_address}/api/jobs/{running_job}/stop", timeout=30)
    wait_for_ray_status(services, running_job, {"STOPPED"})
    deleted = raypod("delete", running_job, *client_args(services, tmp_path))
    assert deleted.returncode == 0, deleted.stderr
    assert requests.get(f"{services.ray_address}/api/jobs/{running_job}", timeout=30).status_code == 404


def test_list_is_a_table_and_json_where_ray_job_list_prints_a_python_pprint(
    failed_job: FailedJob, services: Services, tmp_path: Path
) -> None:
    ours = raypod("list", *client_args(services, tmp_path))
    ours_json = raypod("list", "--json", *client_args(services, tmp_path))
    rays = ray_cli(services, "list")
    assert ours.returncode == ours_json.returncode == rays.returncode == 0, ours.stderr + rays.stderr
    # raypod: one row per job, its id first and its status in it; and JSON for scripts.
    row = next(line for line in ours.stdout.splitlines() if line.startswith(failed_job.submission_id + " "))
    assert "FAILED" in row.split()
    assert any(job["submission_id"] == failed_job.submission_id for job in json.loads(ours_json.stdout))
    # ray job: the SDK's dataclasses as Python's pprint shows them, after a log line of its own.
    assert f"submission_id='{failed_job.submission_id}'" in rays.stdout
    assert "JobDetails(type=<JobType.SUBMISSION: 'SUBMISSION'>" in rays.stdout
    assert "status=<JobStatus.FAILED: 'FAILED'>" in rays.stdout


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["status", "logs", "stop", "delete"])
def test_an_unknown_id_is_one_line_and_exit_1_where_ray_job_prints_a_traceback(
    services: Services, tmp_path: Path, command: str
) -> None:
    missing = unique("no-such-job")
    ours = raypod(command, missing, *client_args(services, tmp_path))
    rays = ray_cli(services, command, missing)
    assert ours.returncode == rays.returncode == 1
    assert f"RuntimeError: Request failed with status code 404: Job {missing} does not exist." in rays.stderr
    assert "Traceback" in rays.stderr
    assert "Traceback" not in ours.stderr
    assert missing in ours.stderr
    assert ours.stdout == ""


def test_an_unreachable_address_names_where_it_came_from_where_ray_job_prints_a_traceback(tmp_path: Path) -> None:
    env: Mapping[str, str] = {"RAY_ADDRESS": NOWHERE}
    rays = subprocess.run([RAY, "job", "list"], capture_output=True, text=True, timeout=180, env={**_env(None), **env})
    assert rays.returncode == 1
    assert f"ConnectionError: Failed to connect to Ray at address: {NOWHERE}." in rays.stderr
    assert "Traceback" in rays.stderr
    listed = raypod("list", "--credentials", str(tmp_path), env=env)
    assert listed.returncode == 1
    assert "Traceback" not in listed.stderr
    assert listed.stdout == ""
    # submit: bad input naming the variable the address came from; nothing submitted (exit 2).
    submitted = raypod(
        "submit", "--credentials", str(tmp_path), "--connect-timeout", "1", "--", "python", "-c", "print(1)", env=env
    )
    assert submitted.returncode == 2
    assert "RAY_ADDRESS" in submitted.stderr
    assert "Traceback" not in submitted.stderr
    assert submitted.stdout == ""
