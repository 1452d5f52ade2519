"""``--endpoints``: what ONE call of each dashboard endpoint raypod uses costs the dashboard, by
process role (issue 24, goal 3: where each CPU second goes, before changing anything).

Each endpoint gets a window: the benchmark makes the call K times with raypod's own client
(raypod.ray.RayJobsClient, so the calls are exactly raypod's, keep-alive included), reading each
dashboard process's CPU seconds (/proc) at the window's start and end. Each process's idle rate is
the mean of the quiet windows before and after (bench/pods.py's ``quiet_rates``), taken off, and
the rest divided by K. The roles: ``dashboard.py`` (the HTTP head, which forwards every call to a
module process), ``JobHead`` (``/api/jobs/``), ``StateHead`` (``/api/v0/logs/``), the node's
agent (it runs submitted jobs, and serves both log streams), the other processes summed.

- the one-shot calls: ``GET /api/version``; the package check ``GET /api/packages/gcs/<name>``
  of a package Ray has and of one it has not; ``GET /api/jobs/<id>`` of a finished job and of a
  running one; ``GET /api/v0/logs/file`` of a finished job's small log (read to its end), asked
  for by the file's name as raypod does and by the job's id as it did;
- ``POST /api/jobs/`` of a trivial job (``python -c pass``, no CPU asked): the window runs on
  SUBMIT_SETTLE seconds after the POSTs, so it holds what Ray does to run the job to its end
  (the agent starts the job's supervisor and driver): the fixed cost of a job, not only the call;
- the held ones: K ``GET /api/v0/logs/stream?...&interval=0.5`` (raypod's live source) and K of
  Ray's WebSocket tails (``/api/jobs/<id>/logs/tail``) held open for HOLD_SECONDS on a job printing
  a line every 0.1 s: the cost per second held, the opening (the log from its first line) included;
- that job running, watched by nobody: the idle rates with it running less those before it started.

Then one raypod pod watches one job (a pods phase, N = 1, through the counting proxy): its
requests by kind, times these costs, give where one job's dashboard CPU goes, beside the phase's
own measured figure. One sample on one machine: a shared one moves each figure.
"""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from bench.pods import quiet_rates, run_phase, warm_up
from bench.report import Section, request_kind, table
from bench.tools import RAYPOD, Stage, job_entrypoint
from bench.watched import LINE_INTERVAL, RayRecord, ray_record
from devtools.measure import CpuMeter
from devtools.proxy import Request
from devtools.ray_stream import abort_stream, open_follow_stream
from devtools.services import DASHBOARD_AGENT, DASHBOARD_HEAD
from raypod.package import package_name
from raypod.ray import JobInfo, RayJobsClient
from raypod.websocket import WebSocket

HEAD_ROLE = "dashboard.py"
JOB_ROLE = "JobHead"
STATE_ROLE = "StateHead"
AGENT_ROLE = "agent"
OTHERS_ROLE = "others"
ROLES = (HEAD_ROLE, JOB_ROLE, STATE_ROLE, AGENT_ROLE, OTHERS_ROLE)

VERSION = "GET /api/version"
PACKAGE_FOUND = "GET /api/packages/gcs/<name>, Ray has it"
PACKAGE_MISSING = "GET /api/packages/gcs/<name>, Ray has it not"
STATUS_FINISHED = "GET /api/jobs/<id>, finished job"
STATUS_RUNNING = "GET /api/jobs/<id>, running job"
LOG_FILE = "GET /api/v0/logs/file, finished job, small log"
#: The same file asked for by the job's id (raypod before 2026-12-05): Ray looks the job up among all of its jobs.
LOG_FILE_BY_ID = "GET /api/v0/logs/file by the job's id, finished job, small log"
SUBMIT = "POST /api/jobs/, trivial job, run to its end"
STREAM = "GET /api/v0/logs/stream (interval=0.5), held"
TAIL = "GET /api/jobs/<id>/logs/tail (WebSocket), held"
#: No request: what a job costs the dashboard while it runs, watched by nobody.
RUNNING = "a job running unwatched (a line every 0.1 s)"
#: The endpoints charged per second held (or run), not per call.
HELD = (STREAM, TAIL, RUNNING)
#: The pod's job itself, in the attribution: charged per second it ran.
JOB_ITSELF = "(the job itself, running)"

