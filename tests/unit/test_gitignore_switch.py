"""``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1`` is honoured by ``submit --working-dir`` as by Ray's own
clients: the ``.gitignore`` files are then not read (``.rayignore`` and ``--exclude`` still are)."""

from __future__ import annotations

from pathlib import Path

import pytest

from raypod.cli import build_parser
from raypod.flags import submit_job
from raypod.inputs import fetch_inputs
from tests.support.working_dir import make_tree

SWITCH = "RAY_RUNTIME_ENV_IGNORE_GITIGNORE"


def packaged_files(project: Path, workdir: Path) -> set[str]:
    """The files ``submit --working-dir`` would put in the job's package."""
    args = build_parser().parse_args(
        ["submit", "--address", "http://127.0.0.1:9", "--working-dir", str(project), "--script", "main.py"]
    )
    job, local, _ = submit_job(args)
    return set(fetch_inputs(job.load(submitted=False), None, workdir, local).files)


@pytest.mark.parametrize(("value", "gitignored_file_sent"), [(None, False), ("0", False), ("1", True)])
def test_the_gitignore_files_are_skipped_only_when_ray_runtime_env_ignore_gitignore_is_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None, gitignored_file_sent: bool
) -> None:
    project = make_tree(
        tmp_path / "project",
        {"main.py": "", "out.log": "", "cache.tmp": "", ".gitignore": "*.log\n", ".rayignore": "*.tmp\n"},
    )
    if value is None:
        monkeypatch.delenv(SWITCH, raising=False)
    else:
        monkeypatch.setenv(SWITCH, value)

    files = packaged_files(project, tmp_path / "work")

    assert "main.py" in files
    assert ("out.log" in files) is gitignored_file_sent
    assert "cache.tmp" not in files  # .rayignore is read either way
