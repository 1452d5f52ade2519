"""``SystemClock.wake``: what ends the watch's wait early (the log tail's end), and what it
must not be taken for (SIGTERM). In-process, with the real clock and short waits."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from raypod.clock import SystemClock
from raypod.process import install_terminate_handler

#: A bound for waits that must end early (a broken wake-up makes the test fail, not hang).
BOUND = 600.0


# -- SystemClock.wake ----------------------------------------------------------------------------
def wait_in_thread(clock: SystemClock, seconds: float) -> tuple[threading.Thread, list[bool], threading.Event]:
    result: list[bool] = []
    started = threading.Event()

    def run() -> None:
        started.set()
        result.append(clock.wait(seconds))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result, started


def test_wake_ends_the_current_wait_early_without_meaning_sigterm() -> None:
    clock = SystemClock()
    began = clock.monotonic()
    thread, result, started = wait_in_thread(clock, BOUND)
    assert started.wait(BOUND)
    clock.wake()
    thread.join(BOUND)
    assert result == [False]
    assert clock.monotonic() - began < BOUND, "the wait ran its full length"
    assert not clock.terminated


def test_a_wake_that_comes_between_waits_ends_the_next_one_only() -> None:
    clock = SystemClock()
    clock.wake()  # e.g. the tail closed while the poll was in flight
    began = clock.monotonic()
    assert clock.wait(BOUND) is False
    assert clock.monotonic() - began < BOUND
    # Consumed: the wait after it runs its course.
    assert clock.wait(0.2) is False
    assert clock.monotonic() - began >= 0.2


def test_sigterm_still_ends_a_wait_that_wake_can_end() -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    clock = SystemClock(install_terminate_handler())
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    began = clock.monotonic()
    timer.start()
    try:
        assert clock.wait(BOUND) is True
    finally:
        timer.cancel()
        timer.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert clock.monotonic() - began < BOUND
    assert clock.terminated


def test_terminate_set_from_another_thread_ends_the_wait() -> None:
    terminate = threading.Event()
    clock = SystemClock(terminate)
    thread, result, started = wait_in_thread(clock, BOUND)
    assert started.wait(BOUND)
    terminate.set()
    thread.join(BOUND)
    assert result == [True]


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_a_wait_of_nothing_returns_at_once(seconds: float) -> None:
    assert SystemClock().wait(seconds) is False
