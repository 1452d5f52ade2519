"""An endless file where a token or a ConfigMap key was expected (``/dev/zero``) is bad input that
names it, at once. raypod runs as a child process under a 1 GiB address-space limit, so a read
without a cap fails with a MemoryError instead of growing until the machine kills it."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from tests.support.cli import SCRUBBED

MEMORY_LIMIT = 1024 * 1024 * 1024


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def raypod_limited(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return subprocess.run(
        [sys.executable, "-m", "raypod", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **env},
        preexec_fn=limited,
    )


def test_list_with_the_token_path_at_dev_zero_is_bad_input_naming_it(tmp_path: Path) -> None:
    completed = raypod_limited(
        "list",
        "--credentials",
        str(tmp_path / "no-credentials"),
        env={"RAY_API_SERVER_ADDRESS": "http://127.0.0.1:9", "RAY_AUTH_TOKEN_PATH": "/dev/zero"},
    )
    assert completed.returncode == 2, completed.stderr
    assert "/dev/zero" in completed.stderr and "is larger than" in completed.stderr
    assert "Traceback" not in completed.stderr and "MemoryError" not in completed.stderr


def test_a_credentials_token_at_dev_zero_is_bad_input_naming_it(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "token").symlink_to("/dev/zero")
    completed = raypod_limited(
        "list", "--credentials", str(credentials), env={"RAY_API_SERVER_ADDRESS": "http://127.0.0.1:9"}
    )
    assert completed.returncode == 2, completed.stderr
    assert str(credentials / "token") in completed.stderr and "Traceback" not in completed.stderr
