"""Where a restart meets a feature: deadlines, retries and "Ray lost the job", for every way a pod
begins (fresh, re-attach by a recorded id, an ``id`` the operator wrote, ``RAY_JOB_SUBMISSION_ID``,
a retry attempt, a stale mounted ConfigMap).

Each test is one seam of issue 20's classes 1-3, on the in-memory fakes: the decisions are the
session's, and only Ray's own answers may change what it believes about a job."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from raypod.config import ConfigOverrides
from raypod.contract import ATTEMPT, ID, JOB_STATUS, START_TIME, SUBMIT_TIME, BridgeStatus, Reason
from raypod.errors import KubeApiError
from raypod.outcome import Ending
from raypod.source import ConfigMapJob
from raypod.submission import attempt_number, resolve_attempt
from tests.support.fakes import FAILED_MESSAGE, RUNS_OUT_CONNECT, FakeClock, Harness, no_answer, ray_error

FAILS = ("PENDING", "RUNNING", ("FAILED", FAILED_MESSAGE))
JOB = "raypod-train-abc"
#: An ingress's page for a path it does not route: a 404 that is not Ray's.
INGRESS_404 = "<html><head><title>404 Not Found</title></head><body>nginx</body></html>"
#: What the pod's clock says at the start, in the operator's layout.
LONG_AGO = "2025-03-04T04:00:00Z"


def properties(**values: object) -> dict[str, str]:
    return {"jobproperties": json.dumps(values)}


def ingress_404(path: str = f"/api/jobs/{JOB}", method: str = "GET") -> Exception:
    return ray_error(404, method, path, "Not Found", INGRESS_404)


# -- 1. deadlines count from facts that survive a restart ----------------------------------------------
@dataclass(frozen=True)
class Beginning:
    """One way a pod begins with a job Ray already runs."""

    name: str
    data: Mapping[str, str]
    recorded: Mapping[str, str]
    #: The id the pod watches.
    watched: str
    overrides: ConfigOverrides = ConfigOverrides()


BEGINNINGS = [
    Beginning("recorded-id", {}, {ID: JOB, JOB_STATUS: "RUNNING", SUBMIT_TIME: LONG_AGO}, JOB),
    Beginning("operator-written-id", {"id": JOB}, {}, JOB),
    Beginning("ray-job-submission-id", {}, {}, JOB, ConfigOverrides(submission_id=JOB)),
    Beginning(
        "retry-attempt",
        {},
        {ID: f"{JOB}-r1", ATTEMPT: "2", JOB_STATUS: "RUNNING", SUBMIT_TIME: LONG_AGO},
        f"{JOB}-r1",
    ),
]


def pod_that_begins(beginning: Beginning, jobproperties: Mapping[str, str]) -> Harness:
    h = Harness({**jobproperties, **beginning.data}, recorded=beginning.recorded, **RUNS_OUT_CONNECT)
    if beginning.overrides != ConfigOverrides():
        h.job = ConfigMapJob(h.source, beginning.overrides)
    # Ray has run the job (and the attempt before a retry) since long before this pod.
    started = int(FakeClock.START.timestamp() * 1000) - 3_600_000
    if beginning.watched != JOB:
        h.ray.add_job(JOB, life=FAILS[-1:], start_time_ms=started, end_time_ms=started + 1000)
    h.ray.add_job(beginning.watched, life=("RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"), start_time_ms=started)
    return h


@pytest.mark.parametrize("beginning", BEGINNINGS, ids=lambda b: b.name)
def test_a_start_deadline_never_stops_a_running_job_while_a_new_pod_cannot_reach_ray(beginning: Beginning) -> None:
    h = pod_that_begins(beginning, properties(startDeadlineSeconds=8, retries=1))
    # The dashboard is away for the new pod's first 30 s: its connect policy and its polls all fail.
    h.ray.fail("get_job", no_answer(), None, until=30)

    outcome = h.run()

    assert h.ray.calls_of("stop_job") == []
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, beginning.watched)
    assert h.ray.posts == []


@pytest.mark.parametrize("beginning", BEGINNINGS, ids=lambda b: b.name)
def test_a_start_deadline_still_stops_a_job_that_ray_reports_pending(beginning: Beginning) -> None:
    h = pod_that_begins(beginning, properties(startDeadlineSeconds=8))
    h.ray.jobs[beginning.watched].life = ("PENDING",)
    h.ray.jobs[beginning.watched].status = "PENDING"

    outcome = h.run()

    assert h.ray.calls_of("stop_job") == [beginning.watched]
    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, Reason.START_DEADLINE_EXCEEDED)


def test_the_retry_delay_counts_from_rays_end_of_the_failed_attempt_after_a_restart() -> None:
    h = Harness(properties(retries=1, retryDelaySeconds=60))
    # Attempt 1 ended on Ray 45 s before this pod began: 15 s of the delay are left.
    ended = int(FakeClock.START.timestamp() * 1000) - 45_000
    h.ray.add_job(JOB, life=FAILS[-1:], start_time_ms=ended - 5000, end_time_ms=ended)
    h.sink.data.update({ID: JOB, ATTEMPT: "1", JOB_STATUS: BridgeStatus.PENDING, SUBMIT_TIME: LONG_AGO})

    h.run()

    assert h.ray.posts == [f"{JOB}-r1"]
    waited_ms = h.ray.jobs[f"{JOB}-r1"].start_time_ms - int(FakeClock.START.timestamp() * 1000)
    assert waited_ms == pytest.approx(15_000, abs=1000)


def test_status_start_time_is_never_before_status_submit_time() -> None:
    # The head's clock runs 3 s behind the pod's: Ray's start_time is before the pod's submitTime.
    h = Harness()
    h.ray.clock_skew_ms = -3000

    h.run()

    submitted = h.sink.written(SUBMIT_TIME)
    started = h.sink.written(START_TIME)
    assert submitted and started
    assert all(start >= submitted[0] for start in started)


# -- 2. recorded state that disagrees never leads to a second submission --------------------------------
def test_attempt_ids_are_only_read_as_attempts_of_the_recorded_job() -> None:
    assert attempt_number(JOB, JOB) == 1
    assert attempt_number(JOB, f"{JOB}-r2") == 3
    assert [attempt_number(JOB, other) for other in (f"{JOB}-r", f"{JOB}-r02", f"{JOB}-rx", "other", f"{JOB}x")] == [
        None
    ] * 5
    # A mounted ConfigMap's id lags the API's record: the newer of the two is the attempt.
    assert resolve_attempt(f"{JOB}-r1", f"{JOB}-r2", 3) == (JOB, 3)
    # With a status file, the ConfigMap's id is the job's own.
    assert resolve_attempt(JOB, f"{JOB}-r1", 2) == (JOB, 2)
    # Another job's id in the ConfigMap is that job, at its first attempt, even if it ends like a retry.
    assert resolve_attempt("new-job-r1", f"{JOB}-r1", 2) == ("new-job-r1", 1)
    # Nothing recorded: the id is the job's.
    assert resolve_attempt(f"{JOB}-r1", "", 1) == (f"{JOB}-r1", 1)


def test_a_stale_mounted_id_of_an_older_attempt_attaches_to_the_newest_attempt_and_submits_nothing() -> None:
    # retries: 2; attempt 3 runs; the pod's mounted ConfigMap still says attempt 2's id.
    h = Harness(
        {**properties(retries=2, retryDelaySeconds=0), "id": f"{JOB}-r1"},
        recorded={ID: f"{JOB}-r2", ATTEMPT: "3", JOB_STATUS: "RUNNING", SUBMIT_TIME: LONG_AGO},
    )
    h.ray.add_job(JOB, life=FAILS[-1:])
    h.ray.add_job(f"{JOB}-r1", life=FAILS[-1:])
    h.ray.add_job(f"{JOB}-r2", life=("RUNNING", "SUCCEEDED"))

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, f"{JOB}-r2")


def test_a_record_that_lags_ray_finds_the_newest_attempt_before_deciding_to_retry() -> None:
    # The record names attempt 2, which failed; Ray already has attempt 3 (the record of it was lost).
    h = Harness(
        properties(retries=3, retryDelaySeconds=0),
        recorded={ID: f"{JOB}-r1", ATTEMPT: "2", JOB_STATUS: "RUNNING", SUBMIT_TIME: LONG_AGO},
    )
    h.ray.add_job(JOB, life=FAILS[-1:])
    h.ray.add_job(f"{JOB}-r1", life=FAILS[-1:])
    h.ray.add_job(f"{JOB}-r2", life=("RUNNING", "SUCCEEDED"))

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, f"{JOB}-r2")
    assert h.sink.data[ATTEMPT] == "3"


def test_the_count_of_attempts_never_passes_retries_plus_one_whatever_the_record_says() -> None:
    h = Harness(
        {**properties(retries=1, retryDelaySeconds=0), "id": JOB},
        recorded={ID: f"{JOB}-r1", ATTEMPT: "2", JOB_STATUS: "RUNNING", SUBMIT_TIME: LONG_AGO},
    )
    h.ray.add_job(JOB, life=FAILS[-1:])
    h.ray.add_job(f"{JOB}-r1", life=FAILS[-1:])

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.FAILED, f"{JOB}-r1")


def test_a_failed_write_of_a_new_attempt_leaves_no_later_write_naming_it() -> None:
    h = Harness(properties(retries=1, retryDelaySeconds=0), life=FAILS)
    refused = KubeApiError("PATCH", "https://kubernetes/api", 503, "Service Unavailable")
    session = h.session()
    # The API is down for two writes: the retry's PENDING message, then attempt 2's id before its POST.
    session.on_attempt_failed = lambda job, attempt: h.sink.fail_writes(refused, times=2)

    outcome = session.run()
    h.finish(outcome)

    (first,) = h.ray.posts
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.FAILED, first)
    assert f"{first}-r1" in h.sink.failed_writes[-1].values()
    assert f"{first}-r1" not in h.sink.written(ID)
    assert h.sink.data[ID] == first
    assert h.sink.data.get(ATTEMPT, "1") == "1"


# -- 3. "Ray lost the job" is inferred only from Ray's own answer ---------------------------------------
def test_an_ingress_404_during_a_poll_is_a_failed_poll_not_a_lost_job() -> None:
    h = Harness(life=("RUNNING", "RUNNING", "SUCCEEDED"))
    session = h.session()
    session.on_poll = lambda job: h.ray.fail("get_job", ingress_404(f"/api/jobs/{job.submission_id}"), times=2)

    outcome = session.run()

    assert (outcome.status, outcome.ending) == (BridgeStatus.SUCCEEDED, Ending.FINAL)


def test_rays_own_404_during_a_poll_is_a_lost_job() -> None:
    h = Harness(life=("RUNNING",))
    session = h.session()
    session.on_poll = lambda job: h.ray.jobs.clear()  # the head restarted and forgot every job

    outcome = session.run()

    assert (outcome.status, outcome.reason) == (BridgeStatus.UNKNOWN, Reason.LOST)
    assert "Ray no longer knows job" in outcome.message


@pytest.mark.parametrize("recorded_status", ["RUNNING", "SUBMITTED", ""])
def test_an_ingress_404_at_re_attach_is_asked_again_never_lost_nor_submitted(recorded_status: str) -> None:
    h = Harness(recorded={ID: JOB, JOB_STATUS: recorded_status} if recorded_status else {ID: JOB})
    h.ray.add_job(JOB, life=("RUNNING", "SUCCEEDED"))
    h.ray.fail("get_job", ingress_404(), None, until=20)

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, JOB)


def test_a_job_whose_post_may_have_reached_ray_is_unknown_once_the_dashboard_stays_unclear() -> None:
    h = Harness(recorded={ID: JOB}, status_timeout=60)
    h.ray.fail("get_job", ingress_404(), None)

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.reason) == (BridgeStatus.UNKNOWN, Reason.LOST)
    assert "Cannot tell whether Ray has job" in outcome.message


def test_an_ingress_404_to_the_stop_is_asked_again_until_ray_answers() -> None:
    h = Harness(life=("RUNNING",))
    h.set_kill_at(5)
    h.ray.fail("stop_job", ingress_404(f"/api/jobs/{JOB}/stop", "POST"), times=2)

    outcome = h.run()

    assert (outcome.status, outcome.reason) == (BridgeStatus.KILL, Reason.KILLED)
    assert len(h.ray.calls_of("stop_job")) == 3


def test_an_ingress_404_for_the_attempt_before_an_unposted_retry_is_not_a_lost_job() -> None:
    # Attempt 2 was persisted but never POSTed; the lookup of attempt 1 meets an ingress page first.
    h = Harness(
        properties(retries=1, retryDelaySeconds=0),
        recorded={ID: f"{JOB}-r1", ATTEMPT: "2", JOB_STATUS: BridgeStatus.PENDING, SUBMIT_TIME: LONG_AGO},
        life=("RUNNING", "SUCCEEDED"),
    )
    h.ray.add_job(JOB, life=FAILS[-1:])
    h.ray.script("get_job", [ray_error(404, "GET", f"/api/jobs/{JOB}-r1", "", f"Job {JOB}-r1 does not exist")])
    h.ray.fail("get_job", ingress_404(), times=1)

    outcome = h.run()

    assert outcome.status is not BridgeStatus.UNKNOWN
    assert h.ray.posts == [f"{JOB}-r1"]
