"""When the watch asks Ray next: every ``updateInterval``, and early once the job's output goes quiet.

No Ray endpoint tells when a job ends, and Ray closes its WebSocket log tail only 2-5 s after
(docs/benchmark.md). But a job usually ends right after its last line, and the tail tells when
the output stops. So after the output goes quiet the watch polls a few times early, each wait a
fraction of the quiet so far (``next_quiet_poll``): the first polls come close together, and a
job quiet for an hour is soon polled every ``updateInterval`` again, as before.

``next_quiet_poll`` is the schedule (pure, a function of the quiet time); ``OutputActivity`` is
what the log follower tells it (thread-safe; its clock is given, so tests run it on a fake one).
Standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: Output quiet this long means it stopped: Ray's tail sends what the log gained about every 2 s
#: (its agent sleeps 1 s at the end of the file, then asks the job's status and sleeps 1 s more).
QUIET_AFTER = 2.5
#: Each early poll waits this fraction of the quiet so far: polls at 2.5, 3.1, 3.9, 4.9, ... s of
#: quiet, about ten per tenfold of quiet, until the wait reaches ``updateInterval``.
BACKOFF = 0.25
#: No two early polls closer than this.
MIN_GAP = 0.5


def next_quiet_poll(quiet: float, interval: float) -> float:
    """How long after a poll made ``quiet`` s into the output's quiet the next poll is due.

    Before ``QUIET_AFTER`` the output may only be between two of the tail's messages: the next
    poll comes when it has been quiet that long. Never later than ``interval``."""
    if quiet < QUIET_AFTER:
        return min(interval, QUIET_AFTER - quiet)
    return min(interval, max(MIN_GAP, quiet * BACKOFF))


class OutputActivity:
    """When the job last showed a sign of life, for the early polls: its output (the log
    follower's thread calls ``output``), the start of a watch (``began``), the tail's end (``ended``).

    ``poll_due`` answers when the next poll is due after one made at ``polled_at``: the schedule
    from the last output, or at once when the tail ended after that poll."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last = monotonic()
        self._ended_at: float | None = None

    def began(self) -> None:
        """A new watch (an attempt submitted or attached to): quiet counts from now."""
        with self._lock:
            self._last = self._monotonic()
            self._ended_at = None

    def output(self) -> None:
        """The job's log grew."""
        now = self._monotonic()
        with self._lock:
            self._last = now

    def ended(self) -> None:
        """The tail closed: Ray saw the job end (or the tail stopped early), so the next poll is due now."""
        now = self._monotonic()
        with self._lock:
            self._ended_at = now

    def poll_due(self, polled_at: float, interval: float) -> float:
        """When (the clock's monotonic time) the poll after one made at ``polled_at`` is due."""
        with self._lock:
            last, ended_at = self._last, self._ended_at
        if ended_at is not None and ended_at >= polled_at:
            return ended_at
        if last > polled_at:
            # Output since that poll: the quiet starts at its last line.
            return last + next_quiet_poll(0.0, interval)
        return polled_at + next_quiet_poll(polled_at - last, interval)
