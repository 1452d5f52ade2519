"""When the watch asks Ray next: every ``updateInterval``, and early once the job's output goes quiet.

No Ray endpoint tells when a job ends. But a job usually ends right after its last line, and the
live log tells when the output stops: Ray's WebSocket tail brings a job's last line about 0.5 to
2.1 s after Ray's end_time (docs/benchmark.md). So after the output goes quiet the watch polls
a few times early (``next_quiet_poll``): the first as soon as the tail has missed one of its reads
(``quiet_threshold``), then each wait a fraction of the quiet so far, at most
``STEADY_GAP`` through the first ``STEADY_UNTIL`` of quiet (a job silent for its last half minute
is still seen within a few seconds), and from there a fraction again, so a job quiet for an hour is
soon polled every ``updateInterval`` again, as before. Quiet counts only once it is longer than the
job's own rhythm of output, so a job that prints every few seconds is not polled after each line.

The sizes of the tail's bursts tell one thing sooner: Ray sends a full message (10 lines) at once,
and what it read before the end of the file only after its sleep, so a burst shorter than a message
after steady full ones (a drop) says the job wrote fewer lines in the last second than before. A
drop is polled ``DROP_WAIT`` after it, at most once in ``DROP_SPACING``: a job printing 10 lines a
second to its end is seen about 0.2 s after its last burst, not 2.4 s.

``next_quiet_poll`` is the schedule (pure, a function of the quiet time); ``OutputActivity`` is
what the log follower tells it (thread-safe; its clock is given, so tests run it on a fake one).
Standard library only.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable

#: The first poll after the POST waits this long (never longer than ``updateInterval``): Ray takes
#: about 1.3 s from the POST to a running driver (docs/benchmark.md), so the first answer mostly
#: says the job runs (so the tail's first bytes need no poll of their own to write RUNNING), and a
#: job of a second or two has often ended by then, and needs no live log at all.
FIRST_LOOK = 2.0
#: While a job prints, Ray's tail reads the log once a cycle and sends what it read at the end of
#: the cycle (``file_tail_iterator`` sleeps 1 s at the end of the file, then yields), so steady
#: output arrives in bursts this far apart, each line 1 to 2 s after it was written.
TAIL_CYCLE = 1.0
#: How late a burst of steady output may come before the output counts as stopped (a burst's
#: time varies by a few tens of milliseconds on an idle head, a few tenths on a loaded one).
TAIL_SLACK = 0.4
#: Output quiet this long may mean it stopped: the tail has missed a cycle (``quiet_threshold``).
QUIET_AFTER = TAIL_CYCLE + TAIL_SLACK
#: A job whose own gaps between lines (``beat``) are longer than the tail's cycle is irregular by
#: about as much as they exceed it; its quiet counts as stopped only past this many of that
#: excess, so a job printing every 5 s is not polled after each line.
BEATS = 2.0
#: Nor does quiet count as stopped before the longest of this many recent gaps (and the slack) has
#: passed: a read that ends on a full chunk of 10 lines leaves nothing for the end of the cycle, and
#: Ray's agent then sleeps a second cycle, so a job printing 10 lines a second arrives 1 or 2 s apart.
#: A gap counts only if it was at most one cycle past the quiet threshold of its time: a pause of
#: the job's own (a checkpoint) is quiet, not rhythm, and would keep its next end from being seen.
RECENT_GAPS = 8
#: Each early poll waits this fraction of the quiet so far: polls at 1.4, 2.1, 3.15, 4.7, 7.1, ... s
#: of quiet, about six per tenfold of quiet, until the wait reaches ``updateInterval``.
BACKOFF = 0.5
#: ... but no wait longer than ``STEADY_GAP`` while the quiet is shorter than ``STEADY_UNTIL``: a
#: job silent for its last 30 s is seen within 3 s of its end, for about five polls more than the
#: backoff alone (which waits 15 s at 30 s of quiet). An hour of quiet costs about 24 early polls.
STEADY_GAP = 3.0
STEADY_UNTIL = 60.0
#: No two polls closer than this by the schedule (only the tail's news asks sooner).
MIN_GAP = 0.5
#: How often a waiting watch looks at the output again; below QUIET_AFTER, so the first early poll
#: after the output stops is never late.
REPLAN_WAIT = 0.5
#: Output within this long of the last is one burst (Ray sends 10 lines a message), not a new beat.
BURST = 0.2
#: How much a new gap moves the usual one (an exponential mean).
BEAT_WEIGHT = 0.3
#: Ray's tail sends the log in messages of at most this many lines or characters (``file_tail_iterator``
#: yields a full chunk at once, and what it read before the end of the file only after its 1 s sleep).
#: So a burst with fewer lines than a full chunk, and no full chunk right after it, says the job wrote
#: fewer than that many lines in the second before: for a job that was writing more, a sign that its
#: output stopped (``OutputActivity`` calls such a burst a drop).
TAIL_CHUNK_LINES = 10
TAIL_CHUNK_CHARS = 20_000
#: A drop is polled once its burst is over: no piece for ``BURST`` (a full chunk that follows comes
#: within a few tens of milliseconds of the piece before it).
DROP_WAIT = BURST
#: A full burst counts as steady output when it came within this long of the full burst before it:
#: steady output at 10 lines a second arrives as 20 lines every 2 s (a read that ends on a full chunk
#: makes Ray's agent sleep a second cycle).
STEADY_FULL_GAP = 2 * TAIL_CYCLE + TAIL_SLACK
#: At most one drop is polled in this long: output that swings between fast and slow costs at most
#: this many polls more.
DROP_SPACING = 10.0


def quiet_threshold(beat: float, longest: float = 0.0) -> float:
    """How long output must be quiet before it may have stopped, given its usual gap between two
    pieces ``beat`` and the longest recent one ``longest`` (0: not known yet): one tail cycle and
    its slack for steady output (the next burst was due and did not come), longer for a job with a
    slower rhythm of its own, and never before the longest recent gap and the slack."""
    late_by = max(TAIL_SLACK, (BEATS - 1.0) * (beat - TAIL_CYCLE))
    return max(QUIET_AFTER, beat + late_by, longest + TAIL_SLACK)


def next_quiet_poll(quiet: float, interval: float, beat: float = 0.0, longest: float = 0.0) -> float:
    """How long after a poll made ``quiet`` s into the output's quiet the next poll is due.

    Before the output has been quiet for ``quiet_threshold(beat, longest)``, it may only be between
    two pieces: the next poll comes then. From there each wait is ``BACKOFF`` of the quiet so far, at
    most ``STEADY_GAP`` before ``STEADY_UNTIL``. Never later than ``interval``."""
    threshold = quiet_threshold(beat, longest)
    if quiet < threshold:
        wait = threshold - quiet
    else:
        wait = quiet * BACKOFF
        if quiet < STEADY_UNTIL:
            wait = min(wait, STEADY_GAP)
    # MIN_GAP also when a poll came a hair before the threshold: a wait of 1e-13 s is no wait at all
    # on a clock that reads 1040.286 (the sum rounds back to the poll's own time).
    return min(interval, max(MIN_GAP, wait))


class Burst:
    """The pieces of output that came within ``BURST`` of each other: how many lines and bytes (a
    line cut at the end counts as one, as Ray counts it), or not known (a piece given without its bytes)."""

    def __init__(self, began: float) -> None:
        self.began = began
        self.size = 0
        self.known = True
        self._newlines = 0
        self._open_line = False

    def add(self, piece: bytes | None) -> None:
        if piece is None:
            self.known = False
            return
        # Once full, more pieces change nothing: a large log is not scanned for newlines twice.
        if piece and not self.full:
            self._newlines += piece.count(b"\n")
            self.size += len(piece)
            self._open_line = not piece.endswith(b"\n")

    @property
    def line_count(self) -> int:
        return self._newlines + (1 if self._open_line else 0)

    @property
    def full(self) -> bool:
        """As many lines or characters as one of Ray's messages holds (bytes: never fewer than characters)."""
        return self.known and (self.line_count >= TAIL_CHUNK_LINES or self.size > TAIL_CHUNK_CHARS)


