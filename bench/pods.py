"""``--pods 1,5,20``: what N watchers started together cost one Ray dashboard.

For each N and each tool, a phase: N copies of the tool start at once against the one Ray head,
each submitting its own job (bench/job.py printing a line every 0.1 s for ``seconds``), and the
phase ends when the last one exits. Per phase:

- the CPU seconds of the dashboard's processes, from /proc/<pid>/stat (utime + stime), read at the
  phase's start and end: ``dashboard.py`` (the HTTP head) with the module processes it forks
  (``JobHead`` answers ``/api/jobs/``, ``StateHead`` ``/api/v0/logs/``), and apart from them the
  node's dashboard agent, which serves both log streams (raypod's ``/api/v0/logs/stream`` and the
  SDK's WebSocket ``/api/jobs/<id>/logs/tail``). Before the first phase and after each one, the
  dashboard is left alone until a window of IDLE_SECONDS is quiet; each process's idle rate is
  the mean of its rates in the quiet windows before and after the phase, and it is taken off the
  phase's figure, so that a phase that lasts longer is not charged for the dashboard's own
  background work. One job is run before the first phase, unmeasured: the first job on a fresh
  head pays for the dashboard's lazy start-up;
- the requests, as recorded by the counting proxy every tool goes through (a WebSocket tail is
  one request), and the most status polls in any one second once each job's first poll is left
  out (every tool polls right after its submission; later, pods polling in lockstep show as N);
- the sum of the N submitters' peak RSS (each from ``wait4``);
- errors: a non-zero exit, a final status other than SUCCEEDED (the tool's or Ray's), an error
  line on stderr, or live output with a progress line missing, repeated or out of order;
- each job's completion lag (bench/watched.py);
- the head's own answer time: bench/probe.py asks ``GET /api/jobs/<id>`` every 0.25 s through the
  phase, directly (no tool's request), of the warm-up job (see ``run_pods``). Its requests' own CPU,
  measured once alone before the first phase, is taken off each phase's figure as the idle rate is.

CPU and requests are divided by the job-minutes watched: the sum over the N jobs of Ray's
``end_time - start_time``.

With ``repeats`` above 1, each N runs its tools' phases that many rounds, the tools in turn within
each round (so the head's slow drift, its growing job count among it, falls on every tool alike).
A cell of the table is then the phase whose dashboard + agent CPU per job is the median of its
rounds (``median_phase``; each figure of a row comes from one phase), and a row lists every round's.
One phase per cell is good to about 0.02 s a job (docs/benchmark.md), which is as much as goal 3's
margins.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from bench.probe import Calibration, Probe, ProbeFigures, calibrate, milliseconds, p99_cell
from bench.report import Goal, Section, is_status_path, ratio, request_kinds, table
from bench.tools import HEADERS, JOBS_ONLY, NO_UPLOAD, RAYPOD, SDK_TAIL, Stage, job_entrypoint
from bench.watched import (
    ENTRYPOINT_NUM_CPUS,
    EXPECTED_STATUS,
    LINE_INTERVAL,
    RayRecord,
    WatchedRun,
    lag_cell,
    ray_record,
    watch_job,
)
from devtools.measure import CpuMeter
from devtools.proxy import Request
from devtools.services import DASHBOARD_AGENT

#: The window over which the dashboard's idle rate is measured between phases.
IDLE_SECONDS = 10.0
#: The dashboard (all its processes) counts as quiet below this many CPU seconds per second: about
#: twice what Ray 2.60's dashboard and agent use idle (0.02), so a phase's aftermath is waited out.
QUIET_RATE = 0.04
#: Or the rate has settled: two windows in a row within this much of each other, both below
#: ``SETTLED_MAX``. A head whose idle is a little over ``QUIET_RATE`` (0.05-0.06 on 2026-12-04)
#: would otherwise make each phase wait ``QUIET_TIMEOUT`` for nothing.
SETTLED_WITHIN = 0.01
SETTLED_MAX = 0.08
#: How long to wait for a quiet window before measuring anyway (and saying so).
QUIET_TIMEOUT = 90.0
#: The unmeasured job before the first phase.
WARM_UP_ENTRYPOINT = "python -c pass"
KIB_PER_MIB = 1024


@dataclass
class Phase:
    tool: str
    pods: int
    wall: float
    #: CPU seconds per second of each dashboard process idle: the mean of the quiet windows around the phase.
    idle_rates: dict[str, float]
    #: CPU seconds of each dashboard process during the phase.
    cpu: dict[str, float]
    runs: list[WatchedRun]
    requests: list[Request]
    #: The head's answer times to the benchmark's own ``GET /api/jobs/<id>`` through the phase.
    probe: ProbeFigures
    #: The probe alone before the first phase: its CPU cost per request, its answer times idle.
    calibration: Calibration

    def net_cpu(self, name: str) -> float:
        """A process's CPU seconds in the phase, less what it would have used idle and what the probe cost it."""
        return self.cpu[name] - self.idle_rates[name] * self.wall - self.calibration.cost[name] * self.probe.requests

    @property
    def job_minutes(self) -> float:
        return sum(run.job_minutes for run in self.runs)

    @property
    def dashboard_cpu(self) -> float:
        """``dashboard.py`` and its module processes."""
        return sum(self.net_cpu(name) for name in self.cpu if name != DASHBOARD_AGENT)

    @property
    def agent_cpu(self) -> float:
        return self.net_cpu(DASHBOARD_AGENT)

    def per_job_minute(self, value: float) -> float:
        return value / self.job_minutes if self.job_minutes else float("nan")

    @property
    def errors(self) -> list[str]:
        return [f"{run.submission_id or run.tool}: {error}" for run in self.runs for error in run.errors]

    @property
    def rss_sum_kib(self) -> int:
        return sum(run.peak_rss_kib for run in self.runs)

    @property
    def polls_in_busiest_second(self) -> int:
        return busiest_second(later_polls(self.requests))

    def raw(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "pods": self.pods,
            "wall_s": round(self.wall, 3),
            "job_minutes": round(self.job_minutes, 3),
            "idle_cpu_per_s": {name: round(rate, 5) for name, rate in self.idle_rates.items()},
            "cpu_s": {name: round(value, 3) for name, value in self.cpu.items()},
            "dashboard_cpu_net_s": round(self.dashboard_cpu, 3),
            "agent_cpu_net_s": round(self.agent_cpu, 3),
            "requests": len(self.requests),
            "request_kinds": request_kinds(self.requests),
            "polls_in_busiest_second": self.polls_in_busiest_second,
            "probe": self.probe.raw(),
            "probe_calibration": self.calibration.raw(),
            "runs": [run.raw() for run in self.runs],
        }


