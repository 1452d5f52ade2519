"""A Ray job that holds the head's CPUs for a while, so that jobs asking for CPUs wait PENDING
behind it: the benchmark's PENDING jobs and the tests of a job that starts late share it."""

from __future__ import annotations

import time

import requests

#: How long the blocker itself may take to start; a head busy with other jobs' CPUs may never start it.
START_TIMEOUT = 60.0


def hold_cpus(address: str, cpus: float, seconds: float) -> str:
    """POST a job that holds ``cpus`` of the head's CPUs for ``seconds`` (directly to the dashboard,
    no proxy), and wait until it runs; returns its submission id. Raises when it does not start."""
    body = {"entrypoint": f"sleep {seconds:g}", "entrypoint_num_cpus": cpus}
    answer = requests.post(f"{address}/api/jobs/", json=body, timeout=60)
    answer.raise_for_status()
    submission_id = str(answer.json()["submission_id"])
    limit = time.monotonic() + START_TIMEOUT
    while time.monotonic() < limit:
        status = requests.get(f"{address}/api/jobs/{submission_id}", timeout=30).json().get("status")
        if status != "PENDING":
            return submission_id
        time.sleep(0.2)
    release(address, submission_id)
    raise RuntimeError(f"the blocker {submission_id} did not start within {START_TIMEOUT:g} s")


def release(address: str, submission_id: str) -> None:
    """Stop the blocker (it may have ended already)."""
    requests.post(f"{address}/api/jobs/{submission_id}/stop", timeout=30)
