"""A Kubernetes API that holds each request for seconds never stalls the watch (issue 25, class 7).

The pod runs in-process against the fake API (``FakeKube.hold``) and a scripted dashboard polled
every 0.5 s: Ray is polled on while a ``kill`` read or a status write is held, ``kill`` is honoured
once the held read returns, the job's end is seen at once, and the final status is written last."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fake_kube import FakeKube
from raypod.cli import main
from tests.support.hostile import CONFIGMAP, NAMESPACE, Dashboard, job_answer, pod_environment, pod_in_the_fake_api
from tests.support.scripted_server import Answer, ScriptedServer, Seen

CM = CONFIGMAP
HOLD = 5.0
STATUS = "status.jobStatus"
JOBS = "/api/jobs/"


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    with ScriptedServer() as server:
        yield Dashboard(server, tmp_path / "unused")


def run_pod(fake: FakeKube, dashboard: Dashboard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    argv = pod_in_the_fake_api(fake, dashboard.server.url, tmp_path, interval="0.5")
    for name, value in fake.env().items():
        monkeypatch.setenv(name, value)
    with pod_environment():
        return main(argv)


def polls_between(dashboard: Dashboard, first: int, last: int) -> int:
    """The polls of the job among the dashboard's requests first..last (indexes in ``seen``)."""
    seen = list(dashboard.server.seen)[first:last]
    return sum(1 for s in seen if s.method == "GET" and s.bare_path.count("/") == 3 and s.bare_path.startswith(JOBS))


def patched_statuses(fake: FakeKube) -> list[str]:
    return [c.body["data"][STATUS] for c in fake.calls("PATCH") if STATUS in (c.body.get("data") or {})]


def test_polls_go_on_while_kill_is_held_and_kill_is_honoured_once_the_read_returns(
    fake_kube: FakeKube, dashboard: Dashboard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks: dict[str, int] = {}

    def api_slows_down_and_the_operator_kills(seen: Seen) -> Answer:
        # The operator sets kill; from now on every read and write waits HOLD s.
        answer = fake_kube.session().patch(
            f"{fake_kube.url}/api/v1/namespaces/{NAMESPACE}/configmaps/{CM}",
            json={"data": {"kill": "true"}},
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=10,
        )
        assert answer.status_code == 200
        fake_kube.hold("get", HOLD)
        fake_kube.hold("patch", HOLD)
        marks["armed"] = len(dashboard.server.seen)
        return job_answer(seen.bare_path.rsplit("/", 1)[1], "RUNNING")

    dashboard.script("poll", "RUNNING", api_slows_down_and_the_operator_kills, "RUNNING")

    code = run_pod(fake_kube, dashboard, tmp_path, monkeypatch)

    seen = list(dashboard.server.seen)
    stop = next(i for i, s in enumerate(seen) if s.method == "POST" and s.bare_path.endswith("/stop"))
    # Without the background read, the poll after the hold waits the whole HOLD for kill: one poll at most.
    assert polls_between(dashboard, marks["armed"], stop) >= 4
    assert code == 1
    assert fake_kube.data(CM, NAMESPACE)[STATUS] == "KILL"
    assert patched_statuses(fake_kube)[-1] == "KILL"


def test_the_end_is_seen_while_a_status_write_is_held_and_the_final_status_is_written_last(
    fake_kube: FakeKube, dashboard: Dashboard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marks: dict[str, int] = {}

    def api_slows_down(seen: Seen) -> Answer:
        fake_kube.hold("patch", HOLD)
        marks["patches when held"] = len(fake_kube.calls("PATCH"))
        marks["armed"] = len(dashboard.server.seen)
        return job_answer(seen.bare_path.rsplit("/", 1)[1], "RUNNING")

    def the_end(seen: Seen) -> Answer:
        marks["patches at the end"] = len(fake_kube.calls("PATCH"))
        marks["end"] = len(dashboard.server.seen)
        return job_answer(seen.bare_path.rsplit("/", 1)[1], "SUCCEEDED")

    dashboard.script("poll", "PENDING", api_slows_down, "RUNNING", "RUNNING", "RUNNING", the_end)

    code = run_pod(fake_kube, dashboard, tmp_path, monkeypatch)

    assert code == 0
    # The RUNNING write was held from the poll that saw RUNNING to past the poll that saw the end.
    assert marks["patches at the end"] == marks["patches when held"]
    assert polls_between(dashboard, marks["armed"], marks["end"]) == 4
    statuses = patched_statuses(fake_kube)
    assert statuses[-2:] == ["RUNNING", "SUCCEEDED"]
    assert fake_kube.data(CM, NAMESPACE)[STATUS] == "SUCCEEDED"
