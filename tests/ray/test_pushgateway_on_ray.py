"""A real run on the Ray head pushes real figures: the queue time Ray's job spent before it ran, the
log bytes that are in S3, Ray's own times and the attempts, once, to a recording gateway on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.helpers import BridgeJob, ray_job
from tests.support.pushgateway import RecordingGateway
from tests.support.scripted_server import ScriptedServer

SCRIPT = """\
import time
for n in range(200):
    print(f"line {n} of the job's log")
time.sleep(3)
print("done")
"""


@pytest.fixture
def gateway_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


def test_a_run_on_ray_pushes_the_queue_time_and_the_log_bytes_in_s3(
    bridge_job: BridgeJob, gateway_server: ScriptedServer, s3_client: object
) -> None:
    gateway = RecordingGateway(gateway_server)
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript=SCRIPT)
    result = bridge_job.run("--pushgateway", gateway_server.url)
    assert result.returncode == 0, result.stderr
    key, families = gateway.only_push()
    assert key == {"job": "raypod", "namespace": "test-ns", "bridgejob": bridge_job.name}

    stat = s3_client.stat_object(bridge_job.bucket, f"{bridge_job.name}/logs")  # type: ignore[attr-defined]
    assert families["raypod_log_uploaded_bytes"].value == stat.size > 0
    assert "line 199 of the job's log" in bridge_job.log_text()

    ray = ray_job(bridge_job.services, result.status["id"])
    assert families["raypod_job_duration_seconds"].value == (ray["end_time"] - ray["start_time"]) / 1000
    assert families["raypod_job_attempts"].value == 1
    # Ray ran the job after it queued it: measured at raypod's polls, within the run, before the job's end.
    queue = families["raypod_job_queue_seconds"].value
    assert 0 <= queue <= families["raypod_job_duration_seconds"].value
    assert queue <= families["raypod_run_duration_seconds"].value
    assert families["raypod_run_outcome"].labels["status"] == "SUCCEEDED"
    assert families["raypod_run_outcome"].labels["reason"] == result.status["status.reason"]
