"""``--logs``: one job's whole lifecycle at several log sizes, raypod against two SDK baselines.

Each tool runs the same lifecycle (submit, wait, get the log into S3) as a child process. The two
baselines:

- ``sdk``: as the first ray-pod did (bench/sdk_lifecycle.py): poll every second, ``get_job_logs``
  (the whole log in one string), one ``put_object``;
- ``sdk-stream``: as a careful user would (bench/sdk_streaming.py): ``tail_job_logs`` streamed into
  a multipart upload, minio imported only once the log comes.

Measured per run:

- peak RSS and CPU time (user+sys) of the child, from ``wait4`` in a small launcher
  (devtools/measure.py says why): the job itself runs in Ray's workers, so its time is not counted;
- cold start: from spawning the child to its ``POST /api/jobs/`` reaching the dashboard;
- HTTP requests to the dashboard, counted by the proxy in front of it;
- the uploaded object: the job's lines must be there byte for byte (sha256), after Ray's few
  start-up lines, or the run fails.

The CPU of the log read is raypod's CPU with live output on over its CPU with it off
(``--no-follow-logs``), at each size; the SDK's over the same pair is ``sdk-stream`` over ``sdk``.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.report import Goal, Section, is_status_path, ratio, request_kinds, table
from bench.tools import (
    HEADERS,
    JOB,
    NO_FOLLOW,
    RAYPOD,
    SDK,
    SDK_LIFECYCLE_SCRIPT,
    SDK_STREAM,
    SDK_STREAM_SCRIPT,
    SDK_VENV,
    VENVS,
    Stage,
    ensure_venv,
    raypod_command,
    sdk_env,
    venv_python,
)
from devtools.measure import run_measured
from devtools.proxy import Request

MIB = 1024 * 1024
POLL_INTERVAL = 1.0
TOOLS = (RAYPOD, NO_FOLLOW, SDK, SDK_STREAM)
BASELINES = (SDK, SDK_STREAM)
#: The goals of docs/benchmark.md, checked at the end of every run.
GOAL_PEAK_RSS_MIB = 40.0
GOAL_COLD_START_RATIO = 3.0
GOAL_INSTALL_MIB = 30.0
#: Issue 13: live output may cost at most this much more CPU than none, at the largest log.
GOAL_LIVE_CPU_RATIO = 1.3
#: Where the job's first line may start in the log: after Ray's few start-up lines.
MAX_LOG_PREFIX = 4096
RUN_TIMEOUT = 1800.0
#: Not runtime dependencies: the installers that every fresh venv carries.
INSTALLERS = {"pip", "setuptools", "wheel", "pkg_resources"}
#: Not a baseline: the first ray-pod's footprint, with the Kubernetes client it imported.
KUBE_VENV = "sdk-kubernetes"

SIZE_OF_DEPS = """\
import importlib.metadata as md, json, sys
skip = set(sys.argv[1].split(","))
total, names = 0, []
for dist in md.distributions():
    name = dist.metadata["Name"].lower()
    if name in skip or not dist.files:
        continue
    names.append(name)
    for file in dist.files:
        path = file.locate()
        if path.is_file():
            total += path.stat().st_size
print(json.dumps({"bytes": total, "dists": sorted(names)}))
"""


@dataclass
class Measure:
    tool: str
    megabytes: int
    peak_rss_kib: int
    cpu_seconds: float
    cold_start: float
    wall: float
    requests: list[Request]
    log_bytes: int
    #: sha256 of the job's lines in the uploaded object (checked against what the job printed).
    job_lines_sha256: str

    @property
    def polls(self) -> int:
        return sum(1 for r in self.requests if r.method == "GET" and is_status_path(r.path))

    def raw(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "mb": self.megabytes,
            "peak_rss_kib": self.peak_rss_kib,
            "cpu_s": round(self.cpu_seconds, 3),
            "cold_start_s": round(self.cold_start, 3),
            "wall_s": round(self.wall, 3),
            "requests": [f"{r.method} {r.path}" for r in self.requests],
            "log_bytes": self.log_bytes,
            "job_lines_sha256": self.job_lines_sha256,
        }


# -- footprints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footprints:
    #: name -> (bytes, distributions)
    installs: dict[str, tuple[int, list[str]]]
    #: name -> peak RSS (KiB) of a process that only imports
    imports: dict[str, int]


def installed_size(python: Path) -> tuple[int, list[str]]:
    answer = subprocess.run(
        [str(python), "-I", "-c", SIZE_OF_DEPS, ",".join(sorted(INSTALLERS))],
        check=True,
        capture_output=True,
        text=True,
        cwd=VENVS,
    )
    data = json.loads(answer.stdout)
    return int(data["bytes"]), list(data["dists"])


def import_rss_kib(python: Path, code: str) -> int:
    """Peak RSS of a process that only imports (the floor before any work)."""
    return run_child([str(python), "-I", "-c", code], env=dict(os.environ), cwd=VENVS)[0]


def measure_footprints(ray_version: str) -> Footprints:
    """Install sizes and import RSS of raypod, the baselines, and the first ray-pod's set."""
    kube_python = ensure_venv(KUBE_VENV, [f"ray[default]=={ray_version}", "minio", "kubernetes"])
    raypod_python, sdk_python = venv_python(RAYPOD), venv_python(SDK_VENV)
    installs = {
        RAYPOD: installed_size(raypod_python),
        SDK: installed_size(sdk_python),
        KUBE_VENV: installed_size(kube_python),
    }
    imports = {
        RAYPOD: import_rss_kib(
            raypod_python,
            "import raypod.lean_imports as lean; lean.import_requests(); lean.import_minio(); "
            "import raypod.cli, raypod.commands, raypod.runner, raypod.s3",
        ),
        SDK: import_rss_kib(sdk_python, "from ray.job_submission import JobSubmissionClient; import minio"),
        "sdk+kubernetes": import_rss_kib(
            kube_python, "from ray.job_submission import JobSubmissionClient; import minio, kubernetes.client"
        ),
    }
    return Footprints(installs, imports)


