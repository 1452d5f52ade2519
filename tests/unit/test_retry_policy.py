"""The one retry policy (``raypod.retry.RetryPolicy``): what it retries, and when it stops."""

from __future__ import annotations

import threading

import pytest

from raypod.errors import ApiError, ConfigError, Terminated
from raypod.retry import RetryPolicy


def unavailable() -> ApiError:
    return ApiError("GET", "http://ray.test/api/version", 503, "Service Unavailable")


def test_no_wait_between_tries_reaches_past_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Long backoff, short deadline: without the cut, the first wait alone could be 10 s.
    policy = RetryPolicy(attempts=1_000, initial_wait=10.0, max_wait=10.0, deadline=0.3)
    waits: list[float] = []
    monkeypatch.setattr(RetryPolicy, "_sleep", lambda _self, seconds: waits.append(seconds))

    def failing() -> None:
        raise unavailable()

    with pytest.raises(ApiError):
        policy.call(failing, "a call")

    assert waits, "a transient failure is retried"
    assert all(0.0 <= wait <= 0.3 for wait in waits), waits


def test_a_permanent_error_is_raised_at_once() -> None:
    calls = 0

    def refused() -> None:
        nonlocal calls
        calls += 1
        raise ConfigError.single("resourceURL", "bad")

    with pytest.raises(ConfigError):
        RetryPolicy(initial_wait=0.001, max_wait=0.001).call(refused, "a call")
    assert calls == 1


def test_a_transient_error_is_retried_until_it_heals() -> None:
    answers = iter([unavailable(), unavailable(), None])

    def flaky() -> str:
        error = next(answers)
        if error is not None:
            raise error
        return "ok"

    assert RetryPolicy(initial_wait=0.001, max_wait=0.001).call(flaky, "a call") == "ok"


def test_sigterm_during_the_wait_raises_terminated_not_the_last_error() -> None:
    event = threading.Event()
    event.set()
    policy = RetryPolicy(initial_wait=5.0, max_wait=5.0).interruptible(event)

    def failing() -> None:
        raise unavailable()

    with pytest.raises(Terminated):
        policy.call(failing, "a call")
