"""The watch's early polls once the job's output goes quiet (raypod/watch_schedule.py), on fake clocks."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from raypod.contract import BridgeStatus
from raypod.outcome import Ending, Outcome
from raypod.retry import RetryPolicy
from raypod.watch_schedule import (
    BACKOFF,
    BEATS,
    FIRST_LOOK,
    MIN_GAP,
    QUIET_AFTER,
    STEADY_GAP,
    STEADY_UNTIL,
    TAIL_CYCLE,
    TAIL_SLACK,
    OutputActivity,
    next_quiet_poll,
    quiet_threshold,
)
from tests.support.fakes import FakeClock, Harness

INTERVAL = 20.0


def quiet_polls(length: float, interval: float = INTERVAL) -> list[float]:
    """The quiet times at which a job silent for ``length`` s is polled, by the schedule alone."""
    polls, quiet = [], 0.0
    while True:
        quiet += next_quiet_poll(quiet, interval)
        if quiet > length:
            return polls
        polls.append(quiet)


# -- the schedule ---------------------------------------------------------------------------------
def test_the_first_early_poll_waits_until_the_output_was_quiet_longer_than_the_streams_beat() -> None:
    assert next_quiet_poll(0.0, INTERVAL) == QUIET_AFTER
    assert next_quiet_poll(QUIET_AFTER / 4, INTERVAL) == QUIET_AFTER * 3 / 4
    assert quiet_polls(QUIET_AFTER)[0] == QUIET_AFTER


def test_early_polls_back_off_so_an_hour_of_quiet_costs_few_more_polls_than_the_interval() -> None:
    polls = quiet_polls(3600.0)
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(gaps))  # never closer together as the quiet goes on
    assert gaps[-1] == INTERVAL
    early = [gap for gap in gaps if gap < INTERVAL]
    assert len(early) <= 30
    assert len(polls) <= 3600 / INTERVAL + 30
    # A job quiet for its last 30 s is asked about fifteen times meanwhile, the last few STEADY_GAP apart.
    last_30 = quiet_polls(30.0)
    assert len(last_30) <= 16
    assert 30.0 - last_30[-1] <= STEADY_GAP


def test_through_the_first_minute_of_quiet_no_early_poll_waits_longer_than_the_steady_gap() -> None:
    polls = quiet_polls(STEADY_UNTIL)
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    assert max(gaps) <= STEADY_GAP + 1e-9
    assert next_quiet_poll(STEADY_UNTIL, INTERVAL) == min(STEADY_UNTIL * BACKOFF, INTERVAL)


@given(quiet=s.floats(0, 10**6), interval=s.floats(0.5, 3600), beat=s.floats(0, 100))
def test_no_early_poll_waits_longer_than_the_interval_or_comes_sooner_than_the_min_gap(
    quiet: float, interval: float, beat: float
) -> None:
    wait = next_quiet_poll(quiet, interval, beat)
    assert min(MIN_GAP, interval) <= wait <= interval


def test_a_poll_a_hair_before_the_quiet_threshold_waits_the_min_gap_and_not_a_rounding_error() -> None:
    # The polled time and the last output a float apart from two of the job's gaps: the watch once
    # polled again and again at the same fake instant (0.5 of quiet per early poll made it land there).
    last, beat = 1024.3, 7.99299999999999
    polled_at = 1040.2859999999998
    assert polled_at - last < BEATS * beat
    assert polled_at + next_quiet_poll(polled_at - last, INTERVAL, beat) >= polled_at + MIN_GAP


def test_a_job_that_printed_nothing_yet_is_polled_by_the_interval_alone() -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    assert activity.poll_due(clock.monotonic(), INTERVAL) == math.inf


def test_output_after_a_poll_moves_the_early_poll_to_its_quiet() -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    activity.output()
    polled_at = clock.monotonic()
    assert activity.poll_due(polled_at, INTERVAL) == polled_at + QUIET_AFTER
    clock.advance(0.5)
    activity.output()
    assert activity.poll_due(polled_at, INTERVAL) == clock.monotonic() + QUIET_AFTER


def test_steady_output_counts_as_stopped_once_the_tail_has_missed_one_cycle() -> None:
    # Ray's tail sends steady output once a cycle: the burst due after the last did not come.
    assert quiet_threshold(0.0) == quiet_threshold(TAIL_CYCLE) == TAIL_CYCLE + TAIL_SLACK == QUIET_AFTER
    assert QUIET_AFTER < 1.5  # a job's last burst comes 0.5 to 1.4 s after its end: seen within about 3 s


def test_quiet_counts_only_past_the_jobs_own_gap_and_as_much_again_beyond_the_tails_cycle() -> None:
    assert next_quiet_poll(0.0, INTERVAL, beat=5.0) == 5.0 + (BEATS - 1) * (5.0 - TAIL_CYCLE)
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    for _ in range(5):
        activity.output()
        clock.advance(5.0)
    assert activity.poll_due(clock.monotonic(), INTERVAL) == clock.monotonic() + 4.0


@given(beat=s.floats(0, 1000), slower=s.floats(0, 1000))
def test_a_slower_rhythm_never_counts_as_stopped_sooner(beat: float, slower: float) -> None:
    assert quiet_threshold(beat) >= max(beat, QUIET_AFTER)
    assert quiet_threshold(beat + slower) >= quiet_threshold(beat)


def test_the_tails_end_makes_the_next_poll_due_at_once_and_only_once() -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    polled_at = clock.monotonic()
    clock.advance(1.0)
    activity.poll_now()
    assert activity.poll_due(polled_at, INTERVAL) == clock.monotonic()
    clock.advance(0.1)
    later_poll = clock.monotonic()
    assert activity.poll_due(later_poll, INTERVAL) > later_poll


# -- the watch -------------------------------------------------------------------------------------
def watched(
    life: Callable[[float], str],
    output_until: float,
    *,
    beat: float = 1.0,
    kill_at: float | None = None,
    output: list[float] | None = None,
    tail_ends: float | None = None,
) -> tuple[Harness, Outcome, list[tuple[float, str]]]:
    """A session at updateInterval 20 whose job prints every ``beat`` s up to ``output_until`` (as Ray's
    tail delivers it), or at the times ``output``; ``life``: Ray's status at a fake elapsed time;
    ``tail_ends``: when Ray closes the tail. Returns the harness, the outcome and the polls (elapsed
    time, status)."""
    holder: list[Harness] = []
    h = Harness({"updateInterval": f"{INTERVAL:g}"}, life=lambda _: life(holder[0].clock.elapsed))
    holder.append(h)
    activity = OutputActivity(h.clock.monotonic)
    times = output if output is not None else [beat * n for n in range(1, int(output_until / beat) + 1)]
    for at in times:
        h.clock.at(at, activity.output)
    if tail_ends is not None:

        def tail_closed() -> None:
            # As the runner wires it (JobOutput): the tail's end is told, and the watch woken.
            activity.poll_now()
            h.clock.wake()

        h.clock.at(tail_ends, tail_closed)
    if kill_at is not None:
        h.set_kill_at(kill_at)
    outcome, polls = h.watch(activity)
    return h, outcome, polls


def test_a_job_that_ends_right_after_its_last_line_is_seen_within_the_quiet_schedule() -> None:
    _h, outcome, polls = watched(lambda t: "SUCCEEDED" if t >= 40.2 else "RUNNING", output_until=40.0)

    assert outcome.status == BridgeStatus.SUCCEEDED
    final_at, status = polls[-1]
    assert status == "SUCCEEDED"
    assert final_at <= 40.0 + TAIL_CYCLE + TAIL_SLACK + 1e-9  # the tail's next burst was due and did not come
    # While the output flowed, no early poll: the first, then one per interval.
    assert len([at for at, _ in polls if at < 40.0]) <= 1 + 40.0 / INTERVAL


@settings(max_examples=40, deadline=None)
@given(lateness=s.lists(s.floats(-TAIL_SLACK / 2.5, TAIL_SLACK / 2.5), min_size=45, max_size=45))
def test_steady_output_whose_bursts_come_a_little_early_or_late_draws_no_early_poll(lateness: list[float]) -> None:
    # Each burst a little off its cycle (a loaded head): the gaps stay within the slack.
    output = [TAIL_CYCLE * (n + 1) + late for n, late in enumerate(lateness)]
    end = output[-1] + 0.1
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= end else "RUNNING", 0.0, output=output)

    assert [at for at, _ in polls if at < output[-1]] == pytest.approx([FIRST_LOOK + INTERVAL * n for n in range(3)])
    final_at, status = polls[-1]
    longest_gap = max(b - a for a, b in itertools.pairwise(output))
    assert status == "SUCCEEDED" and final_at <= output[-1] + longest_gap + TAIL_SLACK + 1e-9


def test_output_that_arrives_one_or_two_cycles_apart_draws_no_early_poll_and_its_end_is_seen_past_the_longer() -> None:
    # 10 lines a second: a read that ends on a full chunk leaves Ray's agent nothing to send at the
    # end of its cycle, and it sleeps a second one.
    gaps = [1.0, 2.0, 1.0, 1.0, 2.0, 2.0, 1.0, 2.0] * 5
    output = list(itertools.accumulate([0.5, *gaps]))
    end = output[-1] + 0.1
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= end else "RUNNING", 0.0, output=output)

    # The rhythm is learnt from the first 2 s gap on: no early poll after it while the output flows.
    times = [at for at, _ in polls]
    flowing = [(before, at) for before, at in itertools.pairwise(times) if output[2] < at < output[-1]]
    assert flowing and all(at - before == pytest.approx(INTERVAL) for before, at in flowing)
    assert polls[-1] == (pytest.approx(output[-1] + 2.0 + TAIL_SLACK), "SUCCEEDED")


def test_a_pause_of_the_jobs_own_does_not_slow_the_early_poll_after_its_next_end() -> None:
    # Steady output, a 30 s pause (a checkpoint), steady output again for 5 s, then the end.
    output = [float(n) for n in range(1, 21)] + [50.0 + n for n in range(6)]
    end = output[-1] + 0.1
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= end else "RUNNING", 0.0, output=output)

    final_at, status = polls[-1]
    assert status == "SUCCEEDED"
    assert final_at - output[-1] <= 2 * STEADY_GAP  # not the pause's 30 s


def test_a_job_silent_for_its_last_30_s_is_seen_within_a_few_seconds_of_its_end() -> None:
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= 60.0 else "RUNNING", output_until=30.0)

    final_at, status = polls[-1]
    assert status == "SUCCEEDED"
    assert final_at - 60.0 <= STEADY_GAP
    assert len(polls) <= 1 + 30.0 / INTERVAL + len(quiet_polls(30.0)) + 1


def test_a_job_that_prints_every_5_s_is_not_polled_after_each_line() -> None:
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= 300.2 else "RUNNING", output_until=300.0, beat=5.0)

    assert polls[-1][1] == "SUCCEEDED"
    # Until its second line it has no rhythm yet (a few early polls, once); then none between lines.
    assert len([at for at, _ in polls if 15.0 <= at < 300.0]) <= 285.0 / INTERVAL + 2


def test_a_job_that_prints_nothing_is_polled_every_interval_as_before() -> None:
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= 100.0 else "PENDING", output_until=0.0)

    times = [at for at, _ in polls]
    assert times == [FIRST_LOOK + INTERVAL * n for n in range(len(times))]


def test_a_job_quiet_for_an_hour_is_soon_polled_only_every_interval_again() -> None:
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= 3600.0 else "RUNNING", output_until=1.0)

    assert polls[-1][1] == "SUCCEEDED"
    assert len(polls) <= 3600 / INTERVAL + 30
    late = [at for at, _ in polls if at > 600.0]
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert min(gaps) >= INTERVAL - 1e-6


def test_kill_is_read_at_every_poll_so_early_polls_take_it_no_later_than_the_interval() -> None:
    h, outcome, polls = watched(lambda t: "RUNNING", output_until=3600.0, kill_at=41.0)

    assert outcome.status == BridgeStatus.KILL
    assert h.ray.calls_of("stop_job")
    asked = next(at for at, _ in polls if at >= 41.0)
    assert asked <= 41.0 + INTERVAL


@pytest.mark.parametrize(
    ("gaps", "silent", "close_after"),
    [
        ([], 0.0, None),  # prints nothing: the interval's polls
        ([], 0.0, 2.0),  # the tail's end asks at once
        ([1.0] * 10, 5.0, None),  # output came during the first (full-interval) wait: still an early poll
        ([0.05] * 40, 120.0, None),  # quiet for two minutes
        ([2.0, 7.0, 0.3, 15.0], 40.0, 4.0),
    ],
)
def test_whatever_the_output_the_end_is_seen_no_later_than_the_interval_and_early_polls_stay_few(
    gaps: list[float], silent: float, close_after: float | None
) -> None:
    output = list(itertools.accumulate(gaps))
    end = (output[-1] if output else 0.0) + silent + 0.1
    tail_ends = None if close_after is None else end + close_after
    _h, outcome, polls = watched(
        lambda t: "SUCCEEDED" if t >= end else "RUNNING", 0.0, output=output, tail_ends=tail_ends
    )

    assert outcome.status == BridgeStatus.SUCCEEDED
    final_at = polls[-1][0]
    assert final_at - end <= INTERVAL + 1e-6  # never later than polling every interval, as before
    if tail_ends is not None:
        assert final_at <= tail_ends + 1e-6  # the tail's end asks Ray at once
    if output and silent <= 10.0:
        assert final_at - end <= silent * BACKOFF + QUIET_AFTER + 1.0  # seen soon after the output stops
    regular = 1 + end / INTERVAL
    spells = 1 + sum(1 for gap in gaps if gap >= QUIET_AFTER)
    assert len(polls) <= regular + spells * len(quiet_polls(max(STEADY_UNTIL, INTERVAL / BACKOFF))) + 1


# -- the first look after the POST ------------------------------------------------------------------
def polled_at(h: Harness) -> tuple[Outcome, list[tuple[float, str]]]:
    """Run ``h``'s session, recording each poll (elapsed time, status) as it is made."""
    polls: list[tuple[float, str]] = []
    session = h.session()
    session.on_poll = lambda job: polls.append((h.clock.elapsed, str(job.status)))
    return session.run(), polls


