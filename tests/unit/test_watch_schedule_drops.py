"""A drop in the output brings the final poll early (raypod/watch_schedule.py), on fake clocks.

Ray's tail sends a full message (10 lines) as soon as it has read one, and what it read before the
end of the file only after a 1 s sleep. So a burst shorter than a message, with no full one right
after it, says the job wrote fewer than 10 lines in the second before: after steady full bursts, the
sign that the output stopped. Traced on Ray 2.60 for a job printing 10 lines a second: 20 lines every
2 s, then a last burst of 8 or 9 lines 1 s after the one before (docs/benchmark.md)."""

from __future__ import annotations

import io
import itertools

from hypothesis import given, settings
from hypothesis import strategies as s

from raypod.contract import BridgeStatus
from raypod.runner import JobOutput
from raypod.watch_schedule import (
    DROP_SPACING,
    DROP_WAIT,
    QUIET_AFTER,
    REPLAN_WAIT,
    STEADY_FULL_GAP,
    TAIL_CHUNK_CHARS,
    TAIL_SLACK,
    OutputActivity,
    quiet_threshold,
)
from tests.support.fakes import FakeClock, Harness

INTERVAL = 20.0


def lines(count: int, width: int = 20) -> bytes:
    return b"".join(b"x" * (width - 1) + b"\n" for _ in range(count))


def fresh() -> tuple[FakeClock, OutputActivity, float]:
    """A fake clock, an activity on it, and the time of a poll made before any output."""
    clock = FakeClock()
    return clock, OutputActivity(clock.monotonic), clock.monotonic()


def bursts(activity: OutputActivity, clock: FakeClock, sizes: list[int], gap: float = 2.0) -> None:
    """Bursts of ``sizes`` lines, ``gap`` s apart, the last one now."""
    for n, size in enumerate(sizes):
        if n:
            clock.advance(gap)
        activity.output(lines(size))


def test_a_short_burst_after_steady_full_ones_is_polled_soon_after_it() -> None:
    clock, activity, polled_at = fresh()
    bursts(activity, clock, [20, 20, 20])
    clock.advance(1.0)
    assert activity.output(lines(8)) is True
    assert activity.poll_due(polled_at, INTERVAL) == clock.monotonic() + DROP_WAIT


def test_a_full_message_right_after_the_short_piece_is_no_drop() -> None:
    # A burst is the piece read before the sleep, then every full chunk read after it.
    clock, activity, polled_at = fresh()
    bursts(activity, clock, [20, 20])
    clock.advance(2.0)
    activity.output(lines(1))
    clock.advance(0.05)
    assert activity.output(lines(10)) is False
    assert activity.poll_due(polled_at, INTERVAL) > clock.monotonic() + DROP_WAIT


def test_a_job_printing_fewer_lines_than_a_message_is_not_polled_at_its_bursts() -> None:
    clock, activity, polled_at = fresh()
    for _ in range(10):
        assert activity.output(lines(3)) is False
        clock.advance(1.0)
    assert activity.output(lines(3)) is False
    assert activity.poll_due(polled_at, INTERVAL) == clock.monotonic() + quiet_threshold(1.0, 1.0)


def test_full_bursts_far_apart_are_no_steady_output_to_drop_from() -> None:
    # A job that prints a table now and then: the rest of each table after a full message is no drop
    # (only the very first burst's rest may be: nothing is known of the job's rhythm yet).
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    activity.output(lines(3))
    for _ in range(4):
        clock.advance(10.0)
        assert activity.output(lines(20)) is False
        clock.advance(1.0)
        assert activity.output(lines(5)) is False
    assert STEADY_FULL_GAP < 10.0


