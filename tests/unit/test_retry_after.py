"""A server's ``Retry-After`` (429, 503) sets the wait before the next try, within the call's
deadline (issue 25, class 1)."""

from __future__ import annotations

import threading

import pytest

from raypod.errors import KubeApiError
from raypod.retry import MAX_RETRY_AFTER, RetryPolicy


class RecordedWaits(threading.Event):
    """A SIGTERM event that is never set and records each wait asked of it instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False


def busy(retry_after: float | None) -> KubeApiError:
    error = KubeApiError("PATCH", "https://kubernetes/api/v1/x", 503, "Service Unavailable")
    error.retry_after = retry_after
    return error


def waits_before_success(policy: RetryPolicy, errors: list[KubeApiError]) -> list[float]:
    event = RecordedWaits()
    pending = list(errors)

    def call() -> str:
        if pending:
            raise pending.pop(0)
        return "written"

    assert policy.interruptible(event).call(call, what="a write") == "written"
    return event.waits


def test_the_wait_is_what_retry_after_asks_when_it_is_longer_than_the_backoff() -> None:
    waits = waits_before_success(RetryPolicy(max_wait=1.0, deadline=600), [busy(10), busy(10)])

    assert waits == [10.0, 10.0]


def test_without_retry_after_the_backoff_applies() -> None:
    waits = waits_before_success(RetryPolicy(max_wait=1.0, deadline=600), [busy(None), busy(None)])

    assert len(waits) == 2
    assert all(0 <= wait <= 1.0 for wait in waits)


def test_retry_after_is_capped_and_the_deadline_still_bounds_the_wait() -> None:
    (capped,) = waits_before_success(RetryPolicy(max_wait=1.0, deadline=10_000), [busy(86_400)])
    (cut,) = waits_before_success(RetryPolicy(max_wait=1.0, deadline=5), [busy(30)])

    assert capped == MAX_RETRY_AFTER
    assert cut == pytest.approx(5, abs=0.5)
