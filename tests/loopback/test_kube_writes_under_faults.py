"""The pod's writes to its ConfigMap through the API's bad minutes, and only ever to its own ConfigMap
(issue 25, classes 1, 2, 8 and 9): raypod's ``Runner`` in-process against the fake Kubernetes API over
HTTPS (conftest's ``fake_kube``) and the scripted Ray dashboard of ``tests/support/hostile.py``.

The client's retry policy here has the shape of the default one (8 attempts) with waits of
milliseconds: a write that is held to it, and not to its time budget, is lost after 8 answers."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import pytest

from devtools.fake_kube import FakeKube, Recorded
from raypod.credentials import RayAuthSources, S3CredentialSources
from raypod.errors import DeploymentError
from raypod.kube import KubeConfigMap, ServiceAccount
from raypod.retry import RetryPolicy
from raypod.run_record import result_document, summary_line
from raypod.runner import Runner, RunOptions, RunResult
from raypod.session import SessionSettings
from raypod.source import ConfigMapJob
from tests.support.hostile import BASE_CONFIG, Dashboard, job_answer
from tests.support.scripted_server import Answer, ScriptedServer, Seen

CM = "writes-bridge-cm"
JOB = "writes"
#: The default policy's 8 attempts, with waits short enough for a test.
EIGHT_QUICK_ATTEMPTS = RetryPolicy(attempts=8, initial_wait=0.01, max_wait=0.05, deadline=60.0)
#: More 503s in a row than those 8 attempts can outlast.
LONG_OUTAGE = 13
BRIDGEJOB = "0b1d9e54-bridgejob-1"


def api(fake_kube: FakeKube, retry: RetryPolicy = EIGHT_QUICK_ATTEMPTS) -> KubeConfigMap:
    return KubeConfigMap(fake_kube.url, ServiceAccount(fake_kube.sa_dir), fake_kube.namespace, CM, retry=retry)


def operator_keys(server: ScriptedServer, **extra: str) -> dict[str, str]:
    return {"resourceURL": server.url, **BASE_CONFIG, **extra}


def run_pod(fake_kube: FakeKube, tmp_path: Path) -> RunResult:
    """One ``raypod run`` as the operator's pod: the ConfigMap through the API is source and sink."""
    configmap = api(fake_kube)
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    options = RunOptions(
        job_name=JOB,
        namespace=fake_kube.namespace,
        session=SessionSettings(first_poll_jitter=lambda: 0.0),
        ray_auth=RayAuthSources(directory=credentials),
        s3_keys=S3CredentialSources(tmp_path / "s3credentials"),
        follow_logs=False,
    )
    try:
        return Runner(ConfigMapJob(configmap), configmap, options, status_out=io.StringIO()).run()
    finally:
        configmap.close()


def then(action: Callable[[], None], status: str) -> Callable[[Seen], Answer]:
    """A poll step: ``action`` happens (to the ConfigMap) while Ray answers ``status``."""

    def step(seen: Seen) -> Answer:
        action()
        return job_answer(seen.bare_path.rsplit("/", 1)[1], status)

    return step


def configmap_patches(fake_kube: FakeKube) -> list[Recorded]:
    """The PATCHes of ConfigMaps (not of Events, whose series raypod patches too)."""
    return [call for call in fake_kube.calls("PATCH") if "/configmaps/" in call.path]


def patches_since(fake_kube: FakeKube, index: int) -> list[Recorded]:
    return configmap_patches(fake_kube)[index:]


# -- class 1: a final status outlives an outage longer than 8 attempts --------------------------------
def test_a_final_status_answered_503_longer_than_eight_attempts_still_lands(
    fake_kube: FakeKube, server: ScriptedServer, tmp_path: Path
) -> None:
    fake_kube.create_configmap(CM, operator_keys(server), owner_uid=BRIDGEJOB)
    dashboard = Dashboard(server, tmp_path)
    patches_before_outage: list[int] = []

    def outage() -> None:
        patches_before_outage.append(len(configmap_patches(fake_kube)))
        fake_kube.fail("patch", 503, LONG_OUTAGE)

    dashboard.script("poll", "RUNNING", then(outage, "SUCCEEDED"))

    result = run_pod(fake_kube, tmp_path)

    assert result.exit_code == 0, result
    assert fake_kube.data(CM)["status.jobStatus"] == "SUCCEEDED"
    # The outage met the final write itself: the 503s went to it, then it landed. A status write
    # still in flight as the outage began (the background writer, on a loaded machine) may take
    # some of them first; without one, all 13 went to the final write.
    (start,) = patches_before_outage
    since = patches_since(fake_kube, start)
    final = [p for p in since if p.body["data"].get("status.jobStatus") == "SUCCEEDED"]
    assert [p.status for p in since].count(503) == LONG_OUTAGE and since[-1] is final[-1]
    assert [p.status for p in final] == [503] * (len(final) - 1) + [200]
    if len(final) == len(since):
        assert len(final) - 1 == LONG_OUTAGE


