"""raypod against the Ray SDK + minio: one machine, one run, one Ray head, one S3 server.

    make bench                                   # 1 MB, 100 MB and 1 GB logs, 3 repeats
    .venv/bin/python -m bench.run --sizes 1,100 --repeats 5    # from the repository root

Each tool runs the same lifecycle (submit, wait, fetch the log, upload it to S3) as a
child process, from its own virtualenv under bench/.venvs/ (raypod: ``pip install .``;
the baseline: ``ray[default]``, ``kubernetes``, ``minio``). Measured per run:

- peak RSS and CPU time (user+sys) of the child, from ``wait4`` in a small launcher
  (devtools/measure.py says why): the job itself runs in Ray's workers, so its time is not counted;
- cold start: from spawning the child to its ``POST /api/jobs/`` reaching the dashboard;
- HTTP requests to the dashboard, counted by a proxy on loopback in front of it (devtools/proxy.py,
  keeping connections alive as the tools open them).

The median of the repeats is reported, as a markdown table on stdout and in
bench/results/latest.md.
"""

from __future__ import annotations

import argparse
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
MIB = 1024 * 1024
POLL_INTERVAL = 1.0
#: raypod without the live copy of the job's output: the baseline prints none either.
NO_FOLLOW = "raypod-no-follow"
TOOLS = ("raypod", NO_FOLLOW, "sdk")
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
            argv, env, object_name = self._sdk(name, megabytes)
        self.proxy.clear_requests()
        # cwd: not the repo, whose raypod/ would shadow the copy installed in the venv.
        rss, cpu, started = run_child(argv, env, cwd=self.work)
        wall = time.monotonic() - started
        requests = self.proxy.recorded()
        posts = [r.at for r in requests if r.method == "POST" and r.path.rstrip("/") == "/api/jobs"]
        if not posts:
            raise RuntimeError(f"{tool} never posted a job")
        size = self.s3_client.stat_object(self.bucket, object_name).size
        if size < megabytes * 1_000_000:
            raise RuntimeError(f"{tool} uploaded {size} bytes for a {megabytes} MB log")
        # The objects are only checked, not kept: 1 GB logs would fill the S3 server's disk.
        self.s3_client.remove_object(self.bucket, object_name)
        return Measure(tool, megabytes, rss, cpu, posts[0] - started, wall, requests, size)

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

    def _sdk(self, name: str, megabytes: int) -> tuple[list[str], dict[str, str], str]:
        object_name = f"{name}/logs"
        argv = [
            str(venv_python("sdk")),
            str(SDK_SCRIPT),
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
        elif path.startswith("/api/jobs/") and path.endswith("/logs"):
            path = "/api/jobs/<id>/logs"
        key = f"{request.method} {path}"
        kinds[key] = kinds.get(key, 0) + 1
    return ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in kinds.items())