#: Which measured endpoint a request kind (bench.report.request_kind) is charged at. Status polls
#: are charged at the running job's figure: all of a pod's polls but its last see the job running.
KIND_COSTS = {
    "GET /api/version": VERSION,
    "POST /api/jobs/": SUBMIT,
    "GET /api/jobs/<id>": STATUS_RUNNING,
    "GET /api/v0/logs/file": LOG_FILE,
    "GET /api/v0/logs/stream": STREAM,
    "GET /api/jobs/<id>/logs/tail": TAIL,
}
PACKAGE_KIND = "GET /api/packages/"

#: Calls per one-shot window; submissions per window (each runs a job).
CALLS = 100
SUBMISSIONS = 10
#: How long the submission window runs after the POSTs: the trivial jobs end within it.
SUBMIT_SETTLE = 20.0
#: Connections per held window, and how long they are held.
HELD_CONNECTIONS = 5
HOLD_SECONDS = 10.0
#: The printing job the running-job windows use: long enough for them all (it is stopped after).
RUNNING_JOB_SECONDS = 240.0
#: The watched job of the pods phase.
POD_JOB_SECONDS = 20.0
#: Bounds every wait for a job here.
JOB_TIMEOUT = 120.0
MILLI = 1000.0


def role_of(process: str) -> str:
    """A dashboard process's role: ``dashboard``, ``agent``, ``JobHead-0``, ``StateHead-0``, others."""
    if process == DASHBOARD_HEAD:
        return HEAD_ROLE
    if process == DASHBOARD_AGENT:
        return AGENT_ROLE
    module = process.rsplit("-", 1)[0]
    return module if module in (JOB_ROLE, STATE_ROLE) else OTHERS_ROLE


def net_of_idle(cpu: Mapping[str, float], idle_rates: Mapping[str, float], seconds: float) -> dict[str, float]:
    """Each process's CPU seconds less what it uses idle in as many seconds."""
    return {name: used - idle_rates[name] * seconds for name, used in cpu.items()}


def by_role(per_process: Mapping[str, float]) -> dict[str, float]:
    roles = dict.fromkeys(ROLES, 0.0)
    for name, value in per_process.items():
        roles[role_of(name)] += value
    return roles


@dataclass(frozen=True)
class Window:
    """One endpoint's measuring window."""

    endpoint: str
    #: Calls made, or connection-seconds held (HELD).
    units: float
    seconds: float
    cpu: dict[str, float]
    idle_rates: dict[str, float]
    errors: list[str] = field(default_factory=list)

    def cost_ms(self) -> dict[str, float]:
        """CPU milliseconds per call (per second held), by role, net of idle."""
        net = by_role(net_of_idle(self.cpu, self.idle_rates, self.seconds))
        return {role: value * MILLI / self.units if self.units else float("nan") for role, value in net.items()}

    def raw(self) -> dict[str, object]:
        return {
            "endpoint": self.endpoint,
            "units": round(self.units, 2),
            "window_s": round(self.seconds, 2),
            "cpu_s": {k: round(v, 4) for k, v in self.cpu.items()},
            "idle_cpu_per_s": {k: round(v, 5) for k, v in self.idle_rates.items()},
            "cost_ms": {k: round(v, 3) for k, v in self.cost_ms().items()},
            "errors": self.errors,
        }


@dataclass(frozen=True)
class Charge:
    """One kind of a pod's requests, charged at a measured endpoint's cost."""

    kind: str
    count: int
    #: What the cost multiplies: the count, or the seconds held (HELD endpoints).
    units: float
    endpoint: str | None
    cost_ms: dict[str, float]

    @property
    def held(self) -> bool:
        return self.endpoint in HELD

    @property
    def total_ms(self) -> float:
        return sum(self.cost_ms.values())


def endpoint_of(kind: str) -> str | None:
    if kind.startswith(PACKAGE_KIND):
        return PACKAGE_FOUND
    return KIND_COSTS.get(kind)


def held_seconds(request: Request, ended: float) -> float:
    """How long a request held its connection: a WebSocket until it closed, a stream (the proxy
    sees no end to it) until ``ended``, an upper bound."""
    return (request.closed_at if request.closed_at is not None else ended) - request.at


