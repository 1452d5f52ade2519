"""raypod under a copy of the Bridge Operator's rules (tests/support/bridge_operator.py): its real
ConfigMap writes through the fake Kubernetes API, its real exit code as the pod's phase, on the
real Ray head. In every case the BridgeJob ends as a user expects, and never by the pod-error rule."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fake_kube import FakeKube
from tests.support.bridge_operator import Action, BridgeOperator, Phase, phase_of
from tests.support.helpers import (
    GO_TIME,
    BridgeJob,
    KubeJob,
    Services,
    Watched,
    jobs_of,
    stop_ray_job,
    wait_for_ray_status,
    waiting_script,
)

OWNER_UID = "bridgejob-uid-0f3c"


class World:
    """One BridgeJob: its ConfigMap in the fake API, the operator's rules, and the pods they start."""

    def __init__(self, job: BridgeJob, release: Path) -> None:
        self.kube = KubeJob(job)
        self.job = job
        self.release = release
        self.operator = BridgeOperator()
        self.pods: list[Watched] = []
        #: The keys the operator writes, to create the ConfigMap again (without raypod's).
        self.operator_keys: dict[str, str] = {}

    def create_configmap(self, **keys: str) -> None:
        self.job.set(**keys)
        self.operator_keys = dict(self.job.data)
        self.kube.fake.create_configmap(self.kube.cm, self.operator_keys, owner_uid=OWNER_UID)

    def reconcile(self, pod: Phase | None) -> Action:
        try:
            data: dict[str, str] | None = self.kube.data()
        except KeyError:
            data = None
        action = self.operator.reconcile(data, pod)
        if action is Action.CREATE_POD:
            self.pods.append(Watched(self.job.start()))
        elif action is Action.CREATE_CONFIGMAP:
            self.kube.fake.create_configmap(self.kube.cm, self.operator_keys, owner_uid=OWNER_UID)
        return action

    @property
    def pod(self) -> Watched:
        return self.pods[-1]

    def pod_ends(self, timeout: float = 180) -> int:
        """The current pod's exit, and the reconcile its phase triggers."""
        code, _, stderr = self.pod.finish(timeout=timeout)
        assert "Traceback" not in stderr, stderr
        self.reconcile(phase_of(code))
        return code

    def pod_gone(self) -> None:
        """The pod object disappears (a finished eviction); the operator reconciles."""
        self.reconcile(None)

    def sigterm(self) -> None:
        self.pod.process.send_signal(signal.SIGTERM)

    def running_on_ray(self) -> str:
        status = self.kube.wait_for("status.jobStatus", "RUNNING", timeout=120)
        self.reconcile(Phase.RUNNING)
        return status["id"]

    def ray_jobs(self) -> list[dict[str, object]]:
        return jobs_of(self.job.services, self.job.name)


@pytest.fixture
def world(tmp_path: Path, services: Services, fake_kube: FakeKube) -> Iterator[World]:
    made = World(BridgeJob(tmp_path, services, kube=fake_kube), tmp_path / "release")
    try:
        yield made
    finally:
        made.release.touch()
        for pod in made.pods:
            if pod.process.poll() is None:
                pod.finish(timeout=0.1)
        for ray_job in made.ray_jobs():
            if ray_job["status"] in ("PENDING", "RUNNING"):
                stop_ray_job(services, str(ray_job["submission_id"]))


def inline(script: str) -> dict[str, str]:
    return {"jobdata__scriptLocation": "inline", "jobdata__jobScript": script}


def assert_copied(world: World, status: str) -> None:
    """The operator's record of a final status: the status, and the pod's times and message."""
    record, data = world.operator.status, world.kube.data()
    assert not world.operator.pod_error
    assert record.job_status == status
    assert record.start_time == data["status.submitTime"] and GO_TIME.fullmatch(record.start_time)
    assert record.completion_time == data["status.endTime"] and GO_TIME.fullmatch(record.completion_time)
    assert record.message == data["status.message"] and record.message


def test_a_job_that_succeeds_is_succeeded_with_its_times_and_message(world: World) -> None:
    world.create_configmap(**inline("print('done')\n"))
    world.reconcile(None)
    assert world.pod_ends() == 0
    assert_copied(world, "SUCCEEDED")
    assert world.operator.pods_created == 1


def test_a_job_that_fails_is_failed_with_its_message_not_by_the_pod_error_rule(world: World) -> None:
    world.create_configmap(**inline("raise SystemExit(3)\n"))
    world.reconcile(None)
    assert world.pod_ends() == 1  # phase Failed, tolerated: the status says FAILED
    assert_copied(world, "FAILED")
    assert world.operator.status.message.startswith("Job failed: Job entrypoint command failed with exit code 3")


