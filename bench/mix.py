"""``--mix``: the completion lag over a mix of jobs, and what it costs in requests (issue 24, goal 1).

The mix (``KINDS``), each kind run ``repeats`` times, the tools side by side on one job each:

- a job that prints a line every 0.1 s up to its end (60 s, the N-pods mode's length);
- a job silent for its last 30 s (60 s, printing for its first 30);
- a very short job (2 s);
- a job that waits PENDING about 10 s, then prints for 30 s: the benchmark first POSTs a blocker
  that holds the head's 2 CPUs for 10 s (directly, not through any tool's proxy), and each watched
  job asks for half a CPU, so all of them start when the blocker ends.

The tools: raypod as the working tree has it, raypod as ``--before`` has it (main by default: the
before and after of one run), and the SDK's loop polling every second. Each tool reaches the
dashboard through a counting proxy of its own, so its requests are its own; requests per
job-minute is a tool's requests over the sum of its jobs' Ray ``end_time - start_time`` (a PENDING
wait counts). The lag is bench/watched.py's; the table gives the median and the 90th percentile
over every run of the mix, and the median of each kind.
"""

from __future__ import annotations

import math
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.report import Goal, Section, percentile, request_kinds, table
from bench.tools import HEADERS, RAYPOD, RAYPOD_BEFORE, SDK_POLL, Stage
from bench.watched import LINE_INTERVAL, UPDATE_INTERVAL, WatchedRun, watch_job
from devtools.blocker import hold_cpus
from devtools.proxy import Proxy, Request

MIX_TOOLS = (RAYPOD, RAYPOD_BEFORE, SDK_POLL)
#: Issue 24's goal 1.
GOAL_MEDIAN = 1.5
GOAL_P90 = 3.0
GOAL_REQUESTS_PER_JOB_MINUTE = 16.0
#: What a watched job of the PENDING kind asks for; the blocker asks for all the head's CPUs.
PENDING_JOB_CPUS = 0.5
BLOCKER_CPUS = 2


@dataclass(frozen=True)
class Kind:
    name: str
    seconds: float
    #: Silent for its last ``quiet`` seconds.
    quiet: float = 0.0
    #: A blocker holds the head's CPUs this long first: the job waits PENDING meanwhile.
    pending: float = 0.0


KINDS = (
    Kind("prints to its end (60 s)", 60.0),
    Kind("silent for its last 30 s (60 s)", 60.0, quiet=30.0),
    Kind("very short (2 s)", 2.0),
    Kind("PENDING about 10 s, then prints 30 s", 30.0, pending=10.0),
)


@dataclass
class MixRun:
    kind: Kind
    run: WatchedRun
    requests: list[Request]


def run_mix(stage: Stage, repeats: int) -> dict[str, list[MixRun]]:
    proxies = {tool: Proxy("127.0.0.1", stage.ray.port, keep_alive=True).start() for tool in MIX_TOOLS}
    results: dict[str, list[MixRun]] = {tool: [] for tool in MIX_TOOLS}
    try:
        for repeat in range(repeats):
            for kind in KINDS:
                if kind.pending:
                    block_cpus(stage.ray.address, kind.pending)
                for proxy in proxies.values():
                    proxy.clear_requests()
                with ThreadPoolExecutor(len(MIX_TOOLS)) as pool:
                    started = {tool: pool.submit(_watch, stage, tool, kind, proxies[tool].url) for tool in MIX_TOOLS}
                for tool, future in started.items():
                    run = future.result()
                    results[tool].append(MixRun(kind, run, proxies[tool].recorded()))
                    lag = "-" if run.lag is None else f"{run.lag:6.2f} s"
                    problems = f"  errors: {'; '.join(run.errors)}" if run.errors else ""
                    print(
                        f"mix {tool:14} {kind.name:38} run {repeat + 1}: lag {lag}"
                        f"  requests {len(proxies[tool].recorded()):3}{problems}",
                        flush=True,
                    )
    finally:
        for proxy in proxies.values():
            proxy.stop()
    return results


def _watch(stage: Stage, tool: str, kind: Kind, address: str) -> WatchedRun:
    cpus = PENDING_JOB_CPUS if kind.pending else 0.0
    return watch_job(stage, tool, "mix", kind.seconds, LINE_INTERVAL, quiet=kind.quiet, num_cpus=cpus, address=address)


def block_cpus(address: str, seconds: float) -> None:
    """POST a job that holds all the head's CPUs for ``seconds``, and wait until it runs."""
    hold_cpus(address, BLOCKER_CPUS, seconds)


