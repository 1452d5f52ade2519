"""raypod against the Ray SDK + minio, two ways: one machine, one run, one Ray head, one S3 server.

    make bench                                   # 1 MB and 100 MB logs, 3 repeats; 1 GB once
    .venv/bin/python -m bench.run --sizes 1,100 --repeats 5    # from the repository root

Each tool runs the same lifecycle (submit, wait, get the log into S3) as a child process, from its
own virtualenv under bench/.venvs/ (raypod: ``pip install .``; both baselines: ``ray[default]`` and
``minio``, nothing they do not import). The two baselines:

- ``sdk``: as the first ray-pod did (bench/sdk_lifecycle.py): poll every second, ``get_job_logs``
  (the whole log in one string), one ``put_object``;
- ``sdk-stream``: as a careful user would (bench/sdk_streaming.py): ``tail_job_logs`` streamed into
  a multipart upload, minio imported only once the log comes.

Measured per run:

- peak RSS and CPU time (user+sys) of the child, from ``wait4`` in a small launcher
  (devtools/measure.py says why): the job itself runs in Ray's workers, so its time is not counted;
- cold start: from spawning the child to its ``POST /api/jobs/`` reaching the dashboard;
- HTTP requests to the dashboard, counted by a proxy on loopback in front of it (devtools/proxy.py,
  keeping connections alive as the tools open them);
- the uploaded object: the job's lines must be there byte for byte (sha256), after Ray's few
  start-up lines, or the run fails.

The median of the repeats is reported, as a markdown table on stdout and, with every run's raw
figures, in bench/results/<UTC time>.md and .json. The goals (docs/benchmark.md) are checked last:
a missed goal makes the exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from devtools.measure import run_measured
from devtools.proxy import Proxy, Request
from devtools.services import LocalRay, LocalS3

REPO = Path(__file__).resolve().parent.parent

BENCH = REPO / "bench"
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results"
JOB = BENCH / "job.py"
SDK_SCRIPT = BENCH / "sdk_lifecycle.py"
SDK_STREAM_SCRIPT = BENCH / "sdk_streaming.py"
MIB = 1024 * 1024
POLL_INTERVAL = 1.0
#: raypod without the live copy of the job's output: the baselines print none either.
NO_FOLLOW = "raypod-no-follow"
SDK = "sdk"
SDK_STREAM = "sdk-stream"
TOOLS = ("raypod", NO_FOLLOW, SDK, SDK_STREAM)
BASELINES = (SDK, SDK_STREAM)
#: The goals of docs/benchmark.md, checked at the end of every run.
GOAL_PEAK_RSS_MIB = 40.0
GOAL_COLD_START_RATIO = 3.0
GOAL_INSTALL_MIB = 30.0
#: Where the job's first line may start in the log: after Ray's few start-up lines.
MAX_LOG_PREFIX = 4096
RUN_TIMEOUT = 1800.0
#: Not runtime dependencies: the installers that every fresh venv carries.
INSTALLERS = {"pip", "setuptools", "wheel", "pkg_resources"}

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
        return sum(1 for r in self.requests if r.method == "GET" and _is_status_path(r.path))


def _is_status_path(path: str) -> bool:
    bare = path.split("?")[0].rstrip("/")
    return bare.startswith("/api/jobs/") and bare.count("/") == 3


# -- virtualenvs ---------------------------------------------------------------------------


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, packages: list[str], reinstall: list[str] | None = None) -> Path:
    python = venv_python(name)
    stamp = VENVS / name / ".bench-installed"
    if not stamp.exists():
        shutil.rmtree(VENVS / name, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *packages], check=True)
        stamp.write_text(" ".join(packages) + "\n")
    elif reinstall:
        # raypod's own code may have changed since the venv was made; its dependencies have not.
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", *reinstall], check=True
        )
    return python


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
    def __init__(self, ray: LocalRay, s3: LocalS3, proxy: Proxy, work: Path) -> None:
        self.ray = ray
        self.s3 = s3
        self.proxy = proxy
        self.work = work
        self.s3_client = s3.client()
        self.bucket = "bench-logs"
        if not self.s3_client.bucket_exists(self.bucket):
            self.s3_client.make_bucket(self.bucket)

    def run(self, tool: str, megabytes: int) -> Measure:
        name = f"bench-{tool}-{megabytes}-{uuid.uuid4().hex[:6]}"
        if tool.startswith("raypod"):
            argv, env = self._raypod(name, megabytes)
            if tool == NO_FOLLOW:
                argv.append("--no-follow-logs")
            object_name = f"{name}/logs"
        else:
            script = SDK_STREAM_SCRIPT if tool == SDK_STREAM else SDK_SCRIPT
            argv, env, object_name = self._sdk(name, megabytes, script)
        self.proxy.clear_requests()
        # cwd: not the repo, whose raypod/ would shadow the copy installed in the venv.
        rss, cpu, started = run_child(argv, env, cwd=self.work)
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

    def _raypod(self, name: str, megabytes: int) -> tuple[list[str], dict[str, str]]:
        root = self.work / name
        config = root / "config"
        config.mkdir(parents=True)
        values = {
            "resourceURL": self.proxy.url,
            "updateInterval": str(POLL_INTERVAL),
            "jobdata.jobScript": str(JOB),
            "jobdata.scriptLocation": "remote",
            "jobdata.jobParameters": json.dumps({"mb": megabytes}),
            "s3.endpoint": self.s3.endpoint,
            "s3.secure": "false",
            "s3upload.bucket": self.bucket,
        }
        for key, value in values.items():
            (config / key).write_text(value)
        credentials = root / "credentials"
        credentials.mkdir()
        (credentials / "username").write_text("placeholder")
        (credentials / "password").write_text("placeholder")
        s3_credentials = self.s3.write_credentials(root / "s3credentials")
        argv = [
            str(venv_python("raypod")),
            "-m",
            "raypod",
            "run",
            "--config",
            str(config),
            "--credentials",
            str(credentials),
            "--s3-credentials",
            str(s3_credentials),
            "--status-file",
            str(root / "status.json"),
        ]
        env = {**os.environ, "JOBNAME": name, "NAMESPACE": "bench"}
        return argv, env

    def _sdk(self, name: str, megabytes: int, script: Path) -> tuple[list[str], dict[str, str], str]:
        object_name = f"{name}/logs"
        argv = [
            str(venv_python(SDK)),
            str(script),
            "--address",
            self.proxy.url,
            "--entrypoint",
            f"python {JOB} --kwargs mb={megabytes}",
            "--submission-id",
            name,
            "--s3-endpoint",
            self.s3.endpoint,
            "--access-key",
            self.s3.ACCESS_KEY,
            "--secret-key",
            self.s3.SECRET_KEY,
            "--bucket",
            self.bucket,
            "--object",
            object_name,
            "--interval",
            str(POLL_INTERVAL),
        ]
        # The SDK would otherwise try to connect a Ray driver or report usage.
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        return argv, env, object_name


# -- the job's output ------------------------------------------------------------------------


def job_line(number: int) -> bytes:
    """Line ``number`` of bench/job.py's output, as it prints it."""
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


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(baseline: float, raypod: float) -> str:
    return f"{baseline / raypod:.1f}×" if raypod else "-"


