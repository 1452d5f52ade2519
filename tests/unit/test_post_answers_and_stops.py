"""What the chaos soak found where the POST and the stops meet a restart (issue 20): an answer to the
POST that is not Ray's is never a rejection nor "unknown" when Ray says it lacks the job, and a job
stopped for a deadline stays a deadline's end for the pod that replaces the one that stopped it."""

from __future__ import annotations

import json

from raypod.contract import REASON, BridgeStatus, Reason
from tests.support.fakes import FAILED_MESSAGE, RUNS_OUT_CONNECT, Harness, ray_error

FAILS = ("PENDING", "RUNNING", ("FAILED", FAILED_MESSAGE))
PAGE = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>"


def ingress_page(status: int = 404) -> Exception:
    return ray_error(status, "POST", "/api/jobs/", "Not Found", PAGE)


def garbled() -> Exception:
    error = ray_error(200, "POST", "/api/jobs/", "unexpected answer: answer is not JSON (content type text/html)")
    error.retryable = False
    return error


def test_a_garbled_answer_to_a_post_ray_did_not_get_is_posted_again_once_ray_says_so() -> None:
    h = Harness()
    h.ray.script("submit_job", [garbled()])

    outcome = h.run()

    assert len(h.ray.posts) == 2 and len(set(h.ray.posts)) == 1
    assert outcome.status is BridgeStatus.SUCCEEDED


def test_an_ingress_404_to_the_post_is_not_rays_rejection() -> None:
    h = Harness()
    h.ray.script("submit_job", [ingress_page()])

    outcome = h.run()

    assert outcome.reason != Reason.SUBMISSION_REJECTED
    assert outcome.status is BridgeStatus.SUCCEEDED
    assert len(h.ray.submitted) == 1


def test_a_post_that_never_reaches_ray_is_not_submitted_rather_than_unknown() -> None:
    h = Harness(**RUNS_OUT_CONNECT)
    h.ray.fail("submit_job", ingress_page(), None)

    outcome = h.run()

    assert h.ray.submitted == []
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.NOT_SUBMITTED)


def test_a_retry_whose_post_never_reaches_ray_ends_with_the_failed_attempt() -> None:
    h = Harness({"jobproperties": json.dumps({"retries": 1, "retryDelaySeconds": 0})}, life=FAILS, **RUNS_OUT_CONNECT)
    session = h.session()
    session.on_attempt_failed = lambda job, attempt: h.ray.fail("submit_job", garbled(), None)

    outcome = session.run()

    (first,) = h.ray.submitted
    assert (outcome.status, outcome.reason, outcome.submission_id) == (BridgeStatus.FAILED, Reason.APP_FAILED, first)
    assert "attempt 2 could not be submitted" in outcome.message


def test_a_job_stopped_for_its_deadline_by_a_pod_that_then_left_ends_deadline_exceeded_not_kill() -> None:
    properties = {"jobproperties": json.dumps({"activeDeadlineSeconds": 30})}
    first_pod = Harness(properties, life=("RUNNING",))
    first_pod.ray.ignore_stop_in = ("RUNNING",)  # Ray takes the stop; the job ends a little later
    first_pod.clock.terminate_at(60)

    assert first_pod.run().status is None  # SIGTERM: left while Ray was stopping the job
    (submission_id,) = first_pod.ray.submitted
    assert first_pod.ray.calls_of("stop_job")
    assert first_pod.sink.data[REASON] == Reason.DEADLINE_EXCEEDED
    job = first_pod.ray.jobs[submission_id]
    job.life, job.status = ("STOPPED",), "STOPPED"  # Ray has stopped it meanwhile

    second_pod = Harness(properties, recorded=first_pod.sink.data)
    second_pod.ray = first_pod.ray
    second_pod.ray.clock = second_pod.clock
    outcome = second_pod.run()

    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.DEADLINE_EXCEEDED)
    assert outcome.message.startswith("activeDeadlineSeconds (30 s) passed")
