"""The ConfigMap through the Kubernetes API: raypod as a pod, a fake API server over HTTPS, the real
Ray and S3. (conftest's ``fake_kube`` is the API server.)"""

from __future__ import annotations

import io
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_kube import QUICK, FakeKube, other_ca_bundle
from raypod.contract import OWNED_KEYS
from raypod.credentials import S3CredentialSources
from raypod.kube import KubeConfigMap, ServiceAccount
from raypod.runner import Runner, RunOptions
from raypod.source import ConfigMapJob
from tests.support.helpers import (
    PARSE_KWARGS_SCRIPT,
    BridgeJob,
    KubeJob,
    Services,
    assert_operator_times,
    jobs_of,
    ray_job,
    wait_until,
    waiting_script,
)


@pytest.fixture
def kube_job(tmp_path: Path, services: Services, fake_kube: FakeKube) -> KubeJob:
    return KubeJob(BridgeJob(tmp_path, services, kube=fake_kube))


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=30)


# -- end to end: raypod as a pod runs it, against the real Ray and S3 ----------------------------
def test_status_reaches_the_configmap_through_merge_patches_of_owned_keys_only(
    kube_job: KubeJob, tmp_path: Path
) -> None:
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript=PARSE_KWARGS_SCRIPT)
    operator_keys = kube_job.data()
    # A wrong CA bundle in the environment must not replace the service account's ca.crt.
    wrong = str(other_ca_bundle(tmp_path / "wrong-ca.pem"))
    result = kube_job.job.run(env={"REQUESTS_CA_BUNDLE": wrong, "CURL_CA_BUNDLE": wrong})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = kube_job.data()
    assert data["status.jobStatus"] == "SUCCEEDED"
    assert data["id"].startswith(f"raypod-{kube_job.job.name}-")
    assert "log uploaded to s3://" in data["status.message"]
    assert_operator_times(data)
    assert {k: v for k, v in data.items() if k not in OWNED_KEYS} == operator_keys
    patches = kube_job.fake.calls("PATCH")
    assert patches and all(p.content_type == "application/merge-patch+json" for p in patches)
    # Only data, and the uid read at start-up as the precondition: never another object's.
    assert all(set(p.body) <= {"data", "metadata"} and set(p.body.get("metadata", {})) <= {"uid"} for p in patches)
    assert set(kube_job.fake.iter_patched_keys()) <= set(OWNED_KEYS)
    assert kube_job.fake.calls("PUT") == []
    # NAMESPACE was not set: the service account's namespace file named it.
    assert ray_job(kube_job.job.services, data["id"])["metadata"]["bridge-namespace"] == kube_job.fake.namespace


def test_two_pods_started_together_make_one_ray_job(kube_job: KubeJob) -> None:
    # A force-deleted pod and its replacement overlap: both read the same ConfigMap with no id yet.
    kube_job.create(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import time\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(1)\n",
    )
    # Both pods must read the ConfigMap before either can write its id: every PATCH is held until
    # each pod has made its two start-up reads (recorded status, then the job) and one id write
    # waits; the id write is retried, so both then go through.
    kube_job.fake.fail("patch", 503, None)
    pods = [kube_job.job.start(), kube_job.job.start()]
    try:
        fake = kube_job.fake
        wait_until(lambda: len(fake.calls("GET")) >= 4 and bool(fake.calls("PATCH")), "both pods past start-up")
        fake.clear_faults()
        outputs = [pod.communicate(timeout=300) for pod in pods]
    finally:
        for pod in pods:
            stop(pod)
    for pod, (out, err) in zip(pods, outputs, strict=True):
        assert pod.returncode == 0, out + err
        assert "Traceback" not in err
    jobs = jobs_of(kube_job.job.services, kube_job.job.name)
    # The id comes from the ConfigMap's uid: the second POST got Ray's duplicate-id answer.
    assert [job["submission_id"] for job in jobs] == [kube_job.data()["id"]]
    assert kube_job.data()["status.jobStatus"] == "SUCCEEDED"


