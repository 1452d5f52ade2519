"""A misspelled ConfigMap key through the real command line: ``validate`` and ``run`` name it with a
suggestion and exit 2; ``run`` writes FAILED/BadInput and contacts nothing (its resourceURL is a
port nobody listens on, so a run that went on would fail otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import raypod

GOOD = {
    "resourceURL": "http://127.0.0.1:9",
    "jobdata.jobScript": "print(1)",
    "jobdata.scriptLocation": "inline",
    # keys of others, which must not be flagged
    "message": "a note the operator wrote",
    "team": "ml-platform",
}


def configmap_dir(tmp_path: Path, keys: dict[str, str]) -> Path:
    config = tmp_path / "cm"
    config.mkdir()
    for key, value in {**GOOD, **keys}.items():
        (config / key).write_text(value)
    return config


def test_validate_names_each_misspelled_key_with_a_suggestion_and_exits_2(tmp_path: Path) -> None:
    config = configmap_dir(tmp_path, {"jobdata.jobparameters": '{"a": 1}', "jobProperties": '{"retries": 2}'})
    completed = raypod("validate", "--config", str(config))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    errors = [line for line in completed.stdout.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: jobProperties: unknown key, raypod would ignore it: did you mean jobproperties?",
        "error: jobdata.jobparameters: unknown key, raypod would ignore it: did you mean jobdata.jobParameters?",
    ]


def test_validate_accepts_the_keys_of_the_operator_and_of_other_tools(tmp_path: Path) -> None:
    config = configmap_dir(tmp_path, {"status.jobStatus": "", "kill": "false", "jobproperties": "{}"})
    completed = raypod("validate", "--config", str(config))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_run_with_a_misspelled_key_writes_bad_input_naming_it_and_submits_nothing(tmp_path: Path) -> None:
    config = configmap_dir(tmp_path, {"jobdata.scriptmetadata": '{"pip": ["rich"]}'})
    status_file, termination = tmp_path / "status.json", tmp_path / "termination-log"
    completed = raypod(
        "run", "--config", str(config), "--status-file", str(status_file), "--termination-log", str(termination),
        env={"JOBNAME": "misspelled", "NAMESPACE": "bridge"},
    )  # fmt: skip
    assert completed.returncode == 2, completed.stderr
    status = json.loads(status_file.read_text())
    assert status["status.jobStatus"] == "FAILED" and status["status.reason"] == "BadInput"
    assert "id" not in status and "status.submitTime" not in status
    wanted = "jobdata.scriptmetadata: unknown key, raypod would ignore it: did you mean jobdata.scriptMetadata?"
    assert status["status.message"] == f"Bad input: {wanted}"
    assert wanted in completed.stderr
    assert wanted in termination.read_text()


def test_run_with_several_problems_counts_them_in_the_status_and_the_termination_message(tmp_path: Path) -> None:
    config = configmap_dir(
        tmp_path, {"jobdata.jobparameters": '{"a": 1}', "jobProperties": '{"retries": 2}', "updateInterval": "x"}
    )
    status_file, termination = tmp_path / "status.json", tmp_path / "termination-log"
    completed = raypod(
        "run", "--config", str(config), "--status-file", str(status_file), "--termination-log", str(termination),
        env={"JOBNAME": "misspelled", "NAMESPACE": "bridge"},
    )  # fmt: skip
    assert completed.returncode == 2, completed.stderr
    message = json.loads(status_file.read_text())["status.message"]
    assert message == (
        "Bad input (3 problems): jobProperties: unknown key, raypod would ignore it: did you mean jobproperties?; "
        "jobdata.jobparameters: unknown key, raypod would ignore it: did you mean jobdata.jobParameters?; "
        "updateInterval: expected a number of seconds, got 'x'"
    )
    assert termination.read_text().startswith(f"FAILED (BadInput): {message}")
    assert "raypod: bad input: updateInterval: expected a number of seconds, got 'x'" in completed.stderr
