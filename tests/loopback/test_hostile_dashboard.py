"""A status the operator can always trust: ``raypod run`` against a hostile dashboard, in-process.

Each test gives one phase of the pod's life an answer class (a transient failure, a refusal, an
answer of the wrong type, out-of-range values, a huge body, an unknown status) through the fake
dashboard of ``tests/support/hostile.py``, runs ``raypod.cli.main`` on its own ConfigMap directory and
status file, and checks the exit code against the status written (docs/failures.md), how many
requests were made, that no traceback was printed and that the token never came out.

Most scenarios have one shape (a pod, a script per endpoint, one run, what it left behind): they
are rows of a ``Case`` table per phase. Scenarios of another shape (answers computed from the
request, a status file broken mid-run, a SIGTERM timer, the token's way through) are tests of
their own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.hostile import (
    GARBAGE,
    REFUSALS,
    TIME,
    TOKEN,
    TRANSIENT,
    Dashboard,
    Pod,
    PodRun,
    Step,
    capture_logs,
    check_exit_matches_status,
    job_answer,
    token_pieces,
)
from tests.support.scripted_server import Answer, ScriptedServer, Seen

OLD_ID = "raypod-hostile-0123456789ab"
INLINE = {"jobdata.scriptLocation": "inline", "jobdata.jobScript": "print('hello')\n"}
#: What an earlier pod recorded once Ray had confirmed the job.
CONFIRMED = {"id": OLD_ID, "status.jobStatus": "RUNNING", "status.submitTime": "2025-03-04T05:06:07Z"}
FINAL_SUCCEEDED = {
    **CONFIRMED,
    "status.jobStatus": "SUCCEEDED",
    "status.endTime": "2025-03-04T05:16:07Z",
    "status.message": "Job succeeded; log uploaded to s3://logs/hostile/logs.",
}
PACKAGES = "/api/packages/gcs/*"
#: The message of a job no answer was had about for --status-timeout.
NO_ANSWER = re.compile(r"No answer from the Ray dashboard for \d+ s: ")

#: Requests to count: (method, ``fnmatch`` pattern of the path).
Request = tuple[str, str]
ANY: Request = ("*", "*")
VERSION: Request = ("GET", "/api/version")
PUT: Request = ("PUT", PACKAGES)
POST: Request = ("POST", "/api/jobs/")
POLL: Request = ("GET", "/api/jobs/*")
STOP: Request = ("POST", "/api/jobs/*/stop")
#: In ``Case.message`` and ``Case.accepted``: the id this run wrote to the status file.
THIS_ID = "<this run's id>"


@pytest.fixture
def make_pod(tmp_path: Path, server: ScriptedServer, caplog: pytest.LogCaptureFixture) -> Callable[..., Pod]:
    server.reset()
    capture_logs(caplog)
    made: list[Pod] = []

    def make(data: dict[str, str] | None = None, recorded: dict[str, str] | None = None) -> Pod:
        assert not made, "one pod per test"
        made.append(Pod(tmp_path / "pod", server, data, recorded=recorded))
        return made[0]

    return make


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[..., PodRun]:
    def go(pod: Pod, recorded: Mapping[str, str] | None = None, **timeouts: float) -> PodRun:
        result = pod.run(capsys, caplog, **timeouts)
        result.assert_clean()
        check_exit_matches_status(result, recorded)
        return result

    return go


def never_final_before(result: PodRun, final: str) -> None:
    """Every status announced before the end was a live one: no FAILED/UNKNOWN on the way."""
    assert result.statuses[-1] == final
    assert set(result.statuses[:-1]) <= {"SUBMITTED", "PENDING", "RUNNING"}, result.statuses


# -- one pod, one script per endpoint, one run ----------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Case:
    """One pod against a scripted dashboard, and what its run must leave behind.

    Every case also gets the ``run`` fixture's checks: no traceback and no token anywhere, and an
    exit code that matches the status written (or, when ``recorded`` is final, the status kept).
    """

    #: The pytest id: the phase and the behaviour.
    name: str
    # -- the pod's world
    data: Mapping[str, str] | None = None  # ConfigMap keys over BASE_CONFIG
    recorded: Mapping[str, str] | None = None  # the status file an earlier pod left
    ray_has: tuple[str, ...] = ()  # the jobs Ray has before the run
    scripts: Mapping[str, tuple[Step, ...]] = field(default_factory=dict)  # endpoint: its steps
    # -- what the run must leave behind
    code: int
    status: str | tuple[str, ...]  # status.jobStatus, or the ones it may be
    message: str | re.Pattern[str] | None = None  # status.message starts with it (str) or matches it
    message_has: tuple[str, ...] = ()  # ...and holds these
    out_has: tuple[str, ...] = ()  # stdout holds these
    fields: Mapping[str, str] = field(default_factory=dict)  # status keys with their exact values
    absent: tuple[str, ...] = ()  # status keys not written
    written: Mapping[str, str] | None = None  # the whole status file, exactly
    statuses: tuple[str, ...] | None = None  # every status announced, in order
    live_until: str | None = None  # only live statuses announced before this final one
    posts: int | None = None  # POST /api/jobs/ requests
    requests: Mapping[Request, int] = field(default_factory=dict)  # more exact request counts
    at_least: Mapping[Request, int] = field(default_factory=dict)  # request counts, at least
    only: Request | None = None  # every request made was of this kind
    accepted: tuple[str, ...] | None = None  # the jobs Ray took, in order
    accepted_count: int | None = None  # how many jobs Ray took
    working_dir: str | None = None  # the POSTed runtime_env.working_dir starts with it


def play(case: Case, make_pod: Callable[..., Pod], run: Callable[..., PodRun]) -> None:
    """Run ``case``'s pod against its scripted dashboard and check everything the case expects."""
    pod = make_pod(case.data, recorded=case.recorded)
    for submission_id in case.ray_has:
        pod.dashboard.has(submission_id)
    for endpoint, steps in case.scripts.items():
        pod.dashboard.script(endpoint, *steps)

    result = run(pod, case.recorded)

    def with_this_id(text: str) -> str:
        return text.replace(THIS_ID, result.status["id"]) if THIS_ID in text else text

    assert result.code == case.code, (result.code, result.status)
    job_status = result.status.get("status.jobStatus")
    assert job_status in (case.status if isinstance(case.status, tuple) else (case.status,)), result.status
    if isinstance(case.message, re.Pattern):
        assert case.message.match(result.message), result.message
    elif case.message is not None:
        assert result.message.startswith(with_this_id(case.message)), result.message
    for text in case.message_has:
        assert text in result.message, result.message
    for text in case.out_has:
        assert text in result.out, result.out
    for key, value in case.fields.items():
        assert result.status.get(key) == value, (key, result.status)
    for key in case.absent:
        assert key not in result.status, result.status
    if case.written is not None:
        assert result.status == dict(case.written)
    if case.statuses is not None:
        assert result.statuses == list(case.statuses)
    if case.live_until is not None:
        never_final_before(result, case.live_until)

    dashboard = pod.dashboard
    if case.posts is not None:
        assert dashboard.posts == case.posts
    for request, count in case.requests.items():
        assert dashboard.count(*request) == count, request
    for request, count in case.at_least.items():
        assert dashboard.count(*request) >= count, request
    if case.only is not None:
        assert dashboard.count() == dashboard.count(*case.only)
    if case.accepted is not None:
        assert dashboard.accepted == [with_this_id(job) for job in case.accepted]
    if case.accepted_count is not None:
        assert len(dashboard.accepted) == case.accepted_count, dashboard.accepted
    if case.working_dir is not None:
        payload = json.loads(next(s for s in pod.server.seen if s.method == "POST").body)
        assert payload["runtime_env"]["working_dir"].startswith(case.working_dir)