def test_a_fresh_submission_is_first_polled_a_moment_after_its_post_when_ray_mostly_runs_it() -> None:
    _h, _outcome, polls = watched(lambda t: "SUCCEEDED" if t >= 50.0 else "RUNNING", output_until=0.0)
    assert polls[0] == (FIRST_LOOK, "RUNNING")
    assert [at for at, _ in polls] == [FIRST_LOOK + INTERVAL * n for n in range(len(polls))]


def test_a_job_that_ends_before_the_first_look_costs_one_poll() -> None:
    h, outcome, polls = watched(lambda t: "SUCCEEDED" if t >= FIRST_LOOK / 2 else "RUNNING", output_until=0.0)
    assert outcome.status is BridgeStatus.SUCCEEDED
    assert polls == [(FIRST_LOOK, "SUCCEEDED")]
    assert len(h.ray.calls_of("get_job")) == 1


@pytest.mark.parametrize("written_by", ["the operator", "an earlier pod"])
def test_a_reattached_job_is_polled_at_once_without_the_first_look(written_by: str) -> None:
    if written_by == "the operator":
        h = Harness({"id": "raypod-train-abc"}, life=("RUNNING", "SUCCEEDED"))
    else:
        h = Harness(recorded={"id": "raypod-train-abc", "status.jobStatus": "RUNNING"}, life=("RUNNING", "SUCCEEDED"))
    h.ray.add_job("raypod-train-abc")
    outcome, polls = polled_at(h)
    assert outcome.status is BridgeStatus.SUCCEEDED
    assert h.ray.posts == []
    assert polls[0][0] == 0.0


