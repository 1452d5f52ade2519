"""A server's ``Retry-After`` (429, 503) sets the wait before the next try, within the call's
deadline, and the time budgets of the writes that must land (issue 25, class 1)."""

from __future__ import annotations

import threading

import pytest
import tenacity

from raypod.errors import KubeApiError
from raypod.http import retry_after_seconds
from raypod.retry import MAX_RETRY_AFTER, RetryPolicy
from raypod.status_store import FINAL_WRITE_BUDGET


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


def test_retry_after_is_capped_and_one_that_ends_past_the_deadline_gives_up_without_asking_early() -> None:
    (capped,) = waits_before_success(RetryPolicy(max_wait=1.0, deadline=10_000), [busy(86_400)])
    event = RecordedWaits()
    tries = 0

    def refused() -> str:
        nonlocal tries
        tries += 1
        raise busy(30)

    with pytest.raises(KubeApiError):
        RetryPolicy(max_wait=1.0, deadline=5).interruptible(event).call(refused, what="a write")

    assert capped == MAX_RETRY_AFTER
    assert (tries, event.waits) == (1, [])  # no second try before the 30 s the server asked for


# -- Retry-After as the server writes it --------------------------------------------------------
NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # a date past is now
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str, seconds: float) -> None:
    assert retry_after_seconds(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [None, "", "soon", "-5", "1.5", "10s", "Tue, 14 Nov 2023 22:13:50", "Tue, 99 Foo 2023 99:99:99 GMT"],
)
def test_a_retry_after_that_is_absent_or_unreadable_leaves_the_backoff(header: str | None) -> None:
    assert retry_after_seconds(header, now=NOW) is None


# -- the budgets, in simulated time ------------------------------------------------------------
class SimulatedTime:
    """tenacity's clock, moved only by the waits a policy asks for."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class SimulatedWaits(threading.Event):
    def __init__(self, clock: SimulatedTime) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0.0
        return False


def outlives(policy: RetryPolicy, outage: float, monkeypatch: pytest.MonkeyPatch, retry_after: float | None) -> bool:
    """Whether a write retried by ``policy`` lands after the API answers 503 for ``outage`` seconds."""
    clock = SimulatedTime()
    monkeypatch.setattr(tenacity, "time", clock)

    def write() -> str:
        if clock.now < outage:
            raise busy(retry_after)
        return "written"

    try:
        policy.interruptible(SimulatedWaits(clock)).call(write, what="the final status")
    except KubeApiError:
        return False
    return True


@pytest.mark.parametrize("retry_after", [None, 10.0], ids=["backoff", "retry-after-10"])
def test_the_default_final_budget_outlives_the_documented_40_s_outage(
    monkeypatch: pytest.MonkeyPatch, retry_after: float | None
) -> None:
    assert outlives(RetryPolicy().with_deadline(FINAL_WRITE_BUDGET), 40.0, monkeypatch, retry_after)
    # The policy alone (8 attempts, about 16 s of backoff) loses the status, as before the budgets.
    assert not outlives(RetryPolicy(), 40.0, monkeypatch, retry_after=None)
    # And a budget is a bound: an outage longer than it ends the write.
    assert not outlives(RetryPolicy().with_deadline(FINAL_WRITE_BUDGET), FINAL_WRITE_BUDGET + 30, monkeypatch, None)
