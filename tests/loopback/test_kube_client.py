"""raypod's Kubernetes client alone, against the fake API server over HTTPS (conftest's ``fake_kube``):
retries, the token re-read, the service account's CA, and what a pod opens as its source and sink."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from devtools.fake_kube import QUICK, FakeKube, other_ca_bundle
from raypod.errors import ConfigError, KubeApiError, RaypodError
from raypod.kube import KillFromEither, KubeConfigMap, ServiceAccount
from raypod.process import open_run_target
from raypod.retry import RetryPolicy
from raypod.status_store import StatusReporter


# -- the client alone, against the fake API ----------------------------------------------------
def test_status_kept_when_retries_are_spent_and_written_on_the_next_update(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap("j-bridge-cm", {"resourceURL": "http://ray:8265"})
    api = KubeConfigMap(
        fake_kube.url, ServiceAccount(fake_kube.sa_dir), fake_kube.namespace, "j-bridge-cm", retry=QUICK
    )
    reporter = StatusReporter(api, final_budget=1.0)
    reporter.load()  # the start-up read: a ConfigMap never read is never written
    fake_kube.fail("patch", 503, None)
    reporter.update({"status.jobStatus": "RUNNING"})
    assert "status.jobStatus" not in fake_kube.data("j-bridge-cm")
    with pytest.raises(RaypodError):
        reporter.update({"status.message": "must land"}, must_persist=True)
    fake_kube.clear_faults()
    reporter.flush()
    data = fake_kube.data("j-bridge-cm")
    assert data["status.jobStatus"] == "RUNNING" and data["status.message"] == "must land"
    assert data["resourceURL"] == "http://ray:8265"


def test_transient_errors_are_retried_within_one_write(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap("j-bridge-cm", {})
    api = KubeConfigMap(
        fake_kube.url,
        ServiceAccount(fake_kube.sa_dir),
        fake_kube.namespace,
        "j-bridge-cm",
        retry=RetryPolicy(attempts=4, initial_wait=0.05, max_wait=0.1, deadline=5),
    )
    api.read()  # the start-up read: a ConfigMap never read is never written
    fake_kube.fail("patch", 503, 1)
    fake_kube.fail("patch", 429, 1)
    api.write({"id": "abc"})
    assert fake_kube.data("j-bridge-cm") == {"id": "abc"}


def test_token_file_is_read_for_every_request(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap("j-bridge-cm", {"a": "1"})
    api = KubeConfigMap(
        fake_kube.url, ServiceAccount(fake_kube.sa_dir), fake_kube.namespace, "j-bridge-cm", retry=QUICK
    )
    assert api.read() == {"a": "1"}
    fake_kube.rotate_token()
    assert api.read() == {"a": "1"}


def test_wrong_requests_ca_bundle_does_not_override_the_service_account_ca(
    fake_kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kube.create_configmap("j-bridge-cm", {"a": "1"})
    wrong = str(other_ca_bundle(tmp_path / "wrong.pem"))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", wrong)
    monkeypatch.setenv("CURL_CA_BUNDLE", wrong)
    # The control: a plain requests call does take the bundle from the environment, and fails.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{fake_kube.url}/api", timeout=10)
    api = KubeConfigMap(
        fake_kube.url, ServiceAccount(fake_kube.sa_dir), fake_kube.namespace, "j-bridge-cm", retry=QUICK
    )
    assert api.read() == {"a": "1"}


def test_server_certificate_from_another_ca_is_refused(fake_kube: FakeKube, tmp_path: Path) -> None:
    fake_kube.create_configmap("j-bridge-cm", {"a": "1"})
    account_dir = tmp_path / "other-sa"
    account_dir.mkdir()
    (account_dir / "token").write_text(fake_kube.token)
    other_ca_bundle(account_dir / "ca.crt")
    api = KubeConfigMap(fake_kube.url, ServiceAccount(account_dir), fake_kube.namespace, "j-bridge-cm", retry=QUICK)
    with pytest.raises(KubeApiError, match="TLS verification failed"):
        api.read()
    assert fake_kube.calls("GET") == []


def test_in_a_pod_the_api_is_source_and_sink_and_namespace_comes_from_the_account(fake_kube: FakeKube) -> None:
    target = open_run_target("j", None, None, None, environ=fake_kube.env())
    assert isinstance(target.source, KubeConfigMap) and target.sink is target.source
    assert target.namespace == fake_kube.namespace
    assert target.source.path == f"/api/v1/namespaces/{fake_kube.namespace}/configmaps/j-bridge-cm"


def test_without_a_job_name_nothing_is_opened(fake_kube: FakeKube) -> None:
    with pytest.raises(ConfigError, match="JOBNAME"):
        open_run_target(None, None, None, None, environ=fake_kube.env())


def test_config_dir_in_a_pod_reads_kill_from_either_source(fake_kube: FakeKube, tmp_path: Path) -> None:
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    (mounted / "resourceURL").write_text("http://ray:8265")
    (mounted / "kill").write_text("false")
    fake_kube.create_configmap("j-bridge-cm", {"resourceURL": "http://ray:8265", "kill": "false"})
    target = open_run_target("j", None, mounted, None, environ=fake_kube.env())
    source = target.source
    assert isinstance(source, KillFromEither) and isinstance(target.sink, KubeConfigMap)
    assert source.read()["kill"] == "false"
    # The operator's kill reaches the API at once; the mounted copy lags behind.
    fake_kube.update_data("j-bridge-cm", {"kill": "true"})
    assert source.read()["kill"] == "true"
    # The API unreadable: the mounted copy still counts.
    fake_kube.deny("get", 403)
    (mounted / "kill").write_text("true")
    assert source.read()["kill"] == "true"
    (mounted / "kill").write_text("false")
    assert source.read()["kill"] == "false"
    # With --status-file the status stays in the file and the API is not used at all.
    file_target = open_run_target("j", None, mounted, tmp_path / "s.json", environ=fake_kube.env())
    assert not isinstance(file_target.sink, KubeConfigMap)