def render(
    results: dict[tuple[str, int], list[Measure]],
    sizes: list[int],
    repeats: int,
    installs: dict[str, tuple[int, list[str]]],
    imports: dict[str, int],
    machine: str,
) -> str:
    rows: list[tuple[str, ...]] = []

    def cell(tool: str, size: int, value: str) -> float:
        return median([float(getattr(m, value)) for m in results[(tool, size)]])

    def add(label: str, values: list[float | None], unit: str, fmt: str, scale: float = 1) -> None:
        raypod, sdk = values[0], values[2]
        assert raypod is not None and sdk is not None
        shown = [fmt.format(v / scale) + unit if v is not None else "same" for v in values]
        rows.append((label, *shown, ratio(sdk, raypod)))

    def per_tool(size: int, value: str) -> list[float | None]:
        return [cell(tool, size, value) for tool in TOOLS]

    for size in sizes:
        add(f"peak RSS, {size} MB log", per_tool(size, "peak_rss_kib"), " MiB", "{:.1f}", 1024)
    for size in sizes:
        add(f"CPU user+sys, {size} MB log", per_tool(size, "cpu_seconds"), " s", "{:.2f}")
    for size in sizes:
        add(f"wall time, {size} MB log", per_tool(size, "wall"), " s", "{:.1f}")
    cold: list[float | None] = [
        median([m.cold_start for (t, _), ms in results.items() if t == tool for m in ms]) for tool in TOOLS
    ]
    add("cold start: spawn to POST /api/jobs/", cold, " s", "{:.2f}")
    add("RSS after imports only", [imports["raypod"], None, imports["sdk"]], " MiB", "{:.1f}", 1024)
    add("installed runtime deps", [installs["raypod"][0], None, installs["sdk"][0]], " MiB", "{:.1f}", MIB)
    for size in sizes:
        others = [median([len(m.requests) - m.polls for m in results[(t, size)]]) for t in TOOLS]
        polls = [median([m.polls for m in results[(t, size)]]) for t in TOOLS]
        rows.append(
            (
                f"dashboard requests besides polls (+ status polls), {size} MB log",
                *[f"{o:g} (+ {p:g})" for o, p in zip(others, polls, strict=True)],
                ratio(others[2], others[0]),
            )
        )
    lines = [
        machine,
        "",
        f"Median of {repeats} runs. Ratio = SDK / raypod (default, live output on); above 1×, raypod uses less.",
        "",
        "| measure | raypod | raypod --no-follow-logs | Ray SDK + minio | ratio |",
        "|---|---|---|---|---|",
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
        f"- raypod's requests ({sizes[-1]} MB): {request_kinds(results[('raypod', sizes[-1])])}",
        f"- SDK's requests ({sizes[-1]} MB): {request_kinds(results[('sdk', sizes[-1])])}",
        "- Minimum the REST API needs: 2 besides polls (`POST /api/jobs/` and one log read), plus status polls "
        f"(at least one; here one per {POLL_INTERVAL:g} s while the job runs, for both tools).",
        f"- raypod's runtime distributions: {', '.join(installs['raypod'][1])}",
        f"- Baseline's runtime distributions: {len(installs['sdk'][1])}",
        f"- Baseline RSS after `import kubernetes.client` as well: {imports['sdk+kubernetes'] / 1024:.1f} MiB",
    ]
    return "\n".join(lines) + "\n"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,1000", help="log sizes in MB, comma-separated (default 1,100,1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tool and size; the median is reported")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    free_gb = shutil.disk_usage(tempfile.gettempdir()).free / 1e9
    # Ray keeps each driver log and the S3 server spools each object: about 3× the log per run.
    needed = 3 * sum(sizes) * 2 * args.repeats / 1000
    if needed > free_gb * 0.8:
        print(f"warning: these sizes need about {needed:.0f} GB of {free_gb:.0f} GB free; drop 1000 from --sizes")

    ray_version = subprocess.run(
        [sys.executable, "-c", "import ray; print(ray.__version__)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    print("preparing the two virtualenvs under bench/.venvs/ (cached) ...", flush=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    raypod_python = ensure_venv("raypod", [str(REPO)], reinstall=[str(REPO)])
    sdk_python = ensure_venv("sdk", [f"ray[default]=={ray_version}", "kubernetes", "minio"])
    installs = {"raypod": installed_size(raypod_python), "sdk": installed_size(sdk_python)}
    imports = {
        "raypod": import_rss_kib(
            raypod_python, "import raypod.cli, raypod.commands, raypod.runner, raypod.s3; raypod.s3._import_minio()"
        ),
        "sdk": import_rss_kib(sdk_python, "from ray.job_submission import JobSubmissionClient; import minio"),
        "sdk+kubernetes": import_rss_kib(
            sdk_python, "from ray.job_submission import JobSubmissionClient; import minio, kubernetes.client"
        ),
    }

    ray, s3 = LocalRay(), LocalS3()
    results: dict[tuple[str, int], list[Measure]] = {}
    work = Path(tempfile.mkdtemp(prefix="raypod-bench-"))
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(ray.start), pool.submit(s3.start)]:
                started.result()
        with Proxy("127.0.0.1", ray.port, keep_alive=True) as proxy:
            bench = Bench(ray, s3, proxy, work)
            # One unmeasured run each: the first job on a fresh head pays for its worker start-up.
            bench.run("raypod", 1)
            bench.run("sdk", 1)
            for size in sizes:
                for repeat in range(args.repeats):
                    # Rotate the order so no tool always runs on a warmer head.
                    for tool in TOOLS[repeat % 3 :] + TOOLS[: repeat % 3]:
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

    report = render(results, sizes, args.repeats, installs, imports, machine_line(ray_version, sizes))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(report)
    raw = [
        {
            "tool": m.tool,
            "mb": m.megabytes,
            "peak_rss_kib": m.peak_rss_kib,
            "cpu_s": m.cpu_seconds,
            "cold_start_s": m.cold_start,
            "wall_s": m.wall,
            "requests": [f"{r.method} {r.path}" for r in m.requests],
            "log_bytes": m.log_bytes,
        }
        for ms in results.values()
        for m in ms
    ]
    (RESULTS / "latest.json").write_text(json.dumps({"installs": installs, "imports": imports, "runs": raw}, indent=1))
    print()
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