def request_kinds(measures: list[Measure]) -> str:
    kinds: dict[str, int] = {}
    for request in measures[0].requests:
        path = request.path.split("?")[0]
        if _is_status_path(path):
            path = "/api/jobs/<id>"
        elif path.startswith("/api/jobs/") and path.count("/") > 3:
            path = "/api/jobs/<id>/" + path.split("/", 4)[4]
        key = f"{request.method} {path}"
        kinds[key] = kinds.get(key, 0) + 1
    return ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in kinds.items())


@dataclass(frozen=True)
class Report:
    text: str
    #: (goal, result, met)
    goals: list[tuple[str, str, bool]]


def render(
    results: dict[tuple[str, int], list[Measure]],
    sizes: list[int],
    repeats: dict[int, int],
    installs: dict[str, tuple[int, list[str]]],
    imports: dict[str, int],
    machine: str,
    raw_file: str,
) -> Report:
    rows: list[tuple[str, ...]] = []

    def cell(tool: str, size: int, value: str) -> float:
        return median([float(getattr(m, value)) for m in results[(tool, size)]])

    def add(label: str, values: dict[str, float | None], unit: str, fmt: str, scale: float = 1) -> None:
        """One row; the ratio is against the better (lower) of the two baselines. None: as the column before."""
        raypod = values["raypod"]
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
    for size in sizes:
        add(f"wall time, {size} MB log", per_tool(size, "wall"), " s", "{:.1f}")
    cold = {tool: median([m.cold_start for (t, _), ms in results.items() if t == tool for m in ms]) for tool in TOOLS}
    add("cold start: spawn to `POST /api/jobs/`", dict(cold), " s", "{:.2f}")
    same = {NO_FOLLOW: None, SDK_STREAM: None}
    add("RSS after imports only", {"raypod": imports["raypod"], SDK: imports[SDK], **same}, " MiB", "{:.1f}", 1024)
    add(
        "installed runtime dependencies",
        {"raypod": installs["raypod"][0], SDK: installs[SDK][0], **same},
        " MiB",
        "{:.1f}",
        MIB,
    )
    for size in sizes:
        others = {t: median([len(m.requests) - m.polls for m in results[(t, size)]]) for t in TOOLS}
        polls = {t: median([m.polls for m in results[(t, size)]]) for t in TOOLS}
        better = min(others[t] for t in BASELINES)
        rows.append(
            (
                f"dashboard requests besides polls (+ status polls), {size} MB log",
                *[f"{others[t]:g} (+ {polls[t]:g})" for t in TOOLS],
                ratio(better, others["raypod"]),
            )
        )

    peak = max(cell("raypod", size, "peak_rss_kib") for size in sizes) / 1024
    cold_ratio = min(cold[t] for t in BASELINES) / cold["raypod"]
    install = installs["raypod"][0] / MIB
    goals = [
        (f"peak RSS ≤ {GOAL_PEAK_RSS_MIB:g} MiB at any log size", f"{peak:.1f} MiB", peak <= GOAL_PEAK_RSS_MIB),
        (
            f"cold start ≥ {GOAL_COLD_START_RATIO:g}× faster than the better SDK baseline",
            f"{cold_ratio:.1f}×",
            cold_ratio >= GOAL_COLD_START_RATIO,
        ),
        (f"runtime install ≤ {GOAL_INSTALL_MIB:g} MiB", f"{install:.1f} MiB", install <= GOAL_INSTALL_MIB),
    ]
    runs = ", ".join(f"{repeats[size]} at {size} MB" for size in sizes)
    lines = [
        machine,
        "",
        f"Median of the runs ({runs}). Ratio = the better of the two SDK baselines / raypod (default, "
        "live output on); above 1×, raypod uses less. Raw figures: " + raw_file,
        "",
        "| measure | raypod | raypod --no-follow-logs | SDK: `get_job_logs` + `put_object` "
        "| SDK: `tail_job_logs` streamed to S3 | ratio (better SDK / raypod) |",
        "|---|---|---|---|---|---|",
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
        *[f"- {tool}'s requests ({sizes[-1]} MB): {request_kinds(results[(tool, sizes[-1])])}" for tool in TOOLS],
        "- Every uploaded log held the job's lines byte for byte (sha256), after Ray's start-up lines.",
        f"- raypod's runtime distributions: {', '.join(installs['raypod'][1])}",
        f"- The baselines' environment (both): {len(installs[SDK][1])} distributions",
        f"- With `kubernetes` as well, as the first ray-pod: {installs['sdk-kubernetes'][0] / MIB:.1f} MiB installed, "
        f"{imports['sdk+kubernetes'] / 1024:.1f} MiB RSS after `import kubernetes.client` too",
        "",
        "| goal | result | met |",
        "|---|---|---|",
        *[f"| {goal} | {result} | {'yes' if met else '**no**'} |" for goal, result, met in goals],
    ]
    return Report("\n".join(lines) + "\n", goals)


