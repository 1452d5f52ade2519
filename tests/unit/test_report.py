"""What a run leaves behind once it ends: ``status.reason``, the termination message (``kubectl
describe pod``) and the ``--result`` file, for every way a run can end."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from raypod import run_record
from raypod.artifacts import Collected
from raypod.contract import END_TIME, ID, JOB_STATUS, MESSAGE, REASON, SUBMIT_TIME, BridgeStatus
from raypod.errors import ConfigError
from raypod.outcome import Ending, Outcome
from raypod.ray import JobInfo
from raypod.run_record import (
    MAX_TERMINATION_MESSAGE,
    result_document,
    summary_line,
    termination_log_path,
    write_result,
    write_termination_message,
)
from raypod.runner import RunResult

ENDED = JobInfo("raypod-train-1", "FAILED", "exit 3", 1_700_000_000_000, 1_700_000_060_000, "node", 3)


def written(outcome: Outcome, **keys: str) -> dict[str, str]:
    return {ID: outcome.submission_id, JOB_STATUS: outcome.status, MESSAGE: outcome.message, **keys}


# -- status.reason: one per way a run ends ----------------------------------------------------------
@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (Outcome.final("s1", BridgeStatus.SUCCEEDED, "Job succeeded."), "Succeeded"),
        (Outcome.final("s1", BridgeStatus.FAILED, "Job failed: exit 3.", ENDED), "AppFailed"),
        (Outcome.final("s1", BridgeStatus.KILL, "Stopped at the operator's request (kill=true)."), "Killed"),
        (Outcome.final("s1", BridgeStatus.UNKNOWN, "Lost track of Ray job s1: ..."), "Lost"),
        (Outcome.bad_input(ConfigError.single("kill", "must be true or false")), "BadInput"),
    ],
)
def test_each_final_status_carries_its_reason(outcome: Outcome, reason: str) -> None:
    assert outcome.reason == reason


# -- the termination message -----------------------------------------------------------------------
def test_the_summary_names_the_status_the_reason_the_job_and_the_message() -> None:
    outcome = Outcome.final("raypod-train-1", BridgeStatus.FAILED, "Job failed: exit 3.", ENDED)
    result = RunResult(1, outcome, None, written(outcome, **{REASON: "AppFailed"}))

    assert summary_line(result) == "FAILED (AppFailed): Ray job raypod-train-1: Job failed: exit 3."


def test_a_final_status_that_could_not_be_written_says_why_in_the_summary_and_the_result() -> None:
    outcome = Outcome.final("raypod-train-1", BridgeStatus.SUCCEEDED, "Job succeeded.")
    why = "ConfigMap: ns/train-bridge-cm was deleted and re-created as another object (...)"
    result = RunResult(1, outcome, None, written(outcome, **{REASON: "Succeeded"}), why)

    assert summary_line(result) == (
        f"SUCCEEDED (Succeeded): Ray job raypod-train-1: Job succeeded. This status is not recorded: {why}"
    )
    assert result_document(result)["notRecorded"] == why
    assert result_document(replace(result, not_written=""))["notRecorded"] is None


def test_a_terminated_run_says_the_job_keeps_running() -> None:
    result = RunResult(143, Outcome(Ending.TERMINATED, "raypod-train-1"), None, {JOB_STATUS: "RUNNING"})

    assert summary_line(result) == ("terminated: Ray job raypod-train-1 keeps running; the next pod re-attaches to it")


def test_the_termination_message_is_cut_to_what_the_kubelet_keeps_without_splitting_a_character(
    tmp_path: Path,
) -> None:
    outcome = Outcome.final("s1", BridgeStatus.FAILED, "é" * 5000)
    target = tmp_path / "termination-log"

    write_termination_message(target, RunResult(1, outcome, None, written(outcome)))

    data = target.read_bytes()
    assert len(data) <= MAX_TERMINATION_MESSAGE
    assert data.decode("utf-8").startswith("FAILED (AppFailed): Ray job s1: ééé")


def test_the_termination_log_flag_chooses_the_path_or_turns_it_off(tmp_path: Path) -> None:
    assert termination_log_path(str(tmp_path / "t")) == tmp_path / "t"
    assert termination_log_path("") is None


def test_without_the_flag_the_termination_log_is_written_only_where_the_kubelet_made_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubelets = tmp_path / "termination-log"  # stands in for /dev/termination-log
    monkeypatch.setattr(run_record, "TERMINATION_LOG", kubelets)
    outcome = Outcome.final("s1", BridgeStatus.SUCCEEDED, "Job succeeded.")
    result = RunResult(0, outcome, None, written(outcome))

    # Outside a pod nothing made it: nothing is written, and no file is created.
    assert termination_log_path(None) is None
    write_termination_message(termination_log_path(None), result)
    assert not kubelets.exists()

    # In a pod the kubelet made it: the summary goes there.
    kubelets.touch()
    assert termination_log_path(None) == kubelets
    write_termination_message(termination_log_path(None), result)
    assert kubelets.read_text().startswith("SUCCEEDED (Succeeded): Ray job s1:")


# -- the result file --------------------------------------------------------------------------------
def test_the_result_document_holds_the_id_status_reason_times_exit_code_log_and_files() -> None:
    outcome = Outcome.final("raypod-train-1", BridgeStatus.FAILED, "Job failed: exit 3.", ENDED)
    collected = Collected("log uploaded", "s3://logs/train/logs", ("model.pt",), ("metrics.json",))
    status = written(
        outcome,
        **{REASON: "AppFailed", SUBMIT_TIME: "2023-11-14T22:13:00Z", END_TIME: "2023-11-14T22:14:20Z"},
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
        "notRecorded": None,
        "submitTime": "2023-11-14T22:13:00Z",
        "startTime": None,
        "endTime": "2023-11-14T22:14:20Z",
        "driverExitCode": 3,
        "log": "s3://logs/train/logs",
        "resultFiles": {"found": ["model.pt"], "missing": ["metrics.json"]},
    }


def test_a_terminated_run_leaves_a_result_that_is_not_final() -> None:
    document = result_document(RunResult(143, Outcome(Ending.TERMINATED, "s1"), None, {JOB_STATUS: "RUNNING"}))

    assert document["final"] is False
    assert document["reason"] is None
    assert document["status"] == "RUNNING"
    assert document["exitCode"] == 143


def test_a_result_that_cannot_be_written_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    outcome = Outcome.final("s1", BridgeStatus.SUCCEEDED, "Job succeeded.")

    write_result(blocker / "result.json", RunResult(0, outcome, None, written(outcome)))  # a file as its directory

    assert blocker.read_text() == "x"
