"""What every benchmark mode shares: the tools' virtualenvs, and the command line of each tool.

The tools, each a child process started from its own virtualenv under bench/.venvs/:

- ``raypod``: ``python -m raypod run`` on a ConfigMap written as a directory of keys, as the
  operator mounts it, with the S3 upload configured; ``raypod-no-follow`` adds ``--no-follow-logs``;
- ``sdk`` and ``sdk-stream``: the lifecycle baselines (sdk_lifecycle.py, sdk_streaming.py);
- ``sdk-poll`` and ``sdk-tail``: the watching baseline (sdk_watch.py), without and with
  ``tail_job_logs``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.proxy import Proxy
from devtools.services import LocalRay, LocalS3, write_pod_secrets

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENVS = BENCH / ".venvs"
JOB = BENCH / "job.py"

RAYPOD = "raypod"
#: raypod as another revision built it (``--before``, main by default): before and after in one run.
RAYPOD_BEFORE = "raypod-before"
#: raypod without the live copy of the job's output.
NO_FOLLOW = "raypod-no-follow"
#: raypod without the log upload to S3 (the SDK's loops upload nothing).
NO_UPLOAD = "raypod-no-upload"
SDK = "sdk"
SDK_STREAM = "sdk-stream"
SDK_POLL = "sdk-poll"
SDK_TAIL = "sdk-tail"
#: No watcher: the N-pods mode's jobs alone, submitted and left alone (bench/pods.py).
JOBS_ONLY = "jobs-only"
#: The virtualenv of every baseline (the SDK's jobs client needs ray[default]; minio for the upload).
SDK_VENV = SDK

SDK_LIFECYCLE_SCRIPT = BENCH / "sdk_lifecycle.py"
SDK_STREAM_SCRIPT = BENCH / "sdk_streaming.py"
SDK_WATCH_SCRIPT = BENCH / "sdk_watch.py"

#: The tables' column headers.
HEADERS = {
    RAYPOD: "raypod",
    RAYPOD_BEFORE: "raypod before",
    NO_FOLLOW: "raypod --no-follow-logs",
    NO_UPLOAD: "raypod, no S3 upload",
    SDK: "SDK: `get_job_logs` + `put_object`",
    SDK_STREAM: "SDK: `tail_job_logs` streamed to S3",
    SDK_POLL: "SDK: polls every 1 s",
    SDK_TAIL: "SDK: polls every 1 s + `tail_job_logs`",
    JOBS_ONLY: "no watcher (the jobs alone)",
}


@dataclass(frozen=True)
class Stage:
    """What one benchmark run shares: a Ray head, an S3 server and its bucket, the counting proxy in
    front of the dashboard (every tool is given the proxy's address), and a scratch folder."""

    ray: LocalRay
    s3: LocalS3
    proxy: Proxy
    work: Path
    bucket: str = "bench-logs"


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


def prepare_tool_venvs(ray_version: str) -> None:
    """raypod from this working tree (``pip install .``), and the baselines' SDK and minio."""
    print("preparing the virtualenvs under bench/.venvs/ (cached) ...", flush=True)
    VENVS.mkdir(parents=True, exist_ok=True)
    ensure_venv(RAYPOD, [str(REPO)], reinstall=[str(REPO)])
    # Only what the baselines import: the Ray SDK (its jobs client needs ray[default]) and minio.
    ensure_venv(SDK_VENV, [f"ray[default]=={ray_version}", "minio"])


def prepare_before_venv(revision: str) -> str:
    """raypod as ``revision`` of this repository has it (``git archive``), in a venv of its own;
    rebuilt when the revision's commit changes. Returns the commit's short id."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", revision], check=True, capture_output=True, text=True
    ).stdout.strip()
    stamp = VENVS / RAYPOD_BEFORE / ".bench-commit"
    if stamp.exists() and stamp.read_text().strip() == commit:
        return commit
    source = VENVS / f"{RAYPOD_BEFORE}-src"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    ensure_venv(RAYPOD_BEFORE, [str(source)], reinstall=[str(source)])
    stamp.write_text(commit + "\n")
    return commit


# -- command lines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]
    #: Where the tool writes its status (raypod's --status-file, sdk_watch.py's).
    status_file: Path


def job_entrypoint(parameters: Mapping[str, object]) -> str:
    """bench/job.py's command line, as Ray runs it for the baselines (raypod builds its own)."""
    return f"python {JOB} --kwargs " + " ".join(f"{key}={value}" for key, value in parameters.items())


def raypod_command(
    root: Path,
    name: str,
    address: str,
    s3: LocalS3,
    bucket: str,
    parameters: Mapping[str, object],
    *,
    update_interval: float,
    follow: bool = True,
    properties: Mapping[str, object] | None = None,
    venv: str = RAYPOD,
    upload: bool = True,
) -> Command:
    """``raypod run`` for a ConfigMap written under ``root`` as the operator mounts it (one file per
    key), with the mounted secrets beside it: the job is bench/job.py with ``parameters``."""
    config = root / "config"
    config.mkdir(parents=True)
    values = {
        "resourceURL": address,
        "updateInterval": f"{update_interval:g}",
        "jobdata.jobScript": str(JOB),
        "jobdata.scriptLocation": "remote",
        "jobdata.jobParameters": json.dumps(dict(parameters)),
        "s3.endpoint": s3.endpoint,
        "s3.secure": "false",
    }
    if upload:
        values["s3upload.bucket"] = bucket
    if properties:
        values["jobproperties"] = json.dumps(dict(properties))
    for key, value in values.items():
        (config / key).write_text(value)
    credentials, s3_credentials = write_pod_secrets(root, s3)
    status_file = root / "status.json"
    argv = [
        str(venv_python(venv)),
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
        str(status_file),
    ]
    if not follow:
        argv.append("--no-follow-logs")
    env = {**tool_environment(), "JOBNAME": name, "NAMESPACE": "bench"}
    return Command(argv, env, status_file)


def tool_environment() -> dict[str, str]:
    """The bench's environment without what would make a tool import other code than its venv's
    (``PYTHONPATH=.`` in the repository root would run the working tree's raypod, not the installed one)."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}


def sdk_env() -> dict[str, str]:
    # The SDK would otherwise try to connect a Ray driver or report usage.
    return {**tool_environment(), "RAY_USAGE_STATS_ENABLED": "0"}


def sdk_watch_command(
    root: Path,
    name: str,
    address: str,
    parameters: Mapping[str, object],
    *,
    follow: bool,
    interval: float = 1.0,
    num_cpus: float = 0.0,
) -> Command:
    """bench/sdk_watch.py: submit bench/job.py with ``parameters``, poll (and tail), write the final status."""
    root.mkdir(parents=True)
    status_file = root / "status.json"
    argv = [
        str(venv_python(SDK_VENV)),
        str(SDK_WATCH_SCRIPT),
        "--address",
        address,
        "--entrypoint",
        job_entrypoint(parameters),
        "--submission-id",
        name,
        "--interval",
        f"{interval:g}",
        "--status-file",
        str(status_file),
        "--entrypoint-num-cpus",
        f"{num_cpus:g}",
    ]
    if follow:
        argv.append("--follow")
    return Command(argv, sdk_env(), status_file)
