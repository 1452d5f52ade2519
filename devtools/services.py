"""Local services for tests, the demo and the benchmark: a real Ray head and an S3 server.

Each is started on loopback with free ports, in its own process session, and stopped
by killing exactly that session: nothing else on the machine is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

BIN = Path(sys.executable).parent
#: A head that does not come up is started once more on new ports (``LocalRay.start``).
START_ATTEMPTS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, timeout: float, headers: Mapping[str, str] | None = None) -> None:
    limit = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < limit:
        try:
            response = requests.get(url, timeout=2, headers=headers)
            if response.status_code < 500:
                return
            last = response.status_code
        except requests.RequestException as error:
            last = error
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s (last: {last})")


def _tail_of(path: Path, limit: int = 3000) -> str:
    """The end of a log that is about to be removed with its directory."""
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError as error:
        return f"(unreadable: {error})"


def _stop_session(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the whole session the process leads, then SIGKILL what is left."""
    sid = process.pid
    try:
        os.killpg(sid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    for pid in _session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(sid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        pass


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getsid(int(entry.name)) == sid:
                members.append(int(entry.name))
        except (ProcessLookupError, PermissionError):
            continue
    return members


def _command_line(pid: int) -> list[str]:
    """A process's arguments as /proc shows them (a process that renamed itself shows its new title)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


#: The dashboard's HTTP head: ``python .../ray/dashboard/dashboard.py ...``.
DASHBOARD_HEAD = "dashboard"
#: The node's dashboard agent (``ray::DashboardAgent``): it serves log tails and log streams.
DASHBOARD_AGENT = "agent"
#: Ray 2.60 runs most dashboard modules in processes the head forks, titled ``ray-dashboard-JobHead-0``.
_MODULE_TITLE = re.compile(r"ray-dashboard-(\w+-\d+)")


def dashboard_role(arguments: list[str]) -> str | None:
    """Which dashboard process a command line is: DASHBOARD_HEAD, DASHBOARD_AGENT, a module's name
    (``JobHead-0``, ``StateHead-0``, ...), or None for any other process."""
    if not arguments:
        return None
    scripts = arguments[:3]
    if any(argument.endswith("ray/dashboard/dashboard.py") for argument in scripts):
        return DASHBOARD_HEAD
    if arguments[0].startswith("ray::DashboardAgent") or any(a.endswith("ray/dashboard/agent.py") for a in scripts):
        return DASHBOARD_AGENT
    module = _MODULE_TITLE.match(arguments[0])
    return module.group(1) if module else None


def write_pod_secrets(root: Path, s3: LocalS3) -> tuple[Path, Path]:
    """The two mounted secrets a pod reads, under ``root``: the Ray resource secret (placeholders:
    the local head needs no auth) and the S3 keys. Returns (credentials, s3 credentials)."""
    credentials = root / "credentials"
    credentials.mkdir(parents=True, exist_ok=True)
    (credentials / "username").write_text("placeholder")
    (credentials / "password").write_text("placeholder")
    return credentials, s3.write_credentials(root / "s3credentials")


class LocalRay:
    """``ray start --head --block`` with the dashboard on 127.0.0.1 and free ports."""

    def __init__(self, env: Mapping[str, str] | None = None, num_cpus: int = 2) -> None:
        self.env = dict(env or {})
        self.num_cpus = num_cpus
        self.process: subprocess.Popen[bytes] | None = None
        self._choose_places()

    def _choose_places(self) -> None:
        """A new temp dir and dashboard port (and so a new address and start-up log)."""
        # Ray's socket paths must stay short, so not under pytest's long tmp paths.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="rp", dir="/tmp"))
        self.port = free_port()
        self.address = f"http://127.0.0.1:{self.port}"
        self.log_path = self.temp_dir / "ray-start.log"

    def start(self, timeout: float = 120.0, attempts: int = START_ATTEMPTS) -> LocalRay:
        """Start the head; a head that does not come up is stopped and started once more on new
        ports (``free_port`` can only pick a port another process may take before Ray binds it)."""
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(timeout)
            except RuntimeError as error:
                if attempt == attempts:
                    raise
                print(f"warning: {error}; starting it again on other ports", file=sys.stderr, flush=True)
                self._choose_places()
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _start_once(self, timeout: float) -> LocalRay:
        args = [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(self.port),
            "--port",
            str(free_port()),
            "--ray-client-server-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
            "--num-cpus",
            str(self.num_cpus),
            "--include-dashboard",
            "true",
            "--disable-usage-stats",
            "--temp-dir",
            str(self.temp_dir),
        ]
        # The job's `python` must be this environment's, as it is the cluster's on a real Ray node.
        path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        # Ray swaps 127.0.0.1 for the host's own address unless it runs as a single-node cluster
        # (the switch Ray has for laptops): this keeps GCS and raylet traffic on loopback too.
        env = {
            **os.environ,
            "PATH": path,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            **self.env,
        }
        self.process = subprocess.Popen(
            args, stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        headers = {"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"} if "RAY_AUTH_TOKEN" in self.env else None
        try:
            wait_for_http(f"{self.address}/api/version", timeout, headers)
            # The job agent answers a little after the dashboard head does.
            wait_for_http(f"{self.address}/api/jobs/", timeout, headers)
        except RuntimeError as error:
            said = _tail_of(self.log_path)
            self.stop()
            raise RuntimeError(f"Ray head did not start ({error}); the end of its log:\n{said}") from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_session(self.process, grace=5)
            self.process = None
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def dashboard_processes(self, timeout: float = 60.0) -> dict[str, int]:
        """The pids of this head's dashboard, by role: DASHBOARD_HEAD (``dashboard.py``, which answers
        HTTP), each module process it forked (``JobHead-0`` serves ``/api/jobs/``, ``StateHead-0``
        ``/api/v0/logs/``, ...), and DASHBOARD_AGENT. Only processes of this head's session are looked at.
        The agent may come up a little after the dashboard answers: it is waited for up to ``timeout``."""
        if self.process is None:
            raise RuntimeError("the Ray head is not running")
        limit = time.monotonic() + timeout
        while True:
            roles: dict[str, int] = {}
            for pid in _session_members(self.process.pid):
                role = dashboard_role(_command_line(pid))
                if role is not None:
                    roles[role] = pid
            missing = {DASHBOARD_HEAD, DASHBOARD_AGENT} - roles.keys()
            if not missing:
                return roles
            if time.monotonic() > limit:
                names = " or ".join(sorted(missing))
                raise RuntimeError(f"no {names} process among the Ray head's; see {self.log_path}")
            time.sleep(0.5)


class LocalS3:
    """moto's standalone S3 server, a real S3-protocol endpoint on 127.0.0.1."""

    ACCESS_KEY = "raypod-test-access"
    SECRET_KEY = "raypod-test-secret-key"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> LocalS3:
        self.process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_http(f"http://{self.endpoint}/", timeout)
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_session(self.process, grace=5)
            self.process = None

    def write_credentials(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "accesskey").write_text(self.ACCESS_KEY + "\n")
        (directory / "secretkey").write_text(self.SECRET_KEY + "\n")
        return directory

    def client(self) -> Any:
        """A minio client for this server (minio is imported only here: LocalRay alone does not need it)."""
        from minio import Minio

        return Minio(self.endpoint, access_key=self.ACCESS_KEY, secret_key=self.SECRET_KEY, secure=False)
