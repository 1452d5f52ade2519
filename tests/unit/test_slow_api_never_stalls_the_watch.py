"""A Kubernetes API that holds its requests never stalls the watch (issue 25, class 7): ``kill`` is
re-read and the status written aside, one call at a time, and the final status is written last.

The held calls block real threads until the test releases them; time is the fake clock's."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import pytest

from raypod.background import BackgroundKillSwitch, BackgroundReporter
from raypod.contract import JOB_STATUS, MESSAGE, BridgeStatus, Reason
from raypod.errors import KubeApiError
from raypod.session import JobSession
from tests.support.fakes import Harness, MemorySink, Step

#: The longest a held call waits for its release: a test without the wrappers fails, never hangs.
HELD_AT_MOST = 10.0
RUNNING_FOR_A_WHILE: list[Step] = ["PENDING", *(("RUNNING", f"step {i}") for i in range(11)), "SUCCEEDED"]


class HeldKill:
    """``kill`` as the ConfigMap has it, read through an API that holds each read until released."""

    description = "held ConfigMap"

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.release = threading.Event()
        self.reads = 0

    def kill_requested(self) -> bool:
        self.reads += 1
        if not self.release.wait(HELD_AT_MOST):
            raise AssertionError("the read of kill was held, and the watch waited for it")
        return self.h.job.kill_requested()


class HeldSink(MemorySink):
    """A sink whose next ``hold()`` write blocks until released; every attempt is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        #: Set when the held write is under way.
        self.entered = threading.Event()
        self.holding = False
        self.attempts: list[dict[str, str]] = []

    def hold(self) -> None:
        self.holding = True

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        self.attempts.append(dict(changes))
        if self.holding:
            self.holding = False
            self.entered.set()
            if not self.release.wait(HELD_AT_MOST):
                raise AssertionError("the status write was held, and the watch waited for it")
        super().write(changes)


def polls(h: Harness) -> int:
    return len(h.ray.calls_of("get_job"))


def with_kill_switch(h: Harness, switch: BackgroundKillSwitch) -> JobSession:
    session = h.session()
    session.kill_switch = switch
    return session


def test_polls_go_on_while_kill_is_held_and_kill_is_honoured_once_the_read_returns() -> None:
    h = Harness(life=("RUNNING",))
    held = HeldKill(h)
    switch = BackgroundKillSwitch(held, fresh_wait=0.0)
    seen: dict[str, int] = {}

    def operator_kills_and_api_answers() -> None:
        seen["polls while held"], seen["reads while held"] = polls(h), held.reads
        h.source.data["kill"] = "true"
        held.release.set()
        assert switch.wait_idle(HELD_AT_MOST)

    h.clock.at(50, operator_kills_and_api_answers)  # updateInterval 5: ten polls while held

    outcome = with_kill_switch(h, switch).run()
    switch.close(HELD_AT_MOST)

    assert seen["polls while held"] >= 10
    assert seen["reads while held"] == 1  # no second read while one is pending
    assert (outcome.status, outcome.reason) == (BridgeStatus.KILL, Reason.KILLED)
    # Honoured at the first poll after the held read returned: stopped right then.
    first_stop = next(i for i, (name, _) in enumerate(h.ray.calls) if name == "stop_job")
    polls_before_stop = sum(1 for name, _ in h.ray.calls[:first_stop] if name == "get_job")
    assert polls_before_stop == seen["polls while held"]


