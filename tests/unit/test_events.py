"""raypod.events on its own: the table of reasons, the note (bounded, never a secret), the final
status's Event, the pod's name, and the background writer that never holds the caller."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from raypod.contract import BridgeStatus, Reason
from raypod.events import (
    INSTANCE_LIMIT,
    NOTE_LIMIT,
    NULL_EVENTS,
    REASONS,
    BackgroundEvents,
    EventReasons,
    KubeEvents,
    bounded_note,
    events_for,
    final_reason,
    micro_time,
    reporting_instance,
)
from raypod.safetext import Scrubber
from tests.support.fake_kube_api import FakeKubeApi
from tests.support.pod_world import BRIDGEJOB_UID, KUBE_TOKEN, ModelClock, pod_configmap

SECRET = "s3cr3t-T0ken-9f8e7d6c"


def test_every_reason_has_a_type_and_an_action_kubernetes_accepts() -> None:
    named = {value for key, value in vars(EventReasons).items() if key.isupper()}
    assert named == set(REASONS)
    assert len(REASONS) == 11
    for reason, kind in REASONS.items():
        assert kind.type.value in ("Normal", "Warning")
        assert 0 < len(reason) <= 128 and 0 < len(kind.action) <= 128


@pytest.mark.parametrize(
    ("status", "reason", "event"),
    [
        (BridgeStatus.SUCCEEDED, Reason.SUCCEEDED, "Succeeded"),
        (BridgeStatus.FAILED, Reason.APP_FAILED, "Failed"),
        (BridgeStatus.FAILED, Reason.SUBMISSION_REJECTED, "Failed"),
        (BridgeStatus.FAILED, Reason.NOT_SUBMITTED, "Failed"),
        (BridgeStatus.FAILED, Reason.DEADLINE_EXCEEDED, "DeadlineExceeded"),
        (BridgeStatus.FAILED, Reason.START_DEADLINE_EXCEEDED, "DeadlineExceeded"),
        (BridgeStatus.FAILED, Reason.BAD_INPUT, "BadInput"),
        (BridgeStatus.KILL, Reason.KILLED, "Stopped"),
        (BridgeStatus.UNKNOWN, Reason.LOST, "Lost"),
    ],
)
def test_the_final_event_follows_the_final_status_and_its_reason(status: BridgeStatus, reason: str, event: str) -> None:
    assert final_reason(status, reason) == event


def test_a_status_that_is_not_final_has_no_final_event() -> None:
    with pytest.raises(AssertionError):
        final_reason(BridgeStatus.RUNNING, "")


@settings(max_examples=200)
@given(
    before=s.text(max_size=2000),
    after=s.text(max_size=2000),
    repeat=s.integers(0, 60),
)
def test_a_note_is_never_over_1_kb_and_never_holds_a_secret(before: str, after: str, repeat: int) -> None:
    note = bounded_note(before + SECRET * repeat + after, Scrubber([SECRET]))
    assert len(note.encode("utf-8")) <= NOTE_LIMIT
    assert SECRET not in note and SECRET[:8] not in note
    assert note.isprintable()


def test_a_note_under_the_limit_is_kept_whole() -> None:
    assert bounded_note("Job succeeded; log uploaded to s3://bucket/train/logs.", Scrubber()) == (
        "Job succeeded; log uploaded to s3://bucket/train/logs."
    )


def test_event_time_is_a_micro_time_in_utc() -> None:
    assert micro_time(datetime(2026, 12, 3, 12, 0, 1, 5, tzinfo=timezone.utc)) == "2026-12-03T12:00:01.000005Z"


def test_the_reporting_instance_is_the_pods_name_else_raypod_and_the_host() -> None:
    assert reporting_instance({"POD_NAME": "train-raypod-x7k2p"}) == "train-raypod-x7k2p"
    fallback = reporting_instance({"POD_NAME": "Not A Name!"})
    assert fallback.startswith("raypod-") and len(fallback) <= INSTANCE_LIMIT


def test_outside_a_cluster_there_are_no_events() -> None:
    assert events_for(None) is NULL_EVENTS
    NULL_EVENTS.record(EventReasons.SUBMITTED, "nothing happens")
    NULL_EVENTS.close(0.0)


def test_the_service_account_token_never_reaches_a_note(tmp_path: Path) -> None:
    clock = ModelClock()
    api = FakeKubeApi(clock, BRIDGEJOB_UID)
    api.create({"resourceURL": "http://ray:8265"}, BRIDGEJOB_UID)
    configmap, _ = pod_configmap(api, clock, tmp_path)
    configmap.read()
    KubeEvents(configmap, "train-raypod-1", now=clock.now).record(
        EventReasons.FAILED, f"Job failed: Authorization: Bearer {KUBE_TOKEN} refused"
    )
    [event] = api.events
    assert KUBE_TOKEN not in event["note"] and "***" in event["note"]


class _HeldWriter:
    """A KubeEvents stand-in whose writes wait until released (a hung API)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.written: list[tuple[str, str]] = []

    def now(self) -> datetime:
        return datetime(2026, 12, 3, tzinfo=timezone.utc)

    def write(self, reason: str, note: str, at: datetime) -> None:
        self.release.wait(30)
        self.written.append((reason, note))


def test_recording_never_waits_for_a_write_and_close_waits_only_as_long_as_told() -> None:
    writer = _HeldWriter()
    events = BackgroundEvents(writer, limit=2)  # type: ignore[arg-type]
    for n in range(5):  # more than the queue holds: the rest are dropped, never waited for
        events.record(EventReasons.RUNNING, f"note {n}")
    events.close(0.0)
    assert writer.written == []
    writer.release.set()
    events._thread.join(30)
    assert not events._thread.is_alive()
    assert writer.written[0] == (EventReasons.RUNNING, "note 0")
    assert len(writer.written) <= 3
