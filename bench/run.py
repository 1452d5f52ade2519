"""raypod against the Ray SDK: one machine, one run, one Ray head, one S3 server, several modes.

    make bench                                        # every mode but endpoints (long: see docs/benchmark.md)
    make bench BENCH_ARGS=--quick                     # the same, smaller
    .venv/bin/python -m bench.run --logs --sizes 1,100 --repeats 5      # from the repository root
    .venv/bin/python -m bench.run --lag
    .venv/bin/python -m bench.run --pods 1,5,20
    .venv/bin/python -m bench.run --mix --mix-repeats 3 --before main

The modes (no mode flag: all but endpoints, so one run reports every goal of docs/benchmark.md):

- ``--logs`` (bench/log_sizes.py): one job's lifecycle at several log sizes (memory, CPU, cold
  start, requests, the CPU of the log read with live output on and off), raypod against the SDK
  used two ways;
- ``--lag`` (bench/lag.py): the completion lag of short jobs, raypod at its default
  ``updateInterval`` of 20 s against an SDK loop polling every second;
- ``--pods`` (bench/pods.py): N watchers started together against one dashboard: its CPU and
  requests per job-minute, the watchers' memory, errors and completion lags;
- ``--mix`` (bench/mix.py): the completion lag over a mix of jobs (to their end, silent at the end,
  very short, PENDING first) and the requests per job-minute, raypod now and as ``--before`` has
  it against the SDK's loop;
- ``--pending N`` (bench/pending.py): what N PENDING jobs cost the dashboard with raypod's log tail
  open and without it;
- ``--scale N`` (bench/scale.py): N watched jobs on one head, raypod and the SDK's loop with its
  tail: errors and the head's own ``GET /api/jobs/<id>`` answer time (all modes: N = 100 with 60 s
  jobs, 200 watchers and their jobs; quick: 5 with 10 s jobs). It runs last: it saturates the head.
- ``--endpoints`` (bench/endpoints.py, not in the all-modes run): the dashboard's CPU for one call of
  each endpoint raypod uses, by process role, and where one job's goes.

Every tool runs as a child process from its own virtualenv under bench/.venvs/ (bench/tools.py)
and reaches the dashboard through a counting proxy on loopback (devtools/proxy.py, keeping
connections alive as the tools open them; a WebSocket upgrade is one request, then piped).

The report goes to stdout and to bench/results/<UTC time>.md, every raw figure to
bench/results/<UTC time>.json. The goals (docs/benchmark.md) are checked last: a missed goal
makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.endpoints import render_endpoints, run_endpoints
from bench.lag import render_lag, run_lag
from bench.log_sizes import TOOLS as LOG_TOOLS
from bench.log_sizes import measure_footprints, render_log_sizes, run_log_sizes
from bench.mix import render_mix, run_mix
from bench.pending import render_pending, run_pending
from bench.pods import render_pods, run_pods
from bench.report import Section, goals_table, table
from bench.scale import render_scale, run_scale
from bench.tools import (
    JOBS_ONLY,
    NO_FOLLOW,
    NO_UPLOAD,
    RAYPOD,
    REPO,
    SDK_POLL,
    SDK_TAIL,
    Stage,
    prepare_before_venv,
    prepare_tool_venvs,
)
from devtools.proxy import Proxy
from devtools.services import LocalRay, LocalS3

RESULTS = REPO / "bench" / "results"
DEFAULT_POD_TOOLS = f"{RAYPOD},{NO_UPLOAD},{NO_FOLLOW},{SDK_TAIL}"
POD_TOOLS = (RAYPOD, NO_UPLOAD, NO_FOLLOW, SDK_POLL, SDK_TAIL, JOBS_ONLY)
#: Which use of the SDK the summary's column holds, row by row.
SUMMARY_NOTE = (
    "Ray SDK: the log streamed to S3 with `tail_job_logs` for the log rows (the better baseline for the cold "
    "start), a loop polling `get_job_status` every second for the completion lag, the same loop with "
    "`tail_job_logs` for the pods."
)


def parse_repeats(text: str, sizes: list[int]) -> dict[int, int]:
    """``3`` for every size; ``3,1000=1``: three runs, but one at 1000 MB."""
    default, overrides = 3, {}
    for part in (part.strip() for part in text.split(",")):
        if "=" in part:
            size, count = part.split("=", 1)
            overrides[int(size)] = int(count)
        elif part:
            default = int(part)
    return {size: overrides.get(size, default) for size in sizes}


def numbers(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_argument_group("modes (none given: all but --endpoints)")
    modes.add_argument("--logs", action="store_true", help="the lifecycle at several log sizes")
    modes.add_argument("--lag", action="store_true", help="the completion lag of short jobs")
    modes.add_argument("--pods", metavar="N,...", help="N watchers started together, for each N (all modes: 1,5,20)")
    modes.add_argument("--mix", action="store_true", help="the completion lag over a mix of jobs, before and after")
    modes.add_argument(
        "--pending", metavar="N", type=int, help="N PENDING jobs, raypod's tail open and not (all modes: 10)"
    )
    modes.add_argument("--scale", metavar="N", type=int, help="N watched jobs on one head (all modes: 100)")
    modes.add_argument("--endpoints", action="store_true", help="one call of each endpoint raypod uses (not in all)")
    parser.add_argument("--quick", action="store_true", help="smaller defaults for every mode")
    parser.add_argument("--sizes", help="--logs: log sizes in MB (default 1,100,1000; quick: 1,100)")
    parser.add_argument(
        "--repeats",
        help="--logs: runs per tool and size, the median is reported; SIZE=N for one size (default 3,1000=1; quick: 1)",
    )
    parser.add_argument("--lag-seconds", help="--lag: job lengths in seconds (default 2,5,8; quick: 2,8)")
    parser.add_argument("--lag-repeats", type=int, help="--lag: runs per job length (default 5; quick: 2)")
    parser.add_argument("--mix-repeats", type=int, help="--mix: runs of each kind of job (default 5; quick: 1)")
    parser.add_argument("--before", default="main", help="--mix: the revision raypod is compared with (default main)")
    parser.add_argument("--pending-seconds", type=float, help="--pending: how long they wait (default 30; quick: 20)")
    parser.add_argument(
        "--pod-seconds", help="--pods: the jobs' lengths, a phase each (default 10,20,60; quick: 10,30)"
    )
    parser.add_argument(
        "--pod-repeats",
        type=int,
        default=1,
        help="--pods: rounds of each phase, the tools in turn; a cell is the median round (default 1)",
    )
    parser.add_argument("--scale-seconds", type=float, help="--scale: the jobs' length (default 60; quick: 10)")
    parser.add_argument(
        "--pod-tools",
        default=DEFAULT_POD_TOOLS,
        help=f"--pods: the watchers, of {', '.join(POD_TOOLS)} (default {DEFAULT_POD_TOOLS})",
    )
    args = parser.parse_args()
    every = not (args.logs or args.lag or args.pods or args.mix or args.pending or args.scale or args.endpoints)
    args.logs, args.lag, args.mix = args.logs or every, args.lag or every, args.mix or every
    quick = args.quick
    args.sizes = [int(s) for s in (args.sizes or ("1,100" if quick else "1,100,1000")).split(",") if s.strip()]
    args.repeats = parse_repeats(args.repeats or ("1" if quick else "3,1000=1"), args.sizes)
    args.lag_seconds = numbers(args.lag_seconds or ("2,8" if quick else "2,5,8"))
    args.lag_repeats = args.lag_repeats or (2 if quick else 5)
    args.mix_repeats = args.mix_repeats or (1 if quick else 5)
    args.pending = args.pending or ((5 if quick else 10) if every else 0)
    args.pending_seconds = args.pending_seconds or (20.0 if quick else 30.0)
    args.scale = args.scale or ((5 if quick else 100) if every else 0)
    args.scale_seconds = args.scale_seconds or (10.0 if quick else 60.0)
    args.pods = [int(n) for n in numbers(args.pods or ("1,5" if quick else "1,5,20"))] if (args.pods or every) else []
    args.pod_seconds = numbers(args.pod_seconds or ("10,30" if quick else "10,20,60"))
    args.pod_tools = [tool.strip() for tool in args.pod_tools.split(",") if tool.strip()]
    if args.pod_repeats < 1:
        parser.error("--pod-repeats: at least 1")
    unknown = set(args.pod_tools) - set(POD_TOOLS)
    if unknown:
        parser.error(f"--pod-tools: unknown {', '.join(sorted(unknown))}")
    return args


def machine_line(ray_version: str) -> str:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    free = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, {memory} memory, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, Ray {ray_version} "
        f"({free:.0f} GB free on {tempfile.gettempdir()})."
    )


def warn_about_disk(sizes: list[int], repeats: dict[int, int]) -> None:
    free_gb = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    # Ray keeps each driver log and the S3 server spools each object: about 3× the log per run.
    needed = 3 * sum(size * len(LOG_TOOLS) * repeats[size] for size in sizes) / 1000
    if needed > free_gb * 0.8:
        print(f"warning: these sizes need about {needed:.0f} GB of {free_gb:.0f} GB free; drop 1000 from --sizes")


#: Each mode's 1-minute load average at its start and end: how quiet the machine was.
LOADS: dict[str, tuple[float, float]] = {}


def timed(name: str, durations: dict[str, float], mode: Callable[[], Section]) -> Section:
    began, load = time.monotonic(), os.getloadavg()[0]
    section = mode()
    durations[name] = time.monotonic() - began
    LOADS[name] = (load, os.getloadavg()[0])
    took = f"{durations[name] / 60:.1f} min"
    print(f"-- {name} took {took}; load average {load:.2f} then {LOADS[name][1]:.2f}", flush=True)
    return section


def load_line() -> str:
    each = ", ".join(f"{name} {start:.2f} to {end:.2f}" for name, (start, end) in LOADS.items())
    return f"Load average (1 min) at each mode's start and end: {each} ({os.cpu_count()} cores)."


def run_modes(
    args: argparse.Namespace, ray_version: str, durations: dict[str, float], before: str
) -> list[tuple[str, Section]]:
    footprints = measure_footprints(ray_version) if args.logs else None
    ray, s3 = LocalRay(), LocalS3()
    work = Path(tempfile.mkdtemp(prefix="raypod-bench-"))
    sections: list[tuple[str, Section]] = []
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in (pool.submit(ray.start), pool.submit(s3.start)):
                started.result()
        with Proxy("127.0.0.1", ray.port, keep_alive=True) as proxy:
            stage = Stage(ray, s3, proxy, work)
            client = s3.client()
            if not client.bucket_exists(stage.bucket):
                client.make_bucket(stage.bucket)
            if args.logs:
                assert footprints is not None

                def logs() -> Section:
                    results = run_log_sizes(stage, args.sizes, args.repeats)
                    return render_log_sizes(results, args.sizes, args.repeats, footprints)

                sections.append(("The lifecycle at several log sizes", timed("logs", durations, logs)))
            if args.lag:

                def lag() -> Section:
                    results = run_lag(stage, args.lag_seconds, args.lag_repeats)
                    return render_lag(results, args.lag_seconds, args.lag_repeats)

                sections.append(("Completion lag", timed("lag", durations, lag)))
            if args.pods:
                for length in args.pod_seconds:

                    def pods(length: float = length) -> Section:
                        phases = run_pods(stage, args.pods, args.pod_tools, length, args.pod_repeats)
                        return render_pods(phases, args.pods, args.pod_tools, length)

                    title = f"N pods on one dashboard, {length:g} s jobs"
                    sections.append((title, timed(f"pods {length:g} s", durations, pods)))
            if args.mix:

                def mix() -> Section:
                    return render_mix(run_mix(stage, args.mix_repeats), args.mix_repeats, before)

                sections.append(("Completion lag over a job mix", timed("mix", durations, mix)))
            if args.pending:

                def pending() -> Section:
                    phases = run_pending(stage, args.pending, args.pending_seconds)
                    return render_pending(phases, args.pending, args.pending_seconds)

                sections.append(("PENDING jobs, the tail open or not", timed("pending", durations, pending)))
            if args.scale:

                def scale() -> Section:
                    phases = run_scale(stage, args.scale, args.scale_seconds)
                    return render_scale(phases, args.scale, args.scale_seconds)

                sections.append((f"{args.scale} watched jobs on one head", timed("scale", durations, scale)))
            if args.endpoints:
                title = "The dashboard's CPU per endpoint"
                sections.append((title, timed("endpoints", durations, lambda: render_endpoints(*run_endpoints(stage)))))
    finally:
        ray.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)
    return sections


def main() -> int:
    args = arguments()
    if args.logs:
        warn_about_disk(args.sizes, args.repeats)
    ray_version = subprocess.run(
        [sys.executable, "-c", "import ray; print(ray.__version__)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    prepare_tool_venvs(ray_version)
    before = prepare_before_venv(args.before) if args.mix else ""
    durations: dict[str, float] = {}
    sections = run_modes(args, ray_version, durations, before)

    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    raw_path = RESULTS / f"{stamp}.json"
    machine = machine_line(ray_version)
    goals = [goal for _, section in sections for goal in section.goals]
    took = ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in durations.items())
    lines = [machine, load_line(), f"Raw figures: {raw_path.relative_to(REPO)}. Time taken: {took}.", ""]
    for title, section in sections:
        lines += [f"## {title}", "", *section.lines, ""]
    headline = [row for _, section in sections for row in section.headline]
    summary = table(("measure", "raypod", "Ray SDK"), headline)
    lines += ["## Summary", "", machine, load_line(), "", *summary, "", SUMMARY_NOTE, ""]
    lines += ["## Goals", "", *goals_table(goals)]
    report = "\n".join(lines) + "\n"
    raw: dict[str, object] = {
        "machine": machine,
        "mode_seconds": {k: round(v, 1) for k, v in durations.items()},
        "load_average": {k: [round(a, 2), round(b, 2)] for k, (a, b) in LOADS.items()},
    }
    for _, section in sections:
        raw.update(section.raw)
    raw["goals"] = [{"goal": g.goal, "result": g.result, "met": g.met} for g in goals]
    raw_path.write_text(json.dumps(raw, indent=1) + "\n")
    (RESULTS / f"{stamp}.md").write_text(report)
    print()
    print(report)
    missed = [goal.goal for goal in goals if not goal.met]
    if missed:
        print(f"goal missed: {'; '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
