"""Kubernetes Events on the ConfigMap (raypod.events) against the fake API over HTTPS: the real
verbs, paths and bodies, the aggregation of repeats into a ``series``, and Events that cannot be
written (RBAC denied, a broken API) changing nothing of the run: not its status, not its exit code.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from devtools.fake_kube import QUICK, FakeKube, Page, Recorded
from raypod.events import SERIES_FINISHED_AFTER, EventReasons, KubeEvents
from raypod.kube import KubeConfigMap, ServiceAccount
from tests.support.cli import raypod
from tests.support.hostile import CONFIGMAP, JOB_NAME, NAMESPACE, Dashboard, pod_in_the_fake_api
from tests.support.scripted_server import ScriptedServer

CM = CONFIGMAP
EVENTS = f"/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
POD = "train-raypod-7f9c"
T0 = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=timezone.utc)


@pytest.fixture
def configmap(fake_kube: FakeKube) -> KubeConfigMap:
    fake_kube.create_configmap(CM, {"resourceURL": "http://ray:8265"}, NAMESPACE, owner_uid="bridgejob-uid")
    api = KubeConfigMap(fake_kube.url, ServiceAccount(fake_kube.sa_dir), NAMESPACE, CM, retry=QUICK)
    api.read()
    return api


def event_calls(fake: FakeKube, method: str) -> list[Recorded]:
    return [c for c in fake.calls(method) if c.path.startswith(EVENTS)]


def test_an_event_is_created_with_the_fields_kubernetes_validates(
    fake_kube: FakeKube, configmap: KubeConfigMap
) -> None:
    KubeEvents(configmap, POD, now=lambda: T0).record(EventReasons.SUBMITTED, "Submitted to http://ray:8265 as j-1.")

    [post] = [c for c in fake_kube.calls("POST") if c.path == EVENTS]
    assert post.status == 201
    assert post.content_type == "application/json"
    [event] = fake_kube.events(NAMESPACE)
    assert event["apiVersion"] == "events.k8s.io/v1" and event["kind"] == "Event"
    assert event["metadata"]["name"].startswith(f"{CM}.")
    assert re.fullmatch(r"[0-9a-f]+", event["metadata"]["name"].removeprefix(f"{CM}."))
    assert event["eventTime"] == "2026-12-03T12:00:00.123456Z"
    assert MICRO_TIME.match(event["eventTime"])
    assert event["reportingController"] == "raypod"
    assert event["reportingInstance"] == POD
    assert (event["reason"], event["type"], event["action"]) == ("Submitted", "Normal", "Submit")
    assert event["note"] == "Submitted to http://ray:8265 as j-1."
    assert event["regarding"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": CM,
        "namespace": NAMESPACE,
        "uid": fake_kube.configmap(CM, NAMESPACE)["metadata"]["uid"],
    }
    assert "series" not in event


def test_repeats_patch_the_series_of_one_event_instead_of_creating_more(
    fake_kube: FakeKube, configmap: KubeConfigMap
) -> None:
    times = iter(T0 + timedelta(seconds=30 * n) for n in range(4))
    events = KubeEvents(configmap, POD, now=lambda: next(times))
    for _ in range(4):
        events.record(EventReasons.RUNNING, "Ray job j-1 is running.")

    assert len(event_calls(fake_kube, "POST")) == 1
    patches = event_calls(fake_kube, "PATCH")
    assert [p.content_type for p in patches] == ["application/merge-patch+json"] * 3
    assert [p.body["series"]["count"] for p in patches] == [2, 3, 4]
    [event] = fake_kube.events(NAMESPACE)
    assert event["series"] == {"count": 4, "lastObservedTime": "2026-12-03T12:01:30.123456Z"}
    # kubectl describe shows this as "(x4 over 90s)": the first time stays the Event's own.
    assert event["eventTime"] == "2026-12-03T12:00:00.123456Z"


def test_another_note_or_reason_is_another_event(fake_kube: FakeKube, configmap: KubeConfigMap) -> None:
    events = KubeEvents(configmap, POD, now=lambda: T0)
    events.record(EventReasons.RETRY_SCHEDULED, "Attempt 1 of 3 failed; attempt 2 starts in 5 s.")
    events.record(EventReasons.RETRY_SCHEDULED, "Attempt 2 of 3 failed; attempt 3 starts in 5 s.")
    events.record(EventReasons.FAILED, "Attempt 2 of 3 failed; attempt 3 starts in 5 s.")

    assert len(fake_kube.events(NAMESPACE)) == 3
    assert not event_calls(fake_kube, "PATCH")


def test_a_series_over_for_six_minutes_starts_a_new_event(fake_kube: FakeKube, configmap: KubeConfigMap) -> None:
    times = iter([T0, T0 + timedelta(seconds=SERIES_FINISHED_AFTER + 1)])
    events = KubeEvents(configmap, POD, now=lambda: next(times))
    events.record(EventReasons.RUNNING, "Ray job j-1 is running.")
    events.record(EventReasons.RUNNING, "Ray job j-1 is running.")

    assert len(fake_kube.events(NAMESPACE)) == 2


def test_an_event_gone_from_the_api_is_created_again_on_its_next_repeat(
    fake_kube: FakeKube, configmap: KubeConfigMap
) -> None:
    events = KubeEvents(configmap, POD, now=lambda: T0)
    events.record(EventReasons.RUNNING, "Ray job j-1 is running.")
    fake_kube.event_store.events.clear()  # expired: the API server's --event-ttl
    events.record(EventReasons.RUNNING, "Ray job j-1 is running.")

    assert [c.status for c in event_calls(fake_kube, "PATCH")] == [404]
    [event] = fake_kube.events(NAMESPACE)
    assert "series" not in event


def test_a_denied_event_is_logged_once_and_no_event_is_tried_again(
    fake_kube: FakeKube, configmap: KubeConfigMap, caplog: pytest.LogCaptureFixture
) -> None:
    fake_kube.deny_events()
    events = KubeEvents(configmap, POD)
    with caplog.at_level(logging.DEBUG, logger="raypod.events"):
        for reason in (EventReasons.SUBMITTED, EventReasons.RUNNING, EventReasons.SUCCEEDED):
            events.record(reason, "note")

    assert len(event_calls(fake_kube, "POST")) == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "create" in warnings[0].getMessage() and "events.k8s.io" in warnings[0].getMessage()
    assert fake_kube.token not in caplog.text


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda fake: fake.fail_events(500, 2), id="500"),
        pytest.param(lambda fake: fake.fail_events(200, 2, page=Page(b"<html>sign in</html>")), id="proxy-page"),
        pytest.param(
            lambda fake: fake.fail_events(201, 2, page=Page(b'{"kind": "Status"}', "application/json")),
            id="not-an-event",
        ),
    ],
)
def test_a_broken_api_is_logged_once_and_events_come_back_with_it(
    fake_kube: FakeKube, configmap: KubeConfigMap, caplog: pytest.LogCaptureFixture, break_it: object
) -> None:
    break_it(fake_kube)  # type: ignore[operator]
    events = KubeEvents(configmap, POD)
    with caplog.at_level(logging.DEBUG, logger="raypod.events"):
        for reason in (EventReasons.SUBMITTED, EventReasons.RUNNING, EventReasons.SUCCEEDED):
            events.record(reason, "note")

    assert [e["reason"] for e in fake_kube.events(NAMESPACE)] == ["Succeeded"]
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_no_event_names_a_configmap_never_read(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(CM, {}, NAMESPACE)
    api = KubeConfigMap(fake_kube.url, ServiceAccount(fake_kube.sa_dir), NAMESPACE, CM, retry=QUICK)
    KubeEvents(api, POD).record(EventReasons.BAD_INPUT, "never read")

    assert not event_calls(fake_kube, "POST")


# -- the pod as a child process --------------------------------------------------------------------
@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    with ScriptedServer() as server:
        yield Dashboard(server, tmp_path / "unused")


def run_pod(fake: FakeKube, dashboard: Dashboard, tmp_path: Path) -> tuple[int, dict[str, str], str]:
    argv = pod_in_the_fake_api(fake, dashboard.server.url, tmp_path, interval="0.2")
    env = {**fake.env(), "JOBNAME": JOB_NAME, "NAMESPACE": NAMESPACE, "POD_NAME": POD}
    completed = raypod(*argv, env=env, timeout=120)
    return completed.returncode, fake.data(CM, NAMESPACE), completed.stderr


OUTCOME_KEYS = ("status.jobStatus", "status.reason", "status.message", "id")


def test_a_pod_run_leaves_its_lifecycle_as_events_on_the_configmap(
    fake_kube: FakeKube, dashboard: Dashboard, tmp_path: Path
) -> None:
    dashboard.script("poll", "PENDING", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED")
    code, data, _ = run_pod(fake_kube, dashboard, tmp_path)

    assert code == 0
    events = fake_kube.events(NAMESPACE)
    assert [e["reason"] for e in events] == ["Submitted", "Running", "Succeeded"]
    assert {e["reportingInstance"] for e in events} == {POD}
    assert events[-1]["note"] == data["status.message"]


def test_a_denied_event_leaves_the_outcome_and_the_exit_code_as_they_are(
    fake_kube: FakeKube, dashboard: Dashboard, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dashboard.script("poll", "RUNNING", "FAILED")
    fake_kube.deny_events()
    code, data, stderr = run_pod(fake_kube, dashboard, tmp_path)

    # The same run with Events allowed, on a fresh API and dashboard.
    other = tmp_path_factory.mktemp("allowed")
    with FakeKube(other, namespace=fake_kube.namespace) as allowed, ScriptedServer() as server:
        allowed_dashboard = Dashboard(server, other / "unused")
        allowed_dashboard.script("poll", "RUNNING", "FAILED")
        allowed_code, allowed_data, _ = run_pod(allowed, allowed_dashboard, other)
        assert [e["reason"] for e in allowed.events(NAMESPACE)] == ["Submitted", "Running", "Failed"]

    assert code == allowed_code != 0
    assert data["status.jobStatus"] == "FAILED"
    assert {k: data.get(k) for k in OUTCOME_KEYS[:2]} == {k: allowed_data.get(k) for k in OUTCOME_KEYS[:2]}
    assert not fake_kube.events(NAMESPACE)
    assert stderr.count("Events are not written in this run") == 1
    # Denied once: no other Event was even tried.
    assert len(event_calls(fake_kube, "POST")) == 1


def test_bad_input_in_a_configmap_that_was_read_is_a_badinput_warning_with_the_status_message(
    fake_kube: FakeKube, dashboard: Dashboard, tmp_path: Path
) -> None:
    fake_kube.create_configmap(CM, {"resourceURL": dashboard.server.url, "updateInterval": "soon"}, NAMESPACE)
    env = {**fake_kube.env(), "JOBNAME": JOB_NAME, "NAMESPACE": NAMESPACE, "POD_NAME": POD}
    completed = raypod("run", "--credentials", str(tmp_path), env=env, timeout=120)

    data = fake_kube.data(CM, NAMESPACE)
    assert data["status.reason"] == "BadInput", completed.stderr
    [event] = fake_kube.events(NAMESPACE)
    assert (event["type"], event["reason"], event["note"]) == ("Warning", "BadInput", data["status.message"])
    assert dashboard.posts == 0