def charges(
    recorded: list[Request], ended: float, job_seconds: float, costs: Mapping[str, Mapping[str, float]]
) -> list[Charge]:
    """A pod's requests by kind (in the order first seen), each charged at its endpoint's cost: per
    call, or per second held; then its job, per second it ran. A kind no window measured is charged
    nothing (endpoint None)."""
    counts: dict[str, tuple[int, float]] = {}
    for request in recorded:
        kind = request_kind(request)
        count, held = counts.get(kind, (0, 0.0))
        counts[kind] = (count + 1, held + held_seconds(request, ended))
    rows = []
    for kind, (count, held) in counts.items():
        endpoint = endpoint_of(kind)
        units = held if endpoint in HELD else float(count)
        each = costs.get(endpoint, {}) if endpoint else {}
        rows.append(Charge(kind, count, units, endpoint if each else None, {r: v * units for r, v in each.items()}))
    running = costs.get(RUNNING, {})
    rows.append(Charge(JOB_ITSELF, 1, job_seconds, RUNNING, {r: v * job_seconds for r, v in running.items()}))
    return rows


# -- measuring ---------------------------------------------------------------------------------


class Bench:
    """The windows, one after another, each between two quiet windows."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.processes = stage.ray.dashboard_processes()
        self.client = RayJobsClient.connect(stage.ray.address)
        self.idle = quiet_rates(self.processes)
        self.windows: list[Window] = []

    def running_job(self, without: dict[str, float]) -> Window:
        """A quiet window with a job running, against the one before it started (``without``): the
        difference of the idle rates is what the running job costs each second."""
        self.idle = quiet_rates(self.processes)
        window = Window(RUNNING, 1.0, 1.0, dict(self.idle), without)
        self.windows.append(window)
        return window

    def measure(self, endpoint: str, work: Callable[[], tuple[float, list[str]]]) -> Window:
        """``work`` makes the calls and returns (units, errors)."""
        meter = CpuMeter(self.processes).start()
        units, errors = work()
        cpu, seconds = meter.read(), meter.elapsed
        after = quiet_rates(self.processes)
        idle = {name: (self.idle[name] + after[name]) / 2 for name in self.processes}
        self.idle = after
        window = Window(endpoint, units, seconds, cpu, idle, errors)
        self.windows.append(window)
        costs = ", ".join(f"{role} {value:.2f}" for role, value in window.cost_ms().items())
        unit = "s held" if endpoint in HELD else "call"
        print(
            f"endpoints {endpoint:48} {units:6.0f} ({unit})  ms per {unit}: {costs}  errors {len(errors)}", flush=True
        )
        return window

    def repeat(self, endpoint: str, call: Callable[[], object], times: int = CALLS) -> Window:
        def work() -> tuple[float, list[str]]:
            errors = []
            for _ in range(times):
                try:
                    call()
                except Exception as error:
                    errors.append(str(error))
            return float(times), errors[:5]

        return self.measure(endpoint, work)


def submit(client: RayJobsClient, entrypoint: str) -> str:
    return client.submit_job({"entrypoint": entrypoint, "entrypoint_num_cpus": 0})


def wait_for(client: RayJobsClient, submission_id: str, ready: Callable[[JobInfo], bool]) -> JobInfo:
    limit = time.monotonic() + JOB_TIMEOUT
    job = client.get_job(submission_id)
    while not ready(job) and time.monotonic() < limit:
        time.sleep(0.5)
        job = client.get_job(submission_id)
    if not ready(job):
        raise RuntimeError(f"job {submission_id} is {job.status} after {JOB_TIMEOUT:g} s")
    return job


def printing_job(seconds: float) -> str:
    return job_entrypoint({"seconds": f"{seconds:g}", "interval": f"{LINE_INTERVAL:g}"})


def hold(count: int, open_and_read: Callable[[list[Callable[[], None]]], None]) -> tuple[float, list[str]]:
    """``count`` connections, each in a thread of its own, held HOLD_SECONDS, then aborted; returns
    the connection-seconds held (from the first opening to the abort) and the errors."""
    aborts: list[Callable[[], None]] = []
    errors: list[str] = []
    aborting = threading.Event()

    def run() -> None:
        try:
            open_and_read(aborts)
        except Exception as error:
            # An abort surfaces as an error in the reader: only what broke before it counts.
            if not aborting.is_set():
                errors.append(str(error))

    began = time.monotonic()
    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(HOLD_SECONDS)
    held = (time.monotonic() - began) * count
    aborting.set()
    for abort in list(aborts):
        abort()
    for thread in threads:
        thread.join(10)
    return held, errors[:5]


def run_endpoints(stage: Stage) -> tuple[list[Window], list[Request], float, float, dict[str, float]]:
    """The windows; then the pods phase's requests, its end, its job's seconds, and its CPU net of
    idle by role."""
    warm_up(stage)
    address = stage.ray.address
    setup = RayJobsClient.connect(address)
    finished = wait_for(setup, submit(setup, printing_job(1.0)), lambda job: job.terminal)
    package = stage.work / "endpoints-package.zip"
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("job.py", "print('hello')\n")
    known, unknown = package_name("e" * 32), package_name("f" * 32)
    setup.upload_package(known, package)

    bench = Bench(stage)
    client = bench.client
    bench.repeat(VERSION, lambda: RayJobsClient.connect(address).version())
    bench.repeat(PACKAGE_FOUND, lambda: client.package_exists(known))
    bench.repeat(PACKAGE_MISSING, lambda: client.package_exists(unknown))
    bench.repeat(STATUS_FINISHED, lambda: client.get_job(finished.submission_id))
    bench.measure(SUBMIT, lambda: submit_window(client))
    # After the submissions, so that Ray has a few jobs to look through when asked by id.
    bench.repeat(LOG_FILE, lambda: b"".join(client.log_chunks(finished)))
    bench.repeat(LOG_FILE_BY_ID, lambda: b"".join(read_by_id(client, finished)))

    without = bench.idle
    running = wait_for(setup, submit(setup, printing_job(RUNNING_JOB_SECONDS)), lambda job: bool(job.driver_node_id))
    bench.running_job(without)
    bench.repeat(STATUS_RUNNING, lambda: client.get_job(running.submission_id))
    bench.measure(STREAM, lambda: hold(HELD_CONNECTIONS, lambda aborts: read_stream(address, running, aborts)))
    bench.measure(TAIL, lambda: hold(HELD_CONNECTIONS, lambda aborts: read_tail(address, running, aborts)))
    setup.stop_job(running.submission_id)
    wait_for(setup, running.submission_id, lambda job: job.terminal)

    before = quiet_rates(bench.processes)
    cpu, wall, runs, _ = run_phase(stage, bench.processes, RAYPOD, 1, POD_JOB_SECONDS, finished.submission_id)
    ended, recorded = time.monotonic(), stage.proxy.recorded()
    after = quiet_rates(bench.processes)
    idle = {name: (before[name] + after[name]) / 2 for name in bench.processes}
    phase_ms = {role: value * MILLI for role, value in by_role(net_of_idle(cpu, idle, wall)).items()}
    for error in (error for run in runs for error in run.errors):
        print(f"    pods phase: {error}", flush=True)
    setup.close()
    client.close()
    job_seconds = sum(run.job_minutes for run in runs) * 60
    return bench.windows, recorded, ended, job_seconds, phase_ms


def read_by_id(client: RayJobsClient, job: JobInfo) -> Iterator[bytes]:
    assert job.driver_node_id is not None
    return client.stream_chunks(client.open_log_stream(job.submission_id, job.driver_node_id, by_name=False))


def submit_window(client: RayJobsClient) -> tuple[float, list[str]]:
    began = time.monotonic()
    ids = [submit(client, "python -c pass") for _ in range(SUBMISSIONS)]
    time.sleep(max(0.0, began + SUBMIT_SETTLE - time.monotonic()))
    records: list[RayRecord] = [ray_record(client.address, submission_id) for submission_id in ids]
    late = [f"{sid} had not ended: {r.status}" for sid, r in zip(ids, records, strict=True) if not r.end_time]
    return float(SUBMISSIONS), late


def read_stream(address: str, job: JobInfo, aborts: list[Callable[[], None]]) -> None:
    """raypod's live source: its own client, as each pod has."""
    client = RayJobsClient.connect(address)
    assert job.driver_node_id is not None
    response = open_follow_stream(client, job.submission_id, job.driver_node_id)
    aborts.append(lambda: abort_stream(response))
    for _ in client.stream_chunks(response):
        pass