def case_name(case: Case) -> str:
    return case.name


# -- start-up: GET /api/version -------------------------------------------------------------------------
STARTUP = [
    *(
        Case(
            name=f"startup-rides-out-transient-{answer}",
            scripts={"version": (answer, "ok")},
            code=0,
            status="SUCCEEDED",
            live_until="SUCCEEDED",
            requests={VERSION: 2},
            posts=1,
        )
        for answer in TRANSIENT
    ),
    *(
        Case(
            name=f"startup-never-answers-bad-input-{answer}",
            scripts={"version": (answer,)},
            code=2,
            status="FAILED",
            message="Bad input: resourceURL: cannot reach the Ray dashboard",
            absent=("id",),
            at_least={VERSION: 2},  # retried for --connect-timeout
            only=VERSION,  # nothing is posted
        )
        for answer in ("503", "reset")
    ),
    *(
        Case(
            name=f"startup-refused-access-bad-input-at-once-{answer}",
            scripts={"version": (answer,)},
            code=2,
            status="FAILED",
            message=f"Bad input: resourceURL: the Ray dashboard refused access (HTTP {answer}",
            message_has=("RAY_AUTH_TOKEN_PATH",),
            absent=("id",),
            requests={ANY: 1},  # not retried, nothing else asked
        )
        for answer in ("401", "403")
    ),
    *(
        Case(
            name=f"startup-no-dashboard-bad-input-{answer}",
            scripts={"version": (answer,)},
            code=2,
            status="FAILED",
            message="Bad input: resourceURL: cannot reach the Ray dashboard",
            absent=("id",),
            requests={ANY: 1},
        )
        for answer in ("huge", "huge-chunked")
    ),
    *(
        Case(
            name=f"startup-not-a-dashboard-bad-input-{answer}",
            scripts={"version": (answer,)},
            code=2,
            status="FAILED",
            message=re.compile(r"Bad input: resourceURL: http://127\.0\.0\.1:\d+ is not a Ray dashboard \(HTTP "),
            absent=("id",),
            requests={ANY: 1},
        )
        for answer in ("400", "404", "html", "list", "null", "string")
    ),
    *(
        Case(
            name=f"startup-takes-any-version-object-{answer}",
            scripts={"version": (answer,)},
            code=0,
            status="SUCCEEDED",
            posts=1,
        )
        for answer in ("status-int", "weird", "ingress-200")
    ),
]


