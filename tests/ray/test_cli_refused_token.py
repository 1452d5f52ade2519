"""Every command refused by a token-auth head (401 without a token, 403 with a wrong one) says where
Ray's token is read from, through the real command line; the token is never printed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.services import LocalRay
from tests.support.ray_auth import STALE_TOKEN, credentials_dir

#: The hint's sources, as Ray's own clients look for them.
SOURCES = ("--credentials", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYPOD_"))}
    return subprocess.run(
        [sys.executable, "-m", "raypod", *args], capture_output=True, text=True, timeout=120, env={**base, **env}
    )


@pytest.mark.parametrize(
    "command", [["list"], ["status", "job-x"], ["logs", "job-x"], ["stop", "job-x"], ["delete", "job-x"]]
)
@pytest.mark.parametrize(("token", "status"), [(None, 401), (STALE_TOKEN, 403)], ids=["no-token", "wrong-token"])
def test_a_refused_command_says_where_rays_token_is_read_from(
    tmp_path: Path, token_ray: LocalRay, command: list[str], token: str | None, status: int
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), **({"RAY_AUTH_TOKEN": token} if token else {})}

    result = cli(*command, "--address", token_ray.address, "--credentials", str(credentials_dir(tmp_path)), env=env)

    assert result.returncode == 1, result.stderr
    assert f"HTTP {status}" in result.stderr
    assert all(source in result.stderr for source in SOURCES), result.stderr
    assert result.stderr.count("RAY_AUTH_TOKEN_PATH") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not token or token not in result.stdout + result.stderr


def test_help_names_where_rays_token_is_read_from() -> None:
    result = cli("list", "--help", env={})

    assert result.returncode == 0
    flat = " ".join(result.stdout.split())
    assert all(source in flat for source in SOURCES), flat
