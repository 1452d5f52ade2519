"""Invariants of ``raypod run`` over generated ConfigMaps and generated hostile dashboards.

Every example runs ``raypod.cli.main`` in-process against the fake dashboard of ``tests/support/hostile.py``
and checks, whatever was generated:

- ``main()`` returns (no exception, no traceback printed or logged);
- the exit code matches the status written: 0 iff SUCCEEDED; 1 with FAILED, KILL or UNKNOWN; 2 only
  with FAILED "Bad input: ..."; never 143; one final status, written last; times in the operator's layout;
- exit 2 means nothing was POSTed, and a bad ConfigMap means no request at all;
- the token of the credentials directory, which the dashboard quotes in its error pages, never
  appears on stdout, on stderr, in the log or in the status file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as s

from tests.support.hostile import (
    GARBAGE,
    REFUSALS,
    TRANSIENT,
    Pod,
    PodRun,
    Step,
    capture_logs,
    check_exit_matches_status,
    scratch,
)
from tests.support.scripted_server import ScriptedServer

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
OLD_ID = "raypod-hostile-fedcba987654"
FINAL = ("SUCCEEDED", "FAILED", "KILL", "UNKNOWN")


# -- (a) ConfigMaps ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Value:
    """One key's value, and the keys a problem with it must be reported under (none: it is valid)."""

    text: str
    blamed: tuple[str, ...] = ()


def bad(text: str, *keys: str) -> Value:
    return Value(text, keys)


PARAMETER_NAMES = s.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,6}", fullmatch=True)
PARAMETER_VALUES = s.one_of(
    s.text(s.characters(exclude_characters="=", codec="utf-8"), max_size=8),
    s.integers(-(10**6), 10**6),
    s.booleans(),
    s.lists(s.integers(0, 9), max_size=3),
)
VALID_PARAMETERS = s.dictionaries(PARAMETER_NAMES, PARAMETER_VALUES, max_size=3).map(lambda d: Value(json.dumps(d)))

VALID: dict[str, s.SearchStrategy[Value]] = {
    # Below the 0.5 s floor (the operator writes any Go int) is raised to the floor, not refused.
    "updateInterval": s.sampled_from(
        [Value("0.5"), Value(" 0.5\n"), Value("0.6"), Value("5e-1"), Value("0"), Value("-1"), Value("0.1")]
    ),
    "jobdata.jobParameters": s.one_of(VALID_PARAMETERS, s.sampled_from([Value(""), Value("{}")])),
    "jobproperties": s.sampled_from(
        [
            Value(""),
            Value("{}"),
            Value('{"entrypoint_num_cpus": 1, "entrypoint_resources": {"custom": 0.5}}'),
            Value('{"metadata": {"team": "a"}, "followLogs": false}'),
            Value('{"submissionIdPrefix": "p-1"}'),
            Value('{"runtime_env": {"env_vars": {"A": "1"}}}'),
            Value('{"auth": "basic"}'),
        ]
    ),
    "jobdata.scriptLocation": s.sampled_from([Value("remote"), Value(""), Value("inline"), Value("Remote")]),
    "kill": s.sampled_from([Value(""), Value("false"), Value("true"), Value("no"), Value("0"), Value("TRUE")]),
}
INVALID: dict[str, s.SearchStrategy[Value]] = {
    "updateInterval": s.sampled_from([bad(t, "updateInterval") for t in ("abc", "nan", "inf", "1e400", "20s", "0x10")]),
    "jobdata.jobParameters": s.sampled_from(
        [
            bad(t, "jobdata.jobParameters")
            for t in (
                "not json",
                "[1, 2]",
                "null",
                '"x"',
                '{"a": "x=y"}',
                '{"--lr": 1}',
                '{"a b": 1}',
                '{"a": null}',
                '{"a": ' * 40 + "1" + "}" * 40,
                "[" * 5000 + "]" * 5000,
            )
        ]
    ),
    "jobproperties": s.sampled_from(
        [
            bad(t, "jobproperties")
            for t in (
                '{"x": 1}',
                '{"entrypoint_num_cpus": -1}',
                '{"entrypoint_num_cpus": Infinity}',
                '{"entrypoint_num_gpus": 1e400}',
                '{"entrypoint_memory": 1.5}',
                '{"activeDeadlineSeconds": 0}',
                '{"runtime_env": {"x": NaN}}',
                "[]",
                "{",
                '{"auth": "digest"}',
                '{"metadata": {"bridge-job": "x"}}',
                '{"followLogs": "yes"}',
                '{"submissionIdPrefix": "a/b"}',
            )
        ]
    ),
    "jobdata.scriptLocation": s.sampled_from(
        [bad("ftp", "jobdata.scriptLocation"), bad("s3", "jobdata.jobScript", "s3.endpoint")]
    ),
    "kill": s.sampled_from([bad(t, "kill") for t in ("maybe", "yes please", "2")]),
}