def test_bad_input_is_written_through_an_outage_and_ends_exit_2(
    fake_kube: FakeKube, server: ScriptedServer, tmp_path: Path
) -> None:
    fake_kube.create_configmap(CM, operator_keys(server, updateInterval="soon"), owner_uid=BRIDGEJOB)
    fake_kube.fail("patch", 503, LONG_OUTAGE)

    result = run_pod(fake_kube, tmp_path)

    assert result.exit_code == 2, result
    data = fake_kube.data(CM)
    assert data["status.jobStatus"] == "FAILED" and data["status.reason"] == "BadInput"
    assert data["status.message"].startswith("Bad input: updateInterval")
    assert sum(r.status == 503 for r in configmap_patches(fake_kube)) == LONG_OUTAGE
    assert server.count("POST") == 0


# -- class 1: Retry-After ---------------------------------------------------------------------------
def in_two_seconds() -> str:
    """An HTTP-date (whole seconds) two seconds ahead: at least one second away."""
    return formatdate(time.time() + 2, usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after"),
    [(503, lambda: "1"), (429, lambda: "1"), (503, in_two_seconds)],
    ids=["503-seconds", "429-seconds", "503-http-date"],
)
def test_no_patch_comes_again_before_retry_after(
    fake_kube: FakeKube, status: int, retry_after: Callable[[], str]
) -> None:
    fake_kube.create_configmap(CM, {})
    configmap = api(fake_kube)
    configmap.read()
    fake_kube.fail("patch", status, 1, retry_after=retry_after())

    configmap.write({"status.jobStatus": "RUNNING"})

    first, second = configmap_patches(fake_kube)
    assert (first.status, second.status) == (status, 200)
    # Without Retry-After the policy's next try comes within 50 ms.
    assert second.at - first.at >= 0.9
    assert fake_kube.data(CM) == {"status.jobStatus": "RUNNING"}


# -- class 2: only ever this BridgeJob's ConfigMap --------------------------------------------------
def test_a_configmap_the_operator_re_created_gets_the_id_and_every_recorded_key_again(
    fake_kube: FakeKube, server: ScriptedServer, tmp_path: Path
) -> None:
    keys = operator_keys(server)
    old_uid = fake_kube.create_configmap(CM, keys, owner_uid=BRIDGEJOB)["metadata"]["uid"]
    dashboard = Dashboard(server, tmp_path)
    recorded_before: list[dict[str, str]] = []

    def recreate() -> None:
        recorded_before.append(fake_kube.data(CM))
        fake_kube.delete_configmap(CM)
        fake_kube.create_configmap(CM, keys, owner_uid=BRIDGEJOB)  # the operator's keys only

    dashboard.script("poll", "RUNNING", then(recreate, "RUNNING"), "RUNNING", "SUCCEEDED")

    result = run_pod(fake_kube, tmp_path)

    assert result.exit_code == 0, result
    new = fake_kube.configmap(CM)
    assert new["metadata"]["uid"] != old_uid
    data = new["data"]
    (before,) = recorded_before
    assert data["id"] == before["id"] and data["status.submitTime"] == before["status.submitTime"]
    assert data["status.jobStatus"] == "SUCCEEDED" and data["status.endTime"]
    assert {k: data[k] for k in keys} == keys
    assert dashboard.posts == 1
    # Every PATCH carries the uid of the object it means; the ones after the re-creation the new one.
    uids = [(r.body.get("metadata") or {}).get("uid") for r in configmap_patches(fake_kube)]
    assert uids[0] == old_uid and uids[-1] == new["metadata"]["uid"]
    assert set(uids) == {old_uid, new["metadata"]["uid"]}


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(BRIDGEJOB, "5e7a01c2-bridgejob-2"), (BRIDGEJOB, None), (None, None)],
    ids=["another-owner", "no-owner-now", "never-an-owner"],
)
def test_a_configmap_re_created_for_another_is_never_written_and_the_result_says_so(
    fake_kube: FakeKube,
    server: ScriptedServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    ours: str | None,
    theirs: str | None,
) -> None:
    fake_kube.create_configmap(CM, operator_keys(server), owner_uid=ours)
    dashboard = Dashboard(server, tmp_path)
    others = operator_keys(server, **{"jobdata.jobScript": "/opt/another.py"})
    replaced_at: list[int] = []

    def replace_by_another() -> None:
        fake_kube.delete_configmap(CM)
        fake_kube.create_configmap(CM, others, owner_uid=theirs)
        replaced_at.append(len(configmap_patches(fake_kube)))

    dashboard.script("poll", "RUNNING", then(replace_by_another, "RUNNING"), "RUNNING", "SUCCEEDED")

    result = run_pod(fake_kube, tmp_path)

    # Exit 1 as for any final status that cannot be written (docs/failures.md).
    assert result.exit_code == 1, result
    assert fake_kube.data(CM) == others
    (start,) = replaced_at
    assert all(p.status != 200 for p in patches_since(fake_kube, start))
    assert len(patches_since(fake_kube, start)) <= 1  # at most the one the API refused
    said = "was deleted and re-created as another object"
    assert said in caplog.text
    # The job's end is told, and why it is not in the ConfigMap: in the result and the termination message.
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    assert said in result.not_written and "not recorded" in result.not_written
    assert said in summary_line(result) and summary_line(result).startswith("SUCCEEDED")
    assert said in str(result_document(result)["notRecorded"])


