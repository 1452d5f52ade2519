"""On the real head: ids are data (issue 20, class 8), and commands do what their name says
(class 9): ``submit`` without ``--wait`` returns once Ray has the job, and ``--stop-on-interrupt``
says, in its words and its exit code, whether Ray confirmed the stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from raypod.jobs import PENDING_STOP_HELD
from tests.support.cli import SCRUBBED, client_args, raypod
from tests.support.helpers import (
    Services,
    Watched,
    jobs_of,
    ray_job,
    stop_ray_job,
    unique,
    wait_for_ray_status,
    wait_until,
)

LONG_JOB = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
#: The test head has no GPU: a job that asks for one stays PENDING.
NEEDS_A_GPU = json.dumps({"entrypoint_num_gpus": 1})


def submit(services: Services, tmp_path: Path, name: str, *flags: str, env: dict[str, str] | None = None) -> str:
    script = tmp_path / "job.py"
    script.write_text(LONG_JOB)
    args = ["submit", *client_args(services, tmp_path), "--script", str(script), "--job-name", name, *flags]
    result = raypod(*args, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[0]


def start_waiting_submit(services: Services, tmp_path: Path, name: str) -> Watched:
    script = tmp_path / "job.py"
    script.write_text(LONG_JOB)
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    command = [sys.executable, "-m", "raypod", "submit", *client_args(services, tmp_path), "--script", str(script)]
    flags = ["--job-name", name, "--properties", NEEDS_A_GPU, "--wait", "--stop-on-interrupt"]
    process = subprocess.Popen(
        [*command, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    return Watched(process)


def first_line(watched: Watched) -> str:
    """stdout's first line: the submission id, printed once Ray has the job."""
    wait_until(lambda: bool(watched.out), "the submission id on stdout", timeout=120)
    return watched.out[0].strip()


def test_delete_of_a_dotted_path_does_not_delete_the_job_it_points_at(services: Services, tmp_path: Path) -> None:
    victim = submit(services, tmp_path, unique("victim"))
    try:
        # Ended, so that a delete which reached it would delete it.
        stop_ray_job(services, victim)
        wait_for_ray_status(services, victim, {"STOPPED"})
        result = raypod("delete", *client_args(services, tmp_path), f"my-job/../{victim}")
        assert result.returncode == 2, result.stderr
        assert "SUBMISSION_ID" in result.stderr and "is not a Ray submission id" in result.stderr
        assert ray_job(services, victim)["submission_id"] == victim
    finally:
        stop_ray_job(services, victim)


def test_submit_without_wait_returns_once_ray_has_the_job_its_kuberay_id_names(
    services: Services, tmp_path: Path
) -> None:
    name = unique("kuberay")
    submission_id = submit(services, tmp_path, name)
    try:
        wait_for_ray_status(services, submission_id, {"RUNNING"})
        again = raypod(
            "submit",
            *client_args(services, tmp_path),
            "--script",
            str(tmp_path / "job.py"),
            "--job-name",
            name,
            env={"RAY_JOB_SUBMISSION_ID": submission_id},
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == submission_id
        assert f"Ray job {submission_id} was submitted already (RUNNING)" in again.stderr
        assert f"`raypod logs {submission_id} --follow` follows it" in again.stderr
        assert ray_job(services, submission_id)["status"] == "RUNNING"
        assert len(jobs_of(services, name)) == 1
    finally:
        stop_ray_job(services, submission_id)


def test_stop_on_interrupt_of_a_pending_job_says_it_was_not_stopped_and_exits_1(
    services: Services, tmp_path: Path
) -> None:
    watched = start_waiting_submit(services, tmp_path, unique("pending"))
    submission_id = first_line(watched)
    try:
        assert wait_for_ray_status(services, submission_id, {"PENDING"}) == "PENDING"
        watched.process.send_signal(signal.SIGINT)
        code, _, stderr = watched.finish(timeout=120)
        assert code == 1, stderr
        assert f"Ray job {submission_id} was not confirmed stopped" in stderr
        assert PENDING_STOP_HELD in stderr and "may still run on Ray" in stderr
        assert "next pod" not in stderr and "keeps running" not in stderr
        assert ray_job(services, submission_id)["status"] == "PENDING"
    finally:
        stop_ray_job(services, submission_id)


def test_a_second_interrupt_leaves_at_once_saying_the_job_may_still_run(services: Services, tmp_path: Path) -> None:
    watched = start_waiting_submit(services, tmp_path, unique("twice"))
    submission_id = first_line(watched)
    try:
        assert wait_for_ray_status(services, submission_id, {"PENDING"}) == "PENDING"
        watched.process.send_signal(signal.SIGINT)
        watched.wait_for("interrupt again to leave")
        watched.process.send_signal(signal.SIGINT)
        code, _, stderr = watched.finish(timeout=120)
        assert code == 1, stderr
        assert f"interrupted again: left before Ray confirmed the stop of {submission_id}" in stderr
        assert "may still run on Ray" in stderr and "Traceback" not in stderr
        assert ray_job(services, submission_id)["status"] == "PENDING"
    finally:
        stop_ray_job(services, submission_id)
