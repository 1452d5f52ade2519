"""The job's log reaches the store: read by its file name on the driver's node, by the job's id from
a Ray that names the file otherwise, and on both of the log stream's fallbacks: a job whose driver
never ran (no node to stream from) and a Ray without ``/api/v0/logs/file`` (404 or 405) are uploaded
from Ray's one-string answer, ``/api/jobs/<id>/logs`` (a scripted loopback dashboard, an in-memory store)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from raypod.errors import RayApiError
from raypod.logs import upload_log
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import NO_RETRY, RetryPolicy
from tests.support.memory_store import MemoryStore
from tests.support.scripted_server import Answer, ScriptedServer, Seen

LOG = "first line\nsecond line, é\n"
STREAM = "/api/v0/logs/*"
FILE = "/api/v0/logs/file"
#: Ray's state API when the agent finds no such file: a 500 with the agent's own words.
NO_SUCH_FILE = Answer(500, b"A file is not found at: /tmp/ray/session_latest/logs/job-driver-s1.log", "text/plain")
#: Retries that a retried answer would show in the request counts.
RETRYING = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001, deadline=5.0)
FINISHED = JobInfo("s1", "SUCCEEDED", driver_node_id="node-1")


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        scripted.json("GET", "/api/jobs/s1/logs", {"logs": LOG})
        yield scripted


def uploaded(server: ScriptedServer, job: JobInfo, retry: RetryPolicy = NO_RETRY) -> bytes:
    ray = RayJobsClient.connect(server.url, retry=retry)
    store = MemoryStore()
    try:
        size = upload_log(ray, store, job, "results", "train/logs", None, retry)
    finally:
        ray.close()
    data = store.objects[("results", "train/logs")]
    assert size == len(data)
    return data


def test_the_log_of_a_job_whose_driver_never_ran_is_uploaded_from_rays_one_string_answer(
    server: ScriptedServer,
) -> None:
    # A stream asked for without a node would fail: it must not be asked for.
    server.route("GET", STREAM, Answer(500, json.dumps({"message": "no node"}).encode()))

    data = uploaded(server, JobInfo("s1", "FAILED", "runtime_env failed", driver_node_id=None))

    assert data == LOG.encode()
    assert server.count("GET", STREAM) == 0


@pytest.mark.parametrize("status", [404, 405])
def test_a_ray_without_the_log_file_endpoint_still_gets_the_log_uploaded(server: ScriptedServer, status: int) -> None:
    server.route("GET", STREAM, Answer(status, b'{"message": "no such endpoint"}'))

    data = uploaded(server, JobInfo("s1", "SUCCEEDED", driver_node_id="node-1"))

    assert data == LOG.encode()
    assert server.count("GET", STREAM) == 1
    assert server.count("GET", "/api/jobs/s1/logs") == 1


def query(seen: Seen) -> dict[str, list[str]]:
    return parse_qs(urlsplit(seen.path).query)


def file_reads(server: ScriptedServer) -> list[dict[str, list[str]]]:
    return [query(seen) for seen in server.seen if seen.bare_path == FILE]


def by_name_or_id(by_name: Answer, by_id: Answer) -> Callable[[Seen], Answer]:
    return lambda seen: by_name if "filename" in query(seen) else by_id


def test_the_log_is_read_by_its_file_name_on_the_drivers_node_not_looked_up_by_the_jobs_id(
    server: ScriptedServer,
) -> None:
    # By id, Ray's state API would first read every job the cluster has to find this one's node.
    server.route("GET", FILE, Answer(200, LOG.encode(), "text/plain"))

    data = uploaded(server, FINISHED)

    assert data == LOG.encode()
    assert file_reads(server) == [{"node_id": ["node-1"], "filename": ["job-driver-s1.log"], "lines": ["-1"]}]


def test_a_ray_that_names_the_driver_log_otherwise_is_asked_by_the_jobs_id_at_once(server: ScriptedServer) -> None:
    server.route("GET", FILE, by_name_or_id(NO_SUCH_FILE, Answer(200, LOG.encode(), "text/plain")))

    data = uploaded(server, FINISHED, RETRYING)

    assert data == LOG.encode()
    # Ray's "no such file" is not retried by name: the next request asks by id.
    assert file_reads(server) == [
        {"node_id": ["node-1"], "filename": ["job-driver-s1.log"], "lines": ["-1"]},
        {"node_id": ["node-1"], "submission_id": ["s1"], "lines": ["-1"]},
    ]


@pytest.mark.parametrize("submission_id", ["../../etc/passwd", "a/b", "a\\b", ".."])
def test_a_job_id_that_would_make_the_file_name_a_path_is_asked_for_by_id(
    server: ScriptedServer, submission_id: str
) -> None:
    # Ray takes any string as an id; one another client chose is data, never part of a path.
    server.route("GET", FILE, Answer(200, LOG.encode(), "text/plain"))

    data = uploaded(server, JobInfo(submission_id, "SUCCEEDED", driver_node_id="node-1"))

    assert data == LOG.encode()
    assert file_reads(server) == [{"node_id": ["node-1"], "submission_id": [submission_id], "lines": ["-1"]}]


def test_a_log_ray_has_no_file_for_fails_the_upload_at_once_with_rays_words(server: ScriptedServer) -> None:
    server.route("GET", FILE, NO_SUCH_FILE)

    with pytest.raises(RayApiError) as failed:
        uploaded(server, FINISHED, RETRYING)

    assert failed.value.log_file_missing
    assert not failed.value.transient
    assert "A file is not found at" in str(failed.value)
    # One read by name, one by id; neither retried, nor the upload as a whole.
    assert len(file_reads(server)) == 2
    assert server.count("GET", "/api/jobs/s1/logs") == 0


def test_another_500_from_the_log_read_is_retried_and_not_taken_for_a_missing_file(server: ScriptedServer) -> None:
    server.route(
        "GET",
        FILE,
        Answer(500, b"500 Internal Server Error\n\nServer got itself in trouble", "text/plain"),
        Answer(200, LOG.encode(), "text/plain"),
    )

    data = uploaded(server, FINISHED, RETRYING)

    assert data == LOG.encode()
    assert [read.get("filename") for read in file_reads(server)] == [["job-driver-s1.log"]] * 2


@pytest.mark.parametrize(
    ("status", "body", "retryable", "missing", "transient"),
    [
        (500, "A file is not found at: /tmp/ray/logs/job-driver-s1.log", None, True, False),
        (500, "  A file is not found at: /x\n", None, True, False),
        (500, "A file is not found at: /x", True, True, True),
        (500, "Server got itself in trouble", None, False, True),
        (404, "A file is not found at: /x", None, False, False),
        (503, "A file is not found at: /x", None, False, True),
    ],
)
def test_only_rays_own_missing_file_answer_is_a_missing_log_file_and_it_is_lasting(
    status: int, body: str, retryable: bool | None, missing: bool, transient: bool
) -> None:
    error = RayApiError("GET", "http://ray/api/v0/logs/file", status, "summary", body, retryable=retryable)

    assert (error.log_file_missing, error.transient) == (missing, transient)
