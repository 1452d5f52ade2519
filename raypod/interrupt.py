"""SIGTERM inside a call in flight: the blocking calls the signal may cut short.

A request waiting for its answer (a held package upload, an S3 part, a hung API) blocks for
its read timeout, up to 60 s: longer than the pod's 30 s grace. Python runs a signal handler
in the main thread, and a handler that raises ends the blocked system call there and then.
So the SIGTERM handler calls ``cut_call_in_flight``, which raises ``Terminated`` only while
the main thread is inside ``cuttable()``; anywhere else the code checks the event itself at
its next step. Threads other than the main one never see the signal: their regions are no-ops.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from raypod.errors import Terminated

#: What the main thread is waiting for, innermost last (``what`` is already free of secrets).
_calls: list[str] = []


@contextmanager
def cuttable(what: str) -> Iterator[None]:
    """A blocking call that SIGTERM may end with ``Terminated`` (see the module's docstring)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _calls.append(what)
    try:
        yield
    finally:
        _calls.pop()


def cut_call_in_flight() -> None:
    """Called by the signal handler: leave the main thread's blocking call, if it is in one."""
    if _calls:
        raise Terminated(f"terminated during {_calls[-1]}")


def in_flight() -> bool:
    """Whether the main thread is inside a call that SIGTERM would cut (for tests and logs)."""
    return bool(_calls)


class TerminateEvent(threading.Event):
    """Set by SIGTERM or SIGINT; ``signum`` says which came first (the exit code follows it)."""

    signum: int | None = None

    @property
    def interrupted(self) -> bool:
        """Ctrl-C (SIGINT) came first, not SIGTERM."""
        return self.signum == signal.SIGINT


@contextmanager
def leave_on_signal() -> Iterator[None]:
    """SIGINT or SIGTERM raise ``Terminated`` at once, wherever the main thread is: a second
    interrupt while raypod waits on the user's behalf (``submit --stop-on-interrupt``) leaves now.
    The handlers before are put back on the way out."""

    def leave(signum: int, _frame: object) -> None:
        raise Terminated(f"{signal.Signals(signum).name} again")

    previous = {signum: signal.signal(signum, leave) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
