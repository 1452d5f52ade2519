"""raypod's command line run as a child process, as the CLI tests of every lane run it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.helpers import Services

#: The caller's Ray settings must not leak into a test, nor its gateway, nor its pod's identity (a runner in a pod).
SCRUBBED = (
    "RAY_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
    "JOBNAME",
    "NAMESPACE",
    "RAYPOD_PUSHGATEWAY",
    "RAYPOD_PUSHGATEWAY_DELETE",
    "POD_NAME",
    "POD_UID",
    "NODE_NAME",
    "TRACEPARENT",
    "KUBERNETES_SERVICE_HOST",
)


def raypod(*args: str, env: Mapping[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raypod", *args], capture_output=True, text=True, timeout=timeout, env=child_env(env)
    )


def raypod_process(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """The same command line, left running (to be signalled, then waited for)."""
    return subprocess.Popen(
        [sys.executable, "-m", "raypod", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(env),
    )


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return {**base, "PYTHONUNBUFFERED": "1", **(env or {})}


def client_args(services: Services, credentials: Path) -> list[str]:
    return ["--address", services.ray_address, "--credentials", str(credentials)]