# -- one run -------------------------------------------------------------------------------


def run_child(
    argv: list[str], env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT
) -> tuple[int, float, float]:
    """Run to the end; return own peak RSS (KiB), CPU seconds and when it was started."""
    usage = run_measured(argv, env=env, cwd=cwd, timeout=timeout)
    if usage.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} exited {usage.returncode}:\n{usage.stderr[-3000:]}")
    return usage.peak_rss_kib, usage.cpu_seconds, usage.started


class Bench:
    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.proxy = stage.proxy
        self.bucket = stage.bucket
        self.s3_client = stage.s3.client()

    def run(self, tool: str, megabytes: int) -> Measure:
        name = f"bench-{tool}-{megabytes}-{uuid.uuid4().hex[:6]}"
        object_name = f"{name}/logs"
        if tool in (RAYPOD, NO_FOLLOW):
            command = raypod_command(
                self.stage.work / name,
                name,
                self.proxy.url,
                self.stage.s3,
                self.bucket,
                {"mb": megabytes},
                update_interval=POLL_INTERVAL,
                follow=tool == RAYPOD,
            )
            argv, env = command.argv, command.env
        else:
            script = SDK_STREAM_SCRIPT if tool == SDK_STREAM else SDK_LIFECYCLE_SCRIPT
            argv, env = self._sdk(name, megabytes, script, object_name), sdk_env()
        self.proxy.clear_requests()
        # cwd: not the repo, whose raypod/ would shadow the copy installed in the venv.
        rss, cpu, started = run_child(argv, env, cwd=self.stage.work)
        wall = time.monotonic() - started
        requests = self.proxy.recorded()
        posts = [r.at for r in requests if r.method == "POST" and r.path.rstrip("/") == "/api/jobs"]
        if not posts:
            raise RuntimeError(f"{tool} never posted a job")
        size, digest = self._check_upload(tool, megabytes, object_name)
        # The objects are only checked, not kept: 1 GB logs would fill the S3 server's disk.
        self.s3_client.remove_object(self.bucket, object_name)
        return Measure(tool, megabytes, rss, cpu, posts[0] - started, wall, requests, size, digest)

    def _check_upload(self, tool: str, megabytes: int, object_name: str) -> tuple[int, str]:
        """The object's size, and the sha256 of the job's lines in it, which must be what the job printed."""
        response = self.s3_client.get_object(self.bucket, object_name)
        marker = job_line(0)[:16]
        size, head, digest, found = 0, b"", hashlib.sha256(), False
        try:
            for chunk in response.stream(MIB):
                size += len(chunk)
                if found:
                    digest.update(chunk)
                    continue
                head += chunk
                at = head.find(marker)
                if at >= 0:
                    found = True
                    if at > MAX_LOG_PREFIX:
                        raise RuntimeError(f"{tool}: the job's first line starts at byte {at} of the log")
                    digest.update(head[at:])
                elif len(head) > MAX_LOG_PREFIX + len(marker):
                    raise RuntimeError(f"{tool}: no line of the job in the first {len(head)} bytes of the log")
        finally:
            response.close()
            response.release_conn()
        if not found or digest.hexdigest() != expected_sha256(megabytes):
            raise RuntimeError(f"{tool} uploaded {size} bytes that are not the {megabytes} MB the job printed")
        return size, digest.hexdigest()

    def _sdk(self, name: str, megabytes: int, script: Path, object_name: str) -> list[str]:
        s3 = self.stage.s3
        return [
            str(venv_python(SDK_VENV)),
            str(script),
            "--address",
            self.proxy.url,
            "--entrypoint",
            f"python {JOB} --kwargs mb={megabytes}",
            "--submission-id",
            name,
            "--s3-endpoint",
            s3.endpoint,
            "--access-key",
            s3.ACCESS_KEY,
            "--secret-key",
            s3.SECRET_KEY,
            "--bucket",
            self.bucket,
            "--object",
            object_name,
            "--interval",
            str(POLL_INTERVAL),
        ]


