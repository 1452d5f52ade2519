"""``--lag``: the completion lag of short jobs, raypod at its default settings against the SDK's loop.

Each round runs the four watchers of bench/watched.py side by side, one job each of the same
length (bench/job.py printing a line every 0.1 s): raypod (``updateInterval`` 20, the operator's
default, live output on), raypod ``--no-follow-logs``, and sdk_watch.py polling
``get_job_status`` every second without and with ``tail_job_logs``. They are idle but for their
polls when the jobs end, so running them together costs each little; it makes the mode four
times shorter. Every job length is run ``repeats`` times; the table gives each tool's median and
max lag (bench/watched.py says how a lag is measured).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bench.report import Goal, Section, median, table
from bench.tools import HEADERS, NO_FOLLOW, RAYPOD, SDK_POLL, Stage
from bench.watched import LINE_INTERVAL, UPDATE_INTERVAL, WATCHERS, WatchedRun, lag_cell, lag_summary, watch_job

#: The goal of issue 13: the final status within a second of Ray's end_time (median).
GOAL_LAG = 1.0


def run_lag(stage: Stage, lengths: list[float], repeats: int) -> dict[tuple[str, float], list[WatchedRun]]:
    results: dict[tuple[str, float], list[WatchedRun]] = {}
    for length in lengths:
        for repeat in range(repeats):
            with ThreadPoolExecutor(len(WATCHERS)) as pool:
                started = {tool: pool.submit(watch_job, stage, tool, "lag", length, LINE_INTERVAL) for tool in WATCHERS}
            for tool, future in started.items():
                run = future.result()
                results.setdefault((tool, length), []).append(run)
                lag = "-" if run.lag is None else f"{run.lag:6.2f} s"
                problems = f"  errors: {'; '.join(run.errors)}" if run.errors else ""
                print(f"lag {tool:16} {length:4g} s job  run {repeat + 1}: lag {lag}{problems}", flush=True)
    return results


def render_lag(results: dict[tuple[str, float], list[WatchedRun]], lengths: list[float], repeats: int) -> Section:
    rows = [
        (f"completion lag, {length:g} s job: median (max)", *(lag_cell(results[(tool, length)]) for tool in WATCHERS))
        for length in lengths
    ]
    errors = [str(sum(len(run.errors) for length in lengths for run in results[(tool, length)])) for tool in WATCHERS]
    rows.append(("errors", *errors))
    tail_lags = [run.tail_lag for runs in results.values() for run in runs if run.tail_lag is not None]
    tail_note = (
        f"- Ray closed the WebSocket tail (`tail_job_logs`, sdk-tail's runs) {median(tail_lags):.2f} s after "
        f"`end_time` (median; {min(tail_lags):.2f}–{max(tail_lags):.2f} s)."
        if tail_lags
        else "- No run recorded when Ray closed its WebSocket tail."
    )
    lines = [
        f"Completion lag: from Ray's `end_time` to the final status write; runs per job length: {repeats}; "
        f"raypod with `updateInterval` {UPDATE_INTERVAL:g} (the operator's default).",
        "",
        *table(("measure", *(HEADERS[tool] for tool in WATCHERS)), rows),
        "",
        tail_note,
    ]
    lengths_text = ", ".join(f"{length:g}" for length in lengths)
    headline = [
        (
            f"completion lag (Ray's `end_time` to the final status), jobs of {lengths_text} s, median of {repeats}",
            ", ".join(_median_lag(results[(RAYPOD, length)]) for length in lengths) + " s",
            ", ".join(_median_lag(results[(SDK_POLL, length)]) for length in lengths) + " s",
        )
    ]
    return Section(lines, lag_goals(results, lengths), {"lag": lag_raw(results)}, headline)


def _median_lag(runs: list[WatchedRun]) -> str:
    summary = lag_summary(runs)
    return "-" if summary is None else f"{summary[0]:.2f}"


def lag_goals(results: dict[tuple[str, float], list[WatchedRun]], lengths: list[float]) -> list[Goal]:
    """A run without a lag (it failed) misses the goal: its lag is taken as infinite."""
    missing = float("inf")
    medians = [median(missing if r.lag is None else r.lag for r in results[(RAYPOD, length)]) for length in lengths]
    no_follow = max(missing if r.lag is None else r.lag for length in lengths for r in results[(NO_FOLLOW, length)])
    ceiling = UPDATE_INTERVAL + GOAL_LAG
    return [
        Goal(
            f"final status ≤ {GOAL_LAG:g} s after Ray's end_time (median, each job length)",
            ", ".join(f"{m:.2f} s" for m in medians),
            max(medians) <= GOAL_LAG,
        ),
        Goal(
            f"live output off no worse than polling: every lag ≤ {ceiling:g} s (updateInterval + {GOAL_LAG:g} s)",
            f"max {no_follow:.2f} s",
            no_follow <= ceiling,
        ),
    ]


def lag_raw(results: dict[tuple[str, float], list[WatchedRun]]) -> list[dict[str, object]]:
    return [{"job_seconds": length, **run.raw()} for (_, length), runs in results.items() for run in runs]
