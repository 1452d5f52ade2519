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