def read_tail(address: str, job: JobInfo, aborts: list[Callable[[], None]]) -> None:
    client = RayJobsClient.connect(address)

    def keep(socket: WebSocket) -> None:
        aborts.append(socket.abort)

    for _ in client.tail_chunks(client.open_log_tail(job.submission_id, on_socket=keep)):
        pass


# -- the report ----------------------------------------------------------------------------------


def per_second_units(endpoint: str | None, seconds: float) -> str:
    return f"{seconds:.0f} s running" if endpoint == RUNNING else f"{seconds:.0f} s held"


def cost_rows(windows: list[Window]) -> list[tuple[str, ...]]:
    rows = []
    for window in windows:
        costs = window.cost_ms()
        if window.endpoint == RUNNING:
            units = "per s running"
        elif window.endpoint in HELD:
            units = per_second_units(window.endpoint, window.units)
        else:
            units = f"{window.units:.0f}"
        cells = (f"{costs[role]:.2f}" for role in ROLES)
        rows.append((window.endpoint, units, *cells, f"{sum(costs.values()):.2f}"))
    return rows


def charge_rows(rows: list[Charge]) -> list[tuple[str, ...]]:
    shown = []
    for row in rows:
        units = per_second_units(row.endpoint, row.units) if row.held else str(row.count)
        if row.held and row.endpoint != RUNNING:
            units = f"{row.count} ({units})"
        cells = (f"{row.cost_ms.get(role, 0.0):.1f}" for role in ROLES)
        shown.append((row.kind, units, *cells, f"{row.total_ms:.1f}" if row.endpoint else "not measured"))
    return shown


