"""A top-level ``code.py`` in a ``--working-dir``, on the real Ray head: what the warning says happens.

Ray puts the working dir on every worker's ``sys.path``, and every worker imports ``code`` as it starts
(``import ray`` -> pdb -> code). A ``code.py`` that exits at import (a Bridge script that parses its
arguments at the top level) kills the job's supervisor, and the job stays PENDING until Ray gives up
on the supervisor's worker; one with nothing to run at import is merely imported in place of the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.services import LocalRay
from raypod.workdir import CODE_PY_CONSEQUENCE
from tests.support.cli import client_args, raypod
from tests.support.helpers import Services

#: How long the raylet waits for a worker to register before it tries again: 60 s by default, so a
#: job whose supervisor cannot start fails after about 6 min; here after about 5 x 5 s.
REGISTER_TIMEOUT = 5
#: A Bridge script: it parses its arguments at the top level, so importing it exits (a worker's
#: argv is Ray's, which argparse refuses).
BRIDGE_CODE_PY = """\
import argparse
parser = argparse.ArgumentParser()
parser.add_argument("--kwargs", nargs="*", default=[])
parser.parse_args()
print("BRIDGE JOB RAN")
"""
#: Asks a remote task which file `import code` gives it.
TRAIN = """\
import ray
@ray.remote
def code_module():
    import code
    return code.__file__.rsplit("/", 1)[-1] + " " + code.__file__.rsplit("/", 2)[-2][:9]
print("REMOTE " + ray.get(code_module.remote()))
"""


@pytest.fixture(scope="module")
def quick_giving_up_ray() -> Iterator[LocalRay]:
    ray = LocalRay(env={"RAY_worker_register_timeout_seconds": str(REGISTER_TIMEOUT)}, num_cpus=1)
    ray.start()
    try:
        yield ray
    finally:
        ray.stop()


def _project(tmp_path: Path, code_py: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "code.py").write_text(code_py)
    (project / "train.py").write_text(TRAIN)
    return project


def test_a_code_py_that_exits_at_import_keeps_the_job_pending_until_ray_gives_up_on_its_supervisor(
    quick_giving_up_ray: LocalRay, tmp_path: Path
) -> None:
    project = _project(tmp_path, BRIDGE_CODE_PY)
    completed = raypod(
        "submit",
        "--address",
        quick_giving_up_ray.address,
        "--credentials",
        str(tmp_path),
        "--working-dir",
        str(project),
        "--script",
        "train.py",
        "--wait",
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert CODE_PY_CONSEQUENCE in completed.stderr
    submission_id = completed.stdout.splitlines()[0]
    info = requests.get(f"{quick_giving_up_ray.address}/api/jobs/{submission_id}", timeout=30).json()
    # Never started: Ray gave up on the supervisor's worker, and the entrypoint never ran.
    assert info["status"] == "FAILED"
    assert info["error_type"] == "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"
    assert "worker startup repeatedly failed" in info["message"]
    assert info["driver_exit_code"] is None
    assert "REMOTE" not in completed.stdout
    assert "Running entrypoint" not in completed.stdout
    # What killed the supervisor: code.py's argparse, run inside a worker's start-up on the worker's own
    # argv (its stderr lands in the raylet's log).
    raylet_err = (quick_giving_up_ray.temp_dir / "session_latest" / "logs" / "raylet.err").read_text(errors="replace")
    assert "usage: default_worker.py [-h] [--kwargs [KWARGS ...]]" in raylet_err


def test_a_code_py_with_nothing_to_run_at_import_is_imported_in_place_of_the_module(
    services: Services, tmp_path: Path
) -> None:
    project = _project(tmp_path, "def main():\n    print('BRIDGE JOB RAN')\n\nif __name__ == '__main__':\n    main()\n")
    completed = raypod(
        "submit", *client_args(services, tmp_path), "--working-dir", str(project), "--script", "train.py", "--wait"
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The job runs, and a remote task's `import code` gets the user's file from the working dir's package.
    assert "[job] REMOTE code.py _ray_pkg_" in completed.stdout
    assert "at the top level has the name of a standard-library module" in completed.stderr
    assert CODE_PY_CONSEQUENCE in completed.stderr
