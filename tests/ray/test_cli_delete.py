"""``raypod delete``: only an ended job is deleted, on the real Ray head."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.support.cli import client_args, raypod
from tests.support.helpers import Services, ray_job, stop_ray_job, unique, wait_for_ray_status


def submitted(services: Services, tmp_path: Path, body: str) -> str:
    script = tmp_path / f"{unique('s')}.py"
    script.write_text(body)
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--job-name", "del")
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_delete_forgets_an_ended_job(services: Services, tmp_path: Path) -> None:
    submission_id = submitted(services, tmp_path, "print('done')\n")
    assert wait_for_ray_status(services, submission_id, {"SUCCEEDED"}) == "SUCCEEDED"

    completed = raypod("delete", submission_id, *client_args(services, tmp_path))

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"{submission_id}: deleted (SUCCEEDED)"
    gone = requests.get(f"{services.ray_address}/api/jobs/{submission_id}", timeout=30)
    assert gone.status_code == 404


def test_delete_of_a_running_job_says_to_stop_it_first_and_keeps_it(services: Services, tmp_path: Path) -> None:
    submission_id = submitted(services, tmp_path, "import time\ntime.sleep(600)\n")
    try:
        assert wait_for_ray_status(services, submission_id, {"RUNNING"}) == "RUNNING"

        completed = raypod("delete", submission_id, *client_args(services, tmp_path))

        assert completed.returncode == 1
        assert f"stop it first (`raypod stop {submission_id}`)" in completed.stderr
        assert "Traceback" not in completed.stderr
        assert ray_job(services, submission_id)["status"] == "RUNNING"
    finally:
        stop_ray_job(services, submission_id)


def test_delete_of_an_unknown_id_exits_1(services: Services, tmp_path: Path) -> None:
    completed = raypod("delete", "raypod-no-such-job", *client_args(services, tmp_path))

    assert completed.returncode == 1
    assert "raypod-no-such-job" in completed.stderr


def test_a_job_deleted_right_after_its_stop_stays_deleted(services: Services, tmp_path: Path) -> None:
    """Ray 2.60 writes a job deleted within a second or two of its end back as FAILED ("Job supervisor
    actor died"): here it did for every such delete without the watch (8 of 8)."""
    submission_id = submitted(services, tmp_path, "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    assert wait_for_ray_status(services, submission_id, {"RUNNING"}) == "RUNNING"
    assert raypod("stop", submission_id, *client_args(services, tmp_path)).returncode == 0

    completed = raypod("delete", submission_id, *client_args(services, tmp_path))

    assert completed.returncode == 0, completed.stderr
    answers = []
    for _ in range(4):  # past the moment Ray's job monitor would write it back
        answers.append(requests.get(f"{services.ray_address}/api/jobs/{submission_id}", timeout=30).status_code)
        time.sleep(0.5)
    assert answers == [404] * 4, answers
