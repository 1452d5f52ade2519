"""When the watch asks Ray next: every ``updateInterval``, and early once the job's output goes quiet.

No Ray endpoint tells when a job ends, and Ray closes its WebSocket log tail only 2-5 s after
(docs/benchmark.md). But a job usually ends right after its last line, and the tail tells when
the output stops. So after the output goes quiet the watch polls a few times early, each wait a
fraction of the quiet so far (``next_quiet_poll``): the first polls come close together, and a
job quiet for an hour is soon polled every ``updateInterval`` again, as before. Quiet counts only
once it is longer than the job's own rhythm of output, so a job that prints every few seconds is
not polled after each line.

``next_quiet_poll`` is the schedule (pure, a function of the quiet time); ``OutputActivity`` is
what the log follower tells it (thread-safe; its clock is given, so tests run it on a fake one).
Standard library only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

#: Output quiet this long may mean it stopped: while a job prints, Ray's tail sends what the log
#: gained about once a second (its agent sleeps 1 s at the end of the file).
QUIET_AFTER = 1.5
#: ... unless the job's own rhythm is slower: quiet counts as stopped only past this many of its
#: usual gaps between two pieces of output (``beat``), so a job printing every 5 s is not polled
#: after each line.
BEATS = 2.0
#: Each early poll waits this fraction of the quiet so far: polls at 1.5, 2.0, 2.6, 3.3, ... s of
#: quiet, about nine per tenfold of quiet, until the wait reaches ``updateInterval``.
BACKOFF = 0.3
#: No two early polls closer than this.
MIN_GAP = 0.5
#: How often a waiting watch looks at the output again; below QUIET_AFTER, so the first early poll
#: after the output stops is never late.
REPLAN_WAIT = 1.0
#: Output within this long of the last is one burst (Ray sends 10 lines a message), not a new beat.
BURST = 0.2
#: How much a new gap moves the usual one (an exponential mean).
BEAT_WEIGHT = 0.3


def next_quiet_poll(quiet: float, interval: float, beat: float = 0.0) -> float:
    """How long after a poll made ``quiet`` s into the output's quiet the next poll is due.

    Before the output has been quiet for ``QUIET_AFTER`` s and ``BEATS`` of its usual gaps
    (``beat``), it may only be between two pieces: the next poll comes then. From there each wait
    is ``BACKOFF`` of the quiet so far. Never later than ``interval``."""
    threshold = max(QUIET_AFTER, BEATS * beat)
    if quiet < threshold:
        return min(interval, threshold - quiet)
    return min(interval, max(MIN_GAP, quiet * BACKOFF))


class OutputActivity:
    """What the live log tells the watch: when the job last printed and its usual gap between two
    pieces of output (the log follower's thread calls ``output``), and the tail's end (``ended``).

    ``poll_due`` answers when the next poll is due after one made at ``polled_at``: the schedule
    from the last output, at once when the tail ended after that poll, or only the interval's poll
    (``math.inf``) while the job has printed nothing: a job ends right after its last line, and
    one that prints nothing (a PENDING one) gives no sign to act on."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: float | None = None
        self._beat = 0.0
        self._ended_at: float | None = None

    def began(self) -> None:
        """A new watch (an attempt submitted or attached to): nothing printed yet."""
        with self._lock:
            self._last, self._beat, self._ended_at = None, 0.0, None

    def output(self) -> None:
        """The job's log grew."""
        now = self._monotonic()
        with self._lock:
            if self._last is not None and now - self._last > BURST:
                gap = now - self._last
                self._beat = gap if not self._beat else self._beat + BEAT_WEIGHT * (gap - self._beat)
            self._last = now

    def ended(self) -> None:
        """The tail closed: Ray saw the job end (or the tail stopped early), so the next poll is due now."""
        now = self._monotonic()
        with self._lock:
            self._ended_at = now

    def poll_due(self, polled_at: float, interval: float) -> float:
        """When (the clock's monotonic time) the poll after one made at ``polled_at`` is due."""
        with self._lock:
            last, beat, ended_at = self._last, self._beat, self._ended_at
        if ended_at is not None and ended_at > polled_at:
            return ended_at
        if last is None:
            return math.inf
        if last > polled_at:
            # Output since that poll: the quiet starts at its last piece.
            return last + next_quiet_poll(0.0, interval, beat)
        return polled_at + next_quiet_poll(polled_at - last, interval, beat)
