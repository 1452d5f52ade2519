"""``submit --script`` and the script's own command line, on the real Ray head: what reaches the
script's ``sys.argv``, and the name it runs under."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import client_args, raypod
from tests.support.helpers import Services, ray_job

#: An ordinary argparse script, as a Ray user writes one: it knows nothing of --kwargs.
ARGPARSE_SCRIPT = """\
import argparse, json, sys
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--name", default="")
args = parser.parse_args()
print("ARGV " + json.dumps(sys.argv[1:]))
print("FILE " + __file__.rsplit("/", 1)[-1])
"""


def _submitted(services: Services, tmp_path: Path, script: Path, *extra: str) -> tuple[str, list[str]]:
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--wait", *extra)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    return lines[0], [line.removeprefix("[job] ") for line in lines[1:]]


def _printed(lines: list[str], label: str) -> str:
    return next(line.removeprefix(f"{label} ") for line in lines if line.startswith(f"{label} "))


def test_an_argparse_script_without_parameters_gets_no_kwargs_and_succeeds(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    submission_id, lines = _submitted(services, tmp_path, script)
    assert json.loads(_printed(lines, "ARGV")) == []
    assert _printed(lines, "FILE") == "ap.py"
    assert "--kwargs" not in ray_job(services, submission_id)["entrypoint"]


def test_the_arguments_after_double_dash_reach_the_scripts_argv_exactly(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    arguments = ["--epochs", "3", "--name", "a b; rm -rf x", "--name", "$HOME 'q' \"d\" `id`"]
    submission_id, lines = _submitted(services, tmp_path, script, "--", *arguments)
    assert json.loads(_printed(lines, "ARGV")) == arguments
    assert ray_job(services, submission_id)["status"] == "SUCCEEDED"


def test_a_stray_word_before_double_dash_is_refused_and_nothing_is_submitted(
    services: Services, tmp_path: Path
) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "stray")
    assert completed.returncode == 2
    assert "unrecognized arguments: stray" in completed.stderr
    assert completed.stdout == ""


def test_a_traceback_in_rays_log_names_the_users_own_script(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "my_train.py"
    script.write_text("def step():\n    raise ValueError('boom')\n\nstep()\n")
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--wait")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    submission_id = completed.stdout.splitlines()[0]
    log = raypod("logs", submission_id, *client_args(services, tmp_path))
    assert 'my_train.py", line 2, in step' in log.stdout
    assert "python my_train.py" in ray_job(services, submission_id)["entrypoint"]


def test_a_script_whose_name_the_shell_would_read_runs_as_script_py(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "my job;x.py"
    script.write_text(ARGPARSE_SCRIPT)
    _, lines = _submitted(services, tmp_path, script)
    assert _printed(lines, "FILE") == "script.py"
