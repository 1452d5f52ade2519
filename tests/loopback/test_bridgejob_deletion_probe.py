"""After SIGTERM, the pod tells a deleted BridgeJob (its ConfigMap gone, or going) from an eviction
(the ConfigMap still there) through the API it already may use: one GET of its ConfigMap."""

from __future__ import annotations

from devtools.fake_kube import QUICK, FakeKube
from raypod.kube import KubeConfigMap, ServiceAccount

NAME = "train-bridge-cm"


def api_of(fake: FakeKube) -> KubeConfigMap:
    return KubeConfigMap(fake.url, ServiceAccount(fake.sa_dir), fake.namespace, NAME, retry=QUICK)


def test_a_configmap_that_is_there_means_an_eviction(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(NAME, {"id": "raypod-train-1"}, owner_uid="bridgejob-uid")
    assert api_of(fake_kube).being_deleted() is False


def test_a_configmap_that_is_gone_means_its_bridgejob_was_deleted(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(NAME, {"id": "raypod-train-1"}, owner_uid="bridgejob-uid")
    fake_kube.delete_configmap(NAME)
    assert api_of(fake_kube).being_deleted() is True


def test_a_configmap_with_a_deletion_timestamp_is_going(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(NAME, {}, owner_uid="bridgejob-uid")
    fake_kube.mark_deleting(NAME)
    assert api_of(fake_kube).being_deleted() is True


def test_an_api_that_cannot_answer_says_nothing_and_is_asked_once(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(NAME, {})
    fake_kube.fail("get", 503, count=None)
    before = len(fake_kube.calls("GET"))
    assert api_of(fake_kube).being_deleted() is None
    assert len(fake_kube.calls("GET")) == before + 1  # no retries: the caller asks again in its window


def test_the_identity_is_the_bridgejobs_uid_and_the_configmaps_own_uid_is_kept_apart(fake_kube: FakeKube) -> None:
    created = fake_kube.create_configmap(NAME, {}, owner_uid="bridgejob-uid")
    api = api_of(fake_kube)
    api.read()
    assert (api.identity, api.uid) == ("bridgejob-uid", created["metadata"]["uid"])