def run_log_sizes(stage: Stage, sizes: list[int], repeats: dict[int, int]) -> dict[tuple[str, int], list[Measure]]:
    bench = Bench(stage)
    # One unmeasured run each: the first job on a fresh head pays for its worker start-up.
    for tool in (RAYPOD, SDK, SDK_STREAM):
        bench.run(tool, 1)
    results: dict[tuple[str, int], list[Measure]] = {}
    for size in sizes:
        for repeat in range(repeats[size]):
            # Rotate the order so no tool always runs on a warmer head.
            shift = repeat % len(TOOLS)
            for tool in TOOLS[shift:] + TOOLS[:shift]:
                measure = bench.run(tool, size)
                results.setdefault((tool, size), []).append(measure)
                print(
                    f"{tool:16} {size:5} MB  run {repeat + 1}: peak RSS {measure.peak_rss_kib / 1024:6.1f} MiB"
                    f"  CPU {measure.cpu_seconds:6.2f} s  cold start {measure.cold_start:5.2f} s"
                    f"  wall {measure.wall:6.1f} s  requests {len(measure.requests)}",
                    flush=True,
                )
    return results


# -- the job's output ------------------------------------------------------------------------


def job_line(number: int) -> bytes:
    """Line ``number`` of bench/job.py's output (``mb`` kind), as it prints it."""
    return f"line {number:010d} ".encode() + b"x" * 83 + b"\n"


_EXPECTED: dict[int, str] = {}


def expected_sha256(megabytes: int) -> str:
    """The sha256 of all bench/job.py prints for ``megabytes`` (computed once per size)."""
    if megabytes not in _EXPECTED:
        digest = hashlib.sha256()
        for start in range(0, megabytes * 10_000, 10_000):
            digest.update(b"".join(job_line(i) for i in range(start, start + 10_000)))
        _EXPECTED[megabytes] = digest.hexdigest()
    return _EXPECTED[megabytes]


# -- report --------------------------------------------------------------------------------