@s.composite
def configmaps(draw: s.DrawFn) -> dict[str, Value]:
    """Valid values, with none, one or two keys broken."""
    broken = draw(s.sets(s.sampled_from(sorted(VALID)), max_size=2))
    return {key: draw(INVALID[key] if key in broken else VALID[key]) for key in VALID}


def run_pod(
    server: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    data: dict[str, str],
    scripts: dict[str, list[Step]],
    *,
    recorded: dict[str, str] | None = None,
    ray_has: tuple[str, ...] = (),
    status_timeout: float = 1.0,
) -> tuple[Pod, PodRun]:
    server.reset()
    capture_logs(caplog)
    with scratch() as root:
        pod = Pod(root, server, data, recorded=recorded)
        for submission_id in ray_has:
            pod.dashboard.has(submission_id)
        for endpoint, steps in scripts.items():
            pod.dashboard.script(endpoint, *steps)
        result = pod.run(capsys, caplog, status_timeout=status_timeout, connect_timeout=0.5)
    common_invariants(pod, result, recorded)
    return pod, result


def common_invariants(pod: Pod, result: PodRun, recorded: dict[str, str] | None) -> None:
    result.assert_clean()
    check_exit_matches_status(result, recorded)
    dashboard = pod.dashboard
    if result.code == 2:
        assert dashboard.posts == 0, "exit 2 says nothing was submitted"
        if dashboard.count():
            assert result.message.startswith("Bad input: resourceURL: "), result.message
    # Never two jobs: at most one POST was taken, besides a job Ray had already.
    assert len(dashboard.accepted) == len(set(dashboard.accepted)) <= 1 + (OLD_ID in dashboard.accepted)
    status = result.status.get("status.jobStatus")
    if recorded and recorded.get("status.jobStatus") in FINAL:
        assert dashboard.count() == 0
        return
    # A final status raypod wrote is one Ray gave, or one of raypod's own reasons.
    if status == "SUCCEEDED":
        assert "SUCCEEDED" in dashboard.served
    elif status == "KILL":
        assert "STOPPED" in dashboard.served or result.message.startswith("Not submitted: kill was set")
    elif status == "FAILED" and result.message.startswith("Job failed"):
        assert "FAILED" in dashboard.served


@SETTINGS
@given(config=configmaps())
def test_any_configmap_ends_in_a_status_that_matches_the_exit_code(
    server: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    config: dict[str, Value],
) -> None:
    data = {key: value.text for key, value in config.items()}
    blamed = {key for value in config.values() for key in value.blamed}

    pod, result = run_pod(server, capsys, caplog, data, {"poll": ["RUNNING", "SUCCEEDED"]})

    if blamed:
        assert result.code == 2
        assert pod.dashboard.count() == 0, "a bad ConfigMap is found before anything is contacted"
        named = set(re.findall(r"^raypod: bad input: ([^:\s]+):", result.err, re.MULTILINE))
        assert blamed & named, (blamed, result.err)
    elif data["kill"].lower() == "true":
        assert result.code == 1
        assert result.status["status.jobStatus"] == "KILL"
        assert pod.dashboard.count() == 0
    else:
        assert result.code == 0, result.text
        assert pod.dashboard.posts == 1


# -- (b) dashboards ----------------------------------------------------------------------------------------
CLASSES = (*TRANSIENT, *REFUSALS, "404", *GARBAGE)
#: Classes that end a call at once (a persistent transient answer on a package call or a stop is
#: retried for up to a minute: kept to the first steps of a script, where the next step heals it).
PERMANENT = tuple(c for c in CLASSES if c not in TRANSIENT)