# -- re-attach ------------------------------------------------------------------------------------------
def recorded_final(status: str) -> dict[str, str]:
    return {**CONFIRMED, "status.jobStatus": status, "status.message": "as recorded"}


REATTACH = [
    *(
        Case(
            name=f"reattach-confirmed-rides-out-{answer}",
            recorded=CONFIRMED,
            ray_has=(OLD_ID,),
            scripts={"poll": (answer, "SUCCEEDED")},
            code=0,
            status="SUCCEEDED",
            fields={"id": OLD_ID, "status.submitTime": CONFIRMED["status.submitTime"]},
            live_until="SUCCEEDED",
            posts=0,
            requests={VERSION: 0},
        )
        for answer in (*TRANSIENT, *REFUSALS, *GARBAGE)
    ),
    Case(
        # Ray does not have it: a head restarted without persistence.
        name="reattach-confirmed-lost-by-ray-unknown",
        recorded=CONFIRMED,
        code=1,
        status="UNKNOWN",
        message=f"Ray no longer knows job {OLD_ID}",
        posts=0,
    ),
    Case(
        name="reattach-confirmed-long-outage-unknown",
        recorded=CONFIRMED,
        ray_has=(OLD_ID,),
        scripts={"poll": ("503",)},
        code=1,
        status="UNKNOWN",
        message=NO_ANSWER,
        posts=0,
    ),
    *(
        # The earlier pod wrote the id and may have POSTed: neither FAILED nor exit 2 would be true.
        Case(
            name=f"reattach-unconfirmed-cannot-tell-unknown-{answer}",
            recorded={"id": OLD_ID},
            ray_has=(OLD_ID,),
            scripts={"poll": (answer,)},
            code=1,
            status="UNKNOWN",
            message=f"Cannot tell whether Ray has job {OLD_ID}",
            posts=0,
        )
        for answer in ("503", *REFUSALS, *GARBAGE)
    ),
    *(
        Case(
            name=f"reattach-unconfirmed-attaches-after-{answer}",
            recorded={"id": OLD_ID},
            ray_has=(OLD_ID,),
            scripts={"poll": (answer, "RUNNING", "SUCCEEDED")},
            code=0,
            status="SUCCEEDED",
            out_has=(f"attached to existing Ray job {OLD_ID} (RUNNING)",),
            live_until="SUCCEEDED",
            posts=0,
        )
        for answer in ("503", "reset")
    ),
    Case(
        name="reattach-id-ray-never-took-submitted-with-that-id",
        recorded={"id": OLD_ID},
        code=0,
        status="SUCCEEDED",
        fields={"id": OLD_ID},
        posts=1,
        accepted=(OLD_ID,),
    ),
    *(
        Case(
            name=f"reattach-recorded-final-kept-nothing-asked-{status}",
            recorded=recorded_final(status),
            # A restarted head would answer 404 to anything: it must not downgrade the status.
            scripts={endpoint: ("404",) for endpoint in Dashboard.ENDPOINTS},
            code=0 if status == "SUCCEEDED" else 1,
            status=status,
            written=recorded_final(status),
            requests={ANY: 0},
        )
        for status in ("SUCCEEDED", "FAILED", "KILL", "UNKNOWN")
    ),
]


