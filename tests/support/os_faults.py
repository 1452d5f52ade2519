"""Real OS errors for raypod run as a child process: a small tmpfs (a full disk, a read-only disk), a
file-size limit (``ulimit -f``), and what every way out must leave behind (the final status, the
``--result`` file and the termination message). The tests run as root (here and in CI): a tmpfs is
mounted for the test and unmounted after it."""

from __future__ import annotations

import json
import os
import random
import resource
import string
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import SCRUBBED

KIB = 1024


@contextmanager
def tmpfs(path: Path, size_kib: int, *, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of ``size_kib`` KiB at ``path`` (which is made), unmounted on the way out."""
    path.mkdir(parents=True)
    options = f"size={size_kib}k,mode=0777" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True, timeout=30)


def file_size_limit(limit: int) -> Callable[[], None]:
    """For ``preexec_fn``: the child may write no file beyond ``limit`` bytes (EFBIG, as ``ulimit -f``).
    Python ignores SIGXFSZ, so the write fails instead of killing the process."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def incompressible_text(size: int, seed: int = 20) -> str:
    """Python comments of random letters: a script that zips to most of its size."""
    rng = random.Random(seed)
    letters = string.ascii_letters + string.digits
    lines, total = [], 0
    while total < size:
        line = "# " + "".join(rng.choices(letters, k=98)) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines) + "print('never runs')\n"


def raypod_child(
    *args: str,
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return subprocess.run(
        [sys.executable, "-m", "raypod", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
        preexec_fn=preexec_fn,
    )


@dataclass(frozen=True)
class Records:
    """Where one run's end goes: the status file, the ``--result`` file and the termination message."""

    status_file: Path
    result_file: Path
    termination_log: Path

    @classmethod
    def under(cls, folder: Path, status_file: Path | None = None) -> Records:
        folder.mkdir(parents=True, exist_ok=True)
        return cls(status_file or folder / "status.json", folder / "result.json", folder / "termination-log")

    def flags(self, *, status_file: bool = True) -> list[str]:
        status = ["--status-file", str(self.status_file)] if status_file else []
        return [*status, "--result", str(self.result_file), "--termination-log", str(self.termination_log)]

    @property
    def status(self) -> dict[str, str]:
        if not self.status_file.is_file():
            return {}
        data: dict[str, str] = json.loads(self.status_file.read_text())
        return data

    @property
    def result(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.result_file.read_text())
        return data

    @property
    def termination_message(self) -> str:
        return self.termination_log.read_text()


def assert_way_out(
    completed: subprocess.CompletedProcess[str], records: Records, *, status: str, reason: str, code: int, says: str
) -> None:
    """The run left a one-line reason (no traceback), the exit code, the ``--result`` file and the
    termination message, each naming the status, its reason and ``says``."""
    assert completed.returncode == code, (completed.returncode, completed.stderr[-3000:])
    for name, text in (("stdout", completed.stdout), ("stderr", completed.stderr)):
        assert "Traceback" not in text, f"a traceback on {name}:\n{text}"
    result = records.result
    assert (result["status"], result["reason"], result["final"], result["exitCode"]) == (status, reason, True, code)
    assert says in result["message"], result
    summary = records.termination_message
    assert summary.startswith(f"{status} ({reason}):") and says in summary, summary