def test_a_failing_kill_read_is_logged_once_per_spell(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(life=["RUNNING"] * 8 + ["SUCCEEDED"])

    class Failing:
        description = "failing ConfigMap"
        reads = 0

        def kill_requested(self) -> bool:
            self.reads += 1
            if self.reads == 6:
                return False
            raise KubeApiError("GET", "https://kube.test/cm", 503, "Service Unavailable")

    failing = Failing()
    switch = BackgroundKillSwitch(failing, fresh_wait=HELD_AT_MOST)  # each read returns at once
    with caplog.at_level(logging.INFO, logger="raypod"):
        outcome = with_kill_switch(h, switch).run()
    switch.close(HELD_AT_MOST)

    assert outcome.status is BridgeStatus.SUCCEEDED
    assert failing.reads >= 8
    failures = [r for r in caplog.records if "kill" in r.getMessage() and "Service Unavailable" in r.getMessage()]
    assert len(failures) == 2  # reads 1-5, then reads 7 on: two spells
    assert sum("can be read from" in r.getMessage() for r in caplog.records) == 1


def test_polls_go_on_while_a_status_write_is_held_and_the_final_status_is_written_last() -> None:
    h = Harness(life=RUNNING_FOR_A_WHILE)
    sink = HeldSink()
    h.sink = sink
    reporter = BackgroundReporter(sink, supersede_after=0.0)
    h.reporter = reporter
    seen: dict[str, int] = {}

    def api_holds_the_next_write() -> None:
        assert reporter.wait_idle(HELD_AT_MOST)  # the SUBMITTED write is through
        sink.hold()

    def the_running_write_is_held() -> None:
        assert sink.entered.wait(HELD_AT_MOST)
        seen["polls before"] = polls(h)

    h.clock.at(1, api_holds_the_next_write)
    h.clock.at(8, the_running_write_is_held)  # the poll at 7 s saw RUNNING (the first at 2 s, FIRST_LOOK)
    session = h.session()
    reporter.start()
    outcome = session.run()
    reporter.stop()
    polls_while_held = polls(h) - seen["polls before"]
    attempts_while_held = list(sink.attempts)

    h.finish(outcome)  # the final write supersedes the held one (supersede_after 0)
    sink.release.set()
    reporter.close(HELD_AT_MOST)

    assert outcome.status is BridgeStatus.SUCCEEDED
    assert polls_while_held == len(RUNNING_FOR_A_WHILE) - 2  # every poll after the held one's, the end included
    # The held write is the last one tried while it was held: one write in flight, none beside it,
    # although the message changed on every poll.
    assert [a[JOB_STATUS] for a in attempts_while_held if JOB_STATUS in a][-1] == BridgeStatus.RUNNING
    assert [a.get(JOB_STATUS) for a in attempts_while_held].count(BridgeStatus.RUNNING) == 1
    # The held RUNNING landed after the final write; the final status was then written again.
    assert sink.written(JOB_STATUS)[-3:] == [BridgeStatus.SUCCEEDED, BridgeStatus.RUNNING, BridgeStatus.SUCCEEDED]
    assert sink.data[JOB_STATUS] == BridgeStatus.SUCCEEDED
    assert sink.data[MESSAGE] == h.reporter.current[MESSAGE] == "Job succeeded."


def test_the_final_write_waits_for_a_write_in_flight_that_returns_in_time() -> None:
    sink = HeldSink()
    reporter = BackgroundReporter(sink, supersede_after=HELD_AT_MOST)
    reporter.start()
    sink.hold()
    reporter.update({JOB_STATUS: BridgeStatus.RUNNING, "message": "running"})
    assert sink.entered.wait(HELD_AT_MOST)  # the RUNNING write is in flight
    threading.Timer(0.05, sink.release.set).start()  # it returns while the final write waits for it

    reporter.update({JOB_STATUS: BridgeStatus.SUCCEEDED}, must_persist=True)
    reporter.close(HELD_AT_MOST)

    assert sink.written(JOB_STATUS) == [BridgeStatus.RUNNING, BridgeStatus.SUCCEEDED]
    assert sink.data == {JOB_STATUS: BridgeStatus.SUCCEEDED, "message": "running"}


def test_a_failed_background_write_is_sent_again_with_the_next_changes() -> None:
    sink = MemorySink()
    reporter = BackgroundReporter(sink)
    reporter.start()
    sink.fail_writes(KubeApiError("PATCH", "https://kube.test/cm", 503, "Service Unavailable"))
    reporter.update({JOB_STATUS: BridgeStatus.PENDING, "message": "waiting"})
    assert reporter.wait_idle(HELD_AT_MOST)
    reporter.update({JOB_STATUS: BridgeStatus.RUNNING})
    assert reporter.wait_idle(HELD_AT_MOST)
    reporter.close(HELD_AT_MOST)

    assert sink.writes == [{JOB_STATUS: BridgeStatus.RUNNING, "message": "waiting"}]
