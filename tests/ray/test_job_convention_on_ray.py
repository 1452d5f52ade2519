"""raypod as a Kubernetes Job's pod (samples/kubernetes/job.yaml) on the real Ray head: the Job's
``RAYPOD_EXIT_CODES``, the status through the (fake) Kubernetes API, and each exit code put through
the Job's podFailurePolicy. A lost dashboard gives a new pod, which re-attaches to the same Ray job;
a job that failed on Ray, or bad input, ends the Job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devtools.fake_kube import FakeKube
from devtools.proxy import Proxy
from raypod import exits
from raypod.contract import BridgeStatus
from raypod.exits import ExitCodes
from tests.support.helpers import BridgeJob, KubeJob, Services, Watched, jobs_of, ray_job, stop_ray_job, waiting_script
from tests.support.pod_failure_policy import Action, FailedPod, action_for
from tests.support.samples import one


def the_jobs_pod() -> tuple[dict[str, str], dict[str, Any], str]:
    """The sample Job's exit-code convention (as environment), its policy and its container's name."""
    spec = one("Job")["spec"]
    [container] = spec["template"]["spec"]["containers"]
    env = {
        item["name"]: item["value"]
        for item in container["env"]
        if "value" in item and item["name"].startswith("RAYPOD_")
    }
    return env, spec["podFailurePolicy"], container["name"]


JOB_ENV, POLICY, CONTAINER = the_jobs_pod()


def what_the_job_does(code: int) -> Action:
    return action_for(POLICY, FailedPod({CONTAINER: code}))[0]


@pytest.fixture
def kube_job(tmp_path: Path, services: Services, fake_kube: FakeKube) -> KubeJob:
    return KubeJob(BridgeJob(tmp_path, services, kube=fake_kube))


def test_the_sample_job_runs_raypod_in_the_job_convention() -> None:
    assert {exits.EXIT_CODES_VARIABLE: ExitCodes.JOB.value} == JOB_ENV


def test_a_lost_dashboard_gives_a_new_pod_which_reattaches_to_the_same_ray_job(
    kube_job: KubeJob, ray_proxy: Proxy, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    kube_job.create(
        resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript=waiting_script(release)
    )
    first = Watched(kube_job.job.start("--status-timeout", "2", env=JOB_ENV))
    submission_id = ""
    try:
        submission_id = kube_job.wait_for("status.jobStatus", "RUNNING")["id"]
        ray_proxy.down()
        code, _, stderr = first.finish()
        assert code == exits.for_status(BridgeStatus.UNKNOWN, ExitCodes.JOB), stderr
        assert kube_job.data()["status.jobStatus"] == "UNKNOWN"
        assert what_the_job_does(code) is Action.COUNT  # a new pod, within backoffLimit
        assert ray_job(kube_job.job.services, submission_id)["status"] == "RUNNING"

        # The Job's next pod: the dashboard is back, the job ends, and the pod finds it by its id.
        ray_proxy.up()
        release.touch()
        second = kube_job.job.run(env=JOB_ENV)
    finally:
        release.touch()
        if submission_id:
            stop_ray_job(kube_job.job.services, submission_id)
    assert second.returncode == exits.EXIT_OK, second.stderr
    assert f"attached to existing Ray job {submission_id}" in second.stdout
    data = kube_job.data()
    assert (data["id"], data["status.jobStatus"]) == (submission_id, "SUCCEEDED")
    assert [job["submission_id"] for job in jobs_of(kube_job.job.services, kube_job.job.name)] == [submission_id]


def test_a_job_that_fails_on_ray_ends_the_kubernetes_job(kube_job: KubeJob) -> None:
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript="raise SystemExit(7)\n")
    result = kube_job.job.run(env=JOB_ENV)
    assert result.returncode == exits.for_status(BridgeStatus.FAILED, ExitCodes.JOB), result.stderr
    assert kube_job.data()["status.jobStatus"] == "FAILED"
    assert what_the_job_does(result.returncode) is Action.FAIL_JOB


def test_bad_input_ends_the_kubernetes_job_with_nothing_submitted(kube_job: KubeJob) -> None:
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript="  \n")
    result = kube_job.job.run(env=JOB_ENV)
    assert result.returncode == exits.EXIT_BAD_INPUT, result.stderr
    assert kube_job.data()["status.reason"] == "BadInput"
    assert jobs_of(kube_job.job.services, kube_job.job.name) == []
    assert what_the_job_does(result.returncode) is Action.FAIL_JOB
