"""``jobproperties.entrypoint_label_selector`` (Ray 2.60's job API takes it) reaches the real Ray
head: a selector the head node meets runs, one it does not meet keeps the job PENDING, and one Ray
finds invalid is Ray's own rejection (its job agent's 4xx inside the dashboard's 500)."""

from __future__ import annotations

import json

from tests.support.helpers import BridgeJob, Services, ray_job, stop_ray_job

SCRIPT = "print('placed by label', flush=True)\n"


def with_selector(job: BridgeJob, selector: dict[str, str]) -> BridgeJob:
    return job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript=SCRIPT,
        jobproperties=json.dumps({"entrypoint_label_selector": selector}),
    )


def test_a_selector_the_head_node_meets_runs_the_job(bridge_job: BridgeJob) -> None:
    # "!value": the node must not carry the label with that value; the head carries no such label.
    result = with_selector(bridge_job, {"raypod-test-pool": "!gpu"}).run()

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.status["status.jobStatus"] == "SUCCEEDED"


def test_a_selector_no_node_meets_keeps_the_job_pending(bridge_job: BridgeJob, services: Services) -> None:
    with_selector(bridge_job, {"raypod-test-pool": "gpu"})
    run = bridge_job.start()
    try:
        submission_id = bridge_job.wait_for("id")["id"]
        # A twin without the selector runs to its end meanwhile: the selector is what holds the job back.
        twin = BridgeJob(bridge_job.root / "twin", services).set(
            jobdata__scriptLocation="inline", jobdata__jobScript=SCRIPT
        )
        assert twin.run().returncode == 0
        assert ray_job(services, submission_id)["status"] == "PENDING"
    finally:
        run.terminate()
        run.communicate(timeout=60)
        # Best effort: Ray 2.60 answers a stop of a PENDING job and leaves it PENDING (it holds nothing).
        stop_ray_job(services, bridge_job.read_status().get("id", ""))


def test_a_selector_ray_finds_invalid_is_rays_rejection_without_a_retry(bridge_job: BridgeJob) -> None:
    result = with_selector(bridge_job, {"not a label key!": "x"}).run()

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.status["status.jobStatus"] == "FAILED"
    assert result.status["status.reason"] == "SubmissionRejected"
    assert result.status["status.message"].startswith("Ray rejected the job: ")
    assert "retrying" not in result.stderr


def test_a_job_that_cannot_start_is_failed_at_its_start_deadline_saying_ray_kept_it(
    bridge_job: BridgeJob, services: Services
) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript=SCRIPT,
        jobproperties=json.dumps({"entrypoint_label_selector": {"raypod-test-pool": "gpu"}, "startDeadlineSeconds": 2}),
    )

    result = bridge_job.run()
    stop_ray_job(services, result.status.get("id", ""))  # best effort, as above

    assert result.returncode == 1, result.stdout + result.stderr
    assert (result.status["status.jobStatus"], result.status["status.reason"]) == ("FAILED", "StartDeadlineExceeded")
    message = result.status["status.message"]
    assert message.startswith("The job did not start within startDeadlineSeconds (2 s); it was stopped, but Ray")
    assert "stays PENDING on Ray" in message
    assert ray_job(services, result.status["id"])["status"] == "PENDING"
