"""Each `jobproperties` key, checked where it lands: in the real Ray job (no HTTP mocking)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.helpers import BridgeJob, Services, jobs_of, ray_job, supervisor_resources, wait_for_ray_status


def test_entrypoint_resources_metadata_runtime_env_and_submission_id_reach_the_ray_job(bridge_job: BridgeJob) -> None:
    """The five rows of docs/comparison.md that name this test, each claim of each row (the GPU
    amount is test_a_non_zero_entrypoint_num_gpus_reaches_the_supervisor_actor's: this head has none)."""
    # Refused before anything is sent: metadata keys and runtime_env fields that raypod sets itself.
    for number, (clash, problem) in enumerate(
        [
            ({"metadata": {"bridge-job": "mine"}}, "metadata key(s) bridge-job are set by raypod"),
            (
                {"runtime_env": {"working_dir": "s3://bucket/elsewhere.zip"}},
                "runtime_env.working_dir clashes with the one raypod sets",
            ),
        ]
    ):
        refused = BridgeJob(bridge_job.root / f"refused-{number}", bridge_job.services, name=bridge_job.name)
        refused.set(
            jobdata__scriptLocation="inline",
            jobdata__jobScript="print('never runs')\n",
            jobproperties=json.dumps(clash),
        )
        result = refused.run()
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"bad input: jobproperties: {problem}" in result.stderr
    assert jobs_of(bridge_job.services, bridge_job.name) == []

    # Without a prefix: raypod-<job>-<12 hex>, and the BridgeJob's metadata with no user map.
    plain = BridgeJob(bridge_job.root / "plain", bridge_job.services)
    plain.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('plain job ran')\n")
    result = plain.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(rf"raypod-{re.escape(plain.name)}-[0-9a-f]{{12}}", result.status["id"]), result.status["id"]
    assert ray_job(plain.services, result.status["id"])["metadata"] == {
        "bridge-job": plain.name,
        "bridge-namespace": "test-ns",
    }

    properties = {
        "entrypoint_num_cpus": 0.5,
        "entrypoint_num_gpus": 0,
        "entrypoint_memory": 100_000_000,
        # Every head node has this resource, so the job can run on the test's one-node cluster.
        "entrypoint_resources": {"node:__internal_head__": 0.001},
        "metadata": {"team": "ml", "run": "nightly"},
        "runtime_env": {"config": {"setup_timeout_seconds": 300}},
        "submissionIdPrefix": "nightly-etl",
    }
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('properties job ran')\n",
        jobproperties=json.dumps(properties),
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stdout + result.stderr
    submission_id = result.status["id"]
    assert re.fullmatch(r"nightly-etl-[0-9a-f]{12}", submission_id), submission_id
    info = ray_job(bridge_job.services, submission_id)
    assert info["metadata"] == {
        "team": "ml",
        "run": "nightly",
        "bridge-job": bridge_job.name,
        "bridge-namespace": "test-ns",
    }
    assert info["runtime_env"]["config"]["setup_timeout_seconds"] == 300
    # entrypoint_num_gpus 0 reserves no GPU: Ray leaves a zero amount out.
    assert supervisor_resources(bridge_job.services, submission_id) == {
        "CPU": 0.5,
        "memory": 100_000_000.0,
        "node:__internal_head__": 0.001,
    }
    assert "properties job ran" in bridge_job.log_text()


def test_a_non_zero_entrypoint_num_gpus_reaches_the_supervisor_actor(bridge_job: BridgeJob) -> None:
    """The test's head has no GPU, so the job stays PENDING: its supervisor actor, waiting to be
    placed, already carries the amount Ray was asked for (a zero amount would be left out)."""
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('never runs here')\n",
        jobproperties=json.dumps({"entrypoint_num_gpus": 0.5}),
    )
    bridge_job.write_config()
    config = ["--config", str(bridge_job.config_dir), "--job-name", bridge_job.name]
    credentials = ["--credentials", str(bridge_job.credentials_dir)]
    credentials += ["--s3-credentials", str(bridge_job.s3_credentials_dir)]
    submitted = subprocess.run(
        [sys.executable, "-m", "raypod", "submit", *config, *credentials],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert submitted.returncode == 0, submitted.stderr
    submission_id = submitted.stdout.strip()
    try:
        assert supervisor_resources(bridge_job.services, submission_id) == {"GPU": 0.5}
        assert ray_job(bridge_job.services, submission_id)["status"] == "PENDING"
    finally:
        # Best effort: Ray 2.60 answers a stop of a PENDING job and leaves it PENDING (it holds nothing).
        requests.post(f"{bridge_job.services.ray_address}/api/jobs/{submission_id}/stop", timeout=30)


def test_active_deadline_stops_a_long_job_and_ends_failed(bridge_job: BridgeJob) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import time\nprint('long job started', flush=True)\ntime.sleep(600)\n",
        jobproperties=json.dumps({"activeDeadlineSeconds": 3}),
    )
    result = bridge_job.run()
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.status["status.jobStatus"] == "FAILED"
    assert "activeDeadlineSeconds (3 s) passed" in result.status["status.message"]
    assert "stopped" in result.status["status.message"]
    assert wait_for_ray_status(bridge_job.services, result.status["id"], {"STOPPED"}) == "STOPPED"


def test_pip_options_wrap_the_packages_in_the_runtime_env_ray_receives(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "mirror_job.py"
    script.write_text("print('never runs')\n")
    properties = {
        "runtime_env": {"pip": {"pip_install_options": ["--index-url", "http://127.0.0.1:9/simple"]}},
        # A resource no node has: the job stays pending, so Ray never builds the pip env (slow)
        # and the test sees exactly what Ray accepted.
        "entrypoint_resources": {"raypod_test_no_such_resource": 1},
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "raypod",
            "submit",
            "--address",
            services.ray_address,
            "--credentials",
            str(tmp_path),
            "--script",
            str(script),
            "--pip",
            "raypod-test-package==1.0",
            "--properties",
            json.dumps(properties),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    submission_id = completed.stdout.strip()
    try:
        info = ray_job(services, submission_id)
        assert info["runtime_env"]["pip"] == {
            "packages": ["raypod-test-package==1.0"],
            "pip_install_options": ["--index-url", "http://127.0.0.1:9/simple"],
        }
        assert info["status"] == "PENDING"
    finally:
        requests.post(f"{services.ray_address}/api/jobs/{submission_id}/stop", timeout=30)