def busiest_second(times: list[float]) -> int:
    """The most of ``times`` (seconds) that fall within any one second."""
    ordered, most, first = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def later_polls(recorded: list[Request]) -> list[float]:
    """When each status poll came, but for each job's first."""
    polls = sorted((r for r in recorded if r.method == "GET" and is_status_path(r.path)), key=lambda r: r.at)
    seen: set[str] = set()
    later = []
    for poll in polls:
        job = poll.path.split("?")[0].rstrip("/").rsplit("/", 1)[1]
        if job in seen:
            later.append(poll.at)
        seen.add(job)
    return later


def warm_up(stage: Stage) -> str:
    """One short job, submitted and waited for directly (not through the proxy), unmeasured; its id."""
    address = stage.ray.address
    answer = requests.post(f"{address}/api/jobs/", json={"entrypoint": WARM_UP_ENTRYPOINT}, timeout=60)
    answer.raise_for_status()
    submission_id = answer.json()["submission_id"]
    limit = time.monotonic() + QUIET_TIMEOUT
    while ray_record(address, submission_id).end_time == 0 and time.monotonic() < limit:
        time.sleep(1)
    return str(submission_id)


def is_quiet(rate: float, previous: float | None) -> bool:
    """A window's CPU rate (s/s) is idle: under ``QUIET_RATE``, or settled where the head idles higher."""
    if rate < QUIET_RATE:
        return True
    return previous is not None and max(rate, previous) < SETTLED_MAX and abs(rate - previous) <= SETTLED_WITHIN


def quiet_rates(processes: dict[str, int]) -> dict[str, float]:
    """Each process's CPU rate over the first quiet window (the last one if none is quiet in time)."""
    limit = time.monotonic() + QUIET_TIMEOUT
    previous: float | None = None
    while True:
        meter = CpuMeter(processes).start()
        time.sleep(IDLE_SECONDS)
        rates = {name: used / meter.elapsed for name, used in meter.read().items()}
        total = sum(rates.values())
        if is_quiet(total, previous):
            return rates
        if time.monotonic() > limit:
            print(f"warning: the dashboard never got quiet ({total:.2f} CPU s/s); measuring anyway")
            return rates
        previous = total