# -- the working-dir package: GET /api/packages/gcs/..., PUT --------------------------------------------
def package_refused(endpoint: str, answer: str) -> Case:
    # /api/version may answer without auth: the package calls are where a bad token shows.
    bad_token = answer in ("401", "403")
    return Case(
        name=f"package-{endpoint.removeprefix('package_')}-refused-not-posted-{answer}",
        data=INLINE,
        scripts={endpoint: (answer,)},
        code=2 if bad_token else 1,
        status="FAILED",
        message="Bad input: resourceURL: the Ray dashboard refused access" if bad_token else "Not submitted: ",
        message_has=(f"HTTP {answer}",),
        absent=("id",),
        posts=0,
    )


PACKAGE = [
    *(
        Case(
            name=f"package-get-{'+'.join(get)}-put-{'+'.join(put)}-rides-out",
            data=INLINE,
            scripts={"package_get": get, "package_put": put},
            code=0,
            status="SUCCEEDED",
            posts=1,
            requests={PUT: puts},
            working_dir="gcs://_ray_pkg_",
        )
        for get, put, puts in [
            (("503", "missing"), ("ok",), 1),
            (("reset", "missing"), ("ok",), 1),
            (("missing",), ("503", "ok"), 2),
            (("missing",), ("reset", "ok"), 2),
            (("missing",), ("html",), 1),  # a PUT's answer is not read: its 200 is enough
            (("present",), ("503",), 0),
        ]
    ),
    *(package_refused(endpoint, answer) for endpoint in ("package_get", "package_put") for answer in REFUSALS),
]


# -- POST /api/jobs/ ------------------------------------------------------------------------------------
POST_CASES = [
    *(
        Case(
            name=f"post-retried-after-transient-submits-once-{answer}",
            scripts={"post": (answer, "ok")},
            code=0,
            status="SUCCEEDED",
            live_until="SUCCEEDED",
            posts=2,
            accepted=(THIS_ID,),
        )
        for answer in TRANSIENT
    ),
    *(
        Case(
            name=f"post-{'+'.join(post)}-after-ray-took-it-attaches",
            scripts={
                "post": post,
                # After a lost answer the look-up fails too: the second POST gets Ray's duplicate-id 500.
                **({"poll": ("503", "SUCCEEDED")} if post == ("lost", "ok") else {}),
            },
            code=0,
            status="SUCCEEDED",
            live_until="SUCCEEDED",
            posts=len(post),
            accepted_count=1,
        )
        for post in [("lost",), ("lost", "ok"), *((f"accept+{a}",) for a in ("html", "list", "huge", "no-id"))]
    ),
    Case(
        name="post-never-answered-unknown",
        scripts={"post": ("503",)},
        code=1,
        status="UNKNOWN",
        message=f"Lost track of Ray job {THIS_ID}",
        at_least={POST: 2},
    ),
    *(
        Case(
            name=f"post-refused-failed-not-retried-{answer}",
            scripts={"post": (answer,)},
            code=1,
            status="FAILED",
            message="Ray rejected the job: ",
            posts=1,
            accepted=(),
        )
        for answer in (*REFUSALS, "404", "wrapped")
    ),
    *(
        Case(
            # Asked whether Ray has it after every answer; Ray says no: posted again, never reaching Ray.
            name=f"post-garbled-ray-has-no-job-never-success-{answer}",
            scripts={"post": (answer,)},
            code=1,
            status="FAILED",
            message="Not submitted: ",
            fields={"status.reason": "NotSubmitted"},
            at_least={POST: 2, POLL: 2},
            accepted=(),
        )
        for answer in ("html", "list", "null", "string", "no-id", "huge", "huge-chunked")
    ),
]


