"""Ray's auth conventions: where the token comes from (as Ray's own clients look for it), and
extra headers for a dashboard behind an auth proxy. Header values are secrets: never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.proxy import Proxy
from devtools.services import LocalRay
from raypod.credentials import RayAuthSources
from raypod.errors import ConfigError, RayApiError
from raypod.ray import RayJobsClient
from raypod.retry import NO_RETRY
from tests.support.helpers import RAY_AUTH_TOKEN, BridgeJob
from tests.support.scripted_server import Answer, ScriptedServer

TOKEN = RAY_AUTH_TOKEN
COOKIE_SECRET = "oauth-proxy-SESSION-4b8e2f6a1c"


def credentials_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text)
    return directory


def problems(sources: RayAuthSources) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        sources.read(basic=False)
    return caught.value.problems


# -- the token, first found wins ----------------------------------------------------------------------
def test_the_token_file_in_the_credentials_directory_comes_first(tmp_path: Path) -> None:
    (tmp_path / "env-token").write_text("from-path\n")
    sources = RayAuthSources(
        credentials_dir(tmp_path, token="from-dir\n"),
        {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "env-token")},
    )

    assert sources.read(basic=False).token == "from-dir"


def test_then_ray_auth_token_then_the_file_ray_auth_token_path_names(tmp_path: Path) -> None:
    (tmp_path / "env-token").write_text("from-path\n")
    empty = credentials_dir(tmp_path)
    path_env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "env-token")}

    assert RayAuthSources(empty, {"RAY_AUTH_TOKEN": "from-env", **path_env}).read(basic=False).token == "from-env"
    assert RayAuthSources(empty, path_env).read(basic=False).token == "from-path"


def test_the_users_ray_token_file_counts_only_where_it_is_given(tmp_path: Path) -> None:
    user_file = tmp_path / "home" / ".ray" / "auth_token"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("from-home\n")
    empty = credentials_dir(tmp_path)

    assert RayAuthSources(empty, {}, user_file).read(basic=False).token == "from-home"
    assert RayAuthSources(empty, {}).read(basic=False).token is None  # the pod: never ~/.ray


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"RAY_AUTH_TOKEN": f"{TOKEN}\ninjected: x"}, "RAY_AUTH_TOKEN"),
        ({"RAY_AUTH_TOKEN_PATH": "/nonexistent/raypod-token"}, "RAY_AUTH_TOKEN_PATH"),
    ],
)
def test_a_token_from_the_environment_that_cannot_be_used_is_bad_input_without_its_text(
    tmp_path: Path, environ: dict[str, str], key: str
) -> None:
    found = problems(RayAuthSources(credentials_dir(tmp_path), environ))

    assert [k for k, _ in found] == [key]
    assert TOKEN not in str(found)


# -- extra headers: headers.json, then RAY_JOB_HEADERS, then --headers ------------------------------
def test_extra_headers_merge_later_sources_winning_without_regard_to_case(tmp_path: Path) -> None:
    directory = credentials_dir(tmp_path, headers_json='{"Cookie": "a=1", "X-Team": "ml"}')
    sources = RayAuthSources(
        directory, {"RAY_JOB_HEADERS": '{"cookie": "a=2", "X-Env": "yes"}'}, headers_flag='{"X-Team": "infra"}'
    )

    assert sources.read(basic=False).headers == {"cookie": "a=2", "X-Env": "yes", "X-Team": "infra"}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '["Cookie", "a=1"]',
        '{"Bad Name": "x"}',
        '{"Cookie": 5}',
        '{"Cookie": "a=' + COOKIE_SECRET + '\\r\\nX-Injected: 1"}',
        json.dumps({f"X-{i}": "v" for i in range(40)}),
    ],
    ids=["not-json", "not-object", "bad-name", "not-string", "line-break", "too-many"],
)
def test_extra_headers_that_cannot_be_sent_are_bad_input_naming_the_source_not_the_value(
    tmp_path: Path, text: str
) -> None:
    found = problems(RayAuthSources(credentials_dir(tmp_path), {"RAY_JOB_HEADERS": text}))

    assert {key for key, _ in found} == {"RAY_JOB_HEADERS"}
    assert COOKIE_SECRET not in str(found)


def test_extra_headers_reach_the_dashboard_and_an_echo_of_them_is_scrubbed(tmp_path: Path) -> None:
    credentials = RayAuthSources(
        credentials_dir(tmp_path), {"RAY_JOB_HEADERS": json.dumps({"Cookie": f"_oauth_proxy={COOKIE_SECRET}"})}
    ).read(basic=False)
    with ScriptedServer() as server:
        # The proxy refuses, quoting the session value alone.
        server.script("GET", "/api/jobs/s1", Answer(401, f'{{"message": "bad session {COOKIE_SECRET}"}}'.encode()))
        client = RayJobsClient.connect(server.url, credentials, retry=NO_RETRY)
        with pytest.raises(RayApiError) as caught:
            client.get_job("s1")
        client.close()

    assert server.seen[0].headers.get("cookie") == f"_oauth_proxy={COOKIE_SECRET}"
    assert COOKIE_SECRET not in str(caught.value)
    assert COOKIE_SECRET not in caught.value.body


# -- end to end, on a real head that requires a token ----------------------------------------------
def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYPOD_"))}
    return subprocess.run(
        [sys.executable, "-m", "raypod", *args], capture_output=True, text=True, timeout=120, env={**base, **env}
    )


@pytest.mark.integration
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


@pytest.mark.integration
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
