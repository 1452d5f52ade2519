"""Retries on the same cluster (``jobproperties.retries``): which ends are retried, the attempt
persisted before each POST, a replacement pod continuing the count, and each attempt's log.

The branches run on the in-memory fakes; tests/ray/test_job_retries_on_ray.py runs a flaky job on the real
Ray head."""

from __future__ import annotations

import json

import pytest

from raypod import exits
from raypod.contract import ATTEMPT, ID, JOB_STATUS, MESSAGE, SUBMIT_TIME, BridgeStatus, Reason
from raypod.outcome import Ending
from raypod.submission import attempt_id, recorded_attempt, split_recorded
from tests.support.fakes import FAILED_MESSAGE, RUNS_OUT_CONNECT, Harness, Life, no_answer, wrapped_rejection

FAILS = ("PENDING", "RUNNING", ("FAILED", FAILED_MESSAGE))
SUCCEEDS = ("PENDING", "RUNNING", "SUCCEEDED")


def retrying(retries: int = 2, delay: float = 10, **more: object) -> dict[str, str]:
    return {"jobproperties": json.dumps({"retries": retries, "retryDelaySeconds": delay, **more})}


def test_attempt_ids_are_the_jobs_id_then_r1_r2_and_give_the_jobs_id_back() -> None:
    assert [attempt_id("raypod-x-1a", n) for n in (1, 2, 3)] == ["raypod-x-1a", "raypod-x-1a-r1", "raypod-x-1a-r2"]
    assert split_recorded("raypod-x-1a-r2", 3) == ("raypod-x-1a", 3)
    # An id that merely ends like a retry is the job's own id at attempt 1.
    assert split_recorded("job-r1", 1) == ("job-r1", 1)
    # A record that disagrees with itself names attempt 1 of the id it holds.
    assert split_recorded("job-r1", 3) == ("job-r1", 1)
    assert [recorded_attempt(text) for text in ("", "1", "3", "0", "-2", "two")] == [1, 1, 3, 1, 1, 1]


def test_a_failed_attempt_is_submitted_again_as_r1_and_its_success_ends_the_job() -> None:
    h = Harness(retrying(retries=2), life=SUCCEEDS)
    h.ray.next_lives.extend([FAILS, SUCCEEDS])
    failed: list[tuple[str, int]] = []
    session = h.session()
    session.on_attempt_failed = lambda job, attempt: failed.append((job.submission_id, attempt))

    outcome = session.run()

    first, second = h.ray.posts
    assert second == f"{first}-r1"
    assert failed == [(first, 1)]
    assert (outcome.status, outcome.reason, outcome.submission_id) == (BridgeStatus.SUCCEEDED, Reason.SUCCEEDED, second)
    assert outcome.message == "Job succeeded (attempt 2 of 3)."
    # Each attempt's id is persisted with its number before its POST.
    attempts = [(w[ID], w[ATTEMPT]) for w in h.sink.writes if ATTEMPT in w]
    assert attempts == [(first, "1"), (second, "2")]
    post_of_second = h.journal.index(("ray", ("submit_job", second)))
    assert ("sink", {ID: second, ATTEMPT: "2"}) in h.journal[:post_of_second]
    # Between the attempts the job is PENDING, saying what failed and when the next starts.
    between = [w[MESSAGE] for w in h.sink.writes if w.get(JOB_STATUS) == BridgeStatus.PENDING and MESSAGE in w]
    assert (
        between[0]
        == f"Attempt 1 of 3 ({first}) failed: Job entrypoint command failed with exit code 1; attempt 2 starts in 10 s."
    )
    # The delay was waited (the fake clock moves only in waits) and the first submission time is kept.
    assert len(h.sink.written(SUBMIT_TIME)) == 1
    assert h.finish(outcome) == exits.EXIT_OK


def test_a_job_that_fails_every_attempt_ends_failed_after_the_last_one() -> None:
    h = Harness(retrying(retries=2, delay=0), life=FAILS)

    outcome = h.run()

    first = h.ray.posts[0]
    assert h.ray.posts == [first, f"{first}-r1", f"{first}-r2"]
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.APP_FAILED)
    assert outcome.submission_id == f"{first}-r2"
    assert outcome.message == "Job failed: Job entrypoint command failed with exit code 1 (attempt 3 of 3)."
    assert h.finish(outcome) == exits.EXIT_FAILED
    assert h.sink.data[ATTEMPT] == "3"


@pytest.mark.parametrize(
    ("life", "status", "reason"),
    [
        (("RUNNING", "STOPPED"), BridgeStatus.KILL, Reason.KILLED),
        (("RUNNING", "SUCCEEDED"), BridgeStatus.SUCCEEDED, Reason.SUCCEEDED),
    ],
    ids=["stopped-on-ray", "succeeded"],
)
def test_only_a_failure_is_retried(life: tuple[str, ...], status: str, reason: str) -> None:
    h = Harness(retrying(retries=3), life=life)

    outcome = h.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (status, reason)


