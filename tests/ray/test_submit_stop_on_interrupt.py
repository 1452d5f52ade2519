"""``submit --wait --stop-on-interrupt``: a cancelled CI job (Ctrl-C, or SIGTERM from the runner)
stops its Ray job, waits until Ray confirms, and exits 130 or 143. Without the flag the job runs on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import SCRUBBED, client_args
from tests.support.helpers import Services, ray_job, stop_ray_job, wait_for_ray_status, wait_until

LONG_JOB = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"


def start_submit(services: Services, tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    script = tmp_path / "long.py"
    script.write_text(LONG_JOB)
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    command = [sys.executable, "-m", "raypod", "submit", *client_args(services, tmp_path), "--script", str(script)]
    return subprocess.Popen(
        [*command, "--job-name", "cancel", "--wait", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_wait_stops_the_ray_job_and_exits_with_the_signals_code(
    services: Services, tmp_path: Path, sent: signal.Signals, code: int
) -> None:
    process = start_submit(services, tmp_path, "--stop-on-interrupt")
    assert process.stdout is not None
    submission_id = process.stdout.readline().strip()
    try:
        assert wait_for_ray_status(services, submission_id, {"RUNNING"}) == "RUNNING"
        process.send_signal(sent)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == code, stderr
    assert ray_job(services, submission_id)["status"] == "STOPPED"
    assert f"Ray job {submission_id} is STOPPED" in stderr
    assert "Traceback" not in stderr


def test_without_the_flag_an_interrupted_wait_leaves_the_job_running(services: Services, tmp_path: Path) -> None:
    process = start_submit(services, tmp_path)
    assert process.stdout is not None
    submission_id = process.stdout.readline().strip()
    try:
        assert wait_for_ray_status(services, submission_id, {"RUNNING"}) == "RUNNING"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130, stderr  # Ctrl-C: interrupted, as shells and CI read it
        assert f"`raypod stop {submission_id}` stops it" in stderr
        wait_until(lambda: ray_job(services, submission_id)["status"] == "RUNNING", "the job to run on", timeout=10)
    finally:
        stop_ray_job(services, submission_id)
        if process.poll() is None:
            process.kill()
            process.communicate()
