"""The HTTP layer against a scripted loopback server: capped bodies, no redirects, no secret in a message.

``ScriptedServer`` (``tests/support/scripted_server.py``) answers each ``METHOD /path`` with a crafted status,
content type and body, records every request it gets (headers included) and counts the body bytes it
managed to send.
"""

from __future__ import annotations

import json

import pytest

from raypod.credentials import RayCredentials
from raypod.errors import ApiError, RayApiError
from raypod.http import MAX_JSON_BODY, HttpClient
from raypod.ray import RayJobsClient
from raypod.retry import NO_RETRY, RetryPolicy
from tests.support.scripted_server import Answer, ScriptedServer

MARKER = "tok-MARKER-7f3a9c"
BLOCK = 64 * 1024


def ray_client(url: str, credentials: RayCredentials = RayCredentials(), *, basic: bool = False) -> RayJobsClient:
    return RayJobsClient.connect(url, credentials, basic_auth=basic, retry=NO_RETRY)


def raised(call: object) -> ApiError:
    assert callable(call)
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


# -- answers that are not JSON, or too large -------------------------------------------------
def test_an_html_page_with_200_is_a_permanent_error_that_names_its_content_type(server: ScriptedServer) -> None:
    page = b"<html><body>Down for maintenance</body></html>"
    server.script("GET", "/api/version", Answer(200, page, "text/html; charset=utf-8"))

    error = raised(lambda: ray_client(server.url).version())

    assert isinstance(error, RayApiError)
    assert error.status == 200
    assert not error.transient
    assert "answer is not JSON" in error.reason
    assert "text/html" in error.reason


def test_an_answer_over_the_cap_is_refused_without_reading_it_all(server: ScriptedServer) -> None:
    # 64 MiB with no declared length: only reading tells how large it is.
    block = b" " * BLOCK
    server.script("GET", "/api/jobs/s1", Answer(body=block, repeat=1024, declare_length=False))

    error = raised(lambda: ray_client(server.url).get_job("s1"))

    assert f"answer larger than {MAX_JSON_BODY} bytes" in error.reason
    assert not error.transient
    # The client closed after about the cap: the rest never left the server (beyond socket buffers).
    assert server.sent < 32 * 1024 * 1024


def test_an_answer_that_declares_a_length_over_the_cap_is_refused_before_its_body(server: ScriptedServer) -> None:
    server.script("GET", "/api/jobs/s1", Answer(body=b" " * BLOCK, repeat=128))  # 8 MiB, declared

    error = raised(lambda: ray_client(server.url).get_job("s1"))

    assert f"answer larger than {MAX_JSON_BODY} bytes" in error.reason
    assert not error.transient


def test_the_job_list_may_be_larger_than_a_status_answer(server: ScriptedServer) -> None:
    job = {"submission_id": "s1", "status": "RUNNING", "entrypoint": "x" * (6 * 1024 * 1024)}
    server.json("GET", "/api/jobs/", [job])
    server.json("GET", "/api/jobs/s1", job)
    client = ray_client(server.url)

    jobs = client.list_jobs()

    assert [j.submission_id for j in jobs] == ["s1"]
    assert "answer larger than" in raised(lambda: client.get_job("s1")).reason


def test_an_answer_broken_while_it_is_read_is_transient_and_retried(server: ScriptedServer) -> None:
    body = json.dumps({"submission_id": "s1", "status": "RUNNING", "message": "m" * 100_000}).encode()
    server.script("GET", "/api/jobs/s1", Answer(body=body, cut_after=1000))
    client = RayJobsClient.connect(server.url, retry=RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.001))

    error = raised(lambda: client.get_job("s1"))

    assert error.transient
    assert len([s for s in server.seen if s.path == "/api/jobs/s1"]) == 2


