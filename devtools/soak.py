"""`make soak` (``python -m devtools.soak``): a chaos soak of the pod on a real Ray head.

Each run is one BridgeJob: raypod's ``run`` as child processes, as the pods that follow one another,
with the status in the fake Kubernetes API (in-cluster env vars, a service account's token and CA)
or in a status file. Faults come from the run's plan (devtools/soak_plan.py): through the fault
proxy in front of the dashboard (5xx, an ingress's HTML 404, trickled answers, resets, garbled
JSON, lost answers, slow answers, error pages echoing the secrets, the dashboard away for a few
seconds), in the Kubernetes API (503s, slow answers), SIGTERM and a replacement pod, a small /tmp
(a tmpfs, or RLIMIT_FSIZE), a mounted ConfigMap that lags. Scripts succeed, fail, sleep, fail
once, or need an input that does not fit in /tmp; some have retries and deadlines.

After each run raypod's final record is compared with Ray's own job list (GET /api/jobs/ on the
head, not through the proxy) and every output is read (devtools/soak_checks.py). The counts per
invariant and per fault kind are printed, with the seed of every failing run:
``make soak SOAK_SEED=<seed> SOAK_RUNS=1`` runs it again. Run i of a soak has the seed SEED + i.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from devtools.fake_kube import FakeKube
from devtools.proxy import RESPOND, Proxy, Rule
from devtools.services import LocalRay, LocalS3
from devtools.soak_checks import FINAL, HARNESS, INVARIANTS, Evidence, PodRun, Violation, check
from devtools.soak_plan import (
    BIG_INPUT_BYTES,
    FAULT_KINDS,
    SMALL_TMP_BYTES,
    TARGETS,
    Fault,
    Plan,
    plan_run,
)

#: How long one run (its whole chain of pods) may take before it is cut and called unfinished.
RUN_BOUND = 150.0
#: The pod's grace period after SIGTERM, as the kubelet gives it; then SIGKILL.
GRACE = 30.0
#: Where the big input lives, and the logs go.
INPUT_BUCKET = "soak-inputs"
LOG_BUCKET = "soak-logs"
BIG_INPUT = "big.bin"
NAMESPACE = "soak"
INGRESS_404 = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n"
    b"<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
#: Answers that are not JSON, or not a job: each is Ray's content type with a body that is not Ray's.
GARBLED = (b'{"status": "RUNN', b"[1, 2, 3]", b'{"status": 12, "submission_id": null}', b"\xff\xfe garbage", b"")


@dataclass(frozen=True)
class Head:
    """The Ray dashboard and the S3 server a soak runs against."""

    ray_address: str
    s3: LocalS3

    @property
    def ray_port(self) -> int:
        return int(urlsplit(self.ray_address).port or 80)


@dataclass
class RunReport:
    index: int
    plan: Plan
    job_name: str
    seconds: float
    final: str
    violations: list[Violation]


@dataclass
class SoakReport:
    seed: int
    runs: list[RunReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def violations(self) -> list[tuple[int, Violation]]:
        return [(run.plan.seed, v) for run in self.runs for v in run.violations]

    def text(self) -> str:
        lines = [
            f"soak: {len(self.runs)} runs, seeds {self.seed}..{self.seed + len(self.runs) - 1}, {self.seconds:.0f} s"
        ]
        if self.runs:
            times = [run.seconds for run in self.runs]
            lines.append(
                f"run time: median {statistics.median(times):.1f} s, max {max(times):.1f} s, sum {sum(times):.0f} s"
            )
        counts = Counter(v.invariant for _, v in self.violations)
        failing_runs = Counter(inv for run in self.runs for inv in {v.invariant for v in run.violations})
        lines.append(f"{'invariant':<24}{'violations':>11}{'runs':>6}")
        lines += [f"{inv:<24}{counts[inv]:>11}{failing_runs[inv]:>6}" for inv in (*INVARIANTS, HARNESS)]
        lines.append(f"{'fault kind':<24}{'runs':>11}{'failing':>8}")
        for kind in FAULT_KINDS:
            with_kind = [run for run in self.runs if kind in run.plan.kinds]
            failing = sum(1 for run in with_kind if run.violations)
            lines.append(f"{kind:<24}{len(with_kind):>11}{failing:>8}")
        no_fault = [run for run in self.runs if not run.plan.kinds]
        lines.append(f"{'(no fault)':<24}{len(no_fault):>11}{sum(1 for r in no_fault if r.violations):>8}")
        finals = Counter(run.final for run in self.runs)
        lines.append("final statuses: " + ", ".join(f"{name} {count}" for name, count in sorted(finals.items())))
        failing_seeds = [run for run in sorted(self.runs, key=lambda r: r.index) if run.violations]
        if failing_seeds:
            lines.append("failing runs (replay one: make soak SOAK_SEED=<seed> SOAK_RUNS=1):")
            for run in failing_seeds:
                lines.append(f"  seed {run.plan.seed} [{run.plan.summary()}] -> {run.final}")
                lines += [f"    {v.invariant}: {v.detail}" for v in run.violations]
        else:
            lines.append("no violation")
        return "\n".join(lines)


def script_for(plan: Plan, job_name: str, markers: Path) -> str:
    """The job's script: it prints when it really started, then does what the plan says."""
    body = [
        f"# {job_name}: unique, so its package is uploaded anew",
        "import os, sys, time",
        "print('SOAK-START', time.time(), flush=True)",
        f"time.sleep({plan.seconds})",
    ]
    if plan.script == "fail":
        body.append("sys.exit(3)")
    elif plan.script == "flaky":
        marker = markers / f"{job_name}.failed-once"
        body += [
            f"if not os.path.exists({str(marker)!r}):",
            f"    open({str(marker)!r}, 'w').close()",
            "    sys.exit(3)",
        ]
    body.append("print('SOAK-END', flush=True)")
    return "\n".join(body) + "\n"