def render_log_sizes(
    results: dict[tuple[str, int], list[Measure]],
    sizes: list[int],
    repeats: dict[int, int],
    footprints: Footprints,
) -> Section:
    installs, imports = footprints.installs, footprints.imports
    rows: list[tuple[str, ...]] = []

    def cell(tool: str, size: int, value: str) -> float:
        return statistics.median([float(getattr(m, value)) for m in results[(tool, size)]])

    def add(label: str, values: dict[str, float | None], unit: str, fmt: str, scale: float = 1) -> None:
        """One row; the ratio is against the better (lower) of the two baselines. None: as the column before."""
        raypod = values[RAYPOD]
        better = min(v for t, v in values.items() if t in BASELINES and v is not None)
        assert raypod is not None
        shown = ["same" if (value := values[tool]) is None else fmt.format(value / scale) + unit for tool in TOOLS]
        rows.append((label, *shown, ratio(better, raypod)))

    def per_tool(size: int, value: str) -> dict[str, float | None]:
        return {tool: cell(tool, size, value) for tool in TOOLS}

    for size in sizes:
        add(f"peak RSS, {size} MB log", per_tool(size, "peak_rss_kib"), " MiB", "{:.1f}", 1024)
    for size in sizes:
        add(f"CPU user+sys, {size} MB log", per_tool(size, "cpu_seconds"), " s", "{:.2f}")
    live_ratios = {size: cell(RAYPOD, size, "cpu_seconds") / cell(NO_FOLLOW, size, "cpu_seconds") for size in sizes}
    for size in sizes:
        # Live output on over off: raypod's pair, and the SDK's (tail streamed over get_job_logs).
        sdk_ratio = cell(SDK_STREAM, size, "cpu_seconds") / cell(SDK, size, "cpu_seconds")
        label = f"CPU of the log read: live output on ÷ off, {size} MB log"
        rows.append((label, f"{live_ratios[size]:.2f}×", "base", "base", f"{sdk_ratio:.2f}×", "-"))
    for size in sizes:
        add(f"wall time, {size} MB log", per_tool(size, "wall"), " s", "{:.1f}")
    cold = {
        tool: statistics.median([m.cold_start for (t, _), ms in results.items() if t == tool for m in ms])
        for tool in TOOLS
    }
    add("cold start: spawn to `POST /api/jobs/`", dict(cold), " s", "{:.2f}")
    same = {NO_FOLLOW: None, SDK_STREAM: None}
    add("RSS after imports only", {RAYPOD: imports[RAYPOD], SDK: imports[SDK], **same}, " MiB", "{:.1f}", 1024)
    add(
        "installed runtime dependencies",
        {RAYPOD: installs[RAYPOD][0], SDK: installs[SDK][0], **same},
        " MiB",
        "{:.1f}",
        MIB,
    )
    for size in sizes:
        others = {t: statistics.median([len(m.requests) - m.polls for m in results[(t, size)]]) for t in TOOLS}
        polls = {t: statistics.median([m.polls for m in results[(t, size)]]) for t in TOOLS}
        better = min(others[t] for t in BASELINES)
        rows.append(
            (
                f"dashboard requests besides polls (+ status polls), {size} MB log",
                *[f"{others[t]:g} (+ {polls[t]:g})" for t in TOOLS],
                ratio(better, others[RAYPOD]),
            )
        )

    peak = max(cell(RAYPOD, size, "peak_rss_kib") for size in sizes) / 1024
    cold_ratio = min(cold[t] for t in BASELINES) / cold[RAYPOD]
    install = installs[RAYPOD][0] / MIB
    largest = sizes[-1]
    goals = [
        Goal(f"peak RSS ≤ {GOAL_PEAK_RSS_MIB:g} MiB at any log size", f"{peak:.1f} MiB", peak <= GOAL_PEAK_RSS_MIB),
        Goal(
            f"cold start ≥ {GOAL_COLD_START_RATIO:g}× faster than the better SDK baseline",
            f"{cold_ratio:.1f}×",
            cold_ratio >= GOAL_COLD_START_RATIO,
        ),
        Goal(f"runtime install ≤ {GOAL_INSTALL_MIB:g} MiB", f"{install:.1f} MiB", install <= GOAL_INSTALL_MIB),
        Goal(
            f"CPU of the log read with live output ≤ {GOAL_LIVE_CPU_RATIO:g}× without, at {largest} MB",
            f"{live_ratios[largest]:.2f}×",
            live_ratios[largest] <= GOAL_LIVE_CPU_RATIO,
        ),
    ]
    runs = ", ".join(f"{repeats[size]} at {size} MB" for size in sizes)
    lines = [
        f"Median of the runs ({runs}). Ratio = the better of the two SDK baselines / raypod (default, "
        "live output on); above 1×, raypod uses less.",
        "",
        *table(("measure", *(HEADERS[tool] for tool in TOOLS), "ratio (better SDK / raypod)"), rows),
        "",
        *[
            f"- {tool}'s requests ({largest} MB): {request_kinds(results[(tool, largest)][0].requests)}"
            for tool in TOOLS
        ],
        "- Every uploaded log held the job's lines byte for byte (sha256), after Ray's start-up lines.",
        f"- raypod's runtime distributions: {', '.join(installs[RAYPOD][1])}",
        f"- The baselines' environment (both): {len(installs[SDK][1])} distributions",
        f"- With `kubernetes` as well, as the first ray-pod: {installs[KUBE_VENV][0] / MIB:.1f} MiB installed, "
        f"{imports['sdk+kubernetes'] / 1024:.1f} MiB RSS after `import kubernetes.client` too",
    ]
    raw: dict[str, object] = {
        "sizes_mb": sizes,
        "repeats": {str(size): count for size, count in repeats.items()},
        "installs": {name: {"bytes": size, "dists": dists} for name, (size, dists) in installs.items()},
        "import_rss_kib": imports,
        "runs": [m.raw() for ms in results.values() for m in ms],
    }
    raypod_cpu, sdk_cpu = cell(RAYPOD, largest, "cpu_seconds"), cell(SDK_STREAM, largest, "cpu_seconds")
    headline = [
        (
            f"peak RSS, {largest} MB log",
            f"{cell(RAYPOD, largest, 'peak_rss_kib') / 1024:.1f} MiB",
            f"{cell(SDK_STREAM, largest, 'peak_rss_kib') / 1024:.1f} MiB",
        ),
        (f"CPU, {largest} MB log", f"{raypod_cpu:.2f} s", f"{sdk_cpu:.2f} s"),
        (
            f"CPU of the log read, live output on ÷ off, {largest} MB log",
            f"{live_ratios[largest]:.2f}×",
            f"{sdk_cpu / cell(SDK, largest, 'cpu_seconds'):.2f}×",
        ),
        ("cold start: spawn to `POST /api/jobs/`", f"{cold[RAYPOD]:.2f} s", f"{min(cold[t] for t in BASELINES):.2f} s"),
        ("installed runtime dependencies", f"{install:.1f} MiB", f"{installs[SDK][0] / MIB:.1f} MiB"),
    ]
    return Section(lines, goals, raw, headline)
