"""The soak's invariants (devtools/soak_checks.py) on planted evidence: each finds what it is for, and
a clean run passes them all."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from devtools.soak_checks import Evidence, PodRun, check
from devtools.soak_plan import Plan, Secrets

BASE = "raypod-soak1-0a1b2c3d4e5f"
SECRETS = Secrets("tok-" + "A1b2C3d4E5" * 3 + "xy", "hdr-" + "Q9w8E7r6T5" * 3 + "zz", "s3k-" + "M1n2B3v4C5" * 3 + "kk")
PLAN = Plan(
    seed=1,
    store="file",
    script="succeed",
    seconds=1.0,
    retries=1,
    start_deadline=None,
    active_deadline=None,
    connect_timeout=30,
    token_via="token file",
    header_via="headers.json",
    secrets=SECRETS,
)
FINAL_RECORD = {
    "id": BASE,
    "status.attempt": "1",
    "status.jobStatus": "SUCCEEDED",
    "status.reason": "Succeeded",
    "status.message": "Job succeeded; log uploaded to s3://soak-logs/soak1/logs.",
}


def ray_job(submission_id: str, status: str, start: float = 1000.0, end: float | None = 1005.0) -> dict[str, Any]:
    return {
        "submission_id": submission_id,
        "status": status,
        "start_time": int(start * 1000),
        "end_time": int(end * 1000) if end else None,
        "metadata": {"bridge-job": "soak1"},
    }


def clean_pod(status: str = "SUCCEEDED") -> PodRun:
    """A pod that ended as it should, writing ``status`` in its --result file and termination message."""
    result = json.dumps({"submissionId": BASE, "status": status, "final": True})
    return PodRun(1, 0, f"raypod-soak1 status {status}\n", "INFO done\n", result=result, termination=status)


def evidence(**changes: Any) -> Evidence:
    """A clean run's evidence, with ``changes``; the pod's outputs agree with the record's status."""
    record = changes.get("record", FINAL_RECORD)
    pods = [clean_pod(record.get("status.jobStatus", "SUCCEEDED"))]
    made = Evidence(PLAN, "soak1", pods, dict(FINAL_RECORD), [ray_job(BASE, "SUCCEEDED")])
    return replace(made, **changes)


def invariants(found: Evidence) -> list[str]:
    return [violation.invariant for violation in check(found)]


def test_a_clean_run_breaks_no_invariant() -> None:
    assert check(evidence()) == []


def test_a_secret_cut_short_before_it_was_scrubbed_is_a_leak() -> None:
    cut = SECRETS.token[: 4 + 12]  # the prefix and the token's first 12 characters, as a 500-char cut leaves it
    pod = replace(clean_pod(), stderr=f"WARNING poll failed: HTTP 502: ... Authorization: Bearer {cut}")

    found = check(evidence(pods=[pod]))

    assert [(v.invariant, v.detail) for v in found] == [("secret_leak", "part of the ray token in pod 1 stderr")]


def test_an_attempt_id_made_from_another_attempt_id_is_a_duplicate_submission() -> None:
    jobs = [ray_job(BASE, "FAILED"), ray_job(f"{BASE}-r1", "RUNNING"), ray_job(f"{BASE}-r1-r1", "SUCCEEDED")]
    record = {**FINAL_RECORD, "id": f"{BASE}-r1-r1", "status.attempt": "2"}

    found = [v for v in check(evidence(ray_jobs=jobs, record=record)) if v.invariant == "duplicate_submission"]

    assert any(f"{BASE}-r1-r1 is an attempt id made from another attempt id" == v.detail for v in found), found
    assert any("3 submissions on Ray with retries 1" in v.detail for v in found), found


def test_unknown_while_ray_still_runs_the_job_is_a_false_final_status() -> None:
    record = {**FINAL_RECORD, "status.jobStatus": "UNKNOWN", "status.reason": "Lost"}

    assert invariants(evidence(record=record, ray_jobs=[ray_job(BASE, "RUNNING", end=None)])) == ["false_final_status"]


def test_a_start_deadline_that_stops_a_job_which_started_in_time_is_a_false_final_status() -> None:
    plan = replace(PLAN, start_deadline=8)
    record = {**FINAL_RECORD, "status.jobStatus": "FAILED", "status.reason": "StartDeadlineExceeded"}
    stopped = ray_job(BASE, "STOPPED", start=1000.0, end=1010.0)

    started_in_time = evidence(plan=plan, record=record, ray_jobs=[stopped], logs={BASE: "SOAK-START 1002.5\n"})
    never_started = evidence(plan=plan, record=record, ray_jobs=[stopped], logs={BASE: ""})

    assert invariants(started_in_time) == ["false_final_status"]
    assert invariants(never_started) == []


def test_a_last_pod_without_a_result_file_or_termination_message_misses_its_final_status() -> None:
    pod = replace(clean_pod(), returncode=1, result=None, termination=None, stderr="OSError: [Errno 28]\n")

    found = check(evidence(pods=[pod], record={"id": BASE, "status.jobStatus": "RUNNING"}))

    assert {v.invariant for v in found} == {"missing_final_status"}
    assert len(found) == 3  # no final status, no --result file, no termination message


def test_a_traceback_in_any_output_is_found_with_its_exception() -> None:
    traceback = "Traceback (most recent call last):\n  File x\nOSError: [Errno 27] File too large\n"
    pod = replace(clean_pod(), stderr=traceback)

    found = check(evidence(pods=[pod]))

    assert [(v.invariant, v.detail) for v in found] == [
        ("traceback", "pod 1 stderr: OSError: [Errno 27] File too large")
    ]


def test_an_active_deadline_that_passes_while_a_retry_waits_agrees_with_the_failed_attempt() -> None:
    plan = replace(PLAN, retries=2, active_deadline=4)
    record = {**FINAL_RECORD, "status.jobStatus": "FAILED", "status.reason": "DeadlineExceeded"}
    failed = ray_job(BASE, "FAILED", start=1000.0, end=1003.5)  # the next attempt was due at 4.5 s

    assert check(evidence(plan=plan, record=record, ray_jobs=[failed])) == []
    early = replace(plan, active_deadline=10)
    assert invariants(evidence(plan=early, record=record, ray_jobs=[failed])) == ["false_final_status"]


def test_kill_that_nobody_asked_for_is_a_false_final_status() -> None:
    record = {**FINAL_RECORD, "status.jobStatus": "KILL", "status.reason": "Killed"}

    found = check(evidence(record=record, ray_jobs=[ray_job(BASE, "STOPPED")]))

    assert [v.invariant for v in found] == ["false_final_status"]
    assert "nobody set kill" in found[0].detail
