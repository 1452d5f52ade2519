"""Extra headers reach a (scripted, loopback) dashboard behind an auth proxy, and its echo of them
is scrubbed from the error. Header values are secrets: never printed."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import raypod.ray_auth
from raypod.credentials import RayAuthSources, RayCredentials, read_secret_file
from raypod.errors import RayApiError
from raypod.ray import RayJobsClient
from raypod.retry import NO_RETRY
from tests.support.ray_auth import COOKIE_SECRET, PROXY_BASIC, TOKEN, credentials_dir, rotate
from tests.support.scripted_server import Answer, ScriptedServer, Seen


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


# -- which header carries Ray's token (raypod.ray_auth) ------------------------------------------------
BASIC_USER, BASIC_PASSWORD = "basic-user", "basic-password-MARKER-77"
#: Names an auth proxy's headers may take, in any case: the two Ray reads the token from, and others.
HEADER_NAMES = st.sampled_from(
    [
        "Authorization",
        "authorization",
        "X-Ray-Authorization",
        "x-ray-AUTHORIZATION",
        "Cookie",
        "X-Forwarded-Access-Token",
    ]
)
HEADER_VALUES = st.text(alphabet=string.ascii_letters + string.digits + "=+/._- ", min_size=1, max_size=40).map(
    str.strip
)
EXTRA_HEADERS = st.dictionaries(HEADER_NAMES, HEADER_VALUES.filter(bool), max_size=4).filter(
    lambda headers: len({name.lower() for name in headers}) == len(headers)
)
TOKENS = st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=16, max_size=48)


class Captured(logging.Handler):
    """Every log line, as written, while it is attached to the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> Captured:
        root = logging.getLogger()
        self._level = root.level
        root.addHandler(self)
        root.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *_: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)


def echo_every_header(seen: Seen) -> Answer:
    """A refusal quoting every header value it got, as a careless proxy's page does."""
    return Answer(403, json.dumps({"message": "refused: " + " | ".join(seen.headers.values())}).encode())


def test_with_authorization_in_the_users_headers_the_token_goes_in_x_ray_authorization(
    tmp_path: Path, server: ScriptedServer
) -> None:
    credentials = RayAuthSources(
        credentials_dir(tmp_path, token=TOKEN + "\n"), {"RAY_JOB_HEADERS": json.dumps({"Authorization": PROXY_BASIC})}
    ).read(basic=False)
    server.json("GET", "/api/version", {"version": "4"})
    client = RayJobsClient.connect(server.url, credentials, retry=NO_RETRY)
    client.version()
    client.close()

    (seen,) = server.seen
    assert seen.headers["authorization"] == PROXY_BASIC
    assert seen.headers["x-ray-authorization"] == f"Bearer {TOKEN}"


def test_headers_that_carry_both_of_rays_names_keep_them_and_the_token_is_not_sent(server: ScriptedServer) -> None:
    extra = {"authorization": PROXY_BASIC, "X-Ray-Authorization": "Bearer set-by-hand"}
    server.json("GET", "/api/version", {"version": "4"})
    with Captured() as log_lines:
        client = RayJobsClient.connect(server.url, RayCredentials(token=TOKEN, headers=extra), retry=NO_RETRY)
        client.version()
        client.close()

    (seen,) = server.seen
    assert (seen.headers["authorization"], seen.headers["x-ray-authorization"]) == (PROXY_BASIC, "Bearer set-by-hand")
    assert any("Ray's token is not sent" in line for line in log_lines.lines)
    assert all(TOKEN not in line for line in log_lines.lines)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=EXTRA_HEADERS, token=TOKENS, basic=st.booleans())
def test_the_token_is_in_exactly_one_header_and_never_in_an_error_or_a_log_line(
    server: ScriptedServer, extra: dict[str, str], token: str, basic: bool
) -> None:
    assume(all(token not in value for value in extra.values()))
    server.reset()
    server.route("GET", "/api/version", echo_every_header)
    credentials = RayCredentials(BASIC_USER, BASIC_PASSWORD, token=token, headers=extra)
    with Captured() as log_lines:
        client = RayJobsClient.connect(server.url, credentials, basic_auth=basic, retry=NO_RETRY)
        with pytest.raises(RayApiError) as caught:
            client.version()
        client.close()

    (seen,) = server.seen
    holding = [name for name, value in seen.headers.items() if token in value]
    taken = {name.lower() for name in extra} | ({"authorization"} if basic else set())
    if {"authorization", "x-ray-authorization"} <= taken:
        assert holding == []  # the headers carry Ray's credential themselves
    else:
        expected = "authorization" if "authorization" not in taken else "x-ray-authorization"
        assert holding == [expected]
        assert seen.headers[expected] == f"Bearer {token}"
    # The user's own headers arrive as given (basic auth owns Authorization when it is on).
    for name, value in extra.items():
        if not (basic and name.lower() == "authorization"):
            assert seen.headers[name.lower()] == value
    for text in [str(caught.value), caught.value.body, *log_lines.lines]:
        assert token not in text


# -- a token file rotated while the pod runs is read again, once, after a refusal ----------------------
STALE = "stale-token-MARKER-0f3a9c"
OTHER_STALE = "other-stale-token-MARKER-77b1"
FORBIDDEN = Answer(403, b"Forbidden: Invalid authentication token", "text/plain")


def rotating_to(token_file: Path, new: str, good: str = TOKEN) -> Callable[[Seen], Answer]:
    """Ray's answer: the good token passes; any other is refused, and the file rotated to ``new``
    while the refusal is on its way."""

    def answer(seen: Seen) -> Answer:
        if seen.credentials == f"Bearer {good}":
            return Answer(200, b'{"version": "4"}')
        rotate(token_file, new)
        return FORBIDDEN

    return answer