def can_mount() -> bool:
    """A tmpfs can be mounted here (root, with the right): probed once, with a mount of our own."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(tempfile.mkdtemp(prefix="soak-probe-"))
    try:
        if subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True
        ).returncode:
            return False
        subprocess.run(["umount", str(probe)], capture_output=True)
        return True
    finally:
        probe.rmdir()


@contextmanager
def small_tmp(kind: str | None, root: Path) -> Iterator[tuple[dict[str, str], list[str]]]:
    """The env and the command prefix of a pod with a small /tmp: a tmpfs of our own as TMPDIR, or
    RLIMIT_FSIZE set before raypod starts (Python ignores SIGXFSZ, so writes fail with EFBIG)."""
    if kind is None:
        yield {}, []
        return
    if kind == "fsize":
        limit = (
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({SMALL_TMP_BYTES}, {SMALL_TMP_BYTES})); "
            "os.execv(sys.executable, [sys.executable, '-m', 'raypod', *sys.argv[1:]])"
        )
        yield {}, [sys.executable, "-c", limit]
        return
    mount = root / "tmp"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_TMP_BYTES}", "tmpfs", str(mount)], check=True)
    try:
        yield {"TMPDIR": str(mount)}, []
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


class Run:
    """One run: its own proxy and (for the kube store) its own fake Kubernetes API."""

    def __init__(self, index: int, plan: Plan, head: Head, root: Path) -> None:
        self.index, self.plan, self.head = index, plan, head
        self.root = root
        self.job_name = f"soak{plan.seed}-{secrets.token_hex(3)}"
        self.proxy = Proxy("127.0.0.1", head.ray_port)
        self.kube = FakeKube(root / "kube", namespace=NAMESPACE) if plan.store == "kube" else None
        self.pods: list[PodRun] = []
        self.pending = list(plan.faults)
        self.started = 0.0

    @property
    def cm(self) -> str:
        return f"{self.job_name}-bridge-cm"

    def keys(self) -> dict[str, str]:
        plan = self.plan
        data = {
            "resourceURL": self.proxy.url,
            "updateInterval": "1",
            "jobdata.scriptLocation": "inline",
            "jobdata.jobScript": script_for(plan, self.job_name, self.root.parent),
            "s3.endpoint": self.head.s3.endpoint,
            "s3.secure": "false",
            "s3.secret": "soak-s3-secret",
            "s3upload.bucket": LOG_BUCKET,
        }
        if plan.script == "big_input":
            data["jobdata.additionalData"] = f"{INPUT_BUCKET}:{BIG_INPUT}"
        if plan.properties:
            data["jobproperties"] = json.dumps(plan.properties)
        return data

    def prepare(self) -> None:
        plan, root = self.plan, self.root
        credentials = root / "credentials"
        credentials.mkdir()
        header = json.dumps({"X-Soak-Auth": plan.secrets.header})
        if plan.token_via == "token file":
            (credentials / "token").write_text(plan.secrets.token + "\n")
        else:
            (root / "ray-token").write_text(plan.secrets.token + "\n")
        if plan.header_via == "headers.json":
            (credentials / "headers.json").write_text(header)
        s3_credentials = root / "s3credentials"
        s3_credentials.mkdir()
        (s3_credentials / "accesskey").write_text(self.head.s3.ACCESS_KEY + "\n")
        (s3_credentials / "secretkey").write_text(plan.secrets.s3 + "\n")
        if self.kube is not None:
            self.kube.create_configmap(self.cm, self.keys(), owner_uid=secrets.token_hex(8))
        else:
            config = root / "config"
            config.mkdir()
            for key, value in self.keys().items():
                (config / key).write_text(value)

    def env(self) -> dict[str, str]:
        plan = self.plan
        kept = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("RAY_", "RAYPOD_", "KUBERNETES_")) and k not in ("JOBNAME", "NAMESPACE", "TMPDIR")
        }
        env = {**kept, "JOBNAME": self.job_name, "PYTHONUNBUFFERED": "1"}
        if plan.token_via == "RAY_AUTH_TOKEN_PATH":
            env["RAY_AUTH_TOKEN_PATH"] = str(self.root / "ray-token")
        if plan.header_via == "RAY_JOB_HEADERS":
            env["RAY_JOB_HEADERS"] = json.dumps({"X-Soak-Auth": plan.secrets.header})
        if self.kube is not None:
            port = str(urlsplit(self.kube.url).port)
            env |= {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}
            env["RAYPOD_SERVICE_ACCOUNT_DIR"] = str(self.kube.sa_dir)
        else:
            env["NAMESPACE"] = NAMESPACE
        return env

    def command(self, pod: int, mounted: Path | None) -> list[str]:
        root = self.root
        args = ["run", "--credentials", str(root / "credentials"), "--s3-credentials", str(root / "s3credentials")]
        args += ["--connect-timeout", str(self.plan.connect_timeout)]
        args += ["--result", str(root / f"result-{pod}.json"), "--termination-log", str(root / f"termination-{pod}")]
        if self.kube is None:
            args += ["--config", str(root / "config"), "--status-file", str(root / "status.json")]
        elif mounted is not None:
            args += ["--config", str(mounted)]
        return args

    def record(self) -> dict[str, str]:
        if self.kube is not None:
            return self.kube.data(self.cm)
        path = self.root / "status.json"
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError):
            return {}

    def mount_snapshot(self, pod: int) -> Path:
        """The ConfigMap as a mounted volume shows it: a copy made now, read by a later pod."""
        assert self.kube is not None
        directory = self.root / f"mounted-{pod}"
        directory.mkdir()
        for key, value in self.kube.data(self.cm).items():
            (directory / key).write_text(value)
        return directory

    # -- faults ------------------------------------------------------------------------------------
    def fire_due(self) -> None:
        now = time.monotonic() - self.started
        while self.pending and self.pending[0].at <= now:
            self.apply(self.pending.pop(0))

    def apply(self, fault: Fault) -> None:
        proxy, secret = self.proxy, self.plan.secrets
        if fault.kind == "down":
            proxy.down(fault.value)
            return
        if fault.kind in ("kube503", "kube_slow"):
            assert self.kube is not None
            if fault.kind == "kube503":
                self.kube.fail(fault.target, int(fault.value), fault.times)
            else:
                self.kube.hold(fault.target, fault.value, fault.times)
            return
        method, path = TARGETS[fault.target]
        kind = fault.kind
        if kind == "http5xx":
            proxy.fail(method, path, fault.times, status=int(fault.value), body=b"upstream unavailable")
        elif kind == "html404":
            proxy.fail(method, path, fault.times, status=404, body=INGRESS_404, content_type="text/html")
        elif kind == "trickle":
            proxy.trickle(method, path, fault.value, fault.times)
        elif kind == "reset":
            proxy.reset(method, path, fault.times)
        elif kind == "garbled":
            body = random.Random(self.plan.seed).choice(GARBLED)
            proxy.add(Rule(RESPOND, method, path, fault.times, status=200, body=body, content_type="application/json"))
        elif kind == "lost_answer":
            proxy.drop_response(method, path, fault.times)
        elif kind == "slow":
            proxy.delay(method, path, fault.value, fault.times)
        elif kind == "echo":
            page = (
                "<html><body>bad gateway; your request was: "
                + "x" * fault.pad
                + f"\r\nAuthorization: Bearer {secret.token}\r\nX-Soak-Auth: {secret.header}\r\n</body></html>"
            )
            proxy.fail(method, path, fault.times, status=int(fault.value), body=page.encode(), content_type="text/html")
        else:
            raise ValueError(f"unknown fault kind {kind}")

    # -- the chain of pods -------------------------------------------------------------------------
    def run_pods(self) -> bool:
        """Pods one after the other until one ends on its own; True if the run hit its bound."""
        plan = self.plan
        mounted: Path | None = None
        with small_tmp(plan.small_tmp, self.root) as (tmp_env, prefix):
            for number in range(1, len(plan.sigterms) + 2):
                snapshot = self.mount_snapshot(number) if plan.stale_mount else None
                pod, cut = self.run_pod(number, prefix, tmp_env, mounted)
                self.pods.append(pod)
                mounted = snapshot
                if cut:
                    return True
                if not pod.terminated or self.record().get("status.jobStatus") in FINAL:
                    return False
                time.sleep(0.5)  # the operator notices, and starts the next pod
        return False

    def run_pod(
        self, number: int, prefix: list[str], tmp_env: dict[str, str], mounted: Path | None
    ) -> tuple[PodRun, bool]:
        root = self.root
        command = [*(prefix or [sys.executable, "-m", "raypod"]), *self.command(number, mounted)]
        pod = PodRun(number)
        sigterm_at = self.plan.sigterms[number - 1] if number <= len(self.plan.sigterms) else None
        cut = False
        out_path, err_path = root / f"pod-{number}.out", root / f"pod-{number}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, env={**self.env(), **tmp_env}, cwd=root)
            pod_start = time.monotonic()
            signalled_at: float | None = None
            while process.poll() is None:
                self.fire_due()
                now = time.monotonic()
                if signalled_at is None:
                    if sigterm_at is not None and now - pod_start >= sigterm_at:
                        signalled_at = now
                    elif now - self.started >= RUN_BOUND:
                        signalled_at, cut = now, True
                    if signalled_at is not None:
                        process.send_signal(signal.SIGTERM)
                        pod.terminated = True
                elif now - signalled_at > GRACE:
                    pod.grace_exceeded = True
                    process.kill()
                    process.wait()
                    break
                time.sleep(0.1)
        pod.returncode = process.returncode
        pod.stdout = out_path.read_text(errors="replace")
        pod.stderr = err_path.read_text(errors="replace")
        pod.result = _read(root / f"result-{number}.json")
        pod.termination = _read(root / f"termination-{number}")
        return pod, cut

    def execute(self) -> RunReport:
        self.root.mkdir(parents=True, exist_ok=True)
        self.proxy.start()
        if self.kube is not None:
            self.kube.start()
        try:
            self.prepare()
            self.started = time.monotonic()
            cut = self.run_pods()
            seconds = time.monotonic() - self.started
            self.proxy.clear_rules()
            self.proxy.up()
            record = self.record()
        finally:
            self.proxy.stop()
            if self.kube is not None:
                self.kube.stop()
        jobs = ray_jobs_of(self.head.ray_address, self.job_name)
        logs = {str(job["submission_id"]): ray_log(self.head.ray_address, str(job["submission_id"])) for job in jobs}
        evidence = Evidence(self.plan, self.job_name, self.pods, record, jobs, logs, cut, RUN_BOUND)
        violations = check(evidence)
        clean_up(self.head.ray_address, jobs)
        if violations:  # kept with the pods' files, to look at again
            (self.root / "evidence.json").write_text(json.dumps(asdict(evidence), indent=1, default=str))
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        final = record.get("status.jobStatus", "none")
        return RunReport(
            self.index, self.plan, self.job_name, seconds, f"{final}/{record.get('status.reason', '-')}", violations
        )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


# -- Ray's own view, straight from the head -----------------------------------------------------------
def ray_jobs_of(address: str, job_name: str) -> list[dict[str, Any]]:
    response = requests.get(f"{address}/api/jobs/", timeout=60)
    response.raise_for_status()
    return [job for job in response.json() if (job.get("metadata") or {}).get("bridge-job") == job_name]


def ray_log(address: str, submission_id: str) -> str:
    try:
        response = requests.get(f"{address}/api/jobs/{submission_id}/logs", timeout=60)
        return str(response.json().get("logs", "")) if response.ok else ""
    except (requests.RequestException, ValueError):
        return ""


def clean_up(address: str, jobs: list[dict[str, Any]]) -> None:
    """Stop what still runs and delete what ended, so that Ray's job list stays short."""
    for job in jobs:
        submission_id = job["submission_id"]
        try:
            if job.get("status") in ("PENDING", "RUNNING"):
                requests.post(f"{address}/api/jobs/{submission_id}/stop", timeout=30)
            else:
                requests.delete(f"{address}/api/jobs/{submission_id}", timeout=30)
        except requests.RequestException:
            pass