def test_a_job_past_its_deadline_is_not_retried() -> None:
    h = Harness(retrying(retries=3, activeDeadlineSeconds=12), life=("RUNNING",))

    outcome = h.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.DEADLINE_EXCEEDED)


def test_a_rejected_submission_is_not_retried() -> None:
    h = Harness(retrying(retries=3))
    h.ray.fail("submit_job", wrapped_rejection())

    outcome = h.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.SUBMISSION_REJECTED)


def test_kill_during_the_delay_ends_kill_without_another_attempt() -> None:
    h = Harness(retrying(retries=2, delay=60), life=FAILS)
    # The first attempt ends within three polls of 5 s; kill comes while the retry waits.
    h.set_kill_at(30)

    outcome = h.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (BridgeStatus.KILL, Reason.KILLED)
    assert outcome.message.startswith("Stopped at the operator's request (kill=true) before attempt 2; Job failed")
    # The failed attempt's log is still the job's last log.
    assert outcome.job is not None and outcome.job.status == "FAILED"
    assert h.finish(outcome) == exits.for_status(BridgeStatus.KILL)


def test_the_deadline_passing_during_the_delay_ends_the_job_without_another_attempt() -> None:
    h = Harness(retrying(retries=2, delay=600, activeDeadlineSeconds=100), life=FAILS)

    outcome = h.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.DEADLINE_EXCEEDED)
    assert "before attempt 2" in outcome.message


def test_sigterm_during_the_delay_leaves_and_the_next_pod_continues_the_count() -> None:
    first_pod = Harness(retrying(retries=2, delay=60), life=FAILS)
    first_pod.ray.next_lives.extend([FAILS, SUCCEEDS])
    first_pod.clock.terminate_at(40)

    outcome = first_pod.run()

    assert outcome.ending is Ending.TERMINATED
    (first,) = first_pod.ray.posts
    # The next pod: the same Ray, the recorded keys, a new clock.
    second_pod = Harness(retrying(retries=2, delay=60), recorded=first_pod.sink.data)
    second_pod.ray = first_pod.ray
    second_pod.ray.clock = second_pod.clock

    outcome = second_pod.run()

    assert second_pod.ray.posts == [first, f"{first}-r1"]
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, f"{first}-r1")
    assert second_pod.sink.data[ATTEMPT] == "2"


def test_a_pod_that_died_between_persisting_an_attempt_and_its_post_submits_it_once() -> None:
    h = Harness(retrying(retries=2, delay=0), life=SUCCEEDS)
    h.ray.add_job("raypod-train-abc", life=FAILS[-1:])
    h.sink.data.update(
        {
            ID: "raypod-train-abc-r1",
            ATTEMPT: "2",
            JOB_STATUS: BridgeStatus.PENDING,
            SUBMIT_TIME: "2025-03-04T05:06:07Z",
        }
    )

    outcome = h.run()

    assert h.ray.posts == ["raypod-train-abc-r1"]
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raypod-train-abc-r1")


def test_a_head_that_lost_every_attempt_makes_the_job_unknown_and_submits_nothing() -> None:
    h = Harness(
        retrying(retries=2), recorded={ID: "raypod-train-abc-r1", ATTEMPT: "2", JOB_STATUS: BridgeStatus.RUNNING}
    )

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.reason) == (BridgeStatus.UNKNOWN, Reason.LOST)
    assert "nor raypod-train-abc before it" in outcome.message


def test_a_retry_that_cannot_be_submitted_ends_with_the_failed_attempt_not_unknown() -> None:
    h = Harness(retrying(retries=2, delay=0), life=FAILS, **RUNS_OUT_CONNECT)
    session = h.session()
    # The first attempt's checks pass; from the retry on, the dashboard's version call fails.
    session.on_attempt_failed = lambda job, attempt: h.ray.fail("version", no_answer("GET", "/api/version"), None)

    outcome = session.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.APP_FAILED)
    assert "attempt 2 could not be submitted" in outcome.message
    assert outcome.submission_id == h.ray.posts[0]


def test_with_a_status_file_the_configmaps_id_is_the_jobs_and_the_recorded_retry_is_attached() -> None:
    h = Harness(
        {**retrying(retries=2), "id": "my-job"},
        recorded={ID: "my-job-r1", ATTEMPT: "2", JOB_STATUS: BridgeStatus.RUNNING},
    )
    h.ray.add_job("my-job", life=FAILS[-1:])
    h.ray.add_job("my-job-r1", life=("RUNNING", "SUCCEEDED"))

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "my-job-r1")


