"""A 2xx from the Kubernetes API is checked like any other answer: a proxy's page (HTML, or JSON that
is not the ConfigMap) is never taken as a read or a write. Against the fake API over HTTPS."""

from __future__ import annotations

import json

import pytest

from devtools.fake_kube import QUICK, FakeKube, Page
from raypod.errors import KubeApiError
from raypod.kube import KubeConfigMap, ServiceAccount
from raypod.retry import RetryPolicy
from raypod.status_store import StatusReporter

CM = "j-bridge-cm"
HTML = Page(b"<html><body>Proxy sign-in</body></html>")
#: JSON, but not the ConfigMap: an API gateway's own answer.
GATEWAY = Page(json.dumps({"ok": True}).encode(), "application/json")
#: A ConfigMap, but without the keys the PATCH wrote (a cached copy from a proxy).
STALE = Page(json.dumps({"kind": "ConfigMap", "data": {"status.jobStatus": "RUNNING"}}).encode(), "application/json")
NOT_JSON_AS_JSON = Page(b"<html>gateway</html>", "application/json")


def api(fake_kube: FakeKube, retry: RetryPolicy = QUICK) -> KubeConfigMap:
    return KubeConfigMap(
        fake_kube.url, ServiceAccount(fake_kube.sa_dir), fake_kube.namespace, CM, retry=retry, startup_budget=2.0
    )


@pytest.mark.parametrize("page", [HTML, GATEWAY, STALE], ids=["html", "other-json", "stale-configmap"])
def test_a_final_status_answered_by_a_proxy_page_is_written_again_not_lost(fake_kube: FakeKube, page: Page) -> None:
    fake_kube.create_configmap(CM, {"resourceURL": "http://ray:8265"})
    reporter = StatusReporter(api(fake_kube), final_budget=2.0)
    reporter.load()  # the start-up read: a ConfigMap never read is never written
    reporter.update({"status.jobStatus": "RUNNING"}, must_persist=True)
    fake_kube.answer_page("patch", page, count=1)

    reporter.update({"status.jobStatus": "SUCCEEDED", "status.message": "done"}, must_persist=True)

    assert fake_kube.data(CM)["status.jobStatus"] == "SUCCEEDED"
    assert [call.status for call in fake_kube.calls("PATCH")][-2:] == [200, 200]  # the page, then the write


def test_a_write_answered_only_by_pages_fails_loudly_and_lands_on_the_next_try(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(CM, {})
    reporter = StatusReporter(api(fake_kube), final_budget=2.0)
    reporter.load()  # the start-up read: a ConfigMap never read is never written
    reporter.update({"status.jobStatus": "RUNNING"}, must_persist=True)
    fake_kube.answer_page("patch", HTML, count=None)

    with pytest.raises(KubeApiError) as raised:
        reporter.update({"status.jobStatus": "SUCCEEDED"}, must_persist=True)

    assert raised.value.transient and "not the API server's answer" in str(raised.value)
    assert fake_kube.data(CM)["status.jobStatus"] == "RUNNING"
    fake_kube.clear_faults()
    reporter.flush()
    assert fake_kube.data(CM)["status.jobStatus"] == "SUCCEEDED"


def test_a_read_answered_by_a_page_is_retried_and_then_a_transient_error(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(CM, {"a": "1"})
    fake_kube.answer_page("get", HTML, count=1)
    assert api(fake_kube).read() == {"a": "1"}

    fake_kube.answer_page("get", GATEWAY, count=None)
    with pytest.raises(KubeApiError) as raised:
        api(fake_kube).read()
    assert raised.value.transient and "not a ConfigMap object" in str(raised.value)


def test_a_harmless_header_value_is_shown_in_messages_and_the_token_is_not(fake_kube: FakeKube) -> None:
    fake_kube.create_configmap(CM, {})
    fake_kube.answer_page("get", NOT_JSON_AS_JSON, count=None)

    with pytest.raises(KubeApiError) as raised:
        api(fake_kube, RetryPolicy(attempts=1)).read()

    assert "answer is not JSON (content type application/json)" in str(raised.value)
    assert fake_kube.token not in str(raised.value)
