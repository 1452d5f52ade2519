"""Extra headers reach a (scripted, loopback) dashboard behind an auth proxy, and its echo of them
is scrubbed from the error. Header values are secrets: never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.credentials import RayAuthSources
from raypod.errors import RayApiError
from raypod.ray import RayJobsClient
from raypod.retry import NO_RETRY
from tests.support.ray_auth import COOKIE_SECRET, TOKEN, credentials_dir
from tests.support.scripted_server import Answer, ScriptedServer


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


def test_an_echo_of_the_bare_token_without_its_scheme_is_scrubbed(tmp_path: Path) -> None:
    """raypod sends ``Authorization: Bearer <token>``; a proxy may quote the token alone."""
    credentials = RayAuthSources(credentials_dir(tmp_path, token=TOKEN + "\n"), {}).read(basic=False)
    with ScriptedServer() as server:
        server.script("GET", "/api/jobs/s1", Answer(401, f'{{"message": "unknown token {TOKEN}"}}'.encode()))
        client = RayJobsClient.connect(server.url, credentials, retry=NO_RETRY)
        with pytest.raises(RayApiError) as caught:
            client.get_job("s1")
        client.close()

    assert server.seen[0].headers.get("authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in str(caught.value)
    assert TOKEN not in caught.value.body
    assert "unknown token ***" in caught.value.body
