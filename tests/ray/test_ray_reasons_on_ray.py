"""Ray's own reasons (its JobInfo's ``error_type`` and ``driver_exit_code``) from the real Ray 2.60
head, through raypod's one table to ``status.reason``, the result file and the retry decision."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import requests

from raypod.contract import Reason
from raypod.ray import JobInfo
from tests.support.helpers import BridgeJob, Services, jobs_of, ray_job, wait_for_ray_status

#: No index at all: pip fails at once for want of the package, as for a name that does not exist,
#: without reaching out of the machine (Ray tries the runtime_env three times, a second apart).
NO_SUCH_PACKAGE = {"pip": {"raypod-no-such-package-4f1e": "1.0"}}
OFFLINE_PIP = {"runtime_env": {"pip": {"pip_install_options": ["--no-index"]}}}


def test_a_runtime_env_whose_pip_install_fails_is_runtime_env_setup_failed_and_not_retried(
    bridge_job: BridgeJob, tmp_path: Path
) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('never runs')\n",
        jobdata__scriptMetadata=json.dumps(NO_SUCH_PACKAGE),
        jobproperties=json.dumps({**OFFLINE_PIP, "retries": 2, "retryDelaySeconds": 0}),
    )
    result_file, termination_log = tmp_path / "result.json", tmp_path / "termination-log"

    result = bridge_job.run("--result", str(result_file), "--termination-log", str(termination_log), timeout=240)

    assert result.returncode == 1, result.stdout + result.stderr
    status = result.status
    assert (status["status.jobStatus"], status["status.reason"]) == ("FAILED", Reason.RUNTIME_ENV_SETUP_FAILED)
    assert "(attempt 1 of 3; RuntimeEnvSetupFailed is not retried)" in status["status.message"], status
    # What Ray itself says, and only one attempt on it.
    jobs = jobs_of(bridge_job.services, bridge_job.name)
    assert [(job["submission_id"], job["status"], job["error_type"]) for job in jobs] == [
        (status["id"], "FAILED", "RUNTIME_ENV_SETUP_FAILURE")
    ]
    record = json.loads(result_file.read_text())
    assert (record["status"], record["reason"], record["attempt"]) == ("FAILED", Reason.RUNTIME_ENV_SETUP_FAILED, 1)
    assert termination_log.read_text().startswith(f"FAILED (RuntimeEnvSetupFailed): Ray job {status['id']}:")


def test_a_script_that_exits_3_is_app_failed_with_its_exit_code(bridge_job: BridgeJob, tmp_path: Path) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="import sys\nsys.exit(3)\n")
    result_file = tmp_path / "result.json"

    result = bridge_job.run("--result", str(result_file))

    assert result.returncode == 1, result.stdout + result.stderr
    status = result.status
    assert (status["status.jobStatus"], status["status.reason"]) == ("FAILED", Reason.APP_FAILED)
    assert "exit code 3" in status["status.message"], status
    answer = ray_job(bridge_job.services, status["id"])
    assert (answer["error_type"], answer["driver_exit_code"]) == ("JOB_ENTRYPOINT_COMMAND_ERROR", 3)
    record = json.loads(result_file.read_text())
    assert (record["reason"], record["driverExitCode"]) == (Reason.APP_FAILED, 3)


def test_rays_answer_for_an_entrypoint_the_shell_cannot_find_reads_as_entrypoint_not_found(
    services: Services,
) -> None:
    # Ray runs the entrypoint with `sh -c`: the table's 127 row rests on that.
    submission_id = f"raypod-no-command-{uuid.uuid4().hex[:8]}"
    posted = requests.post(
        f"{services.ray_address}/api/jobs/",
        json={"entrypoint": "raypod-no-such-command-7d2e", "submission_id": submission_id},
        timeout=30,
    )
    posted.raise_for_status()

    assert wait_for_ray_status(services, submission_id, {"SUCCEEDED", "FAILED", "STOPPED"}, timeout=60) == "FAILED"
    job = JobInfo.from_api(ray_job(services, submission_id))
    assert (job.error_type, job.driver_exit_code) == ("JOB_ENTRYPOINT_COMMAND_ERROR", 127)
    assert (job.failure.reason, job.failure.retried) == (Reason.ENTRYPOINT_NOT_FOUND, False)