def test_kill_set_through_the_api_stops_the_running_job(kube_job: KubeJob) -> None:
    kube_job.create(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import time\nprint('started', flush=True)\ntime.sleep(600)\n",
    )
    process = kube_job.job.start()
    try:
        running = kube_job.wait_for("status.jobStatus", "RUNNING")
        assert kube_job.operator_update(kill="true") == 200
        _, stderr = process.communicate(timeout=120)
    finally:
        stop(process)
    assert process.returncode == 1, stderr
    data = kube_job.data()
    assert data["status.jobStatus"] == "KILL"
    assert "kill=true" in data["status.message"]
    assert data["kill"] == "true"
    assert ray_job(kube_job.job.services, running["id"])["status"] == "STOPPED"
    # The story in Events (raypod.events): the real head's RUNNING, the kill, and the final status.
    events = kube_job.fake.events()
    assert [e["reason"] for e in events] == ["Submitted", "Running", "KillRequested", "Stopped"]
    assert events[-1]["note"] == data["status.message"]


def test_a_key_the_operator_writes_while_the_job_runs_survives(kube_job: KubeJob) -> None:
    kube_job.create(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(1)\n",
    )
    stale = kube_job.fake.configmap(kube_job.cm)
    process = kube_job.job.start()
    try:
        kube_job.wait_for("status.jobStatus", "RUNNING")
        assert kube_job.operator_update(**{"operator.note": "written mid-run"}) == 200
        # raypod's patches moved the resourceVersion on, so an update based on the old read conflicts.
        session = kube_job.fake.session()
        url = f"{kube_job.fake.url}/api/v1/namespaces/{kube_job.fake.namespace}/configmaps/{kube_job.cm}"
        assert session.put(url, json=stale, timeout=10).status_code == 409
        _, stderr = process.communicate(timeout=120)
    finally:
        stop(process)
    assert process.returncode == 0, stderr
    data = kube_job.data()
    assert data["operator.note"] == "written mid-run"
    assert data["status.jobStatus"] == "SUCCEEDED"


def test_a_token_rotated_in_the_middle_of_a_job_is_picked_up(kube_job: KubeJob) -> None:
    kube_job.create(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import time\nfor i in range(5):\n    print('tick', i, flush=True)\n    time.sleep(1)\n",
    )
    first = kube_job.fake.token
    process = kube_job.job.start()
    try:
        kube_job.wait_for("status.jobStatus", "RUNNING")
        second = kube_job.fake.rotate_token()
        _, stderr = process.communicate(timeout=120)
    finally:
        stop(process)
    assert process.returncode == 0, stderr
    assert kube_job.fake.tokens_seen[first] > 0 and kube_job.fake.tokens_seen[second] > 0
    assert kube_job.data()["status.jobStatus"] == "SUCCEEDED"
    assert first not in stderr and second not in stderr


DENIED = {
    "missing ConfigMap": (None, 0, ["-bridge-cm not found in namespace bridge-test", "JOBNAME"]),
    "get forbidden": ("get", 403, ["cannot get resource", 'verbs: ["get", "patch"]', "RoleBinding"]),
    "token rejected": ("get", 401, ["token was not accepted", 'verbs: ["get", "patch"]']),
}


@pytest.mark.parametrize("case", sorted(DENIED))
def test_unreadable_configmap_exits_2_with_what_to_fix(kube_job: KubeJob, case: str) -> None:
    verb, status, phrases = DENIED[case]
    kube_job.job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('never runs')\n")
    if verb is not None:
        kube_job.create()
        kube_job.fake.deny(verb, status)
    result = kube_job.job.run()
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr
    assert kube_job.fake.token not in result.stderr + result.stdout
    assert jobs_of(kube_job.job.services, kube_job.job.name) == []


def test_bad_credentials_file_in_a_pod_is_reported_in_the_configmap(kube_job: KubeJob) -> None:
    # The operator sees the reason in the BridgeJob, not only a pod error.
    marker = "MARKER-token-4e1a"
    (kube_job.job.credentials_dir / "token").write_text(f"{marker}\nsecond line\n")
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript="print('never runs')\n")
    result = kube_job.job.run()
    assert result.returncode == 2, result.stdout + result.stderr
    data = kube_job.data()
    assert data["status.jobStatus"] == "FAILED"
    assert data["status.message"].startswith("Bad input: ") and "token" in data["status.message"]
    assert marker not in result.stdout + result.stderr + json.dumps(data)
    assert jobs_of(kube_job.job.services, kube_job.job.name) == []


