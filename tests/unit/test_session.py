"""The job lifecycle (``raypod.session.JobSession``) and ``runner.finish``, branch by branch, in memory.

No Ray, no S3, no network: a ``FakeRay``, a ``FakeClock`` and a ``MemorySink`` (tests/support/fakes.py).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from raypod import exits
from raypod.contract import ATTEMPT, END_TIME, ID, JOB_STATUS, MESSAGE, START_TIME, SUBMIT_TIME, BridgeStatus
from raypod.errors import ConfigError, KubeApiError, RayApiError
from raypod.jobs import WAIT_POLL
from raypod.outcome import Ending, Outcome
from raypod.ray import JobInfo
from raypod.retry import RetryPolicy
from raypod.runner import finish
from raypod.session import KILL_MESSAGE
from raypod.status_store import StatusReporter
from raypod.terminal import ByteProgress, no_progress
from raypod.watch_schedule import FIRST_LOOK
from tests.support.fakes import (
    FAILED_MESSAGE,
    INLINE_SCRIPT,
    RAY_URL,
    RUNS_OUT_CONNECT,
    FakeClock,
    Harness,
    MemorySink,
    no_answer,
    ray_error,
    wrapped_rejection,
)

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
KUBE_DOWN = KubeApiError("PATCH", "https://kube.test/api/v1/namespaces/bridge/configmaps/train", 503, "x")
RUNNING_FOREVER = ("PENDING", "RUNNING")


def ray_time(job: JobInfo | None, field: str) -> str:
    """A JobInfo time in the operator's layout, computed here (not with raypod's helpers)."""
    assert job is not None
    milliseconds = getattr(job, field)
    assert milliseconds
    return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sink_before_post(h: Harness) -> list[dict[str, str]]:
    """The sink writes made before the first POST."""
    writes: list[dict[str, str]] = []
    for kind, item in h.journal:
        if kind == "ray" and item[0] == "submit_job":
            return writes
        if kind == "sink":
            writes.append(item)
    raise AssertionError("no POST was made")


# -- a fresh submission -------------------------------------------------------------------------
def test_fresh_job_persists_its_id_before_the_one_post_then_is_watched_to_success() -> None:
    h = Harness()
    outcome = h.run()

    assert outcome.ending is Ending.FINAL
    assert outcome.status == BridgeStatus.SUCCEEDED
    assert outcome.message == "Job succeeded."
    (submission_id,) = h.ray.posts
    assert submission_id.startswith("raypod-train-")
    assert outcome.submission_id == submission_id
    # The id reaches the sink alone, before the POST; SUBMITTED follows the POST.
    assert sink_before_post(h) == [{ID: submission_id, ATTEMPT: "1"}]
    assert h.sink.writes[0] == {ID: submission_id, ATTEMPT: "1"}
    assert h.sink.writes[1][JOB_STATUS] == BridgeStatus.SUBMITTED
    assert TIME.match(h.sink.writes[1][SUBMIT_TIME])
    assert h.sink.writes[1][MESSAGE] == f"Submitted to {RAY_URL} as {submission_id}."
    assert h.sink.written(JOB_STATUS) == [BridgeStatus.SUBMITTED, BridgeStatus.PENDING, BridgeStatus.RUNNING]
    # Ray's end time, in the operator's layout.
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")
    assert TIME.match(outcome.end_time or "")
    payload = h.ray.jobs[submission_id].payload
    assert payload["metadata"] == {"bridge-job": "train", "bridge-namespace": "bridge"}
    assert payload["entrypoint"].startswith("python /opt/jobs/train.py --kwargs")


def test_inline_script_is_uploaded_as_a_package_once_and_named_in_the_runtime_env() -> None:
    h = Harness({"jobdata.scriptLocation": "inline", "jobdata.jobScript": INLINE_SCRIPT})
    outcome = h.run()

    assert outcome.status == BridgeStatus.SUCCEEDED
    (package,) = h.ray.calls_of("upload_package")
    assert h.ray.calls_of("package_exists") == [package]
    (submission_id,) = h.ray.posts
    assert h.ray.jobs[submission_id].payload["runtime_env"] == {"working_dir": f"gcs://{package}"}


def test_inline_package_that_ray_already_has_is_not_uploaded_again() -> None:
    first = Harness({"jobdata.scriptLocation": "inline", "jobdata.jobScript": INLINE_SCRIPT})
    first.run()
    (package,) = first.ray.packages
    h = Harness({"jobdata.scriptLocation": "inline", "jobdata.jobScript": INLINE_SCRIPT})
    h.ray.packages[package] = 1
    assert h.run().status == BridgeStatus.SUCCEEDED
    assert h.ray.calls_of("upload_package") == []


def test_failed_job_reports_rays_message_without_its_log_tail() -> None:
    h = Harness(life=("RUNNING", ("FAILED", FAILED_MESSAGE)))
    outcome = h.run()

    assert outcome.ending is Ending.FINAL
    assert outcome.status == BridgeStatus.FAILED
    assert outcome.message == "Job failed: Job entrypoint command failed with exit code 1."
    assert "last available logs" not in outcome.message
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")


def test_failed_job_without_a_message_says_job_failed() -> None:
    outcome = Harness(life=("RUNNING", "FAILED")).run()
    assert (outcome.status, outcome.message) == (BridgeStatus.FAILED, "Job failed.")


def test_job_stopped_on_ray_by_someone_else_ends_kill() -> None:
    outcome = Harness(life=("RUNNING", "STOPPED")).run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.KILL)
    assert outcome.message == "Job was stopped on Ray."
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")


def test_submit_only_detaches_right_after_the_post_without_a_poll() -> None:
    h = Harness(submit_only=True)
    outcome = h.run()

    assert outcome.ending is Ending.DETACHED
    assert outcome.status == BridgeStatus.SUBMITTED
    assert h.ray.posts == [outcome.submission_id]
    assert h.ray.calls_of("get_job") == []
    assert h.sink.data[JOB_STATUS] == BridgeStatus.SUBMITTED
    assert h.clock.waits == []


# -- kill -----------------------------------------------------------------------------------------
def test_kill_set_before_the_start_submits_nothing_and_makes_no_request() -> None:
    h = Harness({"kill": "true"})
    outcome = h.run()

    assert (outcome.ending, outcome.status, outcome.submission_id) == (Ending.FINAL, BridgeStatus.KILL, "")
    assert outcome.message.startswith("Not submitted")
    assert h.ray.calls == []
    assert h.sink.writes == []


def test_kill_set_while_watching_stops_the_job_and_waits_for_its_end() -> None:
    h = Harness(life=RUNNING_FOREVER)
    h.set_kill_at(12)
    outcome = h.run()

    assert (outcome.ending, outcome.status, outcome.message) == (Ending.FINAL, BridgeStatus.KILL, KILL_MESSAGE)
    assert h.ray.calls_of("stop_job") == [outcome.submission_id]
    assert outcome.job is not None and outcome.job.status == "STOPPED"
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")
    # The poll after the stop request saw the end: nothing was stopped before kill was read.
    assert [job.status for job in h.polled][-2:] == ["RUNNING", "STOPPED"]


def test_refused_stop_is_asked_again_on_the_next_poll_until_ray_takes_it() -> None:
    h = Harness(life=RUNNING_FOREVER)
    h.set_kill_at(7)
    h.ray.fail("stop_job", ray_error(400, "POST", "/api/jobs/x/stop", "Bad Request: cannot stop"), times=2)
    outcome = h.run()

    assert h.ray.calls_of("stop_job") == [outcome.submission_id] * 3
    assert (outcome.ending, outcome.status, outcome.message) == (Ending.FINAL, BridgeStatus.KILL, KILL_MESSAGE)
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")


def test_stop_ray_never_confirms_is_reported_as_what_ray_says_and_never_as_kill() -> None:
    h = Harness(life=("PENDING",), stop_timeout=10.0)
    h.ray.ignore_stop_in = ("PENDING",)  # Ray 2.60 answers stopped: true and leaves it PENDING
    h.set_kill_at(1)
    h.clock.terminate_at(60)
    outcome = h.run()

    assert outcome == Outcome(Ending.TERMINATED, h.ray.posts[0])
    assert h.ray.calls_of("stop_job") == [h.ray.posts[0]]  # Ray took it: not asked again
    assert BridgeStatus.KILL not in h.sink.written(JOB_STATUS)
    assert h.sink.data[JOB_STATUS] == BridgeStatus.PENDING
    assert h.sink.data[MESSAGE].startswith(
        "Stopped at the operator's request (kill=true), but Ray still reports the job PENDING 10 s after the stop"
    )
    assert len(set(h.sink.written(MESSAGE))) == len(h.sink.written(MESSAGE))  # each message written once


def test_stop_refused_for_ever_says_why_and_a_job_that_then_fails_keeps_rays_status() -> None:
    life = lambda answer: "RUNNING" if answer < 20 else ("FAILED", "boom")  # noqa: E731
    h = Harness(life=life, stop_timeout=10.0)
    h.set_kill_at(7)
    h.ray.fail("stop_job", ray_error(500, "POST", "/api/jobs/x/stop", "Internal Server Error"), times=None)
    outcome = h.run()

    assert len(h.ray.calls_of("stop_job")) > 2
    assert "(the stop call failed: Internal Server Error)" in " ".join(h.sink.written(MESSAGE))
    assert (outcome.ending, outcome.status, outcome.message) == (Ending.FINAL, BridgeStatus.FAILED, "Job failed: boom.")


def test_kill_of_a_job_that_had_already_ended_keeps_rays_own_status() -> None:
    h = Harness(life=RUNNING_FOREVER)

    def job_succeeds_then_kill_is_set() -> None:
        job = h.ray.jobs[h.ray.posts[0]]
        job.status, job.end_time_ms = "SUCCEEDED", int(h.clock.now().timestamp() * 1000)
        h.source.data["kill"] = "true"

    h.clock.at(7, job_succeeds_then_kill_is_set)
    outcome = h.run()

    # Ray answered the stop with stopped=false: nothing was killed, so no KILL is reported.
    assert h.ray.calls_of("stop_job") == [outcome.submission_id]
    assert (outcome.ending, outcome.status, outcome.message) == (Ending.FINAL, BridgeStatus.SUCCEEDED, "Job succeeded.")
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")


def test_sigterm_while_waiting_for_a_stop_leaves_without_a_final_status() -> None:
    h = Harness(life=("PENDING",), stop_timeout=10.0)
    h.ray.ignore_stop_in = ("PENDING",)
    h.set_kill_at(1)
    h.clock.terminate_at(7)  # after the stop request at 5, before stop_timeout
    outcome = h.run()

    assert outcome == Outcome(Ending.TERMINATED, h.ray.posts[0])
    assert h.finish(outcome) == exits.EXIT_TERMINATED
    assert h.sink.data[JOB_STATUS] == BridgeStatus.PENDING


def test_kill_value_that_cannot_be_read_is_ignored_until_it_says_true() -> None:
    h = Harness(life=RUNNING_FOREVER)
    h.clock.at(1, lambda: h.source.data.__setitem__("kill", "maybe"))  # logged, not acted on
    h.set_kill_at(13)  # polls at 2 (FIRST_LOOK), 7, 12: seen at 17
    outcome = h.run()

    assert (outcome.status, outcome.message) == (BridgeStatus.KILL, KILL_MESSAGE)
    assert [job.status for job in h.polled][:3] == ["PENDING", "RUNNING", "RUNNING"]
    assert h.ray.calls_of("stop_job") == [outcome.submission_id]


def test_active_deadline_passed_stops_the_job_and_fails_it_naming_the_deadline() -> None:
    h = Harness({"jobproperties": '{"activeDeadlineSeconds": 5}'}, life=RUNNING_FOREVER)
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.FAILED)
    assert outcome.message == "activeDeadlineSeconds (5 s) passed; the job was stopped."
    assert h.ray.calls_of("stop_job") == [outcome.submission_id]
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")
    assert 5 < h.clock.elapsed <= 15


def test_start_deadline_stops_a_job_that_never_started_and_says_ray_kept_it_pending() -> None:
    h = Harness({"jobproperties": '{"startDeadlineSeconds": 5}'}, life=("PENDING",), stop_timeout=60.0)
    h.ray.ignore_stop_in = ("PENDING",)  # Ray 2.60 answers stopped: true and leaves it PENDING
    outcome = h.run()

    assert (outcome.ending, outcome.status, outcome.reason) == (
        Ending.FINAL,
        BridgeStatus.FAILED,
        "StartDeadlineExceeded",
    )
    assert outcome.message == (
        "The job did not start within startDeadlineSeconds (5 s); it was stopped, but Ray cannot stop a job that "
        "has not started: it stays PENDING on Ray, and the stop request waits there for the job's start."
    )
    assert h.ray.calls_of("stop_job") == [outcome.submission_id]  # Ray took it: not asked again
    assert 15 <= h.clock.elapsed <= 30  # 10 s for the stop to show, not the whole stop_timeout


def test_start_deadline_of_a_job_stopped_while_it_starts_ends_failed_with_that_reason() -> None:
    h = Harness({"jobproperties": '{"startDeadlineSeconds": 5}'}, life=("PENDING",))
    outcome = h.run()  # the fake Ray stops a PENDING job when asked

    assert (outcome.status, outcome.reason) == (BridgeStatus.FAILED, "StartDeadlineExceeded")
    assert outcome.message == "The job did not start within startDeadlineSeconds (5 s); it was stopped."
    assert outcome.end_time == ray_time(outcome.job, "end_time_ms")


def test_start_deadline_does_not_touch_a_job_that_started_in_time() -> None:
    h = Harness({"jobproperties": '{"startDeadlineSeconds": 5}'}, life=("PENDING", "RUNNING"))
    h.clock.terminate_at(60)
    outcome = h.run()

    assert outcome.ending is Ending.TERMINATED
    assert h.ray.calls_of("stop_job") == []


# -- attach ---------------------------------------------------------------------------------------
def test_id_in_the_configmap_is_reattached_without_a_post() -> None:
    h = Harness({"id": "raysubmit_given"}, life=("RUNNING", "SUCCEEDED"))
    h.ray.add_job("raysubmit_given")
    outcome = h.run()

    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raysubmit_given")
    assert h.ray.posts == []
    assert [job.submission_id for job in h.attached] == ["raysubmit_given"]
    assert h.sink.writes[0] == {ID: "raysubmit_given"}


def test_id_recorded_by_an_earlier_pod_is_reattached_without_a_post() -> None:
    h = Harness(recorded={ID: "raypod-train-abc", JOB_STATUS: BridgeStatus.RUNNING}, life=("RUNNING", "SUCCEEDED"))
    h.ray.add_job("raypod-train-abc")
    outcome = h.run()

    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raypod-train-abc")
    assert h.ray.posts == []
    assert len(h.attached) == 1
    assert h.attached[0].status == "RUNNING"


def test_session_without_hooks_reattaches_and_watches_all_the_same() -> None:
    h = Harness({"id": "raysubmit_given"}, life=("RUNNING", "SUCCEEDED"))
    h.ray.add_job("raysubmit_given")
    outcome = h.session(hooks=False).run()

    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raysubmit_given")
    assert h.attached == [] and h.polled == []


def test_recorded_id_that_ray_never_accepted_is_submitted_under_that_same_id() -> None:
    h = Harness(recorded={ID: "raypod-train-abc"})
    outcome = h.run()

    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raypod-train-abc")
    assert h.ray.posts == ["raypod-train-abc"]
    assert h.attached == []


def test_recorded_confirmed_id_that_ray_no_longer_knows_is_unknown() -> None:
    h = Harness(recorded={ID: "raypod-train-abc", JOB_STATUS: BridgeStatus.RUNNING})
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.UNKNOWN)
    assert "no longer knows" in outcome.message
    assert outcome.submission_id == "raypod-train-abc"
    assert h.ray.posts == []


def test_outage_at_reattach_of_a_confirmed_job_is_ridden_out_by_the_watch() -> None:
    recorded = {ID: "raypod-train-abc", JOB_STATUS: BridgeStatus.RUNNING}
    h = Harness(recorded=recorded, life=("RUNNING", "SUCCEEDED"), connect_timeout=0.1)
    h.ray.add_job("raypod-train-abc")
    h.ray.fail("get_job", no_answer(), times=None, until=3)  # down for every attempt of the attach
    outcome = h.run()

    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raypod-train-abc")
    assert h.attached == []  # Ray never answered the attach
    assert h.ray.posts == []
    assert len(h.ray.calls_of("get_job")) > 2  # the attach retried, then the watch polled


def test_outage_at_reattach_of_an_unconfirmed_job_cannot_tell_and_is_unknown() -> None:
    h = Harness(recorded={ID: "raypod-train-abc"}, connect_timeout=0.1)  # Ray never confirmed it
    h.ray.fail("get_job", no_answer(), times=None)
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.UNKNOWN)
    assert outcome.message.startswith("Cannot tell whether Ray has job raypod-train-abc")
    assert h.ray.posts == []


def test_unauthorized_at_reattach_of_a_confirmed_job_is_ridden_out_and_never_bad_input() -> None:
    # A rotated token: Ray has the job and it may be running; exit 2 would claim nothing was submitted.
    h = Harness(recorded={ID: "raypod-train-abc", JOB_STATUS: BridgeStatus.RUNNING})
    h.ray.fail("get_job", ray_error(401, reason="Unauthorized"), times=None)
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.UNKNOWN)
    assert outcome.message.startswith("No answer from the Ray dashboard for ")
    assert h.ray.posts == []


def test_refused_reattach_of_an_unconfirmed_id_cannot_tell_and_is_never_bad_input() -> None:
    h = Harness({"id": "raysubmit_given"})
    error = RayApiError("GET", RAY_URL, None, "TLS verification failed (CERTIFICATE_VERIFY_FAILED)", retryable=False)
    h.ray.fail("get_job", error, times=None)
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.UNKNOWN)
    assert outcome.message.startswith("Cannot tell whether Ray has job raysubmit_given: ")
    assert h.finish(outcome) == exits.EXIT_FAILED
    assert h.ray.posts == []


@pytest.mark.parametrize(
    "recorded_status", [BridgeStatus.SUCCEEDED, BridgeStatus.FAILED, BridgeStatus.KILL, BridgeStatus.UNKNOWN]
)
def test_final_status_recorded_by_an_earlier_pod_is_kept_without_asking_ray(recorded_status: str) -> None:
    recorded = {ID: "raypod-train-abc", JOB_STATUS: recorded_status, END_TIME: "2026-01-02T03:04:05Z"}
    h = Harness(recorded=recorded)  # Ray would answer 404: the head was restarted
    outcome = h.run()
    code = h.finish(outcome)

    assert (outcome.ending, outcome.status) == (Ending.ALREADY_FINAL, recorded_status)
    assert code == exits.for_status(recorded_status)
    assert h.ray.calls == []
    assert h.sink.writes == []


# -- the POST -------------------------------------------------------------------------------------
def test_lost_post_answer_is_looked_up_and_accepted_with_one_job_on_ray() -> None:
    h = Harness()
    h.ray.lose_answers(1)
    outcome = h.run()

    assert outcome.status == BridgeStatus.SUCCEEDED
    assert len(h.ray.posts) == 1
    assert list(h.ray.jobs) == [outcome.submission_id]
    assert h.ray.calls[:3] == [
        ("version", None),
        ("submit_job", outcome.submission_id),
        ("get_job", outcome.submission_id),
    ]


def test_garbled_answer_to_an_accepted_post_is_looked_up_and_the_job_watched() -> None:
    h = Harness()
    submit = h.ray.submit_job

    def accepted_then_garbled(payload: Mapping[str, Any], retry: RetryPolicy | None = None) -> str:
        submit(payload, retry)
        raise ray_error(200, "POST", "/api/jobs/", "unexpected answer: not JSON (text/html)")

    h.ray.submit_job = accepted_then_garbled  # type: ignore[method-assign]
    outcome = h.run()

    assert (outcome.status, outcome.message) == (BridgeStatus.SUCCEEDED, "Job succeeded.")
    assert list(h.ray.jobs) == [outcome.submission_id]


def test_garbled_answer_to_every_post_ray_never_got_is_not_submitted_and_never_a_rejection() -> None:
    h = Harness(**RUNS_OUT_CONNECT)
    garbled = ray_error(200, "POST", "/api/jobs/", "unexpected answer: not JSON (text/html)")
    h.ray.fail("submit_job", garbled, times=None)
    outcome = h.run()

    assert (outcome.ending, outcome.status, outcome.reason) == (Ending.FINAL, BridgeStatus.FAILED, "NotSubmitted")
    assert outcome.message.startswith("Not submitted: ")
    assert "rejected" not in outcome.message
    assert len(h.ray.posts) > 1  # Ray said it lacks the job after each answer: posted again
    assert h.ray.jobs == {}


def test_duplicate_id_answer_to_a_retried_post_means_ray_has_the_job() -> None:
    h = Harness()
    h.ray.lose_answers(1)
    h.ray.fail("get_job", no_answer())  # the look-up after the lost answer fails too: POST again
    outcome = h.run()

    assert outcome.status == BridgeStatus.SUCCEEDED
    assert h.ray.posts == [outcome.submission_id] * 2
    assert list(h.ray.jobs) == [outcome.submission_id]
    assert h.ray.submitted == [outcome.submission_id]


def test_wrapped_rejection_fails_the_job_at_once_without_a_retry() -> None:
    h = Harness()
    h.ray.fail("submit_job", wrapped_rejection(), times=None)
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.FAILED)
    assert outcome.message.startswith("Ray rejected the job")
    assert len(h.ray.posts) == 1
    assert h.ray.calls_of("get_job") == []
    assert outcome.submission_id == h.ray.posts[0]


def test_plain_4xx_answer_to_the_post_is_a_rejection() -> None:
    h = Harness()
    h.ray.fail("submit_job", ray_error(400, "POST", reason="Bad Request: entrypoint_memory"), times=None)
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.FAILED)
    assert outcome.message == "Ray rejected the job: Bad Request: entrypoint_memory"
    assert len(h.ray.posts) == 1


def test_post_failing_transiently_until_connect_timeout_loses_track_of_the_job() -> None:
    h = Harness(connect_timeout=0.1)
    h.ray.fail("submit_job", ray_error(503, "POST", reason="Service Unavailable"), times=None)
    outcome = h.run()

    submission_id = h.ray.posts[0]
    assert set(h.ray.posts) == {submission_id}
    assert len(h.ray.posts) > 1  # retried, asking after each failure whether Ray had it
    assert (outcome.ending, outcome.status, outcome.submission_id) == (
        Ending.FINAL,
        BridgeStatus.UNKNOWN,
        submission_id,
    )
    assert outcome.message.startswith(f"Lost track of Ray job {submission_id}")
    assert h.ray.jobs == {}


def test_unreachable_dashboard_before_submission_is_bad_input_with_no_post_and_no_id() -> None:
    h = Harness(connect_timeout=0.1)
    h.ray.fail("version", no_answer(path="/api/version"), times=None)
    outcome = h.run()

    assert outcome.ending is Ending.BAD_INPUT
    assert outcome.problems[0].startswith("resourceURL: cannot reach the Ray dashboard")
    assert outcome.submission_id == ""
    assert h.ray.posts == []
    assert h.sink.writes == []


def test_id_that_cannot_be_persisted_is_not_submitted() -> None:
    h = Harness()
    h.sink.fail_writes(KUBE_DOWN, times=None)
    outcome = h.run()

    assert (outcome.ending, outcome.status, outcome.submission_id) == (Ending.FINAL, BridgeStatus.FAILED, "")
    assert outcome.message.startswith("Not submitted: Kubernetes API PATCH")
    assert h.ray.posts == []


def test_status_write_outage_after_the_id_is_persisted_does_not_fail_the_job() -> None:
    h = Harness()
    persist = h.sink.write

    def write_then_break(changes: Mapping[str, str], *, within: float | None = None) -> None:
        persist(changes)
        h.sink.fail_writes(KUBE_DOWN, times=None)  # every write after the id's fails

    h.sink.write = write_then_break  # type: ignore[method-assign]
    outcome = h.run()

    assert outcome.status == BridgeStatus.SUCCEEDED
    assert h.sink.writes == [{ID: outcome.submission_id, ATTEMPT: "1"}]
    assert h.reporter.get(JOB_STATUS) == BridgeStatus.RUNNING  # kept, to be written when the API is back


# -- watch ----------------------------------------------------------------------------------------
def test_failed_polls_keep_the_status_until_status_timeout_then_unknown() -> None:
    h = Harness(life=RUNNING_FOREVER, status_timeout=30.0)
    h.clock.at(9, lambda: h.ray.fail("get_job", no_answer(), times=None))
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.UNKNOWN)
    # Polls at 2 (FIRST_LOOK), 7, 12 ...: the last answer at 7 s; failing polls at 12 ... 37 are
    # tolerated; at 42 the silence is 35 s.
    assert outcome.message.startswith("No answer from the Ray dashboard for 35 s: ConnectionError")
    assert h.sink.data[JOB_STATUS] == BridgeStatus.RUNNING
    assert outcome.job is not None and outcome.job.status == "RUNNING"
    assert h.ray.calls_of("stop_job") == []


def test_job_that_ray_forgets_while_watched_is_unknown() -> None:
    h = Harness(life=RUNNING_FOREVER)
    h.clock.at(12, lambda: h.ray.forget(h.ray.posts[0]))
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.UNKNOWN)
    assert outcome.message == f"Ray no longer knows job {outcome.submission_id} (was the head restarted?)"


def test_watch_writes_pending_then_running_with_the_start_time_and_on_poll_hears_every_answer() -> None:
    h = Harness(life=("PENDING", "PENDING", "RUNNING", "RUNNING", "SUCCEEDED"))
    h.clock.at(12, lambda: h.ray.fail("get_job", no_answer(), times=3))  # one failed poll: not heard
    outcome = h.run()

    assert outcome.status == BridgeStatus.SUCCEEDED
    assert h.sink.written(JOB_STATUS) == [BridgeStatus.SUBMITTED, BridgeStatus.PENDING, BridgeStatus.RUNNING]
    (start,) = h.sink.written(START_TIME)
    assert TIME.match(start)
    assert start == ray_time(outcome.job, "start_time_ms")
    assert [job.status for job in h.polled] == ["PENDING", "PENDING", "RUNNING", "RUNNING", "SUCCEEDED"]
    assert h.clock.waits == [FIRST_LOOK] + [5.0] * 5


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999])
def test_the_first_wait_has_a_random_phase_and_every_later_one_is_the_interval(fraction: float) -> None:
    # Pods started together then poll at different moments, each still once per interval.
    life = ("PENDING", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED")
    h = Harness(life=life, first_poll_jitter=lambda: fraction)

    outcome = h.run()

    assert outcome.status == BridgeStatus.SUCCEEDED
    assert h.clock.waits == [FIRST_LOOK, 5.0 * fraction] + [5.0] * 3
    assert len(h.ray.calls_of("get_job")) == len(life)


def test_the_waits_for_a_stop_are_not_jittered() -> None:
    h = Harness(life=("RUNNING",), first_poll_jitter=lambda: 0.1)
    h.source.data["kill"] = "true"
    h.ray.add_job("raypod-train-known", life=("RUNNING", "RUNNING", "RUNNING", "STOPPED"), ignore_stop_in=("RUNNING",))
    h.sink.data.update({ID: "raypod-train-known", JOB_STATUS: BridgeStatus.RUNNING})

    outcome = h.run()

    # kill was set before the first poll: the stop is asked at once, and each wait is the stop's poll.
    assert outcome.status == BridgeStatus.KILL
    assert h.clock.waits and all(wait == min(WAIT_POLL, 5.0) for wait in h.clock.waits)


def test_rays_message_while_running_is_written_as_one_line() -> None:
    h = Harness(life=(("RUNNING", "Job is running.\nmore detail"), "SUCCEEDED"))
    h.run()
    assert "Job is running." in h.sink.written(MESSAGE)


# -- SIGTERM --------------------------------------------------------------------------------------
def test_sigterm_while_watching_terminates_with_the_id_and_no_stop_call() -> None:
    h = Harness(life=RUNNING_FOREVER)
    h.clock.terminate_at(12)
    outcome = h.run()

    assert outcome.ending is Ending.TERMINATED
    assert outcome.submission_id == h.ray.posts[0]
    assert h.ray.calls_of("stop_job") == []
    assert h.clock.elapsed == 12


def test_sigterm_before_submission_terminates_with_no_id_and_no_post() -> None:
    event = threading.Event()
    event.set()
    retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, deadline=0.5).interruptible(event)
    h = Harness(retry=retry)
    h.ray.fail("version", no_answer(path="/api/version"))
    outcome = h.run()

    assert outcome == Outcome(Ending.TERMINATED, "")
    assert h.ray.posts == []
    assert h.ray.calls == [("version", None)]


def test_sigterm_while_reattaching_keeps_the_recorded_id_for_the_next_pod() -> None:
    event = threading.Event()
    event.set()
    retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, deadline=0.5).interruptible(event)
    h = Harness(recorded={"id": "raypod-train-0123456789ab", "status.jobStatus": "RUNNING"}, retry=retry)
    h.ray.fail("get_job", no_answer())
    outcome = h.run()

    assert outcome == Outcome(Ending.TERMINATED, "raypod-train-0123456789ab")
    assert h.finish(outcome) == exits.EXIT_TERMINATED
    assert h.said == [
        "terminating: Ray job raypod-train-0123456789ab keeps running; the next pod re-attaches to it by id"
    ]
    assert h.ray.posts == []


def test_sigterm_with_no_call_in_flight_starts_no_call_to_ray() -> None:
    # The signal came between calls (nothing to cut): a call started now is bounded only by its own
    # deadline, longer than the grace period.
    h = Harness(recorded={ID: "raypod-train-0123456789ab", JOB_STATUS: BridgeStatus.RUNNING})
    h.clock.terminate_at(0)
    outcome = h.run()

    assert outcome == Outcome(Ending.TERMINATED, "raypod-train-0123456789ab")
    assert h.ray.calls == []
    assert h.clock.elapsed == 0


def test_sigterm_during_the_package_upload_persists_no_id_and_posts_nothing() -> None:
    h = Harness({"jobdata.scriptLocation": "inline", "jobdata.jobScript": INLINE_SCRIPT})
    upload = h.ray.upload_package

    def upload_then_sigterm(name: str, path: Path, progress: ByteProgress = no_progress) -> None:
        upload(name, path, progress)
        h.clock.event.set()

    h.ray.upload_package = upload_then_sigterm  # type: ignore[method-assign]
    outcome = h.run()

    assert outcome == Outcome(Ending.TERMINATED, "")
    assert h.ray.posts == []
    assert ID not in h.sink.data


def test_sigterm_between_post_retries_terminates_with_the_id() -> None:
    event = threading.Event()
    retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, deadline=0.5).interruptible(event)
    h = Harness(retry=retry)
    h.ray.fail("submit_job", ray_error(503, "POST"), times=1)
    real_get = h.ray.get_job

    def get_job(*args, **kwargs):  # type: ignore[no-untyped-def]
        event.set()  # SIGTERM arrives during the look-up after the failed POST
        return real_get(*args, **kwargs)

    h.ray.get_job = get_job  # type: ignore[method-assign]
    outcome = h.run()

    assert outcome.ending is Ending.TERMINATED
    assert outcome.submission_id == h.ray.posts[0]
    assert len(h.ray.posts) == 1


# -- runner.finish --------------------------------------------------------------------------------
def finish_world(recorded: dict[str, str] | None = None) -> tuple[StatusReporter, MemorySink, FakeClock, list[str]]:
    sink = MemorySink(recorded)
    reporter = StatusReporter(sink)
    reporter.load()
    return reporter, sink, FakeClock(), []


def ended_job(status: str) -> JobInfo:
    return JobInfo.from_api(
        {"submission_id": "s1", "status": status, "start_time": 1_700_000_000_000, "end_time": 1_700_000_060_000}
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [(BridgeStatus.SUCCEEDED, 0), (BridgeStatus.FAILED, 1), (BridgeStatus.KILL, 1), (BridgeStatus.UNKNOWN, 1)],
)
def test_finish_writes_the_final_status_and_maps_it_to_the_exit_code(status: str, code: int) -> None:
    reporter, sink, clock, said = finish_world({ID: "s1"})
    ray_status = {BridgeStatus.KILL: "STOPPED", BridgeStatus.UNKNOWN: "RUNNING"}.get(status, status)
    outcome = Outcome.final("s1", status, f"It is {status}.", ended_job(ray_status))
    assert finish(outcome, reporter, clock, said.append) == code

    assert sink.data[JOB_STATUS] == status
    assert sink.data[MESSAGE] == f"It is {status}."
    assert sink.data[START_TIME] == "2023-11-14T22:13:20Z"
    assert TIME.match(sink.data[END_TIME])
    if status != BridgeStatus.UNKNOWN:
        assert sink.data[END_TIME] == "2023-11-14T22:14:20Z"  # Ray's, not the pod's


def test_finish_of_bad_input_writes_failed_with_the_problem_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    reporter, sink, clock, said = finish_world()
    error = ConfigError([("resourceURL", "missing"), ("jobdata.jobScript", "missing")])
    assert finish(Outcome.bad_input(error), reporter, clock, said.append) == exits.EXIT_BAD_INPUT

    assert sink.data[JOB_STATUS] == BridgeStatus.FAILED
    assert sink.data[MESSAGE] == "Bad input (2 problems): resourceURL: missing; jobdata.jobScript: missing"
    assert TIME.match(sink.data[END_TIME])
    assert "raypod: bad input: jobdata.jobScript: missing" in capsys.readouterr().err


def test_finish_of_sigterm_flushes_the_pending_status_and_exits_143() -> None:
    reporter, sink, clock, said = finish_world()
    sink.fail_writes(KUBE_DOWN, times=1)
    reporter.update({ID: "s1", JOB_STATUS: BridgeStatus.RUNNING})  # kept pending
    assert sink.writes == []
    assert finish(Outcome(Ending.TERMINATED, "s1"), reporter, clock, said.append) == exits.EXIT_TERMINATED

    assert sink.writes == [{ID: "s1", JOB_STATUS: BridgeStatus.RUNNING}]
    assert said == ["terminating: Ray job s1 keeps running; the next pod re-attaches to it by id"]


def test_finish_of_sigterm_before_submission_says_nothing_was_submitted() -> None:
    reporter, sink, clock, said = finish_world()
    assert finish(Outcome(Ending.TERMINATED, ""), reporter, clock, said.append) == exits.EXIT_TERMINATED
    assert said == ["terminating: nothing was submitted"]
    assert sink.writes == []


def test_finish_of_detached_writes_nothing_more_and_exits_0() -> None:
    reporter, sink, clock, said = finish_world({ID: "s1", JOB_STATUS: BridgeStatus.SUBMITTED})
    assert finish(Outcome(Ending.DETACHED, "s1", BridgeStatus.SUBMITTED), reporter, clock, said.append) == exits.EXIT_OK
    assert sink.writes == []


def test_finish_whose_final_write_fails_exits_1_without_raising() -> None:
    reporter, sink, clock, said = finish_world()
    sink.fail_writes(KUBE_DOWN, times=None)
    outcome = Outcome.final("s1", BridgeStatus.SUCCEEDED, "Job succeeded.", ended_job("SUCCEEDED"))
    assert finish(outcome, reporter, clock, said.append) == exits.EXIT_FAILED
    assert sink.writes == []


def test_whole_run_through_finish_leaves_the_final_status_in_the_sink() -> None:
    h = Harness(life=("RUNNING", ("FAILED", FAILED_MESSAGE)))
    code = h.finish(h.run())
    assert code == exits.EXIT_FAILED
    assert h.sink.data[JOB_STATUS] == BridgeStatus.FAILED
    assert h.sink.data[MESSAGE] == "Job failed: Job entrypoint command failed with exit code 1."
    assert TIME.match(h.sink.data[START_TIME])
    assert TIME.match(h.sink.data[END_TIME])
