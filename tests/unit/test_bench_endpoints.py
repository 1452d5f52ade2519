"""The arithmetic of the benchmark's ``--endpoints`` mode (bench/endpoints.py): each dashboard
process's CPU net of its idle rate, summed by role and divided by the calls made; and a pod's
requests charged at those costs, per call or per second held."""

from __future__ import annotations

import pytest

from bench.endpoints import (
    AGENT_ROLE,
    HEAD_ROLE,
    JOB_ITSELF,
    JOB_ROLE,
    OTHERS_ROLE,
    PACKAGE_FOUND,
    RUNNING,
    STATE_ROLE,
    STATUS_RUNNING,
    STREAM,
    TAIL,
    VERSION,
    Window,
    by_role,
    charges,
    job_split,
    net_of_idle,
    role_of,
)
from devtools.proxy import Request


def test_each_dashboard_process_has_its_role_and_the_other_modules_are_summed() -> None:
    assert [role_of(name) for name in ("dashboard", "agent", "JobHead-0", "StateHead-0")] == [
        HEAD_ROLE,
        AGENT_ROLE,
        JOB_ROLE,
        STATE_ROLE,
    ]
    assert by_role({"ReportHead-0": 0.25, "MetricsHead-0": 0.5, "dashboard": 1.0}) == {
        HEAD_ROLE: 1.0,
        JOB_ROLE: 0.0,
        STATE_ROLE: 0.0,
        AGENT_ROLE: 0.0,
        OTHERS_ROLE: 0.75,
    }


def test_a_window_is_charged_what_each_process_would_not_have_used_idle() -> None:
    net = net_of_idle({"dashboard": 1.0, "agent": 0.5}, {"dashboard": 0.01, "agent": 0.02}, 10.0)
    assert net == pytest.approx({"dashboard": 0.9, "agent": 0.3})


def test_a_windows_cost_is_its_net_cpu_by_role_divided_by_its_calls_in_milliseconds() -> None:
    window = Window(
        VERSION,
        units=100,
        seconds=4.0,
        cpu={"dashboard": 0.5, "JobHead-0": 0.0, "agent": 0.04},
        idle_rates={"dashboard": 0.025, "JobHead-0": 0.0, "agent": 0.01},
    )
    assert window.cost_ms() == pytest.approx(
        {HEAD_ROLE: 4.0, JOB_ROLE: 0.0, STATE_ROLE: 0.0, AGENT_ROLE: 0.0, OTHERS_ROLE: 0.0}
    )


def test_a_pod_is_charged_per_call_per_second_held_and_per_second_its_job_ran() -> None:
    recorded = [
        Request(at=0.0, method="GET", path="/api/version"),
        Request(at=1.0, method="GET", path="/api/jobs/raysubmit_a"),
        Request(at=2.0, method="GET", path="/api/v0/logs/stream?submission_id=raysubmit_a&interval=0.5"),
        Request(at=3.0, method="GET", path="/api/jobs/raysubmit_a/logs/tail", closed_at=7.0),
        Request(at=21.0, method="GET", path="/api/jobs/raysubmit_a"),
        Request(at=22.0, method="DELETE", path="/api/jobs/raysubmit_a"),
    ]
    costs = {
        VERSION: {HEAD_ROLE: 2.0},
        STATUS_RUNNING: {HEAD_ROLE: 1.0, JOB_ROLE: 3.0},
        STREAM: {AGENT_ROLE: 0.5, STATE_ROLE: 0.25},
        TAIL: {AGENT_ROLE: 1.0},
        RUNNING: {AGENT_ROLE: 0.125},
    }
    rows = {row.kind: row for row in charges(recorded, ended=22.0, job_seconds=16.0, costs=costs)}
    assert list(rows) == [
        "GET /api/version",
        "GET /api/jobs/<id>",
        "GET /api/v0/logs/stream",
        "GET /api/jobs/<id>/logs/tail",
        "DELETE /api/jobs/<id>",
        JOB_ITSELF,
    ]
    assert rows["GET /api/jobs/<id>"].count == 2
    assert rows["GET /api/jobs/<id>"].cost_ms == {HEAD_ROLE: 2.0, JOB_ROLE: 6.0}
    # A stream is held until the phase's end (the proxy sees no end to it), a WebSocket until it closed.
    assert rows["GET /api/v0/logs/stream"].cost_ms == {AGENT_ROLE: 10.0, STATE_ROLE: 5.0}
    assert rows["GET /api/jobs/<id>/logs/tail"].cost_ms == {AGENT_ROLE: 4.0}
    assert rows["DELETE /api/jobs/<id>"].endpoint is None
    assert rows["DELETE /api/jobs/<id>"].total_ms == 0.0
    assert rows[JOB_ITSELF].cost_ms == {AGENT_ROLE: 2.0}
    # Fixed: the version and the two polls; by the second: the stream, the tail and the job running.
    assert job_split(list(rows.values())) == (10.0, 21.0)


def test_a_package_check_is_charged_at_the_package_windows_cost() -> None:
    recorded = [Request(at=0.0, method="GET", path="/api/packages/gcs/_ray_pkg_abc.zip")]
    row, _job = charges(recorded, ended=0.0, job_seconds=0.0, costs={PACKAGE_FOUND: {HEAD_ROLE: 1.5}})
    assert (row.endpoint, row.total_ms) == (PACKAGE_FOUND, 1.5)