def job_split(rows: list[Charge]) -> tuple[float, float]:
    """(the one-shot calls' ms: a job's fixed cost; the held connections' and the job's running: its
    cost by the second)."""
    fixed = sum(row.total_ms for row in rows if not row.held)
    return fixed, sum(row.total_ms for row in rows if row.held)


def render_endpoints(
    windows: list[Window], recorded: list[Request], ended: float, job_seconds: float, phase_ms: dict[str, float]
) -> Section:
    header = ("endpoint", "calls (or s held)", *(f"{role} ms" for role in ROLES), "total ms")
    costs = {window.endpoint: window.cost_ms() for window in windows}
    charged = charges(recorded, ended, job_seconds, costs)
    fixed, ongoing = job_split(charged)
    per_minute = ongoing / job_seconds * 60 if job_seconds else float("nan")
    lines = [
        "The dashboard's CPU for one call of each endpoint raypod uses (per second held for the two live "
        "sources), by process, net of each process's idle rate; the calls are raypod's own client's. "
        "One sample on one machine: on a shared one each figure moves, and the small ones are within the noise.",
        "",
        *table(header, cost_rows(windows)),
        "",
        f"- The POST row holds the job's run to its end ({SUBMIT_SETTLE:g} s window): what the agent and JobHead "
        "do to run a job is a cost of submitting it.",
        f"- Held rows: {HELD_CONNECTIONS} connections for {HOLD_SECONDS:g} s on a job printing a line every "
        f"{LINE_INTERVAL:g} s, the opening (the log from its first line) included.",
        "- The running row: the idle rates of a quiet window with that job running less those of the window "
        "before it started (a figure per second, no request made).",
        *[f"- {w.endpoint}: {len(w.errors)} error(s), e.g. {w.errors[0]}" for w in windows if w.errors],
        "",
        f"Where one raypod job's dashboard CPU goes: one pod watching one {POD_JOB_SECONDS:g} s job (a pods "
        "phase, N = 1), its requests by kind times the costs above (status polls at the running job's figure; "
        "a stream held until the phase's end, an upper bound).",
        "",
        *table(("request kind", "count", *(f"{role} ms" for role in ROLES), "total ms"), charge_rows(charged)),
        "",
        f"- Fixed per job (one-shot calls): {fixed:.0f} ms; by the second (the stream held, the job running): "
        f"{ongoing:.0f} ms over the job's {job_seconds:.0f} s, {per_minute:.0f} ms per job-minute; "
        f"sum {fixed + ongoing:.0f} ms.",
        f"- Measured over the same phase, net of idle: {sum(phase_ms.values()):.0f} ms ("
        + ", ".join(f"{role} {value:.0f}" for role, value in phase_ms.items())
        + ").",
    ]
    raw: dict[str, object] = {
        "endpoints": {
            "windows": [window.raw() for window in windows],
            "pod_charges": [
                {
                    "kind": c.kind,
                    "count": c.count,
                    "units": round(c.units, 2),
                    "endpoint": c.endpoint,
                    "cost_ms": {k: round(v, 2) for k, v in c.cost_ms.items()},
                }
                for c in charged
            ],
            "pod_phase_net_ms": {k: round(v, 1) for k, v in phase_ms.items()},
        }
    }
    return Section(lines, [], raw, [])
