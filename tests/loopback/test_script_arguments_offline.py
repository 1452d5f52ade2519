"""``submit``'s script arguments and Ray flags refused before anything is contacted (the address
given is a closed port: a refusal that tried to reach it would say so instead)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import raypod

NOWHERE = "http://127.0.0.1:9"


def test_the_scripts_arguments_are_refused_with_a_configmap(tmp_path: Path) -> None:
    completed = raypod("submit", "--address", NOWHERE, "--config", str(tmp_path), "--", "--epochs", "3")
    assert completed.returncode == 2
    assert "bad input: -- ARGS: only with --script" in completed.stderr
    assert completed.stdout == ""


@pytest.mark.parametrize("flag", ["--submission-id", "--entrypoint-num-cpus", "--metadata-json"])
def test_rays_flags_are_refused_with_a_configmap(tmp_path: Path, flag: str) -> None:
    completed = raypod("submit", "--address", NOWHERE, "--config", str(tmp_path), flag, "1")
    assert completed.returncode == 2
    assert f"bad input: {flag}: only with --script" in completed.stderr


def test_a_submission_id_other_than_kuberays_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text("print('never')\n")
    completed = raypod(
        "submit",
        "--address",
        NOWHERE,
        "--script",
        str(script),
        "--submission-id",
        "mine",
        env={"RAY_JOB_SUBMISSION_ID": "kuberays"},
    )
    assert completed.returncode == 2
    assert "--submission-id: differs from RAY_JOB_SUBMISSION_ID=kuberays" in completed.stderr


def test_a_submission_id_and_an_id_prefix_are_refused_together(tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text("print('never')\n")
    completed = raypod(
        "submit",
        "--address",
        NOWHERE,
        "--script",
        str(script),
        "--submission-id",
        "mine",
        "--properties",
        '{"submissionIdPrefix": "nightly"}',
    )
    assert completed.returncode == 2
    assert "--submission-id, --properties: both choose the id" in completed.stderr


# -- submit -- COMMAND (no --script) ---------------------------------------------------------------
def test_submit_with_nothing_to_run_is_a_usage_error_naming_the_three_ways(tmp_path: Path) -> None:
    completed = raypod("submit", "--address", NOWHERE, "--working-dir", str(tmp_path), "--wait")
    assert completed.returncode == 2
    assert "give --script FILE, a command after -- (as with `ray job submit -- python train.py`)" in completed.stderr
    assert "--config PATH" in completed.stderr
    assert completed.stdout == ""


def test_param_with_a_command_is_refused_it_is_for_scripts_only(tmp_path: Path) -> None:
    completed = raypod("submit", "--address", NOWHERE, "--param", "epochs=3", "--", "python", "train.py")
    assert completed.returncode == 2
    assert "--param: only with --script" in completed.stderr
    assert completed.stdout == ""


def test_a_command_with_a_working_dir_that_is_no_directory_is_refused(tmp_path: Path) -> None:
    completed = raypod(
        "submit", "--address", NOWHERE, "--working-dir", str(tmp_path / "nowhere"), "--", "python", "train.py"
    )
    assert completed.returncode == 2
    assert f"--working-dir: {tmp_path / 'nowhere'} is not a directory" in completed.stderr


def test_a_stray_word_without_double_dash_is_refused_not_taken_as_a_command(tmp_path: Path) -> None:
    completed = raypod("submit", "--address", NOWHERE, "python", "train.py")
    assert completed.returncode == 2
    assert "unrecognized arguments: python train.py" in completed.stderr
