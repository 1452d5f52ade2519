"""The job's log reaches the store on both of the log stream's fallbacks: a job whose driver never
ran (no node to stream from) and a Ray without ``/api/v0/logs/file`` (404 or 405) are uploaded from
Ray's one-string answer, ``/api/jobs/<id>/logs`` (a scripted loopback dashboard, an in-memory store)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from raypod.logs import upload_log
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import NO_RETRY
from tests.support.memory_store import MemoryStore
from tests.support.scripted_server import Answer, ScriptedServer

LOG = "first line\nsecond line, é\n"
STREAM = "/api/v0/logs/*"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        scripted.json("GET", "/api/jobs/s1/logs", {"logs": LOG})
        yield scripted


def uploaded(server: ScriptedServer, job: JobInfo) -> bytes:
    ray = RayJobsClient.connect(server.url, retry=NO_RETRY)
    store = MemoryStore()
    try:
        size = upload_log(ray, store, job, "results", "train/logs", None, NO_RETRY)
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