# -- class 9: a ConfigMap deleted mid-run is said to be deleted ----------------------------------------
def test_a_configmap_deleted_mid_run_is_said_to_be_deleted(
    fake_kube: FakeKube, server: ScriptedServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake_kube.create_configmap(CM, operator_keys(server), owner_uid=BRIDGEJOB)
    dashboard = Dashboard(server, tmp_path)
    dashboard.script("poll", "RUNNING", then(lambda: fake_kube.delete_configmap(CM), "RUNNING"), "SUCCEEDED")

    result = run_pod(fake_kube, tmp_path)

    assert result.exit_code == 1, result
    deleted = f"ConfigMap {CM} was deleted from namespace {fake_kube.namespace}"
    assert deleted in result.not_written and deleted in summary_line(result)
    assert deleted in caplog.text
    assert "check JOBNAME" not in caplog.text + result.not_written


# -- class 2, the client alone: the PATCH's uid is what refuses another object -------------------------
def test_a_patch_meant_for_the_object_read_is_refused_by_one_re_created_under_its_name(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(CM, {"resourceURL": "http://ray:8265"}, owner_uid=BRIDGEJOB)
    configmap = api(fake_kube)
    configmap.load()
    configmap.write({"id": "raypod-writes-1"})
    fake_kube.delete_configmap(CM)
    fake_kube.create_configmap(CM, {"resourceURL": "http://ray:8265"}, owner_uid=BRIDGEJOB)

    configmap.write({"status.jobStatus": "RUNNING"})  # no read in between: the PATCH finds out

    refused = [r for r in configmap_patches(fake_kube) if r.status == 422]
    assert len(refused) == 1
    assert fake_kube.data(CM) == {
        "resourceURL": "http://ray:8265",
        "id": "raypod-writes-1",
        "status.jobStatus": "RUNNING",
    }


def test_a_patch_never_lands_in_another_bridgejobs_configmap(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(CM, {"resourceURL": "http://ray:8265"}, owner_uid=BRIDGEJOB)
    configmap = api(fake_kube)
    configmap.load()
    fake_kube.delete_configmap(CM)
    theirs = {"resourceURL": "http://ray:8265", "id": "raypod-theirs-1"}
    fake_kube.create_configmap(CM, theirs, owner_uid="5e7a01c2-bridgejob-2")

    with pytest.raises(DeploymentError, match="re-created as another object"):
        configmap.write({"id": "raypod-writes-1"})
    with pytest.raises(DeploymentError, match="re-created as another object"):
        configmap.write({"status.jobStatus": "FAILED"})

    assert fake_kube.data(CM) == theirs
    assert [r.status for r in configmap_patches(fake_kube)] == [422]  # the first one only, refused


def test_a_kill_read_that_finds_another_bridgejobs_configmap_takes_nothing_from_it(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(CM, {"kill": "false"}, owner_uid=BRIDGEJOB)
    configmap = api(fake_kube)
    configmap.load()
    fake_kube.delete_configmap(CM)
    fake_kube.create_configmap(CM, {"kill": "true"}, owner_uid="5e7a01c2-bridgejob-2")

    for _ in range(2):
        with pytest.raises(DeploymentError, match="re-created as another object"):
            configmap.read()

    assert len(fake_kube.calls("GET")) == 2  # the start-up read and the one that found out
    assert configmap_patches(fake_kube) == []
