"""Following a job's log live leaves no request open on Ray's state API after raypod has gone.

Ray 2.60 keeps a follow stream (``/api/v0/logs/stream``) open after its client closed it until the log
grows again, which a finished job's never does: each such stream holds one of the state API's
in-progress requests (``RAY_STATE_SERVER_MAX_HTTP_REQUEST``, 100 by default) until the head stops,
and past the limit every log read is refused with a 429, raypod's own upload read included. A head
of its own with a limit of 2 shows a single leaked request at the second job.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools.services import LocalRay
from raypod.ray import RayJobsClient

JOBS = 3
#: Prints for a few seconds: the first poll finds it running, and it is followed live to its end.
SCRIPT = "import time\nfor i in range(8):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"


@pytest.fixture(scope="module")
def two_slot_ray() -> Iterator[LocalRay]:
    ray = LocalRay(env={"RAY_STATE_SERVER_MAX_HTTP_REQUEST": "2"}, num_cpus=1)
    ray.start()
    try:
        yield ray
    finally:
        ray.stop()


def test_jobs_followed_live_one_after_another_leave_the_state_apis_requests_free(
    tmp_path: Path, two_slot_ray: LocalRay
) -> None:
    script = tmp_path / "ticks.py"
    script.write_text(SCRIPT)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RAYPOD_"))}
    for n in range(JOBS):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "raypod",
                "submit",
                "--address",
                two_slot_ray.address,
                "--script",
                str(script),
                "--wait",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=base,
        )
        assert result.returncode == 0, f"job {n}: {result.stdout}{result.stderr}"
        assert "[job] tick 7" in result.stdout.splitlines()
        assert "429" not in result.stderr

    # The state API still answers a log read: no request of the three runs is left open in it.
    client = RayJobsClient.connect(two_slot_ray.address)
    try:
        (last,) = [job for job in client.list_jobs() if job.status == "SUCCEEDED"][-1:]
        answer = requests.get(
            f"{two_slot_ray.address}/api/v0/logs/file",
            params={"submission_id": last.submission_id, "lines": "-1", "node_id": last.driver_node_id or ""},
            timeout=30,
        )
    finally:
        client.close()
    assert answer.status_code == 200, answer.text[:300]
    assert "tick 7" in answer.text