@dataclass(frozen=True)
class MixFigures:
    lags: list[float]
    #: Runs without a lag (they failed).
    missing: int
    requests: int
    job_minutes: float
    errors: int

    @property
    def median(self) -> float:
        return statistics.median(self.lags) if self.lags else math.inf

    @property
    def p90(self) -> float:
        return percentile(self.lags, 90) if self.lags and not self.missing else math.inf

    @property
    def per_job_minute(self) -> float:
        return self.requests / self.job_minutes if self.job_minutes else math.inf


def figures(runs: list[MixRun]) -> MixFigures:
    lags = [r.run.lag for r in runs if r.run.lag is not None]
    return MixFigures(
        lags,
        len(runs) - len(lags),
        sum(len(r.requests) for r in runs),
        sum(r.run.job_minutes for r in runs),
        sum(len(r.run.errors) for r in runs),
    )


def render_mix(results: dict[str, list[MixRun]], repeats: int, before: str) -> Section:
    tools = [tool for tool in MIX_TOOLS if results.get(tool)]
    summary = {tool: figures(results[tool]) for tool in tools}
    rows: list[tuple[str, ...]] = [
        ("completion lag over the mix: median", *(f"{summary[t].median:.2f} s" for t in tools)),
        ("completion lag over the mix: 90th percentile", *(f"{summary[t].p90:.2f} s" for t in tools)),
    ]
    for kind in KINDS:
        cells = []
        for tool in tools:
            lags = [r.run.lag for r in results[tool] if r.kind == kind and r.run.lag is not None]
            cells.append(f"{statistics.median(lags):.2f} s (max {max(lags):.2f} s)" if lags else "-")
        rows.append((f"completion lag, {kind.name}: median", *cells))
    rows.append(("requests per job-minute over the mix", *(f"{summary[t].per_job_minute:.1f}" for t in tools)))
    for kind in KINDS:
        per_run = []
        for tool in tools:
            runs = [r for r in results[tool] if r.kind == kind]
            per_run.append(f"{sum(len(r.requests) for r in runs) / len(runs):.1f}" if runs else "-")
        rows.append((f"requests per job, {kind.name}", *per_run))
    rows.append(("errors", *(str(summary[t].errors) for t in tools)))
    header = ("measure", *(HEADERS[t] if t != RAYPOD_BEFORE else f"raypod before ({before})" for t in tools))
    lines = [
        f"The job mix, {repeats} run{'s' if repeats != 1 else ''} of each kind, the tools side by side; raypod at "
        f"`updateInterval` {UPDATE_INTERVAL:g} with the log upload, the SDK's loop polling every second.",
        "",
        *table(header, rows),
        "",
        *[f"- {tool}'s requests, first run of each kind: {_first_kinds(results[tool])}" for tool in tools],
    ]
    raw: dict[str, object] = {
        "mix": [
            {"kind": r.kind.name, "requests": len(r.requests), **r.run.raw()} for tool in tools for r in results[tool]
        ],
        "mix_before": before,
    }
    mine = summary[RAYPOD]
    goals = [
        Goal(
            f"completion lag over the mix: median ≤ {GOAL_MEDIAN:g} s, 90th percentile ≤ {GOAL_P90:g} s (issue 24)",
            f"median {mine.median:.2f} s, 90th percentile {mine.p90:.2f} s",
            mine.median <= GOAL_MEDIAN and mine.p90 <= GOAL_P90,
        ),
        Goal(
            f"requests per job-minute over the mix ≤ {GOAL_REQUESTS_PER_JOB_MINUTE:g} (issue 24)",
            f"{mine.per_job_minute:.1f}",
            mine.per_job_minute <= GOAL_REQUESTS_PER_JOB_MINUTE,
        ),
    ]
    headline = []
    if SDK_POLL in summary:
        theirs = summary[SDK_POLL]
        headline = [
            (
                "completion lag over the job mix (to the end, silent 30 s, 2 s, PENDING): median, 90th percentile",
                f"{mine.median:.2f}, {mine.p90:.2f} s",
                f"{theirs.median:.2f}, {theirs.p90:.2f} s",
            ),
            ("requests per job-minute over the job mix", f"{mine.per_job_minute:.1f}", f"{theirs.per_job_minute:.1f}"),
        ]
    return Section(lines, goals, raw, headline)


def _first_kinds(runs: list[MixRun]) -> str:
    seen: dict[str, str] = {}
    for r in runs:
        seen.setdefault(r.kind.name, request_kinds(r.requests))
    return "; ".join(f"{kind}: {kinds}" for kind, kinds in seen.items())