def test_the_first_look_is_never_longer_than_the_interval() -> None:
    h = Harness({"updateInterval": "1"}, life=("RUNNING", "RUNNING", "SUCCEEDED"))
    _outcome, polls = polled_at(h)
    assert [at for at, _ in polls] == [1.0, 2.0, 3.0]


def test_sigterm_during_the_first_look_terminates_with_the_id_written_and_no_poll() -> None:
    h = Harness(life=("RUNNING",))
    h.clock.terminate_at(FIRST_LOOK / 2)
    outcome = h.run()
    assert outcome.ending is Ending.TERMINATED
    assert outcome.submission_id == h.ray.posts[0] == h.sink.data["id"]
    assert h.sink.data["status.jobStatus"] == BridgeStatus.SUBMITTED
    assert h.ray.calls_of("get_job") == []


def test_each_retry_attempt_is_first_polled_a_moment_after_its_own_post(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness({"jobproperties": json.dumps({"retries": 1, "retryDelaySeconds": 10})}, life=("RUNNING", "SUCCEEDED"))
    h.ray.next_lives.extend([("RUNNING", ("FAILED", "exit 1")), ("RUNNING", "SUCCEEDED")])
    posted: list[float] = []
    submit_job = h.ray.submit_job

    def timed_submit(payload: Mapping[str, Any], retry: RetryPolicy | None = None) -> str:
        posted.append(h.clock.elapsed)
        return submit_job(payload, retry)

    monkeypatch.setattr(h.ray, "submit_job", timed_submit)
    outcome, polls = polled_at(h)
    assert outcome.status is BridgeStatus.SUCCEEDED
    assert len(posted) == 2
    for post in posted:
        assert next(at for at, _ in polls if at >= post) == post + FIRST_LOOK