# -- the polls: GET /api/jobs/<id> ----------------------------------------------------------------------
POLLS = [
    *(
        Case(
            name=f"poll-junk-never-ends-the-watch-{answer}",
            scripts={"poll": (answer, "SUCCEEDED")},
            code=0,
            status="SUCCEEDED",
            message="Job succeeded",
            live_until="SUCCEEDED",
        )
        for answer in (*TRANSIENT, *REFUSALS, *GARBAGE)
    ),
    Case(
        name="poll-junk-between-live-answers-keeps-the-last-status",
        scripts={"poll": ("PENDING", "html", "RUNNING", "weird", "reset", "SUCCEEDED")},
        code=0,
        status="SUCCEEDED",
        statuses=("SUBMITTED", "PENDING", "RUNNING", "SUCCEEDED"),
    ),
    *(
        Case(
            name=f"poll-job-ends-badly-on-ray-{ray}",
            scripts={"poll": ("RUNNING", "html", ray)},
            code=1,
            status=bridge,
            message=message,
            fields={"status.endTime": "2100-01-01T00:01:00Z"},  # Ray's end_time
        )
        for ray, bridge, message in [
            ("FAILED", "FAILED", "Job failed: "),
            ("STOPPED", "KILL", "Job was stopped on Ray"),
        ]
    ),
    Case(
        name="poll-rays-own-404-ray-lost-the-job-unknown",
        scripts={"poll": ("RUNNING", "gone")},
        code=1,
        status="UNKNOWN",
        message="Ray no longer knows job",
    ),
    *(
        # Not Ray's answer (an ingress's page, a JSON 404 of a proxy): a failed poll, not a lost job.
        Case(
            name=f"poll-{answer}-that-is-not-rays-is-a-failed-poll",
            scripts={"poll": ("RUNNING", answer, "SUCCEEDED")},
            code=0,
            status="SUCCEEDED",
            live_until="SUCCEEDED",
        )
        for answer in ("404", "404-html")
    ),
    *(
        Case(
            name=f"poll-silent-past-the-status-timeout-unknown-{answer}",
            scripts={"poll": ("RUNNING", answer)},
            code=1,
            status="UNKNOWN",
            message=NO_ANSWER,
            fields={"status.startTime": "2100-01-01T00:00:00Z"},  # what Ray said is kept
            statuses=("SUBMITTED", "RUNNING", "UNKNOWN"),
        )
        for answer in ("503", "html")
    ),
]


# -- kill: POST /api/jobs/<id>/stop ---------------------------------------------------------------------
KILLS = [
    *(
        Case(
            name=f"kill-reported-once-ray-confirms-stop-answered-{answer}",
            scripts={"poll": ("kill", "RUNNING"), "stop": (answer, "ok")},
            code=1,
            status="KILL",
            message="Stopped at the operator's request (kill=true)",
            statuses=("SUBMITTED", "RUNNING", "KILL"),
            requests={STOP: 1 if answer == "ok" else 2},
        )
        for answer in (
            *("ok", "503", "reset", "401", "403", "400", "404", "404-html", "html", "list", "status-int", "huge"),
        )
    ),
    Case(
        name="kill-of-a-job-that-ended-on-its-own-keeps-rays-status",
        scripts={"poll": ("kill", "SUCCEEDED"), "stop": ("ended",)},
        code=0,
        status="SUCCEEDED",
        live_until="SUCCEEDED",
    ),
    Case(
        name="kill-whose-stop-ray-does-not-know-unknown",
        scripts={"poll": ("kill", "RUNNING"), "stop": ("gone",)},
        code=1,
        status="UNKNOWN",
        message="Ray no longer knows job",
    ),
    Case(
        name="kill-before-the-submission-asks-nothing",
        data={"kill": "true"},
        code=1,
        status="KILL",
        message="Not submitted: kill was set",
        requests={ANY: 0},
    ),
]


