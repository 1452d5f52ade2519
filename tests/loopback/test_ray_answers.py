"""Ray's answers are data: every shape is checked, and one raypod cannot trust is a RayApiError.

Each call of ``RayJobsClient`` is driven against a scripted loopback server (``tests/support/scripted_server.py``)
with answers of the wrong type, out of range, or with a status Ray never gives. A wrong answer must
never be a traceback (the pod would end with the status left at SUBMITTED), and an unknown status
must never become UNKNOWN (which the operator takes as final): the watch treats the error as a
failed poll.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from raypod.clock import format_ray_time
from raypod.contract import ID, JOB_STATUS, BridgeStatus
from raypod.errors import RayApiError
from raypod.outcome import Ending
from raypod.ray import MAX_MESSAGE, RAY_STATUSES, RayJobsClient
from raypod.retry import NO_RETRY
from tests.support.fakes import Harness
from tests.support.scripted_server import Answer, ScriptedServer

JOB_PATH = "/api/jobs/s1"
#: What Ray 2.60 answers for a running job.
RAY_JOB: dict[str, Any] = {
    "type": "SUBMISSION",
    "job_id": "02000000",
    "submission_id": "s1",
    "driver_info": {"id": "02000000", "node_ip_address": "10.0.0.1", "pid": "4242"},
    "status": "RUNNING",
    "entrypoint": "python job.py --kwargs a=1",
    "message": "Job is currently running.",
    "error_type": None,
    "start_time": 1_700_000_000_000,
    "end_time": None,
    "metadata": {"bridge-job": "demo"},
    "runtime_env": {"pip": ["numpy"]},
    "driver_agent_http_address": "http://10.0.0.1:52365",
    "driver_node_id": "a1b2c3",
    "driver_exit_code": None,
}


@pytest.fixture
def ray(server: ScriptedServer) -> Iterator[RayJobsClient]:
    server.reset()
    client = RayJobsClient.connect(server.url, retry=NO_RETRY)
    try:
        yield client
    finally:
        client.close()


def answer_job(server: ScriptedServer, raw: bytes | str) -> None:
    server.script("GET", JOB_PATH, Answer(body=raw.encode() if isinstance(raw, str) else raw))


def job_with(**fields: Any) -> str:
    return json.dumps({**RAY_JOB, **fields}, allow_nan=True)


def permanent_error(call: Any) -> RayApiError:
    with pytest.raises(RayApiError) as caught:
        call()
    error = caught.value
    assert error.status == 200
    assert not error.transient
    assert not error.not_found
    assert error.reason.startswith("unexpected answer: ") or error.reason.startswith("answer is not JSON")
    return error


# -- job info ------------------------------------------------------------------------------------
def test_a_real_ray_answer_is_read_whole(server: ScriptedServer, ray: RayJobsClient) -> None:
    answer_job(server, json.dumps(RAY_JOB))

    job = ray.get_job("s1")

    assert (job.submission_id, job.status, job.message) == ("s1", "RUNNING", "Job is currently running.")
    assert (job.start_time_ms, job.end_time_ms, job.driver_exit_code) == (1_700_000_000_000, None, None)
    assert job.driver_node_id == "a1b2c3"
    assert job.metadata == {"bridge-job": "demo"}
    assert job.raw["runtime_env"] == {"pip": ["numpy"]}


@pytest.mark.parametrize(
    "raw",
    ["[]", "null", '"x"', "Infinity", "NaN", "17", "true", '[{"status": "RUNNING"}]'],
)
def test_an_answer_that_is_not_a_job_object_is_a_permanent_error(
    server: ScriptedServer, ray: RayJobsClient, raw: str
) -> None:
    answer_job(server, raw)

    error = permanent_error(lambda: ray.get_job("s1"))

    assert "not a job object" in error.reason


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ('{"status": "WEIRD"}', "unknown job status 'WEIRD'"),
        ('{"status": "running"}', "unknown job status 'running'"),
        ('{"status": "UNKNOWN"}', "unknown job status 'UNKNOWN'"),
        ('{"status": ""}', "unknown job status ''"),
        ('{"status": 3}', "unknown job status"),
        ('{"status": ["RUNNING"]}', "unknown job status"),
        ('{"error": "upstream"}', "no job status (the answer says 'upstream')"),
        ("{}", "no job status"),
    ],
)
def test_a_status_ray_never_gives_is_a_permanent_error_not_unknown(
    server: ScriptedServer, ray: RayJobsClient, raw: str, said: str
) -> None:
    answer_job(server, raw)

    error = permanent_error(lambda: ray.get_job("s1"))

    assert said in error.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_time", 1e20),
        ("start_time", 10**30),
        ("start_time", -5),
        ("start_time", 0),
        ("start_time", 0.5),
        ("start_time", "1700000000000"),
        ("start_time", True),
        ("start_time", math.inf),
        ("start_time", -math.inf),
        ("start_time", math.nan),
        ("end_time", 1e14),
        ("end_time", [1]),
    ],
)
def test_a_time_of_the_wrong_type_or_out_of_range_counts_as_absent(
    server: ScriptedServer, ray: RayJobsClient, field: str, value: Any
) -> None:
    answer_job(server, job_with(**{field: value}))

    job = ray.get_job("s1")

    assert job.start_time_ms is None if field == "start_time" else job.end_time_ms is None
    assert format_ray_time(job.start_time_ms) in (None, "2023-11-14T22:13:20Z")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"metadata": [1]}, {"metadata": {}}),
        ({"metadata": {"a": 1}}, {"metadata": {}}),
        ({"metadata": "a=b"}, {"metadata": {}}),
        ({"driver_exit_code": "x"}, {"driver_exit_code": None}),
        ({"driver_exit_code": True}, {"driver_exit_code": None}),
        ({"driver_exit_code": 1e300}, {"driver_exit_code": None}),
        ({"driver_exit_code": 2**40}, {"driver_exit_code": None}),
        ({"driver_exit_code": -9}, {"driver_exit_code": -9}),
        ({"message": 5}, {"message": ""}),
        ({"message": {"text": "x"}}, {"message": ""}),
        ({"driver_node_id": 7}, {"driver_node_id": None}),
        ({"driver_node_id": ""}, {"driver_node_id": None}),
        ({"driver_node_id": "n" * 10_000}, {"driver_node_id": None}),
        ({"submission_id": ["s1"], "job_id": 5}, {"submission_id": ""}),
        ({"entrypoint": 12}, {"entrypoint": ""}),
        ({"error_type": "RUNTIME_ENV_SETUP_FAILURE"}, {"error_type": "RUNTIME_ENV_SETUP_FAILURE"}),
        ({"error_type": 3}, {"error_type": None}),
        ({"error_type": ["RUNTIME_ENV_SETUP_FAILURE"]}, {"error_type": None}),
        ({"error_type": "E" * 10_000}, {"error_type": None}),
        ({"error_type": "RUNTIME_ENV\ud800"}, {"error_type": None}),
        ({"error_type": "<html>sign in</html>"}, {"error_type": None}),
    ],
)
def test_an_optional_field_of_the_wrong_type_counts_as_absent(
    server: ScriptedServer, ray: RayJobsClient, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    answer_job(server, job_with(**fields))

    job = ray.get_job("s1")

    assert {name: getattr(job, name) for name in expected} == expected
    assert job.status == "RUNNING"


def test_a_long_message_is_bounded(server: ScriptedServer, ray: RayJobsClient) -> None:
    answer_job(server, job_with(message="last available logs:\n" + "x" * 100_000))

    assert len(ray.get_job("s1").message) == MAX_MESSAGE


def test_the_watch_rides_out_malformed_answers_as_failed_polls(server: ScriptedServer, ray: RayJobsClient) -> None:
    """A pod re-attached to a running job; the dashboard then answers junk for a while, then the end."""
    h = Harness(recorded={ID: "s1", JOB_STATUS: BridgeStatus.RUNNING}, status_timeout=600.0)
    h.ray = ray  # type: ignore[assignment]
    answer_job(server, json.dumps(RAY_JOB))
    junk = ['{"status": "WEIRD"}', '{"error": "upstream"}', "[]", "null", "Infinity", "<html>maintenance</html>"]
    for step, raw in enumerate(junk, start=1):
        h.clock.at(step * 5.0 - 1, lambda raw=raw: answer_job(server, raw))  # type: ignore[misc]
    h.clock.at(len(junk) * 5.0 + 4, lambda: answer_job(server, job_with(start_time=1e20, driver_exit_code="x")))
    ended = {**RAY_JOB, "status": "SUCCEEDED", "end_time": 1_700_000_060_000, "driver_exit_code": 0}
    h.clock.at(len(junk) * 5.0 + 9, lambda: answer_job(server, json.dumps(ended)))

    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.SUCCEEDED)
    written = [w.get(JOB_STATUS) for w in h.sink.writes]
    assert BridgeStatus.UNKNOWN not in written and BridgeStatus.FAILED not in written
    assert len([seen for seen in server.seen if seen.path == JOB_PATH]) >= len(junk) + 3
    assert h.finish(outcome) == 0


# -- the other calls -------------------------------------------------------------------------------
def test_the_version_is_asked_once_per_client_and_a_refused_answer_is_asked_again(
    server: ScriptedServer, ray: RayJobsClient
) -> None:
    server.json("GET", "/api/version", "not an object")
    permanent_error(ray.version)
    server.json("GET", "/api/version", {"ray_version": "2.60.0"})
    assert ray.version()["ray_version"] == "2.60.0"
    assert ray.version()["ray_version"] == "2.60.0"
    assert server.count("GET", "/api/version") == 2


@pytest.mark.parametrize("value", [[], None, "2.60.0", 2])
def test_a_version_answer_that_is_not_an_object_is_a_permanent_error(
    server: ScriptedServer, ray: RayJobsClient, value: Any
) -> None:
    server.json("GET", "/api/version", value)

    assert "not a version object" in permanent_error(ray.version).reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"submission_id": "mine"}, "mine"),
        # Ray always names the job it took: without the id, or with another, the answer is garbled.
        ({"submission_id": "ray-s1"}, None),
        ({}, None),
        ({"submission_id": None}, None),
        ({"submission_id": 5}, None),
        ({"submission_id": ["x"]}, None),
        ([], None),
        ("ok", None),
    ],
)
def test_a_submission_answer_is_checked(
    server: ScriptedServer, ray: RayJobsClient, value: Any, expected: str | None
) -> None:
    server.json("POST", "/api/jobs/", value)

    def submit() -> str:
        return ray.submit_job({"entrypoint": "python job.py", "submission_id": "mine"})

    if expected is None:
        permanent_error(submit)
    else:
        assert submit() == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"stopped": True}, True), ({"stopped": False}, False), ({"stopped": "yes"}, None), ({}, None), ([], None)],
)
def test_a_stop_answer_must_say_stopped_true_or_false(
    server: ScriptedServer, ray: RayJobsClient, value: Any, expected: bool | None
) -> None:
    server.json("POST", "/api/jobs/s1/stop", value)

    if expected is None:
        permanent_error(lambda: ray.stop_job("s1"))
    else:
        assert ray.stop_job("s1") is expected


def test_the_job_list_leaves_out_malformed_items(server: ScriptedServer, ray: RayJobsClient) -> None:
    server.json("GET", "/api/jobs/", [RAY_JOB, [], None, {"status": "WEIRD"}, {**RAY_JOB, "submission_id": "s2"}])

    assert [job.submission_id for job in ray.list_jobs()] == ["s1", "s2"]


@pytest.mark.parametrize("value", [{"jobs": []}, None, "[]"])
def test_a_job_list_that_is_not_a_list_is_a_permanent_error(
    server: ScriptedServer, ray: RayJobsClient, value: Any
) -> None:
    server.json("GET", "/api/jobs/", value)

    permanent_error(ray.list_jobs)


@pytest.mark.parametrize("value", [{"logs": 5}, {"logs": None}, {}, ["line"], "line"])
def test_a_logs_answer_must_hold_a_string(server: ScriptedServer, ray: RayJobsClient, value: Any) -> None:
    server.json("GET", "/api/jobs/s1/logs", value)

    permanent_error(lambda: ray.job_logs("s1"))


def test_a_logs_answer_with_a_string_is_the_log(server: ScriptedServer, ray: RayJobsClient) -> None:
    server.json("GET", "/api/jobs/s1/logs", {"logs": "hello\n"})

    assert ray.job_logs("s1") == "hello\n"


# -- any JSON at all -------------------------------------------------------------------------------
json_values = s.recursive(
    s.none()
    | s.booleans()
    | s.integers(min_value=-(10**30), max_value=10**30)
    | s.floats(allow_nan=True, allow_infinity=True)
    | s.text(max_size=20),
    lambda children: s.lists(children, max_size=4) | s.dictionaries(s.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
job_like = s.fixed_dictionaries(
    {},
    optional={
        "status": s.sampled_from([*RAY_STATUSES, "WEIRD", "UNKNOWN", ""]) | json_values,
        "submission_id": s.text(max_size=10) | json_values,
        "start_time": s.integers(-1, 10**15) | json_values,
        "end_time": s.integers(-1, 10**15) | json_values,
        "message": s.text(max_size=50) | json_values,
        "metadata": s.dictionaries(s.text(max_size=5), s.text(max_size=5) | json_values, max_size=3) | json_values,
        "driver_node_id": s.text(max_size=10) | json_values,
        "driver_exit_code": s.integers(-(2**40), 2**40) | json_values,
        "entrypoint": json_values,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=json_values | job_like)
def test_any_json_answer_is_a_job_with_a_known_status_or_a_ray_api_error(
    server: ScriptedServer, ray: RayJobsClient, value: Any
) -> None:
    answer_job(server, json.dumps(value, allow_nan=True))

    try:
        job = ray.get_job("s1")
    except RayApiError as error:
        assert not error.transient
        assert error.status == 200
        return
    assert job.status in RAY_STATUSES
    for ms in (job.start_time_ms, job.end_time_ms):
        assert ms is None or (isinstance(ms, int) and ms > 0)
        format_ray_time(ms)  # the operator's layout, never an overflow
    assert job.driver_exit_code is None or isinstance(job.driver_exit_code, int)
    assert job.driver_node_id is None or isinstance(job.driver_node_id, str)
    assert isinstance(job.message, str) and len(job.message) <= MAX_MESSAGE
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in job.metadata.items())
    assert isinstance(job.submission_id, str) and isinstance(job.entrypoint, str)
