"""Where SIGTERM may cut a call (``raypod.interrupt``): only in a region of the main thread;
outside one the handler only sets the event. (The cut itself, of calls held by a loopback server, is in
tests/loopback/test_sigterm_cuts_calls_in_flight.py.)"""

from __future__ import annotations

import os
import signal
import threading

from raypod.interrupt import cuttable, in_flight
from raypod.process import install_terminate_handler


def test_a_region_in_another_thread_is_never_cut() -> None:
    """Signals reach only the main thread: a worker's region must not make the handler raise."""
    inside = threading.Event()
    leave = threading.Event()

    def worker() -> None:
        with cuttable("a worker's call"):
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert inside.wait(10)
        assert not in_flight()
    finally:
        leave.set()
        thread.join(10)


def test_outside_a_region_sigterm_only_sets_the_event() -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    event = install_terminate_handler()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert event.wait(10)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