# -- a bad value in the ConfigMap -----------------------------------------------------------------------
BAD_VALUES = [
    Case(
        # Ray cannot even be found: the job's state is unknown, not "nothing was submitted".
        name="bad-value-url-confirmed-job-unknown",
        data={"resourceURL": "not an address"},
        recorded=CONFIRMED,
        ray_has=(OLD_ID,),
        code=1,
        status="UNKNOWN",
        message=f"Cannot watch Ray job {OLD_ID}: resourceURL: ",
        posts=0,
    ),
    *(
        Case(
            name=f"bad-value-{key}-final-status-kept",
            data={key: value},
            recorded=FINAL_SUCCEEDED,
            ray_has=(OLD_ID,),
            code=0,
            status="SUCCEEDED",
            message=FINAL_SUCCEEDED["status.message"],
            posts=0,
        )
        for key, value in [("kill", "maybe"), ("resourceURL", "not an address")]
    ),
    Case(
        # An earlier pod chose the id and left before its POST: the job is submitted from this config
        # or not at all, so its problems are bad input once Ray says it has no such job.
        name="bad-value-kill-id-ray-never-took-bad-input-not-posted",
        data={"kill": "maybe"},
        recorded={"id": OLD_ID},
        code=2,
        status="FAILED",
        message="Bad input: kill: ",
        posts=0,
    ),
]


# -- every case above -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case", [*STARTUP, *REATTACH, *PACKAGE, *POST_CASES, *POLLS, *KILLS, *BAD_VALUES], ids=case_name
)
def test_the_status_and_the_requests_follow_the_dashboards_answers(
    make_pod: Callable[..., Pod], run: Callable[..., PodRun], case: Case
) -> None:
    play(case, make_pod, run)


# == scenarios of another shape =========================================================================
# -- the working-dir package ----------------------------------------------------------------------------
def test_a_package_check_answered_by_a_page_submits_nothing_and_is_not_retried(
    make_pod: Callable[..., Pod], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod(INLINE)
    pod.dashboard.script("package_get", "html", "missing")

    result = pod.run(capsys, caplog)

    result.assert_clean()
    # Not Ray's answer, and not a passing fault: no retry (a retry would see "missing" and go on).
    assert pod.dashboard.count("GET", PACKAGES) == 1
    assert pod.dashboard.count("PUT", PACKAGES) == 0
    assert pod.dashboard.posts == 0
    assert (result.code, result.status.get("status.jobStatus")) == (1, "FAILED")
    assert result.message.startswith("Not submitted: ")
    assert "not Ray's answer to a package check" in result.message


# -- the polls ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"start_time": 1e20, "end_time": 1e20},
        {"start_time": float("inf"), "end_time": float("-inf")},
        {"start_time": float("nan"), "end_time": -5},
        {"start_time": True, "end_time": "yesterday"},
        {"start_time": 10**40, "end_time": 0.5},
    ],
    ids=["1e20", "infinity", "nan", "wrong-types", "overflow"],
)
def test_out_of_range_times_are_left_out(
    make_pod: Callable[..., Pod], run: Callable[..., PodRun], fields: dict[str, object]
) -> None:
    pod = make_pod()

    def running(seen: Seen) -> Answer:
        return job_answer(seen.bare_path.rsplit("/", 1)[1], "RUNNING", **fields)

    def succeeded(seen: Seen) -> Answer:
        return job_answer(seen.bare_path.rsplit("/", 1)[1], "SUCCEEDED", **fields)

    pod.dashboard.script("poll", running, succeeded)

    result = run(pod)

    assert result.code == 0
    assert "status.startTime" not in result.status
    assert TIME.fullmatch(result.status["status.endTime"])
    never_final_before(result, "SUCCEEDED")