def test_username_and_password_are_not_read_unless_auth_is_basic(kube_job: KubeJob) -> None:
    password = kube_job.job.credentials_dir / "password"
    password.unlink()
    password.mkdir()  # unreadable as a file, even for root
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript="print('ran')\n")
    result = kube_job.job.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert kube_job.data()["status.jobStatus"] == "SUCCEEDED"


def test_patch_forbidden_submits_nothing_and_exits_1_naming_the_rule(kube_job: KubeJob) -> None:
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript="print('never runs')\n")
    kube_job.fake.deny("patch", 403)
    result = kube_job.job.run()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "cannot patch resource" in result.stderr and 'verbs: ["get", "patch"]' in result.stderr
    assert jobs_of(kube_job.job.services, kube_job.job.name) == []
    assert "id" not in kube_job.data()


# -- the watch rides out an API outage: in-process runner, real Ray ---------------------------------


def run_in_thread(runner: Runner) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["code"] = runner.run().exit_code
        except BaseException as error:  # the test asserts there was none
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def in_process_runner(kube_job: KubeJob) -> tuple[Runner, io.StringIO]:
    api = KubeConfigMap(
        kube_job.fake.url, ServiceAccount(kube_job.fake.sa_dir), kube_job.fake.namespace, kube_job.cm, retry=QUICK
    )
    options = RunOptions(
        job_name=kube_job.job.name,
        namespace=kube_job.fake.namespace,
        s3_keys=S3CredentialSources(kube_job.job.s3_credentials_dir),
        follow_logs=False,
    )
    out = io.StringIO()
    return Runner(ConfigMapJob(api), api, options, status_out=out), out


def test_status_writes_failing_past_every_retry_do_not_fail_the_job(kube_job: KubeJob, tmp_path: Path) -> None:
    release = tmp_path / "release"
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript=waiting_script(release))
    # Every write is slow, so the writes after the id's are still on their way when the API starts failing.
    kube_job.fake.hold("patch", 2.0)
    runner, out = in_process_runner(kube_job)
    thread, outcome = run_in_thread(runner)
    try:
        kube_job.wait_for("id")  # the pre-POST write went through: the job is submitted once
        kube_job.fake.fail("patch", 503, None)
        # A poll's write failed after all its attempts (sent in the background): the job keeps being watched.
        wait_until(lambda: sum(r.status == 503 for r in kube_job.fake.calls("PATCH")) >= QUICK.attempts, "503s")
        assert thread.is_alive()
        kube_job.fake.clear_faults()
    finally:
        release.touch()  # the job ends only now, after the failed writes
    thread.join(timeout=120)
    assert outcome == {"code": 0}, out.getvalue()
    data = kube_job.data()
    assert data["status.jobStatus"] == "SUCCEEDED"
    assert data["status.startTime"] and data["status.submitTime"]


def test_final_status_that_cannot_be_written_fails_the_pod_cleanly(
    kube_job: KubeJob, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release = tmp_path / "release"
    kube_job.create(jobdata__scriptLocation="inline", jobdata__jobScript=waiting_script(release))
    runner, out = in_process_runner(kube_job)
    runner.reporter.final_budget = 3.0  # the default gives an outage 300 s
    thread, outcome = run_in_thread(runner)
    try:
        kube_job.wait_for("status.jobStatus", "RUNNING")
        # From here every write fails, past every retry; then the job ends on its own.
        kube_job.fake.fail("patch", 503, None)
    finally:
        release.touch()
    thread.join(timeout=120)
    assert not thread.is_alive()
    # Exit 1 and no exception escaping: the operator reports a pod error rather than wait on RUNNING.
    assert outcome == {"code": 1}, out.getvalue()
    data = kube_job.data()
    assert data["status.jobStatus"] == "RUNNING"
    assert "status.endTime" not in data
    # The Ray job ended and its log was uploaded; raypod said which status it could not write.
    assert ray_job(kube_job.job.services, data["id"])["status"] == "SUCCEEDED"
    assert "released" in kube_job.job.log_text()
    assert "could not write the final status SUCCEEDED" in caplog.text