# -- redirects ---------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("basic", [False, True], ids=["token", "basic+token"])
def test_a_redirect_is_not_followed_and_no_credential_reaches_the_other_host(
    server: ScriptedServer, other_server: ScriptedServer, status: int, basic: bool
) -> None:
    target = f"http://someone:pw-{MARKER}@127.0.0.1:{other_server.port}/api/version"
    server.script("GET", "/api/version", Answer(status, b"", "text/plain", {"Location": target}))
    other_server.json("GET", "/api/version", {"ray_version": "2.60.0"})
    credentials = RayCredentials(username="user", password=f"pw-{MARKER}", token=MARKER)

    error = raised(lambda: ray_client(server.url, credentials, basic=basic).version())

    assert other_server.seen == []
    assert error.status == status
    assert not error.transient
    assert f"redirects to http://127.0.0.1:{other_server.port}/api/version" in str(error)
    assert "resourceURL" in str(error)
    assert MARKER not in str(error)
    assert "someone" not in str(error)


def test_a_relative_redirect_is_named_with_its_full_address(server: ScriptedServer) -> None:
    server.script("POST", "/api/jobs/s1/stop", Answer(302, b"", headers={"Location": "/login?next=stop"}))

    error = raised(lambda: ray_client(server.url).stop_job("s1"))

    assert f"redirects to {server.url}/login?next=stop" in error.reason


# -- credentials that cannot be sent, and scrubbing -------------------------------------------------
@pytest.mark.parametrize("bad", ["\n", "\r", "\u4e2d"], ids=["newline", "cr", "cjk"])
def test_a_token_that_cannot_be_sent_is_a_permanent_error_without_its_text(server: ScriptedServer, bad: str) -> None:
    server.json("GET", "/api/version", {"ray_version": "2.60.0"})
    client = ray_client(server.url, RayCredentials(token=f"{MARKER}{bad}{MARKER}"))

    error = raised(client.version)

    assert not error.transient
    assert "the request could not be built" in error.reason
    assert "credential files" in error.reason
    assert MARKER not in str(error)
    assert error.__cause__ is None and error.__context__ is None
    assert server.seen == []


def test_a_basic_password_that_cannot_be_sent_is_a_permanent_error_without_its_text(server: ScriptedServer) -> None:
    credentials = RayCredentials(username="user", password=f"{MARKER}\u4e2d")

    error = raised(lambda: ray_client(server.url, credentials, basic=True).version())

    assert not error.transient
    assert MARKER not in str(error)


def test_a_bad_header_given_to_the_http_client_directly_is_permanent_and_unquoted(server: ScriptedServer) -> None:
    client = HttpClient(server.url, headers=lambda: {"X-Ray-Authorization": f"Bearer {MARKER}\n"}, retry=NO_RETRY)

    error = raised(lambda: client.json("GET", "/api/version"))

    assert not error.transient
    assert MARKER not in str(error)
    assert "InvalidHeader" in error.reason


@pytest.mark.parametrize("status", [401, 500])
def test_header_values_echoed_by_a_server_are_scrubbed_from_the_error(server: ScriptedServer, status: int) -> None:
    # A misbehaving proxy that quotes the request's headers in its error page.
    echo = f"Traceback ...\nbad request, headers: Authorization: Bearer {MARKER}; basic pw {MARKER}-pw".encode()
    server.script("GET", "/api/version", Answer(status, echo, "text/plain"))
    credentials = RayCredentials(username="user", password=f"{MARKER}-pw", token=MARKER)

    error = raised(lambda: ray_client(server.url, credentials, basic=True).version())

    assert server.seen[0].headers["x-ray-authorization"] == f"Bearer {MARKER}"  # it was sent, to the right host
    assert MARKER not in str(error)
    assert MARKER not in error.body
    assert "***" in error.body


def test_header_values_in_a_json_answer_of_the_wrong_shape_are_scrubbed(server: ScriptedServer) -> None:
    server.json("GET", "/api/jobs/s1", {"status": f"Bearer {MARKER}"})

    error = raised(lambda: ray_client(server.url, RayCredentials(token=MARKER)).get_job("s1"))

    assert "unknown job status" in error.reason
    assert MARKER not in str(error)
