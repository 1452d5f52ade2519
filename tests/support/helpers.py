"""What the test modules share: a BridgeJob to run raypod on, and looks at the real Ray head."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from devtools.fake_kube import FakeKube
from devtools.services import LocalRay, LocalS3
from tests.support.status_lines import printed_statuses

REPO = Path(__file__).resolve().parents[2]

PARSE_KWARGS_SCRIPT = """\
import argparse, json, sys

class ParseKwargs(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, dict())
        for value in values:
            key, value = value.split('=')
            getattr(namespace, self.dest)[key] = value

parser = argparse.ArgumentParser()
parser.add_argument('-k', '--kwargs', nargs='*', action=ParseKwargs)
args = parser.parse_args()
print("ARGV " + json.dumps(sys.argv[1:]))
print("KWARGS " + json.dumps(args.kwargs))
"""


@dataclass
class Services:
    ray: LocalRay
    s3: LocalS3

    @property
    def ray_address(self) -> str:
        return self.ray.address


#: The operator's time layout, Go's 2006-01-02T15:04:05Z, spelled out here rather than taken from
#: raypod: UTC, every field zero-padded, no fraction, no offset.
GO_TIME = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ")


def assert_operator_times(status: Mapping[str, str]) -> None:
    """submitTime, startTime and endTime are in the operator's layout, and in that order."""
    times = [status["status.submitTime"], status["status.startTime"], status["status.endTime"]]
    for text in times:
        assert GO_TIME.fullmatch(text), f"{text!r} is not in the layout 2006-01-02T15:04:05Z"
    assert times == sorted(times), times  # this layout sorts as text in time order


#: The token of the token-auth Ray head (conftest's ``token_ray``); a marker that must never be printed.
RAY_AUTH_TOKEN = "ray-token-MARKER-5f3c9a1e7b2d4c6f8a0e"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class RunResult:
    returncode: int
    stdout: str
    stderr: str
    status: dict[str, str]

    @property
    def job_lines(self) -> list[str]:
        return [line[len("[job] ") :] for line in self.stdout.splitlines() if line.startswith("[job] ")]


