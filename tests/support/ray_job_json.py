"""Ray 2.60's answer for one job (``GET /api/jobs/<id>``: its ``JobDetails``), for the fakes that
answer as Ray: ``fakes.FakeJob`` and ``fake_dashboard.RayJob`` build theirs here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def job_json(
    submission_id: str,
    status: str,
    *,
    entrypoint: str = "python job.py",
    message: str = "",
    start_time: int | None = None,
    end_time: int | None = None,
    metadata: Mapping[str, str] | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    driver_agent_http_address: str | None = None,
    driver_node_id: str | None = "node-1",
    driver_exit_code: int | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    """Every field Ray 2.60 sends, in its order; ``error_type`` (a ``JobErrorType`` name) only on FAILED."""
    return {
        "type": "SUBMISSION",
        "job_id": None,
        "submission_id": submission_id,
        "driver_info": None,
        "status": status,
        "entrypoint": entrypoint,
        "message": message,
        "error_type": error_type,
        "start_time": start_time,
        "end_time": end_time,
        "metadata": dict(metadata or {}),
        "runtime_env": dict(runtime_env or {}),
        "driver_agent_http_address": driver_agent_http_address,
        "driver_node_id": driver_node_id,
        "driver_exit_code": driver_exit_code,
    }
