"""The rule that keeps a pod from taking, as its own, a ConfigMap made after it started
(``raypod.kube.created_after``): the operator creates a BridgeJob's ConfigMap before its pod, so a
first read that finds a younger object found one re-created under the name since (another BridgeJob's).
``creationTimestamp`` is the API server's clock, the pod's start the node's: ``CREATION_SKEW`` apart."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as s

from raypod.kube import CREATION_SKEW, created_after

STARTED = datetime(2026, 12, 3, 16, 0, 0, 500000, tzinfo=timezone.utc)


def configmap(created: Any) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": "train-bridge-cm", "uid": "u1", "creationTimestamp": created}}


def stamp(moment: datetime) -> str:
    """As the API server writes it: RFC 3339, whole seconds, UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(
    ("after_start", "refused"),
    [
        (-3600.0, False),  # the operator's own, an hour older than the pod
        (0.0, False),
        (CREATION_SKEW - 0.5, False),  # the API server's clock ahead of the node's, within the skew
        # The stamp drops the fraction (an object looks up to 1 s older): 16:00:10.9 is stamped 16:00:10.
        (CREATION_SKEW + 0.4, False),
        (CREATION_SKEW + 0.5, True),  # 16:00:11, past start + skew (16:00:10.5)
        (30.0, True),  # the nightly find: re-created 30 s after the pod started
        (365 * 24 * 3600.0, True),
    ],
)
def test_only_a_configmap_created_beyond_the_clock_skew_after_the_pods_start_is_refused(
    after_start: float, refused: bool
) -> None:
    created = stamp(STARTED + timedelta(seconds=after_start))
    assert (created_after(configmap(created), STARTED) is not None) is refused, created


def test_the_edge_is_the_skew_itself_in_either_direction() -> None:
    # The stamp is whole seconds: a pod that started on a whole second makes the edge exact.
    started = STARTED.replace(microsecond=0)
    assert created_after(configmap(stamp(started + timedelta(seconds=CREATION_SKEW))), started) is None
    assert created_after(configmap(stamp(started + timedelta(seconds=CREATION_SKEW + 1))), started) is not None
    # A node clock ahead of the API server's makes every object look older: never refused for it.
    assert created_after(configmap(stamp(started - timedelta(seconds=CREATION_SKEW + 1))), started) is None


def test_the_refusal_names_the_creation_time_the_pods_start_and_the_skew_allowed() -> None:
    said = created_after(configmap("2026-12-03T16:00:40Z"), STARTED)
    assert said == (
        "was created at 2026-12-03T16:00:40Z, after this pod started (2026-12-03T16:00:00Z; "
        "10 s allowed for clock skew)"
    )


@pytest.mark.parametrize(
    "created",
    ["2026-12-03T17:00:00+01:00", "2026-12-03T16:00:40.123456Z", "2026-12-03T16:00:40z"],
    ids=["offset", "fraction", "lower-z"],
)
def test_any_rfc3339_spelling_of_a_later_time_is_read_as_that_time(created: str) -> None:
    assert created_after(configmap(created), STARTED - timedelta(seconds=30)) is not None


@pytest.mark.parametrize(
    "document",
    [
        {"kind": "ConfigMap", "metadata": {"name": "train-bridge-cm"}},
        configmap(None),
        configmap(""),
        configmap(1764777640),
        configmap("yesterday"),
        configmap("2026-13-45T99:00:00Z"),
        configmap("2026-12-03T16:00:40"),  # no offset: whose clock?
        configmap("9" * 100),
        {"kind": "ConfigMap", "metadata": "garbled"},
        {"kind": "ConfigMap"},
        "not an object",
    ],
    ids=[
        "missing",
        "null",
        "empty",
        "a-number",
        "words",
        "impossible-date",
        "no-offset",
        "endless",
        "metadata-not-an-object",
        "no-metadata",
        "not-an-object",
    ],
)
def test_a_missing_or_garbled_creation_timestamp_is_no_reason_to_refuse(document: Any) -> None:
    # It says nothing about the object's age: refusing on it would stop every pod behind an API (or a
    # proxy) that leaves it out, while the uid precondition and owner check still hold from this read on.
    assert created_after(document, STARTED) is None


@given(s.text(max_size=60))
def test_no_text_as_a_creation_timestamp_makes_the_rule_raise(text: str) -> None:
    created_after(configmap(text), STARTED)
