"""What a run leaves behind once it ends: ``status.reason``, the termination message (``kubectl
describe pod``) and the ``--result`` file, for every way a run can end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from raypod import status as st
from raypod.errors import ConfigError
from raypod.ray import JobInfo
from raypod.report import (
    MAX_TERMINATION_MESSAGE,
    result_document,
    summary_line,
    termination_log_path,
    write_result,
    write_termination_message,
)
from raypod.results import Collected
from raypod.runner import RunResult
from raypod.session import Ending, Outcome
from tests.support.helpers import BridgeJob

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # the operator's 2006-01-02T15:04:05Z
ENDED = JobInfo("raypod-train-1", "FAILED", "exit 3", 1_700_000_000_000, 1_700_000_060_000, "node", 3)


def written(outcome: Outcome, **keys: str) -> dict[str, str]:
    return {st.ID: outcome.submission_id, st.JOB_STATUS: outcome.status, st.MESSAGE: outcome.message, **keys}


# -- status.reason: one per way a run ends ----------------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (Outcome.final("s1", st.SUCCEEDED, "Job succeeded."), "Succeeded"),
        (Outcome.final("s1", st.FAILED, "Job failed: exit 3.", ENDED), "AppFailed"),
        (Outcome.final("s1", st.KILL, "Stopped at the operator's request (kill=true)."), "Killed"),
        (Outcome.final("s1", st.UNKNOWN, "Lost track of Ray job s1: ..."), "Lost"),
        (Outcome.bad_input(ConfigError.single("kill", "must be true or false")), "BadInput"),
    ],
)
def test_each_final_status_carries_its_reason(outcome: Outcome, reason: str) -> None:
    assert outcome.reason == reason


# -- the termination message -----------------------------------------------------------------------
def test_the_summary_names_the_status_the_reason_the_job_and_the_message() -> None:
    outcome = Outcome.final("raypod-train-1", st.FAILED, "Job failed: exit 3.", ENDED)
    result = RunResult(1, outcome, None, written(outcome, **{st.REASON: "AppFailed"}))

    assert summary_line(result) == "FAILED (AppFailed): Ray job raypod-train-1: Job failed: exit 3."


def test_a_terminated_run_says_the_job_keeps_running() -> None:
    result = RunResult(143, Outcome(Ending.TERMINATED, "raypod-train-1"), None, {st.JOB_STATUS: "RUNNING"})

    assert summary_line(result) == ("terminated: Ray job raypod-train-1 keeps running; the next pod re-attaches to it")


def test_the_termination_message_is_cut_to_what_the_kubelet_keeps_without_splitting_a_character(
    tmp_path: Path,
) -> None:
    outcome = Outcome.final("s1", st.FAILED, "é" * 5000)
    target = tmp_path / "termination-log"

    write_termination_message(target, RunResult(1, outcome, None, written(outcome)))

    data = target.read_bytes()
    assert len(data) <= MAX_TERMINATION_MESSAGE
    assert data.decode("utf-8").startswith("FAILED (AppFailed): Ray job s1: ééé")


def test_the_termination_log_flag_chooses_the_path_or_turns_it_off(tmp_path: Path) -> None:
    assert termination_log_path(str(tmp_path / "t")) == tmp_path / "t"
    assert termination_log_path("") is None
    # Absent: /dev/termination-log only where the kubelet made it; raypod never creates it.
    default = termination_log_path(None)
    assert default is None or default == Path("/dev/termination-log")


# -- the result file --------------------------------------------------------------------------------
def test_the_result_document_holds_the_id_status_reason_times_exit_code_log_and_files() -> None:
    outcome = Outcome.final("raypod-train-1", st.FAILED, "Job failed: exit 3.", ENDED)
    collected = Collected("log uploaded", "s3://logs/train/logs", ("model.pt",), ("metrics.json",))
    status = written(
        outcome,
        **{st.REASON: "AppFailed", st.SUBMIT_TIME: "2023-11-14T22:13:00Z", st.END_TIME: "2023-11-14T22:14:20Z"},
    )

    document = result_document(RunResult(1, outcome, collected, status))

    assert document == {
        "submissionId": "raypod-train-1",
        "attempt": 1,
        "status": "FAILED",
        "final": True,
        "reason": "AppFailed",
        "exitCode": 1,
        "message": "Job failed: exit 3.",
        "submitTime": "2023-11-14T22:13:00Z",
        "startTime": None,
        "endTime": "2023-11-14T22:14:20Z",
        "driverExitCode": 3,
        "log": "s3://logs/train/logs",
        "resultFiles": {"found": ["model.pt"], "missing": ["metrics.json"]},
    }


def test_a_terminated_run_leaves_a_result_that_is_not_final() -> None:
    document = result_document(RunResult(143, Outcome(Ending.TERMINATED, "s1"), None, {st.JOB_STATUS: "RUNNING"}))

    assert document["final"] is False
    assert document["reason"] is None
    assert document["status"] == "RUNNING"
    assert document["exitCode"] == 143


def test_a_result_that_cannot_be_written_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    outcome = Outcome.final("s1", st.SUCCEEDED, "Job succeeded.")

    write_result(blocker / "result.json", RunResult(0, outcome, None, written(outcome)))  # a file as its directory

    assert blocker.read_text() == "x"


# -- end to end, on the real Ray head ---------------------------------------------------------------
@pytest.mark.integration
def test_a_run_leaves_its_reason_summary_and_result_file(bridge_job: BridgeJob, tmp_path: Path) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import sys\nprint('bad input row 7', flush=True)\nsys.exit(3)\n",
        s3upload__files="model.pt",
    )
    result_file = tmp_path / "out" / "result.json"
    termination_log = tmp_path / "termination-log"

    run = bridge_job.run("--result", str(result_file), "--termination-log", str(termination_log))

    assert run.returncode == 1, run.stdout + run.stderr
    assert run.status["status.reason"] == "AppFailed"
    document = json.loads(result_file.read_text())
    assert document["submissionId"] == run.status["id"]
    assert (document["status"], document["reason"], document["final"], document["exitCode"]) == (
        "FAILED",
        "AppFailed",
        True,
        1,
    )
    assert document["driverExitCode"] == 3
    assert document["log"] == f"s3://{bridge_job.bucket}/{bridge_job.name}/logs"
    assert document["resultFiles"] == {"found": [], "missing": ["model.pt"]}
    assert all(TIME.match(document[key]) for key in ("submitTime", "startTime", "endTime"))
    assert termination_log.read_text().startswith(f"FAILED (AppFailed): Ray job {run.status['id']}: Job failed")


@pytest.mark.integration
def test_bad_input_leaves_a_result_with_its_reason_and_nothing_submitted(bridge_job: BridgeJob, tmp_path: Path) -> None:
    bridge_job.set(jobdata__jobScript="/opt/job.py", kill="maybe")
    result_file = tmp_path / "result.json"

    run = bridge_job.run("--result", str(result_file), "--termination-log", "")

    assert run.returncode == 2
    document = json.loads(result_file.read_text())
    assert (document["status"], document["reason"], document["submissionId"]) == ("FAILED", "BadInput", None)
    assert document["message"].startswith("Bad input: kill: ")
