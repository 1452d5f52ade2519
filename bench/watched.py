"""One tool run to its end and what it left: the final status it wrote and when, Ray's record of
the job, its errors. Shared by the completion-lag mode and the N-pods mode.

The **completion lag** of a run is the time from Ray's ``end_time`` of the job (ms since the epoch,
from ``GET /api/jobs/<id>``) to the tool's final status write: the modification time of its
status file (raypod's ``--status-file``, sdk_watch.py's own), which holds the final status. raypod
replaces that file in one step on every change and writes nothing after the final status
(``raypod.runner.finish``), so its last modification is the final write; it comes after the log
upload, so the lag includes it. Both clocks are this machine's wall clock.
"""

from __future__ import annotations

import json
import re
import statistics
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.tools import (
    NO_FOLLOW,
    NO_UPLOAD,
    RAYPOD,
    RAYPOD_BEFORE,
    SDK_POLL,
    SDK_TAIL,
    Command,
    Stage,
    raypod_command,
    sdk_watch_command,
)
from devtools.measure import run_measured

#: A line of a tool's stderr that says something went wrong (raypod logs "<time> ERROR ...").
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|Exception:")
#: bench/job.py's progress lines, as each tool prints them (raypod prefixes "[job] ").
TICK_LINE = re.compile(rb"tick (\d{6}) of (\d{6})")
#: sdk_watch.py's last line with --follow: when Ray closed its WebSocket tail (seconds since the epoch).
TAIL_CLOSED_LINE = re.compile(rb"sdk_watch: tail closed at ([\d.]+)")
RUN_TIMEOUT = 900.0
#: What each job must end as.
EXPECTED_STATUS = "SUCCEEDED"
#: The tools that watch a job to its end, live output on and off: raypod and the SDK's loop.
WATCHERS = (RAYPOD, NO_FOLLOW, SDK_POLL, SDK_TAIL)
#: Those that print the job's output as it comes.
LIVE = (RAYPOD, RAYPOD_BEFORE, NO_UPLOAD, SDK_TAIL)
#: raypod as the operator starts it: the operator's default updateInterval.
UPDATE_INTERVAL = 20.0
#: The jobs print a line this often (seconds), as a job reporting its progress does.
LINE_INTERVAL = 0.1
#: Ray's default, said outright: a job's driver holds no CPU, so N jobs never queue for the head's 2.
ENTRYPOINT_NUM_CPUS = 0


@dataclass(frozen=True)
class RayRecord:
    """Ray's own record of a job (``GET /api/jobs/<id>``)."""

    status: str
    #: Seconds since the epoch.
    start_time: float
    end_time: float


@dataclass
class WatchedRun:
    tool: str
    exit_code: int
    peak_rss_kib: int
    cpu_seconds: float
    wall: float
    submission_id: str = ""
    #: The status the tool wrote last, and when (seconds since the epoch).
    final_status: str = ""
    status_written: float | None = None
    ray: RayRecord | None = None
    errors: list[str] = field(default_factory=list)
    #: When Ray closed the WebSocket tail (sdk-tail only; seconds since the epoch).
    tail_closed: float | None = None

    @property
    def lag(self) -> float | None:
        """Ray's end of the job to the tool's final status write, in seconds."""
        if self.ray is None or self.status_written is None or not self.ray.end_time:
            return None
        return self.status_written - self.ray.end_time

    @property
    def tail_lag(self) -> float | None:
        """Ray's end of the job to the close of its WebSocket tail, in seconds (sdk-tail only)."""
        if self.ray is None or self.tail_closed is None or not self.ray.end_time:
            return None
        return self.tail_closed - self.ray.end_time

    @property
    def job_minutes(self) -> float:
        """From Ray's start_time (the submission) to its end_time."""
        if self.ray is None or not self.ray.end_time:
            return 0.0
        return (self.ray.end_time - self.ray.start_time) / 60

    def raw(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "submission_id": self.submission_id,
            "exit_code": self.exit_code,
            "peak_rss_kib": self.peak_rss_kib,
            "cpu_s": round(self.cpu_seconds, 3),
            "wall_s": round(self.wall, 3),
            "final_status": self.final_status,
            "ray_status": self.ray.status if self.ray else None,
            "ray_start_time": self.ray.start_time if self.ray else None,
            "ray_end_time": self.ray.end_time if self.ray else None,
            "status_written": self.status_written,
            "lag_s": None if self.lag is None else round(self.lag, 3),
            "tail_lag_s": None if self.tail_lag is None else round(self.tail_lag, 3),
            "errors": self.errors,
        }


