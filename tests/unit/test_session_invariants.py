"""Properties of the lifecycle over generated worlds: a scripted Ray (statuses, transient errors,
404s, refusals, lost POST answers), a failing status sink, kill and SIGTERM at any fake time.

Whatever Ray answers, ``JobSession.run`` returns an Outcome, the exit code agrees with the status
written, nothing is POSTed before its id is persisted, and Ray never gets two jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as s

from raypod import exits
from raypod.contract import ATTEMPT, ID, JOB_STATUS, MESSAGE, REASON, BridgeStatus, Reason
from raypod.errors import ConfigError, KubeApiError, RayApiError
from raypod.outcome import Ending, Outcome
from raypod.ray import JobInfo
from raypod.retry import RetryPolicy
from raypod.runner import finish
from raypod.status_store import StatusReporter
from raypod.submission import attempt_id
from tests.support.fakes import LOST, OK, FakeClock, Harness, MemorySink, ray_error

#: In every error body Ray sends, never in the one-line reason: a body (a traceback that may
#: echo the request) must not reach the ConfigMap.
MARKER = "BODY-ONLY-7c1e9d"
PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
#: A SIGTERM no later than this ends every generated world that would otherwise run for ever.
BACKSTOP = 400.0
KUBE_DOWN = KubeApiError("PATCH", "https://kube.test/api/v1/namespaces/bridge/configmaps/train", 503, "down")


def error(kind: str, method: str) -> RayApiError:
    path = "/api/jobs/" if method in ("submit_job", "get_job") else "/api/version"
    verb = "POST" if method in ("submit_job", "stop_job") else "GET"
    body = f"Traceback (most recent call last):\n  secret={MARKER}\n"
    if kind == "no answer":
        return ray_error(None, verb, path)
    if kind == "wrapped":
        return ray_error(500, verb, path, "Internal Server Error", body + "Request failed with status code 400")
    status = int(kind)
    return ray_error(status, verb, path, f"HTTP {status} from the dashboard", body + f"HTTP {status}")


def actions(kinds: list[str], method: str) -> list[Any]:
    return [OK if kind == "ok" else LOST if kind == "lost" else error(kind, method) for kind in kinds]


RAY_STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED")
life_steps = s.lists(
    s.one_of(s.sampled_from(RAY_STATUSES), s.tuples(s.sampled_from(RAY_STATUSES), s.just("Ray says so"))),
    min_size=1,
    max_size=6,
)


def kinds(often: list[str], rare: list[str], max_size: int) -> s.SearchStrategy[list[str]]:
    """Scripts of answers, one per call attempt: ``often`` three times likelier than ``rare``."""
    return s.lists(s.sampled_from(often * 3 + rare), max_size=max_size)


version_kinds = kinds(["ok", "no answer", "503"], ["401", "403", "400", "404"], 3)
post_kinds = kinds(["ok", "lost", "no answer", "503"], ["wrapped", "400", "401", "409"], 4)
get_kinds = kinds(["ok", "no answer", "503"], ["404", "401", "500"], 8)
stop_kinds = kinds(["ok", "503", "no answer"], ["400", "404"], 2)
times = s.one_of(s.none(), s.floats(min_value=0, max_value=80, allow_nan=False))


@dataclass(frozen=True)
class World:
    start: str  # fresh, config id, recorded id
    ray_has_id: bool
    recorded_status: str
    life: list[Any]
    version: list[str]
    version_down: bool
    post: list[str]
    post_down: bool
    get: list[str]
    get_outage: tuple[float, float] | None
    stop: list[str]
    ignore_stop: bool
    kill_in_config: bool
    kill_at: float | None
    sigterm_at: float | None
    sigterm_before: bool
    sink_failures: int | None  # None: none; -1: every write
    deadline: int | None
    submit_only: bool
    retries: int


@s.composite
def worlds(draw: s.DrawFn) -> World:
    outage = draw(s.one_of(s.none(), s.tuples(s.floats(0, 60), s.floats(1, 50))))
    return World(
        start=draw(s.sampled_from(["fresh", "config id", "recorded id"])),
        ray_has_id=draw(s.booleans()),
        recorded_status=draw(
            s.sampled_from(
                [
                    "",
                    BridgeStatus.SUBMITTED,
                    BridgeStatus.PENDING,
                    BridgeStatus.RUNNING,
                    BridgeStatus.SUCCEEDED,
                    BridgeStatus.UNKNOWN,
                ]
            )
        ),
        life=draw(life_steps),
        version=draw(version_kinds),
        version_down=draw(s.integers(0, 7)) == 0,
        post=draw(post_kinds),
        post_down=draw(s.integers(0, 7)) == 0,
        get=draw(get_kinds),
        get_outage=(outage[0], outage[0] + outage[1]) if outage else None,
        stop=draw(stop_kinds),
        ignore_stop=draw(s.booleans()),
        kill_in_config=draw(s.integers(0, 7)) == 0,
        kill_at=draw(times),
        sigterm_at=draw(times),
        sigterm_before=draw(s.booleans()) and draw(s.booleans()) and draw(s.booleans()),
        sink_failures=draw(s.one_of(s.none(), s.integers(-1, 4))),
        deadline=draw(s.one_of(s.none(), s.integers(3, 40))),
        submit_only=draw(s.booleans()) and draw(s.booleans()),
        retries=draw(s.sampled_from([0, 0, 1, 2])),
    )


def build(world: World) -> Harness:
    data: dict[str, str] = {}
    recorded: dict[str, str] = {}
    known_id = "raypod-train-known"
    if world.start == "config id":
        data["id"] = known_id
    elif world.start == "recorded id":
        recorded = {ID: known_id, JOB_STATUS: world.recorded_status}
    if world.kill_in_config:
        data["kill"] = "true"
    properties: dict[str, Any] = {}
    if world.deadline is not None:
        properties["activeDeadlineSeconds"] = world.deadline
    if world.retries:
        properties.update(retries=world.retries, retryDelaySeconds=3)
    if properties:
        data["jobproperties"] = json.dumps(properties)
    h = Harness(data, recorded=recorded, life=list(world.life), submit_only=world.submit_only, connect_timeout=0.02)
    # As the runner does: SIGTERM (the clock's event) cuts short any wait between retries.
    retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, deadline=0.02)
    h.settings = replace(h.settings, retry=retry.interruptible(h.clock.event))
    if world.start != "fresh" and world.ray_has_id:
        h.ray.add_job(known_id)
    if world.ignore_stop:
        h.ray.ignore_stop_in = ("PENDING", "RUNNING")
        for job in h.ray.jobs.values():
            job.ignore_stop_in = h.ray.ignore_stop_in
    h.ray.script("version", actions(world.version, "version"))
    h.ray.script("submit_job", actions(world.post, "submit_job"))
    h.ray.script("get_job", actions(world.get, "get_job"))
    h.ray.script("stop_job", actions(world.stop, "stop_job"))
    if world.version_down:
        h.ray.fail("version", error("no answer", "version"), times=None)
    if world.post_down:
        h.ray.fail("submit_job", error("503", "submit_job"), times=None)
    if world.get_outage is not None:
        begin, end = world.get_outage
        h.clock.at(begin, lambda: h.ray.fail("get_job", error("no answer", "get_job"), times=None, until=end))
    if world.kill_at is not None:
        h.set_kill_at(world.kill_at)
    if world.sink_failures is not None:
        h.sink.fail_writes(KUBE_DOWN, times=None if world.sink_failures < 0 else world.sink_failures)
    if world.sigterm_before:
        h.clock.event.set()
    h.clock.terminate_at(world.sigterm_at if world.sigterm_at is not None else BACKSTOP)
    return h


@PROPERTY_SETTINGS
@given(worlds())
def test_any_world_ends_in_an_outcome_whose_exit_code_matches_the_written_status(world: World) -> None:
    check_world(world)


def check_world(world: World) -> None:
    h = build(world)
    recorded = dict(h.sink.data)
    recorded_in_sink = recorded.get(ID)
    recorded_id = h.source.data.get("id") or recorded_in_sink
    try:
        outcome = h.run()
    except Exception as error:  # the property: run() never raises
        raise AssertionError(f"JobSession.run raised {error!r}") from error
    event(f"{outcome.ending.value} {outcome.status} {outcome.message[:28]}")
    refused_before = len(h.sink.failed_writes)
    code = h.finish(outcome)
    final_write_failed = len(h.sink.failed_writes) > refused_before
    final_status = h.sink.data.get(JOB_STATUS)

    # The exit code follows the ending and, for a final status, the status written.
    if outcome.ending is Ending.TERMINATED:
        assert code == exits.EXIT_TERMINATED
        assert h.clock.terminated
    elif outcome.ending is Ending.DETACHED:
        assert code == exits.EXIT_OK
        assert world.submit_only
        if outcome.job is not None:
            # Ray had the job already: it was attached to, and nothing was submitted.
            assert outcome.submission_id == recorded_id and outcome.submission_id not in h.ray.posts
        else:
            assert final_status == BridgeStatus.SUBMITTED or h.sink.failed_writes
    elif outcome.ending is Ending.BAD_INPUT:
        # Bad input is a final status like any other: one that cannot be written fails the pod.
        assert code == (exits.EXIT_FAILED if final_write_failed else exits.EXIT_BAD_INPUT)
        assert outcome.status == BridgeStatus.FAILED
        if not final_write_failed:
            assert final_status == BridgeStatus.FAILED
            assert h.sink.data[MESSAGE].startswith(("Bad input: ", "Bad input ("))
    elif final_write_failed:
        assert code == exits.EXIT_FAILED
    else:
        assert final_status == outcome.status
        assert code == (exits.EXIT_OK if final_status == BridgeStatus.SUCCEEDED else exits.EXIT_FAILED)
    assert (code == exits.EXIT_OK) == (
        outcome.ending is Ending.DETACHED
        or (outcome.ending is Ending.FINAL and final_status == BridgeStatus.SUCCEEDED and not final_write_failed)
        or (outcome.ending is Ending.ALREADY_FINAL and outcome.status == BridgeStatus.SUCCEEDED)
    )
    assert (code == exits.EXIT_BAD_INPUT) == (outcome.ending is Ending.BAD_INPUT and not final_write_failed)
    assert (code == exits.EXIT_TERMINATED) == (outcome.ending is Ending.TERMINATED)

    # Every end has a machine reason, and a written final status carries it.
    reasons = {value for name, value in vars(Reason).items() if not name.startswith("_")}
    if outcome.ending in (Ending.FINAL, Ending.BAD_INPUT, Ending.ALREADY_FINAL):
        assert outcome.reason in reasons, outcome
        if not final_write_failed and outcome.ending is not Ending.ALREADY_FINAL:
            assert h.sink.data.get(REASON) == outcome.reason
    if outcome.ending is Ending.BAD_INPUT:
        assert outcome.reason == Reason.BAD_INPUT

    # Submission: one id per attempt, each persisted with its attempt number before its first POST,
    # none submitted twice; bad input means nothing was posted.
    posted = list(dict.fromkeys(h.ray.posts))
    assert len(posted) <= world.retries + 1
    assert len(h.ray.submitted) == len(set(h.ray.submitted)) <= world.retries + 1
    if outcome.ending is Ending.BAD_INPUT:
        assert h.ray.posts == []
    if world.kill_in_config and world.start == "fresh":
        assert h.ray.calls == []
    if posted:
        # The attempts are consecutive: from the first, or from the retry after a recorded job.
        base = recorded_id or posted[0]
        first_attempt = 1 if posted[0] == base else 2
        attempts = range(first_attempt, first_attempt + len(posted))
        assert posted == [attempt_id(base, n) for n in attempts]
        assert outcome.submission_id == posted[-1]
        for attempt, submission_id in zip(attempts, posted, strict=True):
            first_post = h.journal.index(("ray", ("submit_job", submission_id)))
            persisted = dict(recorded)
            for kind, item in h.journal[:first_post]:
                if kind == "sink":
                    persisted.update(item)
            assert persisted.get(ID) == submission_id
            assert persisted.get(ATTEMPT, "1") == str(attempt)

    # What Ray put in an error body stays out of the ConfigMap.
    for write in h.sink.writes:
        for value in write.values():
            assert MARKER not in value
    assert MARKER not in outcome.message


@PROPERTY_SETTINGS
@given(
    ending=s.sampled_from(list(Ending)),
    status=s.sampled_from([BridgeStatus.SUCCEEDED, BridgeStatus.FAILED, BridgeStatus.KILL, BridgeStatus.UNKNOWN]),
    ray_status=s.sampled_from(RAY_STATUSES),
    message=s.text(max_size=600),
    failures=s.one_of(s.none(), s.integers(-1, 2)),
    codes=s.sampled_from(list(exits.ExitCodes)),
)
def test_finish_never_raises_and_its_exit_code_matches_what_it_wrote(
    ending: Ending, status: str, ray_status: str, message: str, failures: int | None, codes: exits.ExitCodes
) -> None:
    sink = MemorySink({ID: "s1", JOB_STATUS: BridgeStatus.RUNNING})
    reporter = StatusReporter(sink)
    reporter.load()
    if failures is not None:
        sink.fail_writes(KUBE_DOWN, times=None if failures < 0 else failures)
    job = JobInfo.from_api({"submission_id": "s1", "status": ray_status, "start_time": 1, "end_time": 2})
    if ending is Ending.BAD_INPUT:
        outcome = Outcome.bad_input(ConfigError.single("resourceURL", message or "missing"))
    elif ending is Ending.FINAL:
        outcome = Outcome.final("s1", status, message, job)
    elif ending is Ending.ALREADY_FINAL:
        outcome = Outcome(ending, "s1", status)
    else:
        outcome = Outcome(ending, "s1", BridgeStatus.SUBMITTED)
    said: list[str] = []

    code = finish(outcome, reporter, FakeClock(), said.append, codes)

    written = sink.data[JOB_STATUS]
    refused = failures not in (None, 0)  # the final write is tried once: the sink's client retries
    expected = {
        Ending.DETACHED: exits.EXIT_OK,
        Ending.TERMINATED: exits.for_termination(codes),
        Ending.DELETED: exits.for_termination(codes),
        Ending.BAD_INPUT: exits.for_unrecorded(codes) if refused else exits.EXIT_BAD_INPUT,
        Ending.ALREADY_FINAL: exits.for_status(status, codes),
    }.get(ending)
    if expected is None:
        expected = exits.for_unrecorded(codes) if refused else exits.for_status(status, codes)
        if not refused:
            assert written == status
            assert "\n" not in sink.data.get(MESSAGE, "")
    assert code == expected
    if ending in (Ending.ALREADY_FINAL, Ending.DELETED):
        assert sink.writes == []  # a recorded final status is kept as it is; a deleted job's ConfigMap is gone
    # Exit 0 says: the job succeeded, or (as the operator's pod) the ConfigMap says what happened and
    # the pod must not end in phase Failed; never a status that could not be written.
    ok_anyway = codes is exits.ExitCodes.BRIDGE and (
        ending in (Ending.TERMINATED, Ending.DELETED)
        or (status == BridgeStatus.UNKNOWN and ending is Ending.ALREADY_FINAL)
        or (written == BridgeStatus.UNKNOWN and ending is Ending.FINAL and not refused)
    )
    succeeded = ending is Ending.ALREADY_FINAL and status == BridgeStatus.SUCCEEDED
    assert (code == exits.EXIT_OK) == (
        ending is Ending.DETACHED or succeeded or (written == BridgeStatus.SUCCEEDED and not refused) or ok_anyway
    )
    if ending is Ending.BAD_INPUT and not refused:
        assert written == BridgeStatus.FAILED
        assert sink.data[MESSAGE].startswith("Bad input: resourceURL:")


@PROPERTY_SETTINGS
@given(worlds())
def test_a_second_pod_after_any_first_one_never_makes_a_second_job(world: World) -> None:
    first = build(world)
    first.finish(first.run())
    jobs_after_first = list(first.ray.submitted)

    # The pod is replaced: same ConfigMap (kill as it is now), same status, same Ray, no faults.
    second = Harness(first.source.data, recorded=first.sink.data, connect_timeout=0.02)
    second.clock = FakeClock(first.clock.now())
    second.clock.terminate_at(BACKSTOP)
    second.ray = first.ray
    second.ray.clock, second.ray.journal = second.clock, second.journal
    for method in ("version", "submit_job", "get_job", "stop_job"):
        second.ray.heal(method)
    posts_before = len(second.ray.posts)
    outcome = second.run()
    second.finish(outcome)

    # Across both pods, no attempt is submitted twice and the count goes on.
    assert len(second.ray.submitted) == len(set(second.ray.submitted)) <= world.retries + 1
    if jobs_after_first and world.retries == 0:
        # Ray has the first pod's job: the second one re-attaches to it and never posts.
        assert second.ray.posts[posts_before:] == []
        assert outcome.submission_id in ("", jobs_after_first[0])