def test_a_long_line_fills_a_message_as_ten_short_ones_do() -> None:
    clock, activity, polled_at = fresh()
    long_lines = lines(3, width=TAIL_CHUNK_CHARS // 2 - 2000)  # 3 lines, more characters than a message holds
    activity.output(long_lines)
    clock.advance(1.0)
    assert activity.output(long_lines) is False  # full, not a drop
    clock.advance(1.0)
    assert activity.output(lines(2)) is True
    assert activity.poll_due(polled_at, INTERVAL) == clock.monotonic() + DROP_WAIT


def test_a_line_cut_at_the_end_of_a_piece_counts_once() -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    bursts(activity, clock, [20, 20])
    clock.advance(1.0)
    activity.output(lines(9) + b"half a li")
    assert activity.output(b"ne\n") is False  # ten lines: a full message
    clock.advance(1.0)
    assert activity.output(lines(9) + b"cut") is False  # ten lines as Ray counts them


def test_a_piece_of_unknown_size_is_never_a_drop() -> None:
    clock, activity, polled_at = fresh()
    bursts(activity, clock, [20, 20])
    clock.advance(1.0)
    assert activity.output() is False
    assert activity.poll_due(polled_at, INTERVAL) >= clock.monotonic() + QUIET_AFTER


def test_drops_are_polled_at_most_once_in_their_spacing() -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    bursts(activity, clock, [20, 20])
    clock.advance(1.0)
    assert activity.output(lines(5)) is True
    clock.advance(1.0)
    bursts(activity, clock, [20, 20])
    clock.advance(1.0)
    assert activity.output(lines(5)) is False  # 3 s after the last drop
    clock.advance(DROP_SPACING)
    bursts(activity, clock, [20, 20])
    clock.advance(1.0)
    assert activity.output(lines(5)) is True


def test_a_new_watch_forgets_the_last_ones_bursts() -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    bursts(activity, clock, [20, 20])
    activity.began()
    clock.advance(1.0)
    assert activity.output(lines(5)) is False


@settings(max_examples=60, deadline=None)
@given(sizes=s.lists(s.integers(1, 60), min_size=1, max_size=40), gaps=s.lists(s.floats(0.3, 30.0), max_size=40))
def test_drops_cost_at_most_one_poll_in_each_spacing(sizes: list[int], gaps: list[float]) -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    drops: list[float] = []
    for n, size in enumerate(sizes):
        if n:
            clock.advance(gaps[(n - 1) % len(gaps)] if gaps else 1.0)
        if activity.output(lines(size)):
            drops.append(clock.monotonic())
    assert all(b - a >= DROP_SPACING for a, b in itertools.pairwise(drops))


# -- the watch ------------------------------------------------------------------------------------
def steady_printer_polls(sizes_known: bool) -> list[tuple[float, str]]:
    """The polls of a watch of a job traced on Ray: 20 lines every 2 s while it runs, it ends at
    40.0 s, its last 8 lines come at 41.0 s (with their bytes, or as pieces of unknown size)."""
    h = Harness(
        {"updateInterval": f"{INTERVAL:g}"}, life=lambda _: "SUCCEEDED" if h.clock.elapsed >= 40.0 else "RUNNING"
    )
    activity = OutputActivity(h.clock.monotonic)

    def burst(count: int) -> None:
        activity.output(lines(count) if sizes_known else None)

    for at in range(2, 41, 2):
        h.clock.at(float(at), lambda: burst(20))
    h.clock.at(41.0, lambda: burst(8))
    outcome, polls = h.watch(activity)
    assert outcome.status == BridgeStatus.SUCCEEDED
    return polls


def test_a_job_printing_10_lines_a_second_to_its_end_is_seen_at_its_last_burst() -> None:
    polls = steady_printer_polls(sizes_known=True)
    final_at, status = polls[-1]
    assert status == "SUCCEEDED"
    assert 41.0 + DROP_WAIT - 1e-9 <= final_at <= 41.0 + DROP_WAIT + REPLAN_WAIT + 1e-9
    # Without the bursts' sizes: the wait past the longest recent gap (2 s), 2.4 s after the last burst.
    unsized = steady_printer_polls(sizes_known=False)
    assert unsized[-1][0] >= 41.0 + 2.0 + TAIL_SLACK - 1e-9
    # While it printed, the same polls, and no more requests in all.
    assert [at for at, _ in polls if at < 41.0] == [at for at, _ in unsized if at < 41.0]
    assert len(polls) <= len(unsized)


def test_the_job_output_wakes_the_watch_at_a_drop_and_not_at_other_output() -> None:
    clock = FakeClock()
    activity = OutputActivity(clock.monotonic)
    woken: list[float] = []
    output = JobOutput(
        None,  # type: ignore[arg-type]  # the follower is never started here
        io.StringIO(),
        enabled=True,
        activity=activity,
        wake=lambda: woken.append(clock.monotonic()),
        monotonic=clock.monotonic,
    )
    heard = output.live.on_output
    assert heard is not None
    for _ in range(3):
        heard(lines(20))
        clock.advance(2.0)
    assert woken == []
    clock.advance(-1.0)
    heard(lines(7))
    assert woken == [clock.monotonic()]
    assert QUIET_AFTER > DROP_WAIT
