"""Ray token auth end to end, on a real head that requires a token (conftest's ``token_ray``): the
CLI's and the pod's token, and the pod's extra headers. Header values are secrets: never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devtools.proxy import Proxy
from devtools.services import LocalRay
from tests.support.helpers import BridgeJob
from tests.support.ray_auth import COOKIE_SECRET, TOKEN, credentials_dir


# -- end to end, on a real head that requires a token ----------------------------------------------
def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYPOD_"))}
    return subprocess.run(
        [sys.executable, "-m", "raypod", *args], capture_output=True, text=True, timeout=120, env={**base, **env}
    )


def test_the_cli_takes_the_token_from_ray_auth_token_or_the_users_ray_file(tmp_path: Path, token_ray: LocalRay) -> None:
    empty = credentials_dir(tmp_path)
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    base = ["list", "--address", token_ray.address, "--credentials", str(empty)]

    refused = cli(*base, env={"HOME": str(home)})
    from_env = cli(*base, env={"HOME": str(home), "RAY_AUTH_TOKEN": TOKEN})
    (home / ".ray" / "auth_token").write_text(TOKEN + "\n")
    from_home = cli(*base, env={"HOME": str(home)})

    assert refused.returncode != 0 and "401" in refused.stderr
    assert from_env.returncode == 0, from_env.stderr
    assert from_home.returncode == 0, from_home.stderr
    for result in (refused, from_env, from_home):
        assert TOKEN not in result.stdout + result.stderr


def test_the_pod_takes_the_token_from_ray_auth_token_and_sends_the_extra_headers(
    bridge_job: BridgeJob, token_ray: LocalRay
) -> None:
    with Proxy("127.0.0.1", token_ray.port) as proxy:
        bridge_job.set(resourceURL=proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('ok')\n")
        (bridge_job.credentials_dir / "headers.json").write_text(json.dumps({"Cookie": f"s={COOKIE_SECRET}"}))

        result = bridge_job.run(env={"RAY_AUTH_TOKEN": TOKEN})

        assert result.returncode == 0, result.stdout + result.stderr
        seen = proxy.recorded()
        assert {r.headers.get("authorization") for r in seen} == {f"Bearer {TOKEN}"}
        assert {r.headers.get("cookie") for r in seen} == {f"s={COOKIE_SECRET}"}
    everything = result.stdout + result.stderr + json.dumps(result.status)
    assert TOKEN not in everything and COOKIE_SECRET not in everything
