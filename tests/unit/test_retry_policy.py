"""The one retry policy (``raypod.retry.RetryPolicy``): what it retries, and when it stops."""

from __future__ import annotations

import threading

import pytest

from raypod.errors import ApiError, ConfigError, RayApiError, S3Error, Terminated
from raypod.retry import RetryPolicy
from raypod.safetext import Scrubber


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


# -- what is retried and what is not: Ray's answers, SIGTERM between tries, TLS and S3 failures ----------
@pytest.mark.parametrize(
    ("status", "calls"), [(None, 3), (500, 3), (503, 3), (429, 3), (400, 1), (401, 1), (403, 1), (404, 1), (409, 1)]
)
def test_retry_policy_retries_no_answer_5xx_and_429_only(status: int | None, calls: int) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001)
    made: list[int] = []

    def call() -> None:
        made.append(1)
        raise RayApiError("GET", "http://ray", status, "injected")

    with pytest.raises(RayApiError):
        policy.call(call, "a call")
    assert len(made) == calls


def test_sigterm_ends_a_wait_between_retries_at_once() -> None:
    event = threading.Event()
    event.set()
    policy = RetryPolicy(attempts=5, initial_wait=600, max_wait=600).interruptible(event)
    made: list[int] = []

    def call() -> None:
        made.append(1)
        raise RayApiError("GET", "http://ray", 503, "injected")

    with pytest.raises(Terminated):
        policy.call(call, "a call")
    assert made == [1]


def test_a_certificate_failure_is_not_retried_although_it_has_no_status() -> None:
    assert not RayApiError("GET", "https://ray", None, "TLS verification failed", retryable=False).transient
    assert RayApiError("GET", "https://ray", None, "Connection reset").transient


@pytest.mark.parametrize(("status", "transient"), [(403, False), (404, False), (429, True), (502, True)])
def test_a_non_xml_s3_answer_is_retried_by_its_status(status: int, transient: bool) -> None:
    from minio.error import InvalidResponseError

    from raypod.s3 import _translate

    error = _translate(InvalidResponseError(status, "text/html", "<html>proxy</html>"), "upload", None, Scrubber())
    assert isinstance(error, S3Error) and error.transient is transient