def run_pods(stage: Stage, counts: list[int], tools: list[str], seconds: float, repeats: int = 1) -> list[Phase]:
    processes = stage.ray.dashboard_processes()
    # The probe asks for the warm-up job: finished before the first phase, it is there from each
    # phase's first instant to its last (a phase's own jobs exist only once their tool has POSTed,
    # and end before the phase does), and its answer is the same bytes in every phase. Ray answers
    # it on the same path as a watched job's poll (JobHead: the GCS job table, then the job's record
    # in the KV store), so a slower answer in one phase is that phase's load, the same job for each tool.
    probe_job = warm_up(stage)
    before = quiet_rates(processes)
    calibration = calibrate(stage.ray.address, probe_job, processes, before)
    alone = calibration.alone
    print(f"probe alone: p50 {milliseconds(alone.p50)}, p99 {p99_cell(alone)}", flush=True)
    phases = []
    for pods in counts:
        for tool in [tool for _ in range(repeats) for tool in tools]:
            cpu, wall, runs, probe = run_phase(stage, processes, tool, pods, seconds, probe_job)
            recorded = stage.proxy.recorded()
            after = quiet_rates(processes)
            idle = {name: (before[name] + after[name]) / 2 for name in processes}
            phase = Phase(tool, pods, wall, idle, cpu, runs, recorded, probe, calibration)
            before = after
            phases.append(phase)
            print(
                f"pods {tool:16} N={pods:<3} wall {phase.wall:6.1f} s  job-minutes {phase.job_minutes:6.2f}"
                f"  dashboard CPU {phase.dashboard_cpu:6.2f} s  agent CPU {phase.agent_cpu:6.2f} s"
                f"  requests {len(phase.requests):5}  errors {len(phase.errors)}"
                f"  GET /api/jobs/<id> p99 {p99_cell(phase.probe)}",
                flush=True,
            )
            for error in phase.errors[:5]:
                print(f"    {error}", flush=True)
            for message in phase.probe.error_messages[:5]:
                print(f"    probe: {message}", flush=True)
    return phases


def run_phase(
    stage: Stage, processes: dict[str, int], tool: str, pods: int, seconds: float, probe_job: str
) -> tuple[dict[str, float], float, list[WatchedRun], ProbeFigures]:
    """N copies of ``tool`` started at once, the probe asking for ``probe_job`` until the last one
    ends: the dashboard's CPU seconds by process, the wall time, the runs, the probe's figures."""
    stage.proxy.clear_requests()
    meter = CpuMeter(processes).start()
    probe = Probe(stage.ray.address, probe_job).start()
    try:
        if tool == JOBS_ONLY:
            runs = run_unwatched(stage, pods, seconds)
        else:
            with ThreadPoolExecutor(pods) as pool:
                label = f"pods{pods}"
                started = [pool.submit(watch_job, stage, tool, label, seconds, LINE_INTERVAL) for _ in range(pods)]
                runs = [future.result() for future in started]
    finally:
        figures = probe.stop()
    return meter.read(), meter.elapsed, runs, figures


def run_unwatched(stage: Stage, pods: int, seconds: float) -> list[WatchedRun]:
    """The jobs alone, for what watching them adds: N POSTs through the proxy, then nothing asked
    until the jobs should have ended; then each one's end is asked directly, every 2 s."""
    entrypoint = job_entrypoint({"seconds": f"{seconds:g}", "interval": f"{LINE_INTERVAL:g}"})
    body = {"entrypoint": entrypoint, "entrypoint_num_cpus": ENTRYPOINT_NUM_CPUS}
    ids = []
    for _ in range(pods):
        answer = requests.post(f"{stage.proxy.url}/api/jobs/", json=body, timeout=60)
        answer.raise_for_status()
        ids.append(str(answer.json()["submission_id"]))
    time.sleep(seconds)
    return [_unwatched_run(stage.ray.address, submission_id) for submission_id in ids]


def _unwatched_run(address: str, submission_id: str) -> WatchedRun:
    record = _wait_for_end(address, submission_id)
    run = WatchedRun(JOBS_ONLY, 0, 0, 0.0, 0.0, submission_id, ray=record)
    if record.status != EXPECTED_STATUS:
        run.errors.append(f"Ray says {record.status}")
    return run


