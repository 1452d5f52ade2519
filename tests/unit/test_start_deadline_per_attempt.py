"""``startDeadlineSeconds`` is given to each attempt of a retried job (docs/configmap.md#retries):
a retry counts its start deadline from its own submission, not from the first attempt's."""

from __future__ import annotations

import json

from raypod.contract import BridgeStatus, Reason
from tests.support.fakes import FAILED_MESSAGE, Harness

#: The first attempt runs well past the start deadline (counted from the job's submission), then fails.
LONG_FAILURE = ("PENDING", *("RUNNING",) * 20, ("FAILED", FAILED_MESSAGE))


def retrying_with_start_deadline(seconds: float) -> dict[str, str]:
    return {"jobproperties": json.dumps({"retries": 1, "retryDelaySeconds": 0, "startDeadlineSeconds": seconds})}


def test_a_retry_has_the_whole_start_deadline_from_its_own_submission() -> None:
    h = Harness(retrying_with_start_deadline(20), life=LONG_FAILURE)
    # The retry is PENDING for a moment (long after the first submission), then starts and succeeds.
    h.ray.next_lives.extend([LONG_FAILURE, ("PENDING", "PENDING", "RUNNING", "SUCCEEDED")])

    outcome = h.run()

    first, second = h.ray.posts
    assert second == f"{first}-r1"
    assert h.ray.calls_of("stop_job") == []
    assert (outcome.status, outcome.reason, outcome.submission_id) == (BridgeStatus.SUCCEEDED, Reason.SUCCEEDED, second)


def test_a_retry_that_never_starts_is_stopped_at_its_own_start_deadline() -> None:
    h = Harness(retrying_with_start_deadline(20), life=LONG_FAILURE)
    h.ray.next_lives.extend([LONG_FAILURE, ("PENDING",)])

    outcome = h.run()

    second = h.ray.posts[1]
    assert h.ray.calls_of("stop_job") == [second]
    assert (outcome.status, outcome.reason, outcome.submission_id) == (
        BridgeStatus.FAILED,
        Reason.START_DEADLINE_EXCEEDED,
        second,
    )
