"""The benchmark's probe of the head's answer time (bench/probe.py) against a scripted dashboard:
every request it makes is either a timed answer or a counted error, none dropped."""

from __future__ import annotations

import json
import time

from bench.probe import Probe
from tests.support.scripted_server import Answer, ScriptedServer

JOB = "raysubmit_probe"
JOB_JSON = json.dumps({"submission_id": JOB, "status": "SUCCEEDED"}).encode()
#: The longest the test waits for the probe's requests (it asks every 10 ms).
WAIT_LIMIT = 30.0


def wait_for_requests(server: ScriptedServer, count: int) -> None:
    limit = time.monotonic() + WAIT_LIMIT
    while server.count("GET", f"/api/jobs/{JOB}") < count:
        assert time.monotonic() < limit, f"the probe asked {server.count()} times in {WAIT_LIMIT:g} s"
        time.sleep(0.02)


def test_every_probe_request_is_a_timed_answer_or_a_counted_error(server: ScriptedServer) -> None:
    ok = Answer(body=JOB_JSON)
    server.route(
        "GET",
        f"/api/jobs/{JOB}",
        ok,
        Answer(500, b"Internal Server Error", "text/plain"),
        ok,
        Answer(body=b'{"submission_id": "another"}'),
        Answer(reset=True),
        Answer(body=b"<html>login</html>", content_type="text/html"),
        ok,
    )
    probe = Probe(server.url, JOB, interval=0.01).start()
    try:
        wait_for_requests(server, 10)
    finally:
        figures = probe.stop()

    asked = server.count("GET", f"/api/jobs/{JOB}")
    assert figures.requests == asked >= 10
    assert figures.errors == 4
    assert len(figures.answer_ms) == asked - 4
    assert all(ms > 0 for ms in figures.answer_ms)
    assert figures.error_messages[0] == "HTTP 500: Internal Server Error"
    assert figures.error_messages[1] == 'not the job\'s JSON: {"submission_id": "another"}'
    assert figures.error_messages[2].startswith("ConnectionError: ")
    assert figures.error_messages[3] == "not the job's JSON: <html>login</html>"
    # Stopped means stopped: no request after stop() returned.
    time.sleep(0.1)
    assert server.count("GET", f"/api/jobs/{JOB}") == asked