def _wait_for_end(address: str, submission_id: str) -> RayRecord:
    limit = time.monotonic() + QUIET_TIMEOUT
    record = ray_record(address, submission_id)
    while not record.end_time and time.monotonic() < limit:
        time.sleep(2)
        record = ray_record(address, submission_id)
    return record


def median_phase(phases: list[Phase]) -> Phase:
    """Of one cell's rounds, the phase whose dashboard + agent CPU per job is the median (the lower
    of the two middle ones for an even count): a real phase, so its figures belong together."""
    ordered = sorted(phases, key=per_job_cpu)
    return ordered[(len(ordered) - 1) // 2]


def rounds_by_cell(phases: list[Phase]) -> dict[tuple[str, int], list[Phase]]:
    cells: dict[tuple[str, int], list[Phase]] = {}
    for phase in phases:
        cells.setdefault((phase.tool, phase.pods), []).append(phase)
    return cells


def render_pods(phases: list[Phase], counts: list[int], tools: list[str], seconds: float) -> Section:
    rounds = rounds_by_cell(phases)
    by_key = {key: median_phase(cell) for key, cell in rounds.items()}
    repeats = max(len(cell) for cell in rounds.values())
    rows: list[tuple[str, ...]] = []

    def add(label: str, value: Callable[[Phase], Any], shown: Callable[[Any], str], compare: bool = True) -> None:
        """One row per N; the ratio is the SDK's (polls + tail) over raypod's, when both ran."""
        for pods in counts:
            values = {tool: value(by_key[(tool, pods)]) for tool in tools}
            better = ratio(values[SDK_TAIL], values[RAYPOD]) if compare and {RAYPOD, SDK_TAIL} <= set(tools) else "-"
            rows.append((f"{label}, N = {pods}", *(shown(values[tool]) for tool in tools), better))

    add("dashboard CPU per job-minute", lambda p: p.per_job_minute(p.dashboard_cpu), lambda v: f"{v:.3f} s")
    add("agent CPU per job-minute", lambda p: p.per_job_minute(p.agent_cpu), lambda v: f"{v:.3f} s")
    add("dashboard + agent CPU per job", per_job_cpu, lambda v: f"{v:.3f} s")
    if repeats > 1:
        for pods in counts:
            each = [" / ".join(f"{per_job_cpu(p):.3f}" for p in rounds[(tool, pods)]) + " s" for tool in tools]
            rows.append((f"the same, each round, N = {pods}", *each, "-"))
    add("requests per job-minute", lambda p: p.per_job_minute(len(p.requests)), lambda v: f"{v:.1f}")
    add("most status polls in 1 s, first polls aside", lambda p: p.polls_in_busiest_second, str, compare=False)
    add("submitters' peak RSS, sum", lambda p: p.rss_sum_kib / KIB_PER_MIB, lambda v: f"{v:.0f} MiB")
    add("errors", lambda p: len(p.errors), str, compare=False)
    add("completion lag, median (max)", lambda p: p.runs, lag_cell, compare=False)
    add("`GET /api/jobs/<id>` answer time, p99 (the probe)", lambda p: p.probe, p99_cell, compare=False)
    header = ("measure", *(HEADERS[tool] for tool in tools), "ratio (SDK + tail / raypod)")
    rounds_said = (
        f" Each cell is the round (of {repeats}, the tools in turn) whose dashboard + agent CPU per job is the median."
        if repeats > 1
        else ""
    )
    lines = [
        f"N watchers started together, each with a {seconds:g} s job printing a line every {LINE_INTERVAL:g} s. "
        "CPU is net of each dashboard process's idle rate and of the probe's own requests; a job-minute is "
        f"one minute of one job on Ray.{rounds_said}",
        "",
        *table(header, rows),
        "",
        *[
            f"- {tool}'s requests (N = {counts[0]}): {request_kinds(by_key[(tool, counts[0])].requests)}"
            for tool in tools
        ],
        *watching_notes(by_key, counts, tools),
        *module_notes(by_key, counts[-1], tools),
    ]
    raw: dict[str, object] = {"pods": [phase.raw() for phase in phases]}
    return Section(
        lines, pods_goals(by_key, counts, tools, seconds), raw, pods_headline(by_key, counts[-1], tools, seconds)
    )


def watching_notes(by_key: dict[tuple[str, int], Phase], counts: list[int], tools: list[str]) -> list[str]:
    """With the jobs alone measured too: what watching them added, per job-minute."""
    if JOBS_ONLY not in tools:
        return []
    notes = []
    for pods in counts:
        alone = serving_cpu(by_key[(JOBS_ONLY, pods)])
        added = ", ".join(
            f"{tool} {serving_cpu(by_key[(tool, pods)]) - alone:+.3f} s" for tool in tools if tool != JOBS_ONLY
        )
        notes.append(
            f"- N = {pods}: dashboard + agent CPU per job-minute that watching added to the jobs alone: {added}"
        )
    return notes


def module_notes(by_key: dict[tuple[str, int], Phase], pods: int, tools: list[str]) -> list[str]:
    """Where each tool's dashboard CPU went at the largest N, by process (net of idle)."""
    notes = []
    for tool in tools:
        phase = by_key[(tool, pods)]
        shares = sorted(((phase.net_cpu(name), name) for name in phase.cpu), reverse=True)
        parts = ", ".join(f"{name} {seconds:.2f} s" for seconds, name in shares if seconds >= 0.05)
        notes.append(f"- {tool} at N = {pods}, CPU by process (net of idle): {parts or 'each under 0.05 s'}")
    return notes


def pods_headline(
    by_key: dict[tuple[str, int], Phase], pods: int, tools: list[str], seconds: float
) -> list[tuple[str, str, str]]:
    """raypod against the SDK's loop with its tail, at the largest N."""
    if not {RAYPOD, SDK_TAIL} <= set(tools):
        return []
    mine, theirs = by_key[(RAYPOD, pods)], by_key[(SDK_TAIL, pods)]
    figures: list[tuple[str, Callable[[Phase], str]]] = [
        ("dashboard + agent CPU per job-minute", lambda p: f"{serving_cpu(p):.3f} s"),
        ("dashboard requests per job-minute", lambda p: f"{p.per_job_minute(len(p.requests)):.1f}"),
        ("peak RSS, sum", lambda p: f"{p.rss_sum_kib / KIB_PER_MIB:.0f} MiB"),
        ("errors", lambda p: str(len(p.errors))),
    ]
    figures.insert(1, ("dashboard + agent CPU per job", lambda p: f"{per_job_cpu(p):.3f} s"))
    at_once = f"{pods} pod{'s' if pods != 1 else ''} at once, {seconds:g} s jobs"
    return [(f"{at_once}: {name}", shown(mine), shown(theirs)) for name, shown in figures]


def per_job_cpu(phase: Phase) -> float:
    """The dashboard's and its agent's CPU per watched job (issue 24's goal 3 compares jobs of each length)."""
    return (phase.dashboard_cpu + phase.agent_cpu) / len(phase.runs) if phase.runs else float("nan")


def serving_cpu(phase: Phase) -> float:
    """The dashboard's and its agent's CPU per job-minute: together they serve every request."""
    return phase.per_job_minute(phase.dashboard_cpu + phase.agent_cpu)


def pods_goals(by_key: dict[tuple[str, int], Phase], counts: list[int], tools: list[str], seconds: float) -> list[Goal]:
    goals = []
    for tool in (RAYPOD, NO_UPLOAD):
        if not {tool, SDK_TAIL} <= set(tools):
            continue
        pairs = [(per_job_cpu(by_key[(tool, n)]), per_job_cpu(by_key[(SDK_TAIL, n)])) for n in counts]
        upload = "with its S3 upload" if tool == RAYPOD else "without the S3 upload"
        goals.append(
            Goal(
                f"{seconds:g} s jobs: dashboard + agent CPU per job ≤ the SDK's (polls + tail), raypod {upload}, "
                "live output on, at every N",
                ", ".join(f"N = {n}: {m:.3f} s against {t:.3f} s" for n, (m, t) in zip(counts, pairs, strict=True)),
                all(m <= t for m, t in pairs),
            )
        )
    if RAYPOD in tools:
        largest = by_key[(RAYPOD, counts[-1])]
        goals.append(
            Goal(f"{seconds:g} s jobs: zero errors at N = {counts[-1]}", str(len(largest.errors)), not largest.errors)
        )
    return goals
