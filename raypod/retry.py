"""The retry policy, defined once as data and applied with tenacity."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import tenacity

from raypod.errors import RaypodError, Terminated

log = logging.getLogger(__name__)

T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """Connection errors, timeouts, 5xx and 429 are worth another try; nothing else is."""
    return isinstance(error, RaypodError) and error.transient


#: A count of attempts that never ends the retries first (``with_deadline``).
UNBOUNDED_ATTEMPTS = 1_000_000
#: The longest ``Retry-After`` honoured: a server asking for more is asked again sooner.
MAX_RETRY_AFTER = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by total time."""

    attempts: int = 8
    initial_wait: float = 0.5
    max_wait: float = 10.0
    deadline: float = 60.0
    #: Set by SIGTERM: a wait between attempts ends at once and raises Terminated.
    interrupt: threading.Event | None = field(default=None, compare=False, repr=False)
    #: A person at a terminal: the first retry of a call is one warning saying how long it is
    #: retried, the others are INFO (shown with -v). The pod's log keeps a warning per retry.
    quiet_retries: bool = False
    #: Every retry at INFO: the caller says itself, once, that a call keeps failing (the watch's polls).
    silent_retries: bool = False

    def with_deadline(self, seconds: float) -> RetryPolicy:
        """Bounded by time only: with full jitter, a count of attempts could end an outage wait early."""
        return replace(self, deadline=seconds, attempts=UNBOUNDED_ATTEMPTS)

    def retry_bounds(self) -> str:
        """What bounds the retries, for people: the time, and the tries when they end it first."""
        if self.attempts >= UNBOUNDED_ATTEMPTS:
            return f"for up to {self.deadline:g} s"
        return f"at most {self.attempts - 1} more time{'s' if self.attempts > 2 else ''} within {self.deadline:g} s"

    def interruptible(self, event: threading.Event) -> RetryPolicy:
        return replace(self, interrupt=event)

    def call(self, fn: Callable[[], T], what: str) -> T:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=tenacity.stop_any(
                tenacity.stop_after_attempt(self.attempts),
                tenacity.stop_after_delay(self.deadline),
                _AskedPastDeadline(self.deadline),
            ),
            wait=self._wait,
            before_sleep=lambda state: _log_retry(what, state, policy=self),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(fn)
        except Exception as error:
            # SIGTERM wins over the last error: the caller leaves, it does not report a failure.
            if self.interrupt is not None and self.interrupt.is_set():
                raise Terminated(f"terminated while {what} was failing") from error
            raise

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with full jitter, or longer when the server said how long (``Retry-After``),
        cut at the deadline: the last try comes at the deadline, not up to ``max_wait`` after it
        (``--connect-timeout`` means what it says)."""
        backoff = tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait)(state)
        asked = _retry_after(state)
        if asked is not None:
            backoff = max(backoff, asked)
        return max(0.0, min(backoff, self.deadline - (state.seconds_since_start or 0.0)))

    def _sleep(self, seconds: float) -> None:
        if self.interrupt is None:
            tenacity.nap.sleep(seconds)
        elif self.interrupt.wait(seconds):
            raise Terminated("terminated while waiting to retry")


class _AskedPastDeadline(tenacity.stop.stop_base):
    """The server asked for a wait (``Retry-After``) that ends past the deadline: asking again
    sooner would ignore it, and later would break the deadline, so the call gives up now."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        asked = _retry_after(retry_state)
        return asked is not None and (retry_state.seconds_since_start or 0.0) + asked > self.deadline


def _retry_after(state: tenacity.RetryCallState) -> float | None:
    """The wait the failed try's server asked for (capped at MAX_RETRY_AFTER), if any."""
    error = state.outcome.exception() if state.outcome is not None else None
    asked = getattr(error, "retry_after", None)
    if isinstance(asked, int | float) and not isinstance(asked, bool) and asked > 0:
        return min(float(asked), MAX_RETRY_AFTER)
    return None


def _log_retry(what: str, state: tenacity.RetryCallState, *, policy: RetryPolicy) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    if policy.quiet_retries and not policy.silent_retries and state.attempt_number == 1:
        log.warning("%s failed: %s; retrying %s (-v shows each try)", what, error, policy.retry_bounds())
        return
    level = logging.INFO if policy.quiet_retries or policy.silent_retries else logging.WARNING
    log.log(level, "%s failed (attempt %d): %s; retrying in %.1fs", what, state.attempt_number, error, wait)


#: One try only, for calls whose caller has its own loop (the watch loop's polls).
NO_RETRY = RetryPolicy(attempts=1, deadline=0.0)