@dataclass
class BridgeJob:
    """Credential dirs in tmp_path and the job's keys, and a way to run raypod on them.

    By default the keys are a ConfigMap directory (``--config``) and the status goes to a file
    (``--status-file``). With ``kube``, raypod runs as in a pod: no ``--config``, no
    ``--status-file``, the API and service account of the fake server in its environment, and the
    status is that of the ConfigMap ``cm`` there (which the test creates, or not).
    """

    root: Path
    services: Services
    name: str = field(default_factory=lambda: unique("job"))
    data: dict[str, str] = field(default_factory=dict)
    kube: FakeKube | None = None

    def __post_init__(self) -> None:
        self.config_dir = self.root / "config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.credentials_dir = self.root / "credentials"
        self.credentials_dir.mkdir(exist_ok=True)
        (self.credentials_dir / "username").write_text("placeholder-user\n")
        (self.credentials_dir / "password").write_text("placeholder-password\n")
        self.s3_credentials_dir = self.services.s3.write_credentials(self.root / "s3credentials")
        self.status_file = self.root / "status.json"
        self.bucket = unique("bucket")
        self.data.update(
            {
                "resourceURL": self.services.ray_address,
                "updateInterval": "0.5",
                "s3.endpoint": self.services.s3.endpoint,
                "s3.secure": "false",
                "s3.secret": "my-s3-secret",
                "s3upload.bucket": self.bucket,
            }
        )

    @property
    def cm(self) -> str:
        """The ConfigMap's name in Kubernetes mode, as the operator names it."""
        return f"{self.name}-bridge-cm"

    def set(self, **keys: str) -> BridgeJob:
        self.data.update({k.replace("__", "."): v for k, v in keys.items()})
        return self

    def write_config(self) -> None:
        """The ConfigMap directory; in Kubernetes mode nothing: the test creates the ConfigMap or not."""
        if self.kube is not None:
            return
        for existing in self.config_dir.iterdir():
            existing.unlink()
        for key, value in self.data.items():
            (self.config_dir / key).write_text(value)

    def command(self, *extra: str) -> list[str]:
        files = ["--config", str(self.config_dir), "--status-file", str(self.status_file)] if self.kube is None else []
        return [
            sys.executable,
            "-m",
            "raypod",
            "run",
            *files,
            "--credentials",
            str(self.credentials_dir),
            "--s3-credentials",
            str(self.s3_credentials_dir),
            *extra,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        # The pod's identity too (a test runner in a pod): the Ray job's metadata holds what a test sets.
        own = ("NAMESPACE", "JOBNAME", "POD_NAME", "POD_UID", "NODE_NAME", "TRACEPARENT", "KUBERNETES_SERVICE_HOST")
        inherited = {k: v for k, v in os.environ.items() if k not in own}
        # In a pod the namespace comes from the service account, not from the environment.
        target = {"NAMESPACE": "test-ns"} if self.kube is None else self.kube.env()
        return {**inherited, **target, "JOBNAME": self.name, "PYTHONUNBUFFERED": "1", **extra}

    def run(self, *extra: str, timeout: float = 300, env: Mapping[str, str] | None = None) -> RunResult:
        self.write_config()
        completed = subprocess.run(
            self.command(*extra), capture_output=True, text=True, timeout=timeout, env={**self.env(), **(env or {})}
        )
        return RunResult(completed.returncode, completed.stdout, completed.stderr, self.read_status())

    def start(self, *extra: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        self.write_config()
        return subprocess.Popen(
            self.command(*extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env(), **(env or {})},
        )

    def read_status(self) -> dict[str, str]:
        """The status file's keys; in Kubernetes mode, the ConfigMap's (operator's keys too)."""
        if self.kube is not None:
            try:
                return self.kube.data(self.cm)
            except KeyError:
                return {}
        if not self.status_file.exists():
            return {}
        return dict(json.loads(self.status_file.read_text()))

    def wait_for(self, key: str, wanted: str | None = None, timeout: float = 120) -> dict[str, str]:
        """The status once it has ``key`` (with the value ``wanted``, if given)."""
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            status = self.read_status()
            if key in status and (wanted is None or status[key] == wanted):
                return status
            time.sleep(0.2)
        raise AssertionError(f"{key} never became {wanted}; last: {self.read_status()}")

    def wait_for_status(self, wanted: str, timeout: float = 120) -> dict[str, str]:
        return self.wait_for("status.jobStatus", wanted, timeout)

    def log_text(self, object_name: str = "logs") -> str:
        """The uploaded log: ``logs`` (the last attempt's), or ``logs.<n>`` (a retried attempt's)."""
        client = self.services.s3.client()
        response = client.get_object(self.bucket, f"{self.name}/{object_name}")
        try:
            return response.read().decode()
        finally:
            response.close()
            response.release_conn()


def put_object(client: Any, bucket: str, name: str, data: str | bytes) -> str:
    """Upload ``data`` (making the bucket if needed); returns its ``bucket:object`` for a ConfigMap key."""
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    raw = data.encode() if isinstance(data, str) else data
    client.put_object(bucket, name, io.BytesIO(raw), len(raw))
    return f"{bucket}:{name}"


def ray_jobs(services: Services) -> list[dict[str, Any]]:
    response = requests.get(f"{services.ray_address}/api/jobs/", timeout=30)
    response.raise_for_status()
    return list(response.json())


def ray_job(services: Services, submission_id: str) -> dict[str, Any]:
    response = requests.get(f"{services.ray_address}/api/jobs/{submission_id}", timeout=30)
    response.raise_for_status()
    return dict(response.json())


def jobs_of(services: Services, job_name: str) -> list[dict[str, Any]]:
    return [job for job in ray_jobs(services) if (job.get("metadata") or {}).get("bridge-job") == job_name]


def wait_for_ray_status(services: Services, submission_id: str, wanted: set[str], timeout: float = 120) -> str:
    limit = time.monotonic() + timeout
    status = ""
    while time.monotonic() < limit:
        status = str(ray_job(services, submission_id)["status"])
        if status in wanted:
            return status
        time.sleep(0.3)
    raise AssertionError(f"Ray job {submission_id} stayed {status}, wanted {wanted}")


def supervisor_actor(services: Services, submission_id: str) -> dict[str, Any]:
    """The JobSupervisor actor that runs a job's entrypoint, as Ray's state API shows it (detail)."""
    response = requests.get(
        f"{services.ray_address}/api/v0/actors",
        params={
            "detail": "true",
            "filter_keys": "name",
            "filter_predicates": "=",
            "filter_values": f"_ray_internal_job_actor_{submission_id}",
        },
        timeout=30,
    )
    response.raise_for_status()
    actors: list[dict[str, Any]] = response.json()["data"]["result"]["result"]
    assert len(actors) == 1, actors
    return actors[0]


def supervisor_resources(services: Services, submission_id: str) -> dict[str, float]:
    """What Ray reserved for the job's entrypoint: the resources of its JobSupervisor actor.

    Ray's job info does not echo entrypoint_num_cpus & co.; the actor that runs the
    entrypoint is scheduled with exactly them, and the state API shows it.
    """
    return dict(supervisor_actor(services, submission_id)["required_resources"])


def stop_ray_job(services: Services, submission_id: str) -> None:
    """Clean-up for tests that leave a job running on purpose."""
    requests.post(f"{services.ray_address}/api/jobs/{submission_id}/stop", timeout=30)


def waiting_script(release: Path) -> str:
    """A job that runs until the test creates ``release`` (bounded: two minutes)."""
    return (
        "import os, time\n"
        "print('waiting for release', flush=True)\n"
        "for _ in range(600):\n"
        f"    if os.path.exists({str(release)!r}):\n"
        "        break\n"
        "    time.sleep(0.2)\n"
        "print('released', flush=True)\n"
    )


def transitions(stdout: str) -> list[str]:
    """Every status raypod wrote, in order, from its stdout lines (in either voice)."""
    return printed_statuses(stdout)


class Watched:
    """A running raypod whose stdout and stderr are collected as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._drain, args=(process.stdout, self.out), daemon=True),
            threading.Thread(target=self._drain, args=(process.stderr, self.err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: IO[str] | None, into: list[str]) -> None:
        assert stream is not None
        for line in stream:
            into.append(line)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        wait_until(lambda: text in "".join(self.err) + "".join(self.out), repr(text), timeout)

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        return self.process.returncode, "".join(self.out), "".join(self.err)


class KubeJob:
    """What a test of a BridgeJob in Kubernetes mode does through the fake API, as the operator would."""

    def __init__(self, job: BridgeJob) -> None:
        assert job.kube is not None
        self.job = job
        self.fake = job.kube
        self.cm = job.cm

    def create(self, **keys: str) -> None:
        self.job.set(**keys)
        self.fake.create_configmap(self.cm, self.job.data)

    def data(self) -> dict[str, str]:
        return self.fake.data(self.cm)

    def wait_for(self, key: str, wanted: str | None = None, timeout: float = 120) -> dict[str, str]:
        return self.job.wait_for(key, wanted, timeout)

    def operator_update(self, **keys: str) -> int:
        """What the operator does: GET the object, change keys, PUT it back with its resourceVersion."""
        session = self.fake.session()
        url = f"{self.fake.url}/api/v1/namespaces/{self.fake.namespace}/configmaps/{self.cm}"
        current = session.get(url, timeout=10).json()
        current["data"].update(keys)
        return int(session.put(url, json=current, timeout=10).status_code)