# -- kill -----------------------------------------------------------------------------------------------
def test_a_failing_stop_call_does_not_hold_up_the_polls(
    make_pod: Callable[..., Pod], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod()
    pod.dashboard.script("poll", "kill", "RUNNING", "SUCCEEDED")
    pod.dashboard.script("stop", "503")
    # SIGTERM bounds the test: per docs/failures.md the job's end is seen on the next poll (~1 s).
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a late timer finds a harmless handler
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        result = pod.run(capsys, caplog)
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGTERM, previous)

    result.assert_clean()
    assert result.code == 0, result.status
    assert result.status["status.jobStatus"] == "SUCCEEDED"


# -- the final write ------------------------------------------------------------------------------------
def test_the_final_write_holds_every_key(make_pod: Callable[..., Pod], run: Callable[..., PodRun]) -> None:
    pod = make_pod()
    pod.dashboard.script("poll", "RUNNING", "503", "SUCCEEDED")

    result = run(pod)

    assert result.code == 0
    assert set(result.status) == {
        "id",
        "status.jobStatus",
        "status.submitTime",
        "status.startTime",
        "status.endTime",
        "status.message",
        "status.reason",
        "status.attempt",
    }
    assert result.status["status.reason"] == "Succeeded"
    assert result.status["status.startTime"] == "2100-01-01T00:00:00Z"
    assert result.status["status.endTime"] == "2100-01-01T00:01:00Z"
    assert result.status["status.message"] == "Job succeeded."


def test_a_status_file_that_cannot_take_the_final_write_fails_the_pod_plainly(
    make_pod: Callable[..., Pod], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod()

    def succeeded_and_break_the_status_file(seen: Seen) -> Answer:
        pod.status_file.unlink()
        pod.status_file.mkdir()  # the next write cannot replace it
        return job_answer(seen.bare_path.rsplit("/", 1)[1], "SUCCEEDED")

    pod.dashboard.script("poll", "RUNNING", succeeded_and_break_the_status_file)

    result = pod.run(capsys, caplog)
    shutil.rmtree(pod.status_file)

    result.assert_clean()
    assert result.code == 1  # a pod error for the operator, not a stale status
    assert "could not write the final status SUCCEEDED" in result.log


# -- the token ------------------------------------------------------------------------------------------
def test_the_dashboard_did_receive_the_token(make_pod: Callable[..., Pod], run: Callable[..., PodRun]) -> None:
    pod = make_pod()
    pod.dashboard.script("poll", "401", "SUCCEEDED")

    run(pod)

    assert {s.headers.get("authorization") for s in pod.server.seen} == {f"Bearer {TOKEN}"}


def test_a_job_message_that_echoes_the_token_is_scrubbed_before_the_status(
    make_pod: Callable[..., Pod], run: Callable[..., PodRun]
) -> None:
    pod = make_pod()

    def failed_saying_the_token(seen: Seen) -> Answer:
        return job_answer(seen.bare_path.rsplit("/", 1)[1], "FAILED", message="refused caller @AUTH@")

    pod.dashboard.script("poll", "RUNNING", failed_saying_the_token)

    result = run(pod)  # checks that no piece of the token is anywhere

    assert result.code == 1
    assert result.message.startswith("Job failed: refused caller ***")


def test_no_piece_of_the_token_leaks_from_an_unknown_status_cut_short(
    make_pod: Callable[..., Pod], run: Callable[..., PodRun]
) -> None:
    pod = make_pod()
    pod.dashboard.script("poll", Answer(body=b'{"status": "' + b"x" * 38 + b'@AUTH@"}'), "SUCCEEDED")

    result = run(pod)

    leaked = [piece for piece in token_pieces(10) if piece in result.text]
    assert leaked == [], f"pieces of the token in raypod's output: {leaked}"


# -- a bad value in the ConfigMap -----------------------------------------------------------------------
def test_a_bad_value_never_makes_a_confirmed_job_bad_input(
    make_pod: Callable[..., Pod], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pod = make_pod({"kill": "maybe"}, recorded=CONFIRMED)
    pod.dashboard.has(OLD_ID)

    result = pod.run(capsys, caplog)

    result.assert_clean()
    assert result.code != 2
    assert result.status["status.jobStatus"] != "FAILED"