def test_in_kubernetes_the_configmaps_id_is_the_attempts_and_the_count_goes_on_from_it() -> None:
    # In a pod, id is a key of the ConfigMap itself, so it holds the attempt's id.
    recorded = {ID: "raypod-train-abc-r1", ATTEMPT: "2", JOB_STATUS: BridgeStatus.RUNNING}
    h = Harness({**retrying(retries=2, delay=0), "id": "raypod-train-abc-r1"}, recorded=recorded, life=SUCCEEDS)
    h.ray.add_job("raypod-train-abc", life=FAILS[-1:])
    h.ray.add_job("raypod-train-abc-r1", life=FAILS[-1:])

    outcome = h.run()

    assert h.ray.posts == ["raypod-train-abc-r2"]
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raypod-train-abc-r2")
    assert h.sink.data[ATTEMPT] == "3"


@pytest.mark.parametrize("value", ["-1", "1.5", "true", "101", '"2"'])
def test_a_bad_retries_value_is_bad_input_naming_it(value: str) -> None:
    h = Harness({"jobproperties": f'{{"retries": {value}}}'})

    with pytest.raises(Exception) as raised:
        h.session()

    assert "retries must be a whole number from 0 to 100" in str(raised.value)


# -- which failures are retried: the column of raypod.ray_failures' table -------------------------
PIP_FAILED = (
    "PENDING",
    ("FAILED", "runtime_env setup failed: No matching distribution found", {"error_type": "RUNTIME_ENV_SETUP_FAILURE"}),
)
NOT_FOUND = (
    "RUNNING",
    (
        "FAILED",
        "Job entrypoint command failed with exit code 127, last available logs: sh: 1: python: not found",
        {"error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "driver_exit_code": 127},
    ),
)
SUPERVISOR_DIED = ("RUNNING", ("FAILED", "Job supervisor actor died", {"error_type": "JOB_SUPERVISOR_ACTOR_DIED"}))


@pytest.mark.parametrize(
    ("life", "reason"),
    [(PIP_FAILED, Reason.RUNTIME_ENV_SETUP_FAILED), (NOT_FOUND, Reason.ENTRYPOINT_NOT_FOUND)],
    ids=["runtime-env-setup-failure", "entrypoint-exit-127"],
)
def test_a_failure_another_attempt_cannot_mend_ends_the_job_at_once_with_rays_reason(life: Life, reason: str) -> None:
    h = Harness(retrying(retries=2, delay=0), life=life)

    outcome = h.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, reason)
    assert outcome.message.endswith(f"(attempt 1 of 3; {reason} is not retried).")
    assert h.sink.data[ATTEMPT] == "1"
    assert not [w for w in h.sink.writes if w.get(JOB_STATUS) == BridgeStatus.PENDING and MESSAGE in w]
    assert h.finish(outcome) == exits.EXIT_FAILED


def test_a_supervisor_that_died_is_retried_and_the_success_ends_the_job() -> None:
    h = Harness(retrying(retries=1, delay=0), life=SUCCEEDS)
    h.ray.next_lives.extend([SUPERVISOR_DIED, SUCCEEDS])

    outcome = h.run()

    first, second = h.ray.posts
    assert second == f"{first}-r1"
    assert (outcome.status, outcome.reason) == (BridgeStatus.SUCCEEDED, Reason.SUCCEEDED)


def test_the_last_attempt_ends_with_rays_reason_for_it() -> None:
    h = Harness(retrying(retries=1, delay=0), life=SUPERVISOR_DIED)

    outcome = h.run()

    assert len(h.ray.posts) == 2
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.SUPERVISOR_DIED)
    assert outcome.message == "Job failed: Job supervisor actor died (attempt 2 of 2)."


def test_a_retry_that_cannot_be_submitted_keeps_rays_reason_for_the_failed_attempt() -> None:
    h = Harness(retrying(retries=2, delay=0), life=SUPERVISOR_DIED, **RUNS_OUT_CONNECT)
    session = h.session()
    session.on_attempt_failed = lambda job, attempt: h.ray.fail("version", no_answer("GET", "/api/version"), None)

    outcome = session.run()

    assert len(h.ray.posts) == 1
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.SUPERVISOR_DIED)


def test_a_replacement_pod_does_not_retry_an_attempt_that_cannot_succeed() -> None:
    recorded = {ID: "raypod-train-abc", ATTEMPT: "1", JOB_STATUS: BridgeStatus.PENDING}
    h = Harness(retrying(retries=2, delay=0), recorded=recorded)
    h.ray.add_job("raypod-train-abc", life=PIP_FAILED[-1:])

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.RUNTIME_ENV_SETUP_FAILED)


def test_a_driver_exit_code_ray_left_out_of_its_message_reaches_the_status_message() -> None:
    life = ("RUNNING", ("FAILED", "", {"error_type": "JOB_ENTRYPOINT_COMMAND_ERROR", "driver_exit_code": 3}))
    h = Harness(life=life)

    outcome = h.run()

    assert (outcome.reason, outcome.message) == (Reason.APP_FAILED, "Job failed: exit code 3.")