def machine_line(ray_version: str, sizes: list[int]) -> str:
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    free = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores, {memory} memory, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, Ray {ray_version}; "
        f"log sizes {', '.join(f'{s} MB' for s in sizes)} ({free:.0f} GB free on {tempfile.gettempdir()})."
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,1000", help="log sizes in MB, comma-separated (default 1,100,1000)")
    parser.add_argument(
        "--repeats",
        default="3,1000=1",
        help="runs per tool and size, the median is reported; SIZE=N for one size (default 3, and 1 at 1000 MB)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    repeats = parse_repeats(args.repeats, sizes)
    free_gb = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    # Ray keeps each driver log and the S3 server spools each object: about 3× the log per run.
    needed = 3 * sum(size * len(TOOLS) * repeats[size] for size in sizes) / 1000
    if needed > free_gb * 0.8:
        print(f"warning: these sizes need about {needed:.0f} GB of {free_gb:.0f} GB free; drop 1000 from --sizes")

    ray_version = subprocess.run(
        [sys.executable, "-c", "import ray; print(ray.__version__)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    print("preparing the virtualenvs under bench/.venvs/ (cached) ...", flush=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    raypod_python = ensure_venv("raypod", [str(REPO)], reinstall=[str(REPO)])
    # Only what the baselines import: the Ray SDK (its jobs client needs ray[default]) and minio.
    sdk_python = ensure_venv(SDK, [f"ray[default]=={ray_version}", "minio"])
    # Not a baseline: the first ray-pod's footprint, with the Kubernetes client it imported.
    kube_python = ensure_venv("sdk-kubernetes", [f"ray[default]=={ray_version}", "minio", "kubernetes"])
    installs = {
        "raypod": installed_size(raypod_python),
        SDK: installed_size(sdk_python),
        "sdk-kubernetes": installed_size(kube_python),
    }
    imports = {
        "raypod": import_rss_kib(
            raypod_python, "import raypod.cli, raypod.commands, raypod.runner, raypod.s3; raypod.s3._import_minio()"
        ),
        SDK: import_rss_kib(sdk_python, "from ray.job_submission import JobSubmissionClient; import minio"),
        "sdk+kubernetes": import_rss_kib(
            kube_python, "from ray.job_submission import JobSubmissionClient; import minio, kubernetes.client"
        ),
    }

    ray, s3 = LocalRay(), LocalS3()
    results: dict[tuple[str, int], list[Measure]] = {}
    work = Path(tempfile.mkdtemp(prefix="raypod-bench-"))
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in (pool.submit(ray.start), pool.submit(s3.start)):
                started.result()
        with Proxy("127.0.0.1", ray.port, keep_alive=True) as proxy:
            bench = Bench(ray, s3, proxy, work)
            # One unmeasured run each: the first job on a fresh head pays for its worker start-up.
            for tool in ("raypod", SDK, SDK_STREAM):
                bench.run(tool, 1)
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
    finally:
        ray.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)

    stamp = time.strftime("%Y-%m-%dT%H%MZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    raw_path = RESULTS / f"{stamp}.json"
    report = render(
        results, sizes, repeats, installs, imports, machine_line(ray_version, sizes), str(raw_path.relative_to(REPO))
    )
    raw = [
        {
            "tool": m.tool,
            "mb": m.megabytes,
            "peak_rss_kib": m.peak_rss_kib,
            "cpu_s": round(m.cpu_seconds, 3),
            "cold_start_s": round(m.cold_start, 3),
            "wall_s": round(m.wall, 3),
            "requests": [f"{r.method} {r.path}" for r in m.requests],
            "log_bytes": m.log_bytes,
            "job_lines_sha256": m.job_lines_sha256,
        }
        for ms in results.values()
        for m in ms
    ]
    summary = {
        "machine": machine_line(ray_version, sizes),
        "sizes_mb": sizes,
        "repeats": {str(size): count for size, count in repeats.items()},
        "installs": {name: {"bytes": size, "dists": dists} for name, (size, dists) in installs.items()},
        "import_rss_kib": imports,
        "goals": [{"goal": goal, "result": result, "met": met} for goal, result, met in report.goals],
        "runs": raw,
    }
    raw_path.write_text(json.dumps(summary, indent=1) + "\n")
    (RESULTS / f"{stamp}.md").write_text(report.text)
    print()
    print(report.text)
    missed = [goal for goal, _, met in report.goals if not met]
    if missed:
        print(f"goal missed: {'; '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