def script(
    heal: list[str], never: tuple[str, ...], prefix: s.SearchStrategy[str] | None = None, *, max_prefix: int = 1
) -> s.SearchStrategy[list[Step]]:
    """Up to ``max_prefix`` answer classes, then, about as often, an answer that heals the call or
    one (of ``never``) that keeps it failing; the last step is repeated."""
    first = s.lists(prefix if prefix is not None else s.sampled_from(CLASSES), max_size=max_prefix)
    last = s.one_of(s.sampled_from(heal), s.sampled_from(never))

    def joined(parts: tuple[list[str], str]) -> list[Step]:
        return [*parts[0], parts[1]]

    return s.tuples(first, last).map(joined)


@dataclass
class Scenario:
    data: dict[str, str]
    scripts: dict[str, list[Step]] = field(default_factory=dict)
    recorded: dict[str, str] | None = None
    ray_has: tuple[str, ...] = ()


@s.composite
def scenarios(draw: s.DrawFn) -> Scenario:
    data = {
        "jobdata.scriptLocation": draw(s.sampled_from(["remote", "inline"])),
        "jobproperties": draw(
            s.sampled_from(["", '{"auth": "basic"}', '{"submissionIdPrefix": "p"}', '{"activeDeadlineSeconds": 1}'])
        ),
    }
    live = s.sampled_from(["PENDING", "RUNNING", "kill"])
    poll_prefix = s.one_of(live, s.sampled_from(CLASSES))
    scripts: dict[str, list[Step]] = {
        "version": draw(script(["ok"], CLASSES)),
        "package_get": draw(script(["missing", "present"], PERMANENT)),
        "package_put": draw(script(["ok"], PERMANENT)),
        "post": draw(script(["ok", "lost", "accept+html"], (*CLASSES, "wrapped"))),
        # Ends in Ray's end of the job, or in answers raypod cannot use until --status-timeout.
        "poll": draw(script(["SUCCEEDED", "FAILED", "STOPPED"], CLASSES, poll_prefix, max_prefix=3)),
        "stop": draw(script(["ok", "ended"], PERMANENT)),
    }
    recorded = draw(
        s.sampled_from(
            [
                None,
                None,
                None,
                {"id": OLD_ID},
                {"id": OLD_ID, "status.jobStatus": "RUNNING"},
                {"id": OLD_ID, "status.jobStatus": "SUCCEEDED", "status.message": "done"},
                {"id": OLD_ID, "status.jobStatus": "UNKNOWN", "status.message": "lost"},
            ]
        )
    )
    ray_has = (OLD_ID,) if recorded and draw(s.booleans()) else ()
    return Scenario(data, scripts, recorded, ray_has)


@SETTINGS
@given(scenario=scenarios())
def test_any_dashboard_ends_in_a_status_that_matches_the_exit_code(
    server: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    scenario: Scenario,
) -> None:
    pod, result = run_pod(
        server, capsys, caplog, scenario.data, scenario.scripts, recorded=scenario.recorded, ray_has=scenario.ray_has
    )

    if scenario.recorded and scenario.recorded.get("status.jobStatus") == "RUNNING":
        # A job Ray had confirmed is watched through anything: never "bad input", never POSTed again.
        assert result.code != 2, result.text
        assert pod.dashboard.posts == 0


# -- (c) the watch: junk polls, then Ray's end ------------------------------------------------------------
@settings(SETTINGS, max_examples=25)
@given(
    prefix=s.lists(s.sampled_from(["PENDING", "RUNNING", *TRANSIENT, *REFUSALS, *GARBAGE]), max_size=3),
    end=s.sampled_from(["SUCCEEDED", "FAILED", "STOPPED"]),
)
def test_junk_polls_never_change_what_ray_ends_with(
    server: ScriptedServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    prefix: list[str],
    end: str,
) -> None:
    _, result = run_pod(server, capsys, caplog, {}, {"poll": [*prefix, end]}, status_timeout=30.0)

    expected = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "STOPPED": "KILL"}[end]
    assert result.status["status.jobStatus"] == expected, result.text
    assert result.code == (0 if expected == "SUCCEEDED" else 1)
    assert set(result.statuses[:-1]) <= {"SUBMITTED", "PENDING", "RUNNING"}, result.statuses
    live = [step for step in prefix if step in ("PENDING", "RUNNING")]
    if live:
        assert result.statuses[1:-1] == [k for i, k in enumerate(live) if i == 0 or live[i - 1] != k]
