"""``kill`` set while a submission is being prepared (inputs fetched, packages uploaded) is honoured
before the POST: the job never runs only to be stopped (issue 25, class 6)."""

from __future__ import annotations

import json
from typing import Any

from raypod.contract import BridgeStatus, Reason
from raypod.retry import RetryPolicy
from tests.support.fakes import FAILED_MESSAGE, Harness

FAILS = ("PENDING", "RUNNING", ("FAILED", FAILED_MESSAGE))


def kill_while_preparing(h: Harness, *, from_call: int = 1) -> None:
    """The operator sets ``kill`` while raypod checks the dashboard (part of preparing the POST)."""
    original = h.ray.version
    calls = 0

    def version(retry: RetryPolicy | None = None) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls >= from_call:
            h.source.data["kill"] = "true"
        return original(retry)

    h.ray.version = version  # type: ignore[method-assign]


def test_kill_set_while_the_job_is_prepared_ends_kill_without_a_post() -> None:
    h = Harness()
    kill_while_preparing(h)

    outcome = h.run()

    assert h.ray.posts == []
    assert (outcome.status, outcome.reason) == (BridgeStatus.KILL, Reason.KILLED)
    assert outcome.message == "Not submitted: kill was set before the job started."


def test_kill_set_while_a_retry_is_prepared_keeps_the_failed_attempt_and_posts_no_other() -> None:
    h = Harness({"jobproperties": json.dumps({"retries": 2, "retryDelaySeconds": 0})}, life=FAILS)
    kill_while_preparing(h, from_call=2)  # the first attempt's check passes; the retry's meets kill

    outcome = h.run()

    (first,) = h.ray.posts
    assert (outcome.status, outcome.reason, outcome.submission_id) == (BridgeStatus.KILL, Reason.KILLED, first)
    assert outcome.message.startswith("Stopped at the operator's request (kill=true) before attempt 2; ")
