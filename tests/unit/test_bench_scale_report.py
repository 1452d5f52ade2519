"""The benchmark's figures for issue 24's scale goal: the nearest-rank percentile, the probe's CPU
taken off a phase's, the p99 row of the N-pods table, the N-pods table over several rounds, and the
scale section's goal (bench/)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.pods import Phase, median_phase, per_job_cpu, render_pods
from bench.probe import Calibration, ProbeFigures, p99_cell, per_request_cost
from bench.report import percentile
from bench.scale import render_scale
from bench.tools import RAYPOD, SDK_TAIL
from bench.watched import RayRecord, WatchedRun
from devtools.services import DASHBOARD_AGENT, DASHBOARD_HEAD


def phase(
    tool: str,
    answer_ms: list[float],
    *,
    errors: list[str] | None = None,
    probe_errors: int = 0,
    cost: float = 0.0,
    pods: int = 1,
    dashboard_cpu: float = 1.0,
) -> Phase:
    """A phase of one 60 s job in which the dashboard used ``dashboard_cpu`` CPU seconds over 10 s,
    idle at 0.01 s/s (the agent nothing), each probe request costing it ``cost``."""
    run = WatchedRun(tool, 0, 30 * 1024, 0.5, 60.0, "job-1", ray=RayRecord("SUCCEEDED", 1000.0, 1060.0))
    run.errors += errors or []
    probe = ProbeFigures(answer_ms, probe_errors, [f"HTTP 500: {i}" for i in range(probe_errors)])
    calibration = Calibration({DASHBOARD_HEAD: cost, DASHBOARD_AGENT: 0.0}, ProbeFigures([1.0]))
    idle, cpu = {DASHBOARD_HEAD: 0.01, DASHBOARD_AGENT: 0.0}, {DASHBOARD_HEAD: dashboard_cpu, DASHBOARD_AGENT: 0.0}
    return Phase(tool, pods, 10.0, idle, cpu, [run], [], probe, calibration)


def test_the_percentile_is_the_nearest_rank_of_whole_percents() -> None:
    hundred = [float(n) for n in range(100, 0, -1)]
    assert percentile(hundred, 99) == 99.0
    assert percentile(hundred, 50) == 50.0
    assert percentile(hundred, 100) == 100.0
    # 0.07 × 100 is 7.000000000000001 in floats: a fraction's rank would come out as the 8th.
    assert percentile(hundred, 7) == 7.0
    # Few values: the 99th percentile of ten is their max.
    assert percentile([3.0, 1.0, 2.0, 9.0, 4.0, 5.0, 6.0, 7.0, 8.0, 0.5], 99) == 9.0
    with pytest.raises(ValueError):
        percentile([], 99)
    with pytest.raises(ValueError):
        percentile([1.0], 0)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=300), st.integers(1, 100))
def test_at_least_that_share_is_at_or_under_the_percentile_and_less_than_it_under(
    values: list[float], percent: int
) -> None:
    found = percentile(values, percent)
    assert found in values
    assert 100 * sum(v <= found for v in values) >= percent * len(values)
    assert 100 * sum(v < found for v in values) < percent * len(values)


def test_a_probe_without_answers_has_no_percentile_and_its_errors_show_beside_the_p99() -> None:
    assert math.isnan(ProbeFigures([], 3).p99)
    assert p99_cell(ProbeFigures([], 3)) == "- (3 probe errors)"
    assert p99_cell(ProbeFigures([2.0, 4.0], 1)) == "4.0 ms (1 probe error)"
    assert p99_cell(ProbeFigures([2.0, 4.0], 0)) == "4.0 ms"


def test_a_phases_cpu_is_net_of_idle_and_of_the_probes_own_requests() -> None:
    # 1.0 s used, 0.01 s/s idle over 10 s, 40 probe requests at 5 ms each.
    measured = phase(RAYPOD, [1.0] * 38, probe_errors=2, cost=0.005)
    assert measured.net_cpu(DASHBOARD_HEAD) == pytest.approx(1.0 - 0.1 - 0.2)
    assert measured.raw()["probe"] == {
        "answers": 38,
        "p50_ms": 1.0,
        "p99_ms": 1.0,
        "max_ms": 1.0,
        "errors": 2,
        "error_messages": ["HTTP 500: 0", "HTTP 500: 1"],
    }


def test_the_probes_cost_per_request_leaves_out_what_is_within_the_idle_rates_noise() -> None:
    net = {DASHBOARD_HEAD: 0.1, "JobHead-0": 0.16, "EventHead-0": -0.04, "StateHead-0": 0.01}
    assert per_request_cost(net, 80) == {
        DASHBOARD_HEAD: pytest.approx(0.00125),
        "JobHead-0": pytest.approx(0.002),
        "EventHead-0": 0.0,
        "StateHead-0": 0.0,
    }
    assert per_request_cost(net, 0) == dict.fromkeys(net, 0.0)


def test_the_pods_table_has_the_probes_p99_for_each_tool_at_each_n() -> None:
    phases = [
        phase(RAYPOD, [float(n) for n in range(1, 101)], pods=1),
        phase(SDK_TAIL, [2.0 * n for n in range(1, 101)], pods=1, probe_errors=1),
    ]
    section = render_pods(phases, [1], [RAYPOD, SDK_TAIL], 60)
    row = next(line for line in section.lines if "p99 (the probe)" in line)
    assert "| 99.0 ms | 198.0 ms (1 probe error) |" in row
    assert row.startswith("| `GET /api/jobs/<id>` answer time, p99 (the probe), N = 1 |")


@given(st.lists(st.floats(0.2, 5.0), min_size=1, max_size=7))
def test_a_cells_figures_come_from_its_median_round(cpus: list[float]) -> None:
    rounds = [phase(RAYPOD, [float(i + 1)], dashboard_cpu=cpu) for i, cpu in enumerate(cpus)]

    chosen = median_phase(rounds)

    assert chosen in rounds
    below = sum(per_job_cpu(r) < per_job_cpu(chosen) for r in rounds)
    above = sum(per_job_cpu(r) > per_job_cpu(chosen) for r in rounds)
    assert below <= (len(rounds) - 1) // 2 and above <= len(rounds) // 2


def test_over_three_rounds_the_table_shows_the_median_round_and_lists_every_rounds_cpu_per_job() -> None:
    # Rounds in the order they ran, the tools in turn: raypod 1.3, 0.9, 1.1 s; the SDK 1.0 s each.
    phases = []
    for mine in (1.3, 0.9, 1.1):
        phases += [phase(RAYPOD, [mine * 100], dashboard_cpu=mine), phase(SDK_TAIL, [50.0], dashboard_cpu=1.0)]

    section = render_pods(phases, [1], [RAYPOD, SDK_TAIL], 60)

    per_job = next(line for line in section.lines if line.startswith("| dashboard + agent CPU per job, N = 1 |"))
    assert per_job.startswith("| dashboard + agent CPU per job, N = 1 | 1.000 s | 0.900 s |")
    each = next(line for line in section.lines if line.startswith("| the same, each round, N = 1 |"))
    assert each == "| the same, each round, N = 1 | 1.200 / 0.800 / 1.000 s | 0.900 / 0.900 / 0.900 s | - |"
    # The probe's row is the median round's own (raypod's 1.1 s round asked once, in 110 ms).
    assert "| 110.0 ms | 50.0 ms |" in next(line for line in section.lines if "p99 (the probe)" in line)
    assert "median" in section.lines[0]
    [cpu_goal, _] = [goal for goal in section.goals if "CPU per job" in goal.goal or "zero errors" in goal.goal]
    assert not cpu_goal.met
    assert "N = 1: 1.000 s against 0.900 s" in cpu_goal.result


def test_one_round_says_nothing_of_rounds() -> None:
    section = render_pods([phase(RAYPOD, [1.0]), phase(SDK_TAIL, [1.0])], [1], [RAYPOD, SDK_TAIL], 60)

    assert not any("each round" in line for line in section.lines)
    assert "median" not in section.lines[0]


def test_the_scale_goal_is_met_with_no_raypod_error_and_both_p99s_side_by_side() -> None:
    mine = phase(RAYPOD, [float(n) for n in range(1, 101)], pods=100)
    theirs = phase(SDK_TAIL, [float(n) for n in range(1, 101)], errors=["exit code 1"], pods=100)
    section = render_scale([mine, theirs], 100, 60)
    [goal] = section.goals
    assert goal.met
    assert goal.goal.startswith("100 watched jobs with zero errors")
    assert "errors: raypod 0, SDK 1; p99 99.0 ms against the SDK's 99.0 ms (raypod's ≤ the SDK's)" in goal.result
    p99_row = next(line for line in section.lines if "answer time, p99" in line)
    assert p99_row.endswith("| 99.0 ms | 99.0 ms |")
    assert "- sdk-tail: job-1: exit code 1" in section.lines


def test_the_scale_goal_is_missed_by_a_raypod_error_or_a_missing_figure_and_says_a_slower_p99() -> None:
    slower = phase(RAYPOD, [5.0, 500.0], pods=100)
    theirs = phase(SDK_TAIL, [5.0, 50.0], pods=100)
    [goal] = render_scale([slower, theirs], 100, 60).goals
    assert goal.met
    assert "raypod's > the SDK's" in goal.result

    failing = phase(RAYPOD, [5.0], errors=["final status FAILED"], pods=100)
    assert not render_scale([failing, theirs], 100, 60).goals[0].met

    unmeasured = phase(RAYPOD, [], probe_errors=240, pods=100)
    [goal] = render_scale([unmeasured, theirs], 100, 60).goals
    assert not goal.met
    assert "(not measured); probe errors 240 and 0" in goal.result
