"""Ray's ``error_type`` and ``driver_exit_code`` through the one table (``raypod.ray_failures``):
every row, names Ray 2.60 does not have, and junk from an answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as s

from raypod import exits
from raypod.commands import describe
from raypod.contract import BridgeStatus, Reason
from raypod.ray import RAY_TERMINAL_STATUSES, JobInfo
from raypod.ray_failures import MAX_ERROR_TYPE, RayErrorType, RayFailure, error_type_of, ray_failure
from tests.support.fakes import Harness
from tests.support.ray_job_json import job_json

#: Written out here, not read from raypod: (error_type, driver_exit_code) -> (status.reason, retried).
TABLE: dict[tuple[str, int | None], tuple[str, bool]] = {
    ("RUNTIME_ENV_SETUP_FAILURE", None): ("RuntimeEnvSetupFailed", False),
    ("JOB_SUPERVISOR_ACTOR_START_TIMEOUT", None): ("SupervisorStartTimeout", True),
    ("JOB_SUPERVISOR_ACTOR_START_FAILURE", None): ("SupervisorStartFailed", True),
    ("JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE", None): ("SupervisorUnschedulable", True),
    ("JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE", None): ("SupervisorFailed", True),
    ("JOB_SUPERVISOR_ACTOR_DIED", None): ("SupervisorDied", True),
    ("JOB_ENTRYPOINT_COMMAND_START_ERROR", None): ("EntrypointStartFailed", True),
    ("JOB_ENTRYPOINT_COMMAND_ERROR", 1): ("AppFailed", True),
    ("JOB_ENTRYPOINT_COMMAND_ERROR", 3): ("AppFailed", True),
    ("JOB_ENTRYPOINT_COMMAND_ERROR", None): ("AppFailed", True),
    ("JOB_ENTRYPOINT_COMMAND_ERROR", 127): ("EntrypointNotFound", False),
    ("JOB_ENTRYPOINT_COMMAND_ERROR", 126): ("EntrypointNotExecutable", False),
}
JUNK_ERROR_TYPES: list[Any] = [
    "",
    "runtime_env_setup_failure",
    "RUNTIME ENV",
    "RUNTIME_ENV_SETUP_FAILURE\n",
    "\u0000BAD",
    "_LEADING",
    "1_LEADING_DIGIT",
    "A" * (MAX_ERROR_TYPE + 1),
    "<html>",
    3,
    True,
    ["RUNTIME_ENV_SETUP_FAILURE"],
    {"type": "RUNTIME_ENV_SETUP_FAILURE"},
]


def failed_job(**fields: Any) -> JobInfo:
    return JobInfo.from_api(job_json("raypod-x-1", "FAILED", message="failed", **fields))


def test_every_error_type_of_ray_260_has_a_row() -> None:
    assert {error_type for error_type, _ in TABLE} == {member.value for member in RayErrorType}


@pytest.mark.parametrize(("key", "row"), TABLE.items(), ids=[f"{e}-{c}" for e, c in TABLE])
def test_each_row_gives_its_reason_and_retry_decision(key: tuple[str, int | None], row: tuple[str, bool]) -> None:
    error_type, exit_code = key

    job = failed_job(error_type=error_type, driver_exit_code=exit_code)

    assert (job.error_type, job.driver_exit_code) == key
    assert job.failure == RayFailure(*row)


def test_no_error_type_is_app_failed_and_retried() -> None:
    assert failed_job().failure == RayFailure(Reason.APP_FAILED, retried=True)


def test_a_well_formed_name_ray_260_does_not_have_passes_through_and_is_retried() -> None:
    job = failed_job(error_type="JOB_NEW_KIND_OF_FAILURE_2")

    assert job.failure == RayFailure("JOB_NEW_KIND_OF_FAILURE_2", retried=True)


@pytest.mark.parametrize("junk", JUNK_ERROR_TYPES, ids=repr)
def test_a_malformed_error_type_is_left_out_and_the_failure_is_app_failed(junk: Any) -> None:
    job = failed_job(error_type=junk)

    assert job.error_type is None
    assert job.failure == RayFailure(Reason.APP_FAILED, retried=True)
    # A JobInfo built by hand with junk is read the same way.
    if isinstance(junk, str):
        assert ray_failure(junk).reason == Reason.APP_FAILED


@given(error_type=s.one_of(s.none(), s.text(max_size=80), s.integers(), s.booleans()))
def test_error_type_of_keeps_only_names_in_the_shape_of_rays_enum(error_type: Any) -> None:
    kept = error_type_of(error_type)

    assert kept is None or kept == error_type
    if kept is not None:
        assert 0 < len(kept) <= MAX_ERROR_TYPE
        assert kept[0].isupper() and all(c.isupper() or c.isdigit() or c == "_" for c in kept), kept
        assert kept.isascii() and kept.isprintable()


@given(
    status=s.sampled_from(RAY_TERMINAL_STATUSES),
    error_type=s.one_of(
        s.none(),
        s.sampled_from([m.value for m in RayErrorType]),
        s.text(max_size=80),
        s.from_regex(r"[A-Z][A-Z_]{0,70}", fullmatch=True),
    ),
    exit_code=s.one_of(s.none(), s.integers(-(2**40), 2**40), s.sampled_from([126, 127]), s.text(max_size=3)),
)
def test_any_error_type_never_crashes_the_watch_nor_makes_a_false_status(
    status: str, error_type: Any, exit_code: Any
) -> None:
    answer = {"error_type": error_type, "driver_exit_code": exit_code}
    h = Harness(life=("PENDING", "RUNNING", (status, "Ray says so", answer)))

    outcome = h.run()

    expected = {"SUCCEEDED": BridgeStatus.SUCCEEDED, "FAILED": BridgeStatus.FAILED, "STOPPED": BridgeStatus.KILL}
    assert outcome.status is expected[status]
    reason = outcome.reason
    assert reason and reason.isprintable() and len(reason) <= MAX_ERROR_TYPE
    if status == "FAILED":
        assert reason in {row[0] for row in TABLE.values()} or reason == error_type, reason
        assert h.finish(outcome) == exits.EXIT_FAILED
    else:
        assert reason in (Reason.SUCCEEDED, Reason.KILLED)


def test_the_cli_status_of_a_failed_job_shows_rays_status_and_error_type_without_bridge_words() -> None:
    pairs = dict(describe(failed_job(error_type="RUNTIME_ENV_SETUP_FAILURE")))

    assert (pairs["status"], pairs["error type"]) == ("FAILED", "RUNTIME_ENV_SETUP_FAILURE")
    assert "reason" not in pairs and "Bridge" not in repr(pairs)
    assert "error type" not in dict(describe(JobInfo.from_api(job_json("raypod-x-1", "SUCCEEDED"))))