def test_a_killed_job_is_kill(world: World) -> None:
    world.create_configmap(**inline(waiting_script(world.release)))
    world.reconcile(None)
    submission_id = world.running_on_ray()
    assert world.kube.operator_update(kill="true") == 200
    world.pod_ends()
    assert_copied(world, "KILL")
    assert world.ray_jobs()[0]["status"] == "STOPPED" and world.ray_jobs()[0]["submission_id"] == submission_id


def test_a_job_retried_after_a_failure_is_succeeded_once(world: World, tmp_path: Path) -> None:
    marker = tmp_path / "first-attempt-ran"
    script = (
        "import os, sys\n"
        f"if not os.path.exists({str(marker)!r}):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    sys.exit(1)\n"
        "print('second attempt')\n"
    )
    world.create_configmap(**inline(script), jobproperties='{"retries": 1, "retryDelaySeconds": 0}')
    world.reconcile(None)
    assert world.pod_ends() == 0
    assert_copied(world, "SUCCEEDED")
    assert sorted(str(job["status"]) for job in world.ray_jobs()) == ["FAILED", "SUCCEEDED"]


def test_a_job_ray_lost_is_unknown_with_its_message_not_a_pod_error(world: World) -> None:
    # An earlier pod recorded the job as running; the head lost it (a restart without persistence).
    world.create_configmap(**inline("print('never')\n"))
    world.kube.operator_update(**{"id": f"raypod-{world.job.name}-lost", "status.jobStatus": "RUNNING"})
    world.kube.operator_update(**{"status.submitTime": "2026-12-03T10:00:00Z"})
    world.reconcile(None)
    assert world.pod_ends() == 0  # as the operator's pod: UNKNOWN is written, then the pod succeeds
    assert_copied(world, "UNKNOWN")
    assert "no longer knows" in world.operator.status.message


def test_an_evicted_pod_leaves_the_job_running_and_the_next_pod_finishes_it(world: World) -> None:
    world.create_configmap(**inline(waiting_script(world.release)))
    world.reconcile(None)
    submission_id = world.running_on_ray()
    world.sigterm()  # a node drain: the ConfigMap stays
    started = time.monotonic()
    assert world.pod_ends(timeout=30) == 0
    assert time.monotonic() - started < 25  # inside the 30 s grace period
    assert world.operator.status.job_status == "RUNNING" and not world.operator.pod_error
    assert wait_for_ray_status(world.job.services, submission_id, {"RUNNING"}, timeout=5) == "RUNNING"
    world.pod_gone()  # the evicted pod disappears: the operator starts another
    assert world.operator.pods_created == 2
    world.pod.wait_for(f"re-attached to Ray job {submission_id}", timeout=120)
    world.release.touch()
    assert world.pod_ends() == 0
    assert_copied(world, "SUCCEEDED")
    assert [job["submission_id"] for job in world.ray_jobs()] == [submission_id]


def test_deleting_the_bridgejob_stops_its_ray_job(world: World) -> None:
    world.create_configmap(**inline(waiting_script(world.release)))
    world.reconcile(None)
    submission_id = world.running_on_ray()
    # The garbage collector deletes the pod and the ConfigMap with their BridgeJob, in no set order.
    world.sigterm()
    time.sleep(1)
    world.kube.fake.delete_configmap(world.kube.cm)
    code, stdout, stderr = world.pod.finish(timeout=30)
    assert "Traceback" not in stderr, stderr
    assert code == 0
    assert wait_for_ray_status(world.job.services, submission_id, {"STOPPED"}, timeout=20) == "STOPPED"
    assert f"The BridgeJob was deleted; Ray job {submission_id} is STOPPED." in stdout + stderr


def test_a_re_created_configmap_leads_the_next_pod_to_the_same_ray_job(world: World) -> None:
    world.create_configmap(**inline(waiting_script(world.release)))
    world.reconcile(None)
    submission_id = world.running_on_ray()
    # Someone deletes the ConfigMap while the pod runs; the operator creates it again, without id.
    world.kube.fake.delete_configmap(world.kube.cm)
    assert world.reconcile(Phase.RUNNING) is Action.CREATE_CONFIGMAP
    assert "id" not in world.kube.data()
    world.sigterm()  # then the pod is evicted: the ConfigMap is there, so the Ray job runs on
    assert world.pod_ends(timeout=30) == 0
    world.pod_gone()
    world.pod.wait_for(submission_id, timeout=120)  # the BridgeJob's uid gives the same id again
    world.release.touch()
    assert world.pod_ends() == 0
    assert world.kube.data()["id"] == submission_id
    assert_copied(world, "SUCCEEDED")
    assert [job["submission_id"] for job in world.ray_jobs()] == [submission_id]