def watch_job(
    stage: Stage,
    tool: str,
    label: str,
    seconds: float,
    interval: float,
    *,
    quiet: float = 0.0,
    num_cpus: float = ENTRYPOINT_NUM_CPUS,
    address: str | None = None,
    upload: bool = True,
) -> WatchedRun:
    """One of WATCHERS (or raypod-before) runs bench/job.py printing a line every ``interval`` s for
    ``seconds`` s, silent for its last ``quiet`` s, holding ``num_cpus`` of the head's CPUs; through
    ``address`` (default: the stage's proxy)."""
    name = f"{label}-{tool}-{uuid.uuid4().hex[:6]}"
    root = stage.work / name
    parameters = {"seconds": f"{seconds:g}", "interval": f"{interval:g}"}
    if quiet:
        parameters["quiet"] = f"{quiet:g}"
    url = address or stage.proxy.url
    if tool in (RAYPOD, NO_FOLLOW, NO_UPLOAD, RAYPOD_BEFORE):
        properties = {"entrypoint_num_cpus": num_cpus}
        command = raypod_command(
            root,
            name,
            url,
            stage.s3,
            stage.bucket,
            parameters,
            update_interval=UPDATE_INTERVAL,
            follow=tool != NO_FOLLOW,
            properties=properties,
            venv=RAYPOD_BEFORE if tool == RAYPOD_BEFORE else RAYPOD,
            upload=upload and tool != NO_UPLOAD,
        )
    else:
        command = sdk_watch_command(root, name, url, parameters, follow=tool == SDK_TAIL, num_cpus=num_cpus)
    ticks = round((seconds - quiet) / interval) if tool in LIVE else None
    return run_watched(tool, command, stage.ray.address, ticks)


def run_watched(tool: str, command: Command, ray_address: str, ticks: int | None) -> WatchedRun:
    """Run ``command`` to its end and check what it left. ``ticks``: the job's progress lines the
    tool must have printed live, in order and once each (None: it prints no live output)."""
    stdout_path = command.status_file.parent / "stdout.log"
    with stdout_path.open("wb") as stdout:
        # cwd: not the repo, whose raypod/ would shadow the copy installed in the venv.
        usage = run_measured(
            command.argv, env=command.env, cwd=command.status_file.parent, stdout=stdout, timeout=RUN_TIMEOUT
        )
    run = WatchedRun(tool, usage.returncode, usage.peak_rss_kib, usage.cpu_seconds, usage.wall)
    if usage.returncode != 0:
        run.errors.append(f"exit code {usage.returncode}")
    run.errors += [f"stderr: {line[:300]}" for line in usage.stderr.splitlines() if ERROR_LINE.search(line)]
    _read_status(run, command.status_file)
    if run.submission_id:
        run.ray = ray_record(ray_address, run.submission_id)
        if run.ray.status != EXPECTED_STATUS:
            run.errors.append(f"Ray says {run.ray.status}")
    output = stdout_path.read_bytes()
    if ticks is not None:
        run.errors += tick_problems(output, ticks)
    closed = TAIL_CLOSED_LINE.search(output)
    run.tail_closed = float(closed.group(1)) if closed else None
    return run


def _read_status(run: WatchedRun, status_file: Path) -> None:
    if not status_file.exists():
        run.errors.append("no status file")
        return
    status = json.loads(status_file.read_text())
    run.submission_id = str(status.get("id", ""))
    run.final_status = str(status.get("status.jobStatus", ""))
    run.status_written = status_file.stat().st_mtime
    if run.final_status != EXPECTED_STATUS:
        run.errors.append(f"final status {run.final_status or 'none'}")


def ray_record(address: str, submission_id: str) -> RayRecord:
    """Asked of the dashboard directly, not through the counting proxy."""
    answer = requests.get(f"{address}/api/jobs/{submission_id}", timeout=30)
    answer.raise_for_status()
    data = answer.json()
    return RayRecord(str(data.get("status")), (data.get("start_time") or 0) / 1000, (data.get("end_time") or 0) / 1000)


def tick_problems(output: bytes, ticks: int) -> list[str]:
    """What is wrong with the live output: a progress line missing, repeated or out of order."""
    seen = [int(match.group(1)) for match in TICK_LINE.finditer(output)]
    if seen == list(range(ticks)):
        return []
    in_order = seen == sorted(seen)
    return [f"live output: {len(seen)} progress lines of {ticks}, {len(set(seen))} distinct, in order: {in_order}"]


def lag_summary(runs: list[WatchedRun]) -> tuple[float, float] | None:
    """Median and max of the runs' completion lags; None when no run has one."""
    lags = [run.lag for run in runs if run.lag is not None]
    if not lags:
        return None
    return statistics.median(lags), max(lags)


def lag_cell(runs: list[WatchedRun]) -> str:
    """``median s (max s)`` of the runs' completion lags, for a table."""
    summary = lag_summary(runs)
    return "-" if summary is None else f"{summary[0]:.2f} s ({summary[1]:.2f} s)"
