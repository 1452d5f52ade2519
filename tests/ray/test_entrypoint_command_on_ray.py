"""``submit -- COMMAND`` without ``--script``: the command is Ray's entrypoint, as with ``ray job submit --
COMMAND``, on the real Ray head: what reaches ``sys.argv``, the working dir, the exit codes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.support.cli import client_args, raypod
from tests.support.helpers import Services, ray_job, unique

#: Prints its arguments and environment, and exits with the code it is given.
TRAIN = """\
import json, os, sys
print("ARGV " + json.dumps(sys.argv[1:]))
print("MODE " + os.environ.get("MODE", ""))
print("HELPER " + open("helper.txt").read().strip())
sys.exit(int(os.environ.get("CODE", "0")))
"""
#: Words a shell would read: spaces, both quotes, `;`, `$`, backquotes, a glob and an empty word.
AWKWARD = ["--name", "a b; rm -rf x", "$HOME 'q' \"d\" `id`", "*", "", "x=a=b"]


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "train.py").write_text(TRAIN)
    (project / "helper.txt").write_text("beside train.py\n")
    return project


def _printed(stdout: str, label: str) -> str:
    lines = [line.removeprefix("[job] ") for line in stdout.splitlines()]
    return next(line.removeprefix(f"{label} ") for line in lines if line.startswith(f"{label} "))


def test_a_command_after_double_dash_is_the_entrypoint_and_its_words_reach_sys_argv_exactly(
    services: Services, tmp_path: Path
) -> None:
    chosen = unique("command")
    completed = raypod(
        "submit",
        *client_args(services, tmp_path),
        "--working-dir",
        str(_project(tmp_path)),
        "--env",
        "MODE=from-env",
        "--submission-id",
        chosen,
        "--wait",
        "--",
        "python",
        "train.py",
        *AWKWARD,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.splitlines()[0] == chosen
    assert json.loads(_printed(completed.stdout, "ARGV")) == AWKWARD
    # The job runs in the working dir, and --env reaches it through the runtime_env.
    assert _printed(completed.stdout, "HELPER") == "beside train.py"
    assert _printed(completed.stdout, "MODE") == "from-env"
    info = ray_job(services, chosen)
    # Exactly what `ray job submit -- python train.py ...` sends: the words joined by shlex.join.
    assert info["entrypoint"] == shlex.join(["python", "train.py", *AWKWARD])
    assert info["status"] == "SUCCEEDED"


def test_a_failing_command_with_wait_exits_1_and_ray_says_failed(services: Services, tmp_path: Path) -> None:
    chosen = unique("command-fails")
    completed = raypod(
        "submit",
        *client_args(services, tmp_path),
        "--working-dir",
        str(_project(tmp_path)),
        "--env",
        "CODE=3",
        "--submission-id",
        chosen,
        "--wait",
        "--",
        "python",
        "train.py",
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert ray_job(services, chosen)["status"] == "FAILED"
    assert ray_job(services, chosen)["driver_exit_code"] == 3


def test_a_command_without_a_working_dir_sends_no_package(services: Services, tmp_path: Path) -> None:
    chosen = unique("no-package")
    completed = raypod(
        "submit",
        *client_args(services, tmp_path),
        "--submission-id",
        chosen,
        "--wait",
        "--",
        "python",
        "-c",
        "import sys; print('ARGV', sys.argv[1:])",
        "one two",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "ARGV ['one two']" in completed.stdout
    assert "working_dir" not in (ray_job(services, chosen)["runtime_env"] or {})
