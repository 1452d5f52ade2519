"""A new Ending, Bridge status, Ray status or Ray error_type that some place forgets to handle fails
``make check``: every place that turns one into words, a status, a reason or an exit code matches it
exhaustively, and mypy says where. Checked by running mypy on a copy of the package with one member added."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import REPO


def mypy(package_root: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "raypod"],
        cwd=package_root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def mypy_errors_with(tmp_path: Path, module: str, after: str, member: str) -> list[str]:
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "raypod", copy / "raypod", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "setup.cfg", copy / "setup.cfg")
    source = copy / "raypod" / module
    text = source.read_text()
    assert after in text
    source.write_text(text.replace(after, after + member, 1))
    done = mypy(copy, tmp_path / "cache")
    assert done.returncode == 1, done.stdout + done.stderr
    return re.findall(r"^(raypod/\w+\.py):\d+: error: .*assert_never", done.stdout, re.MULTILINE)


def test_the_package_as_it_is_passes_the_same_check(tmp_path: Path) -> None:
    done = mypy(REPO, tmp_path / "cache")
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(
    ("module", "after", "member", "places"),
    [
        (
            "outcome.py",
            '    ALREADY_FINAL = "already final"\n',
            '    SUSPENDED = "suspended"\n',
            {"raypod/runner.py", "raypod/run_record.py", "raypod/commands.py", "raypod/run_metrics.py"},
        ),
        (
            "contract.py",
            '    UNKNOWN = "UNKNOWN"\n',
            '    SUSPENDED = "SUSPENDED"\n',
            {"raypod/contract.py", "raypod/events.py", "raypod/exits.py", "raypod/session.py"},
        ),
        (
            "ray.py",
            '    STOPPED = "STOPPED"\n',
            '    PAUSED = "PAUSED"\n',
            {"raypod/ray.py"},
        ),
        (
            "ray_failures.py",
            '    JOB_ENTRYPOINT_COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"\n',
            '    JOB_DRIVER_OOM = "JOB_DRIVER_OOM"\n',
            {"raypod/ray_failures.py"},
        ),
    ],
)
def test_a_member_nobody_handles_fails_mypy_at_every_place_that_turns_it_into_something(
    tmp_path: Path, module: str, after: str, member: str, places: set[str]
) -> None:
    assert set(mypy_errors_with(tmp_path, module, after, member)) == places
