"""``validate`` and ``run`` agree: for each ConfigMap, the problems validate lists are the ones run
refuses or sets aside, and what validate says run does is what run does (issue 20, class 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.cli import main
from raypod.commands import Plan, run_verdict
from raypod.contract import ID, JOB_STATUS, BridgeStatus
from raypod.errors import ConfigError
from raypod.exits import ExitCodes
from raypod.outcome import Ending, Outcome, load_for_run
from tests.support.fakes import BASE_CONFIG, Harness

SIX_PROBLEMS = {
    "updateInterval": "abc",
    "jobdata.scriptLocation": "ftp",
    "jobdata.jobParameters": "[1]",
    "jobdata.scriptMetadata": "{bad",
    "s3.secure": "maybe",
    "kill": "perhaps",
}
CLASH = {"jobproperties": '{"runtime_env": {"env_vars": {"A": "1"}}}', "jobdata.scriptMetadata": '{"env": {"B": "2"}}'}
JOB = "raypod-train-0123456789ab"

#: (name, ConfigMap data on top of BASE_CONFIG, whether Ray has JOB, what run does)
ROWS = [
    ("good", {}, False, Plan.SUBMIT),
    ("six problems", SIX_PROBLEMS, False, Plan.REFUSE),
    ("six problems and an id Ray has", {**SIX_PROBLEMS, ID: JOB}, True, Plan.ATTACH),
    ("six problems and an id Ray lacks", {**SIX_PROBLEMS, ID: JOB}, False, Plan.ATTACH),
    (
        "six problems, an id and a final status",
        {**SIX_PROBLEMS, ID: JOB, JOB_STATUS: "SUCCEEDED"},
        True,
        Plan.KEEP_FINAL,
    ),
    (
        "a bad resourceURL and a running id",
        {"resourceURL": "nowhere", ID: JOB, JOB_STATUS: "RUNNING"},
        True,
        Plan.UNKNOWN,
    ),
    ("an id that is a path", {**SIX_PROBLEMS, ID: "my-job/../victim"}, True, Plan.REFUSE),
    ("a runtime_env clash", CLASH, False, Plan.REFUSE),
    ("a runtime_env clash and an id", {**CLASH, ID: JOB}, True, Plan.ATTACH),
    ("kill before the start", {"kill": "true"}, False, Plan.KILLED),
    ("good and an id", {ID: JOB}, True, Plan.ATTACH),
]


def pod_run(data: dict[str, str], ray_has_job: bool) -> tuple[Outcome, tuple[tuple[str, str], ...], Harness]:
    """The operator's pod: the ConfigMap is also where its status is recorded. Returns the outcome
    and the problems run refused (bad input) or set aside."""
    h = Harness(data, recorded={k: v for k, v in data.items() if k in (ID, JOB_STATUS)})
    if ray_has_job:
        h.ray.add_job(JOB)
    loaded = load_for_run(h.job, h.reporter.load())
    if isinstance(loaded, Outcome):
        return loaded, (), h
    return h.run(), loaded.set_aside, h


@pytest.mark.parametrize(("data", "ray_has_job", "plan"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_validate_reports_every_problem_run_refuses_or_sets_aside_and_what_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict[str, str], ray_has_job: bool, plan: Plan
) -> None:
    configmap = {**BASE_CONFIG, **data}
    manifest = tmp_path / "cm.json"
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": configmap}))
    code = main(["validate", "--config", str(manifest)])
    out, err = capsys.readouterr()
    listed = [line.removeprefix("error: ") for line in out.splitlines() if line.startswith("error: ")]

    verdict = run_verdict(configmap)
    outcome, set_aside, h = pod_run(data, ray_has_job)

    assert verdict.plan is plan
    assert listed == [f"{key}: {problem}" for key, problem in verdict.problems]
    assert code == (2 if verdict.problems else 0)
    # What run does, and with which problems.
    match plan:
        case Plan.SUBMIT:
            assert outcome.ending is Ending.FINAL and h.ray.posts and not listed
        case Plan.KILLED:
            assert outcome.status is BridgeStatus.KILL and not h.ray.posts and not listed
        case Plan.REFUSE:
            assert outcome.ending is Ending.BAD_INPUT and not h.ray.posts
            assert list(outcome.problems) == listed
            assert "run would refuse it" in err
        case Plan.ATTACH if ray_has_job:
            assert outcome.ending is Ending.FINAL and not h.ray.posts
            assert [f"{key}: {problem}" for key, problem in set_aside] == listed
            assert f"run would re-attach to Ray job {JOB}" in out + err
        case Plan.ATTACH:
            # Ray lacks the recorded job: with problems, nothing is submitted and they are bad input.
            if listed:
                assert outcome.ending is Ending.BAD_INPUT and list(outcome.problems) == listed
            assert not listed or "run would refuse it as bad input" in err
        case Plan.KEEP_FINAL:
            assert outcome.ending is Ending.ALREADY_FINAL and outcome.submission_id == JOB
        case Plan.UNKNOWN:
            assert outcome.status is BridgeStatus.UNKNOWN and outcome.submission_id == JOB
        case _:
            raise AssertionError(plan)


def test_a_configmap_with_six_problems_and_an_id_does_not_validate_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "cm.json"
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": {**BASE_CONFIG, **SIX_PROBLEMS, ID: JOB}}))
    assert main(["validate", "--config", str(manifest)]) == 2
    out, err = capsys.readouterr()
    assert {line.split(":")[1].strip() for line in out.splitlines()} == set(SIX_PROBLEMS)
    assert "set the 6 problem(s) aside" in err and "never submits or retries it" in err


def test_run_refuses_a_bad_id_recorded_in_a_status_file_naming_the_key() -> None:
    h = Harness(recorded={ID: "a/../b"})
    loaded = load_for_run(h.job, h.reporter.load())
    assert isinstance(loaded, Outcome) and loaded.ending is Ending.BAD_INPUT
    assert loaded.problems[0].startswith("id: 'a/../b' is not a Ray submission id")
    assert not h.ray.posts


def test_a_bad_configmap_id_is_never_set_aside() -> None:
    h = Harness({ID: "my job", "kill": "maybe"})
    with pytest.raises(ConfigError) as raised:
        h.job.load(submitted=True)
    assert [key for key, _ in raised.value.problems] == [ID, "kill"]


@pytest.mark.parametrize(
    ("convention", "plan"), [("auto", Plan.KEEP_FINAL), ("bridge", Plan.KEEP_FINAL), ("job", Plan.ATTACH)]
)
def test_validate_knows_that_a_kubernetes_jobs_pod_reattaches_after_unknown_as_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], convention: str, plan: Plan
) -> None:
    data = {ID: JOB, JOB_STATUS: "UNKNOWN"}
    manifest = tmp_path / "cm.json"
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": {**BASE_CONFIG, **data}}))

    code = main(["validate", "--config", str(manifest), "--exit-codes", convention])
    out, _ = capsys.readouterr()

    assert code == 0
    assert (
        run_verdict({**BASE_CONFIG, **data}, ExitCodes.BRIDGE if convention == "auto" else ExitCodes(convention)).plan
        is plan
    )
    h = Harness(data, recorded=data, lost_is_final=plan is Plan.KEEP_FINAL)
    h.ray.add_job(JOB)
    outcome = h.run()
    if plan is Plan.ATTACH:
        assert f"run would re-attach to Ray job {JOB}" in out
        assert outcome.ending is Ending.FINAL and outcome.status is BridgeStatus.SUCCEEDED and not h.ray.posts
    else:
        assert f"run would keep the final status recorded for Ray job {JOB}" in out
        assert outcome.ending is Ending.ALREADY_FINAL and outcome.status is BridgeStatus.UNKNOWN
