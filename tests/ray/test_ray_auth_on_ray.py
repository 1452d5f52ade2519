"""Ray token auth end to end, on a real head that requires a token (conftest's ``token_ray``): the
CLI's and the pod's token, and the pod's extra headers. Header values are secrets: never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from devtools.proxy import Proxy
from devtools.services import LocalRay
from raypod.credentials import RayCredentials
from raypod.ray import RayJobsClient
from tests.support.helpers import BridgeJob
from tests.support.ray_auth import (
    COOKIE_SECRET,
    PROXY_BASIC,
    PROXY_PASSWORD,
    STALE_TOKEN,
    TOKEN,
    credentials_dir,
    proxy_owning_authorization,
    rotate_on_first_request,
)


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


# -- behind an auth proxy that owns Authorization: Ray's token in X-Ray-Authorization -------------------
def test_the_proxy_owns_authorization_so_only_x_ray_authorization_carries_rays_token(token_ray: LocalRay) -> None:
    with proxy_owning_authorization(token_ray.port) as proxy:
        jobs = f"{proxy.url}/api/jobs/"
        in_authorization = requests.get(jobs, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        proxy_only = requests.get(jobs, headers={"Authorization": PROXY_BASIC}, timeout=30)
        ray_token = {"X-Ray-Authorization": f"Bearer {TOKEN}"}
        both = requests.get(jobs, headers={"Authorization": PROXY_BASIC, **ray_token}, timeout=30)

    # The proxy's own refusal, then Ray's: it never saw the Authorization the proxy took.
    assert in_authorization.status_code == 401 and "basic auth required" in in_authorization.text
    assert proxy_only.status_code == 401 and "Missing authentication token" in proxy_only.text
    assert both.status_code == 200


def test_submit_wait_behind_the_proxy_sends_the_token_in_x_ray_authorization_and_follows_the_tail(
    tmp_path: Path, token_ray: LocalRay
) -> None:
    script = tmp_path / "job.py"
    # It outlives the first look after the POST, so its output comes live and not from the final read.
    script.write_text("import time\nprint('behind the proxy', flush=True)\ntime.sleep(6)\n")
    with proxy_owning_authorization(token_ray.port) as proxy:
        result = cli(
            "submit",
            "--address",
            proxy.url,
            "--credentials",
            str(credentials_dir(tmp_path)),
            "--script",
            str(script),
            "--wait",
            env={
                "HOME": str(tmp_path),
                "RAY_AUTH_TOKEN": TOKEN,
                "RAY_JOB_HEADERS": json.dumps({"Authorization": PROXY_BASIC}),
            },
        )
        seen = proxy.recorded()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "[job] behind the proxy" in result.stdout.splitlines()
    assert {r.headers.get("authorization") for r in seen} == {PROXY_BASIC}
    assert {r.headers.get("x-ray-authorization") for r in seen} == {f"Bearer {TOKEN}"}
    paths = [r.path.split("?")[0] for r in seen]
    # The live log's source, Ray's WebSocket tail, took the token too, and was not refused.
    assert len([path for path in paths if path.endswith("/logs/tail")]) == 1
    assert paths.count("/api/v0/logs/stream") == 0
    assert "is not usable" not in result.stderr
    for secret in (TOKEN, PROXY_PASSWORD, PROXY_BASIC):
        assert secret not in result.stdout + result.stderr


def test_rays_websocket_tail_behind_the_proxy_takes_the_token_in_x_ray_authorization(
    tmp_path: Path, token_ray: LocalRay
) -> None:
    # The tail is the live log's source for a job still PENDING at the first poll: its upgrade
    # request carries the token as every other call does.
    script = tmp_path / "job.py"
    script.write_text("print('tailed behind the proxy')\n")
    with proxy_owning_authorization(token_ray.port) as proxy:
        ray = RayJobsClient.connect(proxy.url, RayCredentials(token=TOKEN, headers={"Authorization": PROXY_BASIC}))
        try:
            submission_id = ray.submit_job({"entrypoint": f"{sys.executable} {script}"})
            tail = ray.open_log_tail(submission_id)
            sent = b"".join(ray.tail_chunks(tail))
        finally:
            ray.close()
        seen = proxy.recorded()
    assert b"tailed behind the proxy" in sent
    assert tail.close_code == 1000
    (upgrade,) = [r for r in seen if r.path.split("?")[0].endswith("/logs/tail")]
    assert upgrade.headers.get("x-ray-authorization") == f"Bearer {TOKEN}"
    assert upgrade.headers.get("authorization") == PROXY_BASIC


# -- a token file rotated while the pod runs ---------------------------------------------------------
def test_a_rotated_token_file_is_read_again_after_rays_refusal_and_the_run_succeeds(
    bridge_job: BridgeJob, token_ray: LocalRay
) -> None:
    token_file = bridge_job.credentials_dir / "token"
    token_file.write_text(STALE_TOKEN + "\n")
    with Proxy("127.0.0.1", token_ray.port) as proxy:
        rotate_on_first_request(proxy, token_file, TOKEN)
        bridge_job.set(resourceURL=proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('ok')\n")
        result = bridge_job.run()
        seen = proxy.recorded()

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    # Ray refused the first call's stale token; the same call went again with the file's new one.
    assert seen[0].headers.get("authorization") == f"Bearer {STALE_TOKEN}"
    assert (seen[1].method, seen[1].path) == (seen[0].method, seen[0].path)
    assert {r.headers.get("authorization") for r in seen[1:]} == {f"Bearer {TOKEN}"}
    everything = result.stdout + result.stderr + json.dumps(result.status)
    assert TOKEN not in everything and STALE_TOKEN not in everything


def test_a_stale_token_file_that_is_not_rotated_fails_as_before_without_a_second_call(
    bridge_job: BridgeJob, token_ray: LocalRay
) -> None:
    (bridge_job.credentials_dir / "token").write_text(STALE_TOKEN + "\n")
    with Proxy("127.0.0.1", token_ray.port) as proxy:
        bridge_job.set(resourceURL=proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print()\n")
        result = bridge_job.run()
        seen = proxy.recorded()

    assert result.returncode == 2, result.stdout + result.stderr
    message = result.status["status.message"]
    assert "HTTP 403" in message and "RAY_AUTH_TOKEN" in message, message
    assert len(seen) == 1  # read again, unchanged: the refused call is not sent again
    assert STALE_TOKEN not in result.stdout + result.stderr + json.dumps(result.status)
