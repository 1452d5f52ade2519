"""``--pending N``: what N PENDING jobs cost the dashboard with raypod's log tail open, and without it
(issue 24, goal 2).

Ray's tail (``/api/jobs/<id>/logs/tail``) asks the job's status about once a second while the job
has no log yet, so an open tail costs the head while its job waits PENDING. For each tool (raypod,
which opens the tail at its first poll, and raypod ``--no-follow-logs``, which never does), a
phase: the benchmark POSTs a blocker that holds the head's CPUs for ``seconds``, then starts N
watchers whose jobs (1 s each) ask for half a CPU, so they wait PENDING until the blocker ends. The
dashboard's CPU (each process, net of its idle rate, as the N-pods mode measures it) is read over
that PENDING window only; the difference between the two tools is what the open tails cost.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.mix import PENDING_JOB_CPUS, block_cpus
from bench.pods import quiet_rates, warm_up
from bench.report import Goal, Section, is_status_path, table
from bench.tools import HEADERS, NO_FOLLOW, RAYPOD, Stage
from bench.watched import LINE_INTERVAL, WatchedRun, watch_job
from devtools.measure import CpuMeter
from devtools.services import DASHBOARD_AGENT

PENDING_TOOLS = (RAYPOD, NO_FOLLOW)
#: Each watched job's length once it runs.
JOB_SECONDS = 1.0


@dataclass
class PendingPhase:
    tool: str
    jobs: int
    window: float
    idle_rates: dict[str, float]
    cpu: dict[str, float]
    #: Requests through the proxy during the PENDING window: status polls, and the rest.
    polls: int
    others: int
    runs: list[WatchedRun]

    def net(self, name: str) -> float:
        return self.cpu[name] - self.idle_rates[name] * self.window

    @property
    def head_cpu(self) -> float:
        return sum(self.net(name) for name in self.cpu if name != DASHBOARD_AGENT)

    @property
    def agent_cpu(self) -> float:
        return self.net(DASHBOARD_AGENT)

    def per_job_second(self, value: float) -> float:
        return value / (self.jobs * self.window) if self.window else float("nan")

    @property
    def errors(self) -> list[str]:
        return [error for run in self.runs for error in run.errors]


def run_pending(stage: Stage, jobs: int, seconds: float) -> list[PendingPhase]:
    processes = stage.ray.dashboard_processes()
    warm_up(stage)
    before = quiet_rates(processes)
    phases = []
    for tool in PENDING_TOOLS:
        block_cpus(stage.ray.address, seconds)
        blocker_ends = time.monotonic() + seconds
        stage.proxy.clear_requests()
        meter = CpuMeter(processes).start()
        with ThreadPoolExecutor(jobs) as pool:
            started = [
                pool.submit(watch_job, stage, tool, "pending", JOB_SECONDS, LINE_INTERVAL, num_cpus=PENDING_JOB_CPUS)
                for _ in range(jobs)
            ]
            time.sleep(max(0.0, blocker_ends - time.monotonic()))
            cpu, window = meter.read(), meter.elapsed
            recorded = stage.proxy.recorded()
            runs = [future.result() for future in started]
        after = quiet_rates(processes)
        idle = {name: (before[name] + after[name]) / 2 for name in processes}
        before = after
        polls = sum(1 for r in recorded if r.method == "GET" and is_status_path(r.path))
        phase = PendingPhase(tool, jobs, window, idle, cpu, polls, len(recorded) - polls, runs)
        phases.append(phase)
        print(
            f"pending {tool:16} N={jobs:<3} window {window:5.1f} s  head CPU {phase.head_cpu:6.2f} s"
            f"  agent CPU {phase.agent_cpu:6.2f} s  polls {polls}  errors {len(phase.errors)}",
            flush=True,
        )
    return phases


def render_pending(phases: list[PendingPhase], jobs: int, seconds: float) -> Section:
    by_tool = {phase.tool: phase for phase in phases}
    tools = [tool for tool in PENDING_TOOLS if tool in by_tool]
    milli = 1000.0

    rows: list[tuple[str, ...]] = [
        (
            "head CPU per PENDING job-second (dashboard.py and its modules)",
            *(f"{by_tool[t].per_job_second(by_tool[t].head_cpu) * milli:.2f} ms" for t in tools),
        ),
        (
            "agent CPU per PENDING job-second",
            *(f"{by_tool[t].per_job_second(by_tool[t].agent_cpu) * milli:.2f} ms" for t in tools),
        ),
        ("status polls in the window", *(str(by_tool[t].polls) for t in tools)),
        ("other requests in the window (POST, version, tail)", *(str(by_tool[t].others) for t in tools)),
        ("errors", *(str(len(by_tool[t].errors)) for t in tools)),
    ]
    lines = [
        f"{jobs} jobs PENDING for about {seconds:g} s (a blocker holds the head's CPUs), one watcher each; CPU over "
        "the PENDING window, net of idle.",
        "",
        *table(("measure", *(HEADERS[t] for t in tools)), rows),
        "",
        *[
            f"- {t}, CPU by process in the window (net of idle): "
            + ", ".join(f"{name} {by_tool[t].net(name):.2f} s" for name in sorted(by_tool[t].cpu))
            for t in tools
        ],
    ]
    goals: list[Goal] = []
    headline: list[tuple[str, str, str]] = []
    if {RAYPOD, NO_FOLLOW} <= set(tools):
        on, off = by_tool[RAYPOD], by_tool[NO_FOLLOW]
        tail_cost = on.per_job_second(on.head_cpu + on.agent_cpu) - off.per_job_second(off.head_cpu + off.agent_cpu)
        lines.append(
            f"- What an open tail costs the dashboard and agent per PENDING job-second: {tail_cost * milli:+.2f} ms "
            "(live output on, less off)."
        )
    raw: dict[str, object] = {
        "pending": [
            {
                "tool": p.tool,
                "jobs": p.jobs,
                "window_s": round(p.window, 2),
                "cpu_s": {k: round(v, 3) for k, v in p.cpu.items()},
                "idle_cpu_per_s": {k: round(v, 5) for k, v in p.idle_rates.items()},
                "polls": p.polls,
                "others": p.others,
                "errors": p.errors,
            }
            for p in phases
        ]
    }
    return Section(lines, goals, raw, headline)