def prepare_head(head: Head) -> None:
    client = head.s3.client()
    for bucket in (INPUT_BUCKET, LOG_BUCKET):
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
    data = random.Random(0).randbytes(BIG_INPUT_BYTES)  # incompressible: the zip is as big
    client.put_object(INPUT_BUCKET, BIG_INPUT, io.BytesIO(data), len(data))


def run_one(run: Run) -> RunReport:
    """The run's report; a failure of the soak itself (not raypod's) is reported as one, never hidden."""
    try:
        return run.execute()
    except Exception as error:
        return RunReport(run.index, run.plan, run.job_name, 0.0, "none/-", [Violation(HARNESS, repr(error))])


def soak(head: Head, runs: int, seed: int, parallel: int, root: Path, quiet: bool = False) -> SoakReport:
    """``runs`` runs with the seeds ``seed``, ``seed + 1``, ..., ``parallel`` at a time."""
    prepare_head(head)
    mountable = can_mount()
    report = SoakReport(seed)
    started = time.monotonic()
    lock = threading.Lock()
    with ThreadPoolExecutor(parallel) as pool:
        futures = [
            pool.submit(run_one, Run(i, plan_run(seed + i, can_mount=mountable), head, root / f"run-{seed + i}"))
            for i in range(runs)
        ]
        for future in as_completed(futures):
            run = future.result()
            with lock:
                report.runs.append(run)
                if not quiet:
                    verdict = (
                        "ok" if not run.violations else "; ".join(f"{v.invariant}: {v.detail}" for v in run.violations)
                    )
                    print(
                        f"[{len(report.runs)}/{runs}] seed {run.plan.seed} {run.seconds:5.1f}s {run.final:<30} "
                        f"[{run.plan.summary()}] {verdict}",
                        flush=True,
                    )
    report.runs.sort(key=lambda r: r.index)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, help="the first run's seed (default: a random one, printed)")
    parser.add_argument("--parallel", type=int, default=4, help="runs at a time")
    parser.add_argument("--ray-address", help="a running Ray dashboard (default: a local head is started)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    print(f"soak: {args.runs} runs from seed {seed}, {args.parallel} at a time", flush=True)
    root = Path(tempfile.mkdtemp(prefix="raypod-soak-"))
    ray = LocalRay() if args.ray_address is None else None
    s3 = LocalS3()
    try:
        if ray is not None:
            ray.start()
        s3.start()
        head = Head(args.ray_address or (ray.address if ray else ""), s3)
        report = soak(head, args.runs, seed, args.parallel, root)
    finally:
        if ray is not None:
            ray.stop()
        s3.stop()
    print(report.text(), flush=True)
    if report.violations:
        print(f"the failing runs' files are kept under {root}", flush=True)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
