"""Time, written once: the operator's time layout, and the clock the lifecycle waits on.

Standard library only, so the light CLI paths (``--help``, tables) can use it.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol

#: Go's 2006-01-02T15:04:05Z, the layout the operator parses.
TIME_LAYOUT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime(TIME_LAYOUT)


def format_ray_time(milliseconds: int | None) -> str | None:
    """Ray's epoch milliseconds in the operator's layout; None for Ray's 'not yet' (0 or absent)."""
    if not milliseconds:
        return None
    return format_time(datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc))


def format_ray_time_not_before(milliseconds: int | None, earliest: str) -> str | None:
    """Ray's time, or ``earliest`` (a time in the operator's layout) where Ray's is before it: the pod's
    clock and the head's differ, and ``status.startTime`` must not precede ``status.submitTime``."""
    text, floor = format_ray_time(milliseconds), parse_time(earliest)
    moment = parse_time(text or "")
    if moment is not None and floor is not None and moment < floor:
        return earliest
    return text


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, TIME_LAYOUT).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return None


def now_text() -> str:
    return format_time(datetime.now(timezone.utc))


class Clock(Protocol):
    """What the lifecycle needs of time: a stopwatch, the wall clock, and a wait that SIGTERM ends."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime:
        """The current UTC time."""
        ...

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the process was asked to terminate meanwhile."""
        ...

    @property
    def terminated(self) -> bool: ...


class SystemClock:
    """Real time; ``terminate`` is the event the SIGTERM handler sets.

    ``wake()`` ends the current ``wait()`` early, or the next one at once when none is under
    way (so a wake-up that comes while the caller is busy is not lost), without meaning SIGTERM:
    the log follower calls it when the job's log ends, so that the next poll comes now.
    """

    def __init__(self, terminate: threading.Event | None = None) -> None:
        self.terminate = terminate or threading.Event()
        self._alarm = threading.Condition()
        self._woken = False
        self._relay: threading.Thread | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wait(self, seconds: float) -> bool:
        self._relay_terminate()
        with self._alarm:
            self._alarm.wait_for(lambda: self._woken or self.terminate.is_set(), max(0.0, seconds))
            self._woken = False
        return self.terminate.is_set()

    def wake(self) -> None:
        with self._alarm:
            self._woken = True
            self._alarm.notify_all()

    @property
    def terminated(self) -> bool:
        return self.terminate.is_set()

    def _relay_terminate(self) -> None:
        """A thread that passes ``terminate`` on to the wait: an Event cannot be waited on with another.

        Started at the first wait; it blocks on the event (no polling), and being a daemon it
        never holds the process up."""
        if self._relay is None:
            self._relay = threading.Thread(target=self._pass_on_terminate, name="raypod-clock-relay", daemon=True)
            self._relay.start()

    def _pass_on_terminate(self) -> None:
        self.terminate.wait()
        with self._alarm:
            self._alarm.notify_all()