class OutputActivity:
    """What the live log tells the watch: when the job last printed and its usual gap between two
    pieces of output (the log follower's thread calls ``output``), and what only a poll can tell
    more of (``poll_now``): the tail's end, or the driver's start.

    ``poll_due`` answers when the next poll is due after one made at ``polled_at``: ``DROP_WAIT`` after
    a drop (a burst shorter than one of Ray's messages after steady full ones: the job wrote less in
    the last second than before), the schedule from the last output, at once when a poll was asked
    for after that poll, or only the interval's poll (``math.inf``) while the job has printed nothing:
    a job ends right after its last line, and one that prints nothing (a PENDING one) gives no sign
    to act on."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: float | None = None
        self._beat = 0.0
        self._recent_gaps: deque[float] = deque(maxlen=RECENT_GAPS)
        self._asked_at: float | None = None
        self._burst: Burst | None = None
        #: The burst before the current one was full and steady (the first, or within
        #: ``STEADY_FULL_GAP`` of a full one before it).
        self._after_steady_full = False
        self._bursts = 0
        self._last_full_began: float | None = None
        self._last_drop: float | None = None

    def began(self) -> None:
        """A new watch (an attempt submitted or attached to): nothing printed yet."""
        with self._lock:
            self._last, self._beat, self._asked_at = None, 0.0, None
            self._recent_gaps.clear()
            self._burst, self._after_steady_full, self._bursts = None, False, 0
            self._last_full_began, self._last_drop = None, None

    def output(self, piece: bytes | None = None) -> bool:
        """The job's log grew by ``piece`` (None: by bytes not shown). True when this makes a drop's
        poll possible (the watch should look at its plan again)."""
        now = self._monotonic()
        with self._lock:
            if self._last is None or now - self._last > BURST:
                if self._last is not None:
                    gap = now - self._last
                    if gap <= quiet_threshold(self._beat, self._longest()) + TAIL_CYCLE:
                        self._recent_gaps.append(gap)
                    self._beat = gap if not self._beat else self._beat + BEAT_WEIGHT * (gap - self._beat)
                self._next_burst(now)
            assert self._burst is not None
            self._burst.add(piece)
            self._last = now
            return self._drop_pending()

    def _next_burst(self, now: float) -> None:
        ended = self._burst
        if ended is not None:
            if self._is_drop(ended):
                self._last_drop = ended.began
            first = self._bursts == 1
            steady = first or (
                self._last_full_began is not None and ended.began - self._last_full_began <= STEADY_FULL_GAP
            )
            self._after_steady_full = ended.full and steady
            if ended.full:
                self._last_full_began = ended.began
        self._burst = Burst(now)
        self._bursts += 1

    def _is_drop(self, burst: Burst) -> bool:
        spaced = self._last_drop is None or burst.began - self._last_drop >= DROP_SPACING
        return self._after_steady_full and burst.known and not burst.full and spaced

    def _drop_pending(self) -> bool:
        return self._burst is not None and self._is_drop(self._burst)

    def _longest(self) -> float:
        return max(self._recent_gaps, default=0.0)

    def poll_now(self) -> None:
        """The next poll is due now: the tail closed, so Ray saw the job end (or the tail stopped
        early); or the tail's first bytes came, so the driver runs, and a poll writes RUNNING."""
        now = self._monotonic()
        with self._lock:
            self._asked_at = now

    def poll_due(self, polled_at: float, interval: float) -> float:
        """When (the clock's monotonic time) the poll after one made at ``polled_at`` is due."""
        with self._lock:
            last, beat, longest, asked_at = self._last, self._beat, self._longest(), self._asked_at
            drop = self._drop_pending()
        if asked_at is not None and asked_at > polled_at:
            return asked_at
        if last is None:
            return math.inf
        if last > polled_at:
            # Output since that poll: the quiet starts at its last piece (a drop is polled sooner).
            return last + (DROP_WAIT if drop else next_quiet_poll(0.0, interval, beat, longest))
        return polled_at + next_quiet_poll(polled_at - last, interval, beat, longest)
