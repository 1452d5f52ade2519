"""Run a command and measure its own peak RSS and CPU time, from ``wait4``, without bias; and read
the CPU time of processes that keep running (a Ray dashboard), from ``/proc/<pid>/stat``.

Why a launcher: Python starts children with vfork (or posix_spawn), and Linux records the
*parent's* high-water RSS into the child's ``ru_maxrss`` when the child calls exec. A child of
a 60 MiB pytest process would never report less than 60 MiB. So a small launcher
(``python -I -S``, about 9 MiB) forks a real copy of itself and execs the command there; the
command's ``ru_maxrss`` is then its own (or the launcher's 9 MiB, whichever is larger).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LAUNCHER = """\
import json, os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
ended = time.monotonic()
with open(sys.argv[1], "w") as out:
    json.dump({"started": started, "ended": ended, "maxrss_kib": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime, "code": os.waitstatus_to_exitcode(status)}, out)
"""


@dataclass(frozen=True)
class Usage:
    returncode: int
    peak_rss_kib: int
    cpu_seconds: float
    #: time.monotonic() just before the command was forked (a system-wide clock)
    started: float
    stderr: str
    #: Seconds from the fork to the command's end.
    wall: float = 0.0


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: int | IO[bytes] | None = subprocess.DEVNULL,
    timeout: float = 1800.0,
) -> Usage:
    with tempfile.TemporaryDirectory(prefix="measure-") as temp:
        report = Path(temp) / "usage.json"
        # Its own session, so that a timeout can stop the launcher and the command together.
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(report), *argv],
            env=env,
            cwd=cwd,
            stdout=stdout,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            raise RuntimeError(f"{argv[:3]} did not finish within {timeout:.0f} s") from None
        data = json.loads(report.read_text())
    return Usage(
        returncode=int(data["code"]),
        peak_rss_kib=int(data["maxrss_kib"]),
        cpu_seconds=float(data["cpu_s"]),
        started=float(data["started"]),
        stderr=stderr.decode(errors="replace"),
        wall=float(data["ended"]) - float(data["started"]),
    )


#: The unit of utime and stime in /proc/<pid>/stat.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds that a live process (all its threads, not its children) has used so far.

    From /proc/<pid>/stat: utime and stime are its 14th and 15th fields. The 2nd, the command's name
    in parentheses, may hold spaces, so the fields are counted from its closing parenthesis.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    after_name = stat[stat.rindex(")") + 2 :].split()
    # after_name[0] is field 3 (the state), so field n is after_name[n - 3].
    return (int(after_name[14 - 3]) + int(after_name[15 - 3])) / CLOCK_TICKS


class CpuMeter:
    """The CPU seconds that named, long-running processes use between ``start()`` and ``read()``.

    A process that exits in between is an error: its time could no longer be read.
    """

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}
        self._started_at = 0.0

    def start(self) -> CpuMeter:
        self._start = self._now()
        self._started_at = time.monotonic()
        return self

    def read(self) -> dict[str, float]:
        """CPU seconds per name since ``start()``."""
        now = self._now()
        return {name: now[name] - self._start[name] for name in self.pids}

    @property
    def elapsed(self) -> float:
        """Wall seconds since ``start()``."""
        return time.monotonic() - self._started_at

    def _now(self) -> dict[str, float]:
        seconds = {}
        for name, pid in self.pids.items():
            try:
                seconds[name] = process_cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                raise RuntimeError(f"{name} (pid {pid}) has exited: its CPU time can no longer be read") from None
        return seconds


if __name__ == "__main__":
    # python -m devtools.measure CMD...: prints the command's peak RSS and CPU time.
    usage = run_measured(sys.argv[1:], stdout=None)
    print(f"peak RSS {usage.peak_rss_kib / 1024:.1f} MiB, CPU {usage.cpu_seconds:.2f} s, exit {usage.returncode}")