@pytest.fixture
def rereads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every token file raypod.ray_auth reads again, in order."""
    seen: list[Path] = []

    def counted(path: Path) -> str | None:
        seen.append(path)
        return read_secret_file(path)

    monkeypatch.setattr(raypod.ray_auth, "read_secret_file", counted)
    return seen


def test_a_refused_token_file_that_was_rotated_is_read_again_and_the_call_sent_again(
    tmp_path: Path, server: ScriptedServer, rereads: list[Path]
) -> None:
    directory = credentials_dir(tmp_path, token=STALE + "\n")
    server.route("GET", "/api/version", rotating_to(directory / "token", TOKEN))
    client = RayJobsClient.connect(server.url, RayAuthSources(directory, {}).read(basic=False), retry=NO_RETRY)

    assert client.version() == {"version": "4"}
    client.close()
    assert [seen.credentials for seen in server.seen] == [f"Bearer {STALE}", f"Bearer {TOKEN}"]
    assert rereads == [directory / "token"]


def test_a_token_rotated_out_stays_a_secret_when_a_later_answer_quotes_it(
    tmp_path: Path, server: ScriptedServer, rereads: list[Path]
) -> None:
    retired = "Zq81vVnLw07ppXr4KmYtRetired"  # shares no piece with TOKEN, so only its own entry masks it
    directory = credentials_dir(tmp_path, token=retired + "\n")
    server.route("GET", "/api/version", rotating_to(directory / "token", TOKEN))
    echo = Answer(500, f"Internal error: the token {retired} was refused earlier".encode(), "text/plain")
    server.route("GET", "/api/jobs/", echo)
    client = RayJobsClient.connect(server.url, RayAuthSources(directory, {}).read(basic=False), retry=NO_RETRY)
    client.version()
    with pytest.raises(RayApiError) as caught:
        client.list_jobs()
    client.close()

    assert rereads == [directory / "token"]
    shown = f"{caught.value} {caught.value.body} {caught.value.url}"
    assert "the token" in shown and retired[:10] not in shown


def test_a_token_file_that_did_not_change_is_read_once_and_the_refusal_stands_as_before(
    tmp_path: Path, server: ScriptedServer, rereads: list[Path]
) -> None:
    directory = credentials_dir(tmp_path, token=STALE + "\n")
    server.route("GET", "/api/version", FORBIDDEN)
    from_file = RayJobsClient.connect(server.url, RayAuthSources(directory, {}).read(basic=False), retry=NO_RETRY)
    from_env = RayJobsClient.connect(
        server.url,
        RayAuthSources(credentials_dir(tmp_path / "env"), {"RAY_AUTH_TOKEN": STALE}).read(basic=False),
        retry=NO_RETRY,
    )
    errors = []
    for client in (from_file, from_env):
        with pytest.raises(RayApiError) as caught:
            client.version()
        client.close()
        errors.append(caught.value)

    assert str(errors[0]) == str(errors[1]) and errors[0].status == 403
    assert server.count("GET", "/api/version") == 2  # one each: nothing sent again
    assert rereads == [directory / "token"]  # the file once; RAY_AUTH_TOKEN never (it cannot rotate)


def test_a_file_rotated_to_another_wrong_token_is_sent_once_more_and_no_more(
    tmp_path: Path, server: ScriptedServer, rereads: list[Path]
) -> None:
    directory = credentials_dir(tmp_path, token=STALE + "\n")
    server.route("GET", "/api/version", rotating_to(directory / "token", OTHER_STALE))
    client = RayJobsClient.connect(server.url, RayAuthSources(directory, {}).read(basic=False), retry=NO_RETRY)
    with pytest.raises(RayApiError) as caught:
        client.version()
    client.close()

    assert caught.value.status == 403
    assert [seen.credentials for seen in server.seen] == [f"Bearer {STALE}", f"Bearer {OTHER_STALE}"]
    assert rereads == [directory / "token"]
    assert STALE not in str(caught.value) and OTHER_STALE not in str(caught.value)


def test_a_package_refused_for_a_rotated_token_is_uploaded_again_whole(tmp_path: Path, server: ScriptedServer) -> None:
    directory = credentials_dir(tmp_path, token=STALE + "\n")
    package = tmp_path / "package.zip"
    package.write_bytes(bytes(range(256)) * 64)
    server.route("PUT", "/api/packages/gcs/*", rotating_to(directory / "token", TOKEN))
    client = RayJobsClient.connect(server.url, RayAuthSources(directory, {}).read(basic=False), retry=NO_RETRY)
    client.upload_package("gcs://_ray_pkg_x.zip", package)
    client.close()

    assert [seen.body for seen in server.seen] == [package.read_bytes()] * 2


def test_the_log_tails_upgrade_refused_for_a_rotated_token_is_asked_again_with_the_new_one(
    tmp_path: Path, server: ScriptedServer
) -> None:
    directory = credentials_dir(tmp_path, token=STALE + "\n")
    # The new token passes Ray's check; what answers then (a 404, not an upgrade) ends the test.
    after_rotation = Answer(404, b'{"message": "no such job"}')
    server.route("GET", "/api/jobs/job-1/logs/tail", rotating_to(directory / "token", TOKEN), after_rotation)
    client = RayJobsClient.connect(server.url, RayAuthSources(directory, {}).read(basic=False), retry=NO_RETRY)
    with pytest.raises(RayApiError) as caught:
        client.open_log_tail("job-1")
    client.close()

    assert caught.value.status == 404
    assert [seen.credentials for seen in server.seen] == [f"Bearer {STALE}", f"Bearer {TOKEN}"]
    assert all(seen.headers.get("upgrade") == "websocket" for seen in server.seen)
