"""``raypod stop`` of a job that has not started, against the real Ray head: Ray 2.60 takes the stop
(its job_manager sends it to the job's supervisor actor, which acts on it only once placed) and the
job stays PENDING, so raypod says why, not only that it is still PENDING (docs/cli.md#the-commands).
A label selector no node meets keeps the job PENDING, as in test_label_selector_on_ray.py."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import client_args, raypod
from tests.support.helpers import Services, ray_job


def test_stop_of_a_pending_job_says_that_ray_holds_the_stop_until_the_job_starts(
    services: Services, tmp_path: Path
) -> None:
    script = tmp_path / "never_placed.py"
    script.write_text("print('placed', flush=True)\n")
    submitted = raypod(
        "submit", *client_args(services, tmp_path), "--script", str(script),
        "--entrypoint-label-selector", '{"raypod-test-pool": "gpu"}',
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.strip()

    stopped = raypod("stop", submission_id, "--timeout", "3", *client_args(services, tmp_path))

    assert stopped.returncode == 1, stopped.stderr
    assert stopped.stdout.strip() == f"{submission_id}: PENDING"
    said = stopped.stderr.splitlines()[-1]
    assert said.startswith(f"raypod: {submission_id} is still PENDING after 3 s: Ray took the stop"), said
    assert "until its driver can start" in said and "label selector" in said
    assert "RAY_JOB_START_TIMEOUT_SECONDS" in said
    # Ray's own record agrees: the stop was taken, the job has not moved.
    assert ray_job(services, submission_id)["status"] == "PENDING"
