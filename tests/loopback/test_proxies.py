"""One proxy policy for the Ray dashboard, S3 and the Kubernetes API, against a recording forward
proxy on loopback (devtools/forward_proxy.py): each goes through HTTP(S)_PROXY, each goes direct
when NO_PROXY lists its host, the proxy's password is never shown, and a refused CONNECT is a
clear error that names the proxy and the target, given up at once."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fake_kube import FakeKube
from devtools.forward_proxy import ForwardProxy
from devtools.services import LocalS3
from raypod.config import S3Settings
from raypod.credentials import S3Credentials
from raypod.errors import KubeApiError, RayApiError, S3Error
from raypod.http import HttpClient
from raypod.jobdata import S3Location
from raypod.kube import KubeConfigMap, ServiceAccount
from raypod.retry import RetryPolicy
from raypod.s3 import S3Store
from tests.support.cli import raypod
from tests.support.scripted_server import ScriptedServer

PASSWORD = "pr0xy-pa55word-never-shown"
#: Three tries: a refusal that is retried shows as three CONNECTs.
THREE_TRIES = RetryPolicy(attempts=3, initial_wait=0.05, max_wait=0.1, deadline=10.0)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(credentials=("raypod", PASSWORD)) as forward:
        yield forward


@pytest.fixture(scope="module")
def s3() -> Iterator[LocalS3]:
    server = LocalS3().start()
    try:
        server.client().make_bucket("inputs")
        server.client().put_object("inputs", "params.json", io.BytesIO(b'{"a": 1}'), 8)
        yield server
    finally:
        server.stop()


def kube_client(fake: FakeKube, retry: RetryPolicy = THREE_TRIES) -> KubeConfigMap:
    fake.create_configmap("j-bridge-cm", {"resourceURL": "http://ray:8265"})
    # A short first-read budget: a proxy that is down is waited for (the pod's 60 s), but briefly here.
    return KubeConfigMap(
        fake.url, ServiceAccount(fake.sa_dir), fake.namespace, "j-bridge-cm", retry=retry, startup_budget=1.0
    )


def s3_store(endpoint: str, *, secure: bool = False) -> S3Store:
    settings = S3Settings(endpoint=endpoint, secure=secure, secret_name="s3")
    return S3Store(settings, S3Credentials(LocalS3.ACCESS_KEY, LocalS3.SECRET_KEY), retry=THREE_TRIES)


# -- the Kubernetes API (HTTPS: a CONNECT) ---------------------------------------------------------
def test_the_kube_api_goes_through_https_proxy_with_its_credentials(
    fake_kube: FakeKube, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    assert kube_client(fake_kube).read() == {"resourceURL": "http://ray:8265"}
    port = fake_kube.url.rsplit(":", 1)[1]
    assert proxy.recorded == [("CONNECT", f"127.0.0.1:{port}")]
    assert len(fake_kube.calls("GET")) == 1


def test_the_kube_api_goes_direct_when_no_proxy_lists_its_host(
    fake_kube: FakeKube, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("https_proxy", proxy.url)
    monkeypatch.setenv("no_proxy", ".svc,.cluster.local,127.0.0.1")
    assert kube_client(fake_kube).read() == {"resourceURL": "http://ray:8265"}
    assert proxy.recorded == []


def test_a_refused_connect_to_the_kube_api_is_one_clear_error_without_the_password(
    fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy(credentials=("raypod", PASSWORD), refuse_connect=True) as refusing:
        monkeypatch.setenv("HTTPS_PROXY", refusing.url)
        with pytest.raises(KubeApiError) as raised:
            kube_client(fake_kube).read()
        # Not retried: a proxy that may not reach the host answers the same again.
        assert [method for method, _ in refusing.recorded] == ["CONNECT"]
    message = str(raised.value)
    target = fake_kube.url.removeprefix("https://")
    assert f"the proxy http://127.0.0.1:{refusing.port} (from HTTPS_PROXY) did not connect to {target}" in message
    assert "403" in message and "NO_PROXY" in message
    assert PASSWORD not in message and PASSWORD not in repr(raised.value)
    assert raised.value.retryable is False


def test_a_pod_whose_proxy_refuses_the_kube_api_ends_at_once_saying_why(fake_kube: FakeKube, tmp_path: Path) -> None:
    fake_kube.create_configmap("j-bridge-cm", {"resourceURL": "http://ray:8265"})
    with ForwardProxy(credentials=("raypod", PASSWORD), refuse_connect=True) as refusing:
        completed = raypod(
            "run",
            "--credentials",
            str(tmp_path),
            env={**fake_kube.env(), "JOBNAME": "j", "HTTPS_PROXY": refusing.url, "NO_PROXY": ""},
            timeout=60,
        )
        connects = [method for method, _ in refusing.recorded]
    said = completed.stdout + completed.stderr
    assert completed.returncode == 1
    assert f"the proxy http://127.0.0.1:{refusing.port} (from HTTPS_PROXY) did not connect" in said
    # The final status cannot reach the API either: the pod says so.
    assert "could not write the final status FAILED" in completed.stderr
    assert PASSWORD not in said
    # The start-up read given up at the proxy's first refusal, not after its budget (49 s before); a
    # ConfigMap never read is never written, so the final write asks nothing.
    assert connects == ["CONNECT"]
    assert fake_kube.calls("GET") == [] and fake_kube.calls("PATCH") == []


# -- S3 (minio): absolute-URI requests over plain HTTP, CONNECT over HTTPS -----------------------------
def test_s3_goes_through_http_proxy_with_its_credentials(
    s3: LocalS3, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    store = s3_store(s3.endpoint)
    assert store.read_text(S3Location("inputs", "params.json"), "parameters") == '{"a": 1}'
    assert proxy.recorded and set(proxy.targets()) == {s3.endpoint}
    assert all(target.startswith(f"http://{s3.endpoint}/inputs") for _, target in proxy.recorded)
    assert proxy.authorizations and all(value.startswith("Basic ") for value in proxy.authorizations)


def test_s3_goes_direct_when_no_proxy_lists_its_host(
    s3: LocalS3, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", f"s3.example,{s3.endpoint}")
    store = s3_store(s3.endpoint)
    assert store.read_text(S3Location("inputs", "params.json"), "parameters") == '{"a": 1}'
    assert proxy.recorded == []


def test_s3_over_https_asks_the_proxy_for_a_tunnel_and_a_refusal_is_one_clear_error(
    fake_kube: FakeKube, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any HTTPS endpoint will do: the proxy refuses before a byte reaches it.
    endpoint = fake_kube.url.removeprefix("https://")
    with ForwardProxy(credentials=("raypod", PASSWORD), refuse_connect=True) as refusing:
        monkeypatch.setenv("HTTPS_PROXY", refusing.url)
        with pytest.raises(S3Error) as raised:
            s3_store(endpoint, secure=True).read_text(S3Location("inputs", "params.json"), "parameters")
        assert refusing.recorded == [("CONNECT", endpoint)]
    message = str(raised.value)
    assert f"the proxy http://127.0.0.1:{refusing.port} (from HTTPS_PROXY) did not connect to {endpoint}" in message
    assert PASSWORD not in message and raised.value.transient is False
    assert fake_kube.requests == []


# -- the Ray dashboard (requests) ----------------------------------------------------------------
def test_the_dashboard_goes_through_http_proxy_and_direct_when_no_proxy_lists_it(
    server: ScriptedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.json("GET", "/api/version", {"ray_version": "2.60.0"})
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    client = HttpClient(server.url, error_class=RayApiError)
    assert client.json("GET", "/api/version") == {"ray_version": "2.60.0"}
    assert proxy.recorded == [("GET", f"{server.url}/api/version")]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client.json("GET", "/api/version") == {"ray_version": "2.60.0"}
    assert len(proxy.recorded) == 1 and server.count("GET", "/api/version") == 2


def test_the_dashboard_ignores_all_proxy_like_s3_and_the_kube_api(
    server: ScriptedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.json("GET", "/api/version", {"ray_version": "2.60.0"})
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    assert HttpClient(server.url, error_class=RayApiError).json("GET", "/api/version") == {"ray_version": "2.60.0"}
    assert proxy.recorded == []


def test_the_tails_upgrade_takes_the_policys_proxy_and_never_shows_its_password(
    server: ScriptedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = HttpClient(server.url, error_class=RayApiError)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    upgrade = client.upgrade_request("/api/jobs/x/logs/tail")
    assert upgrade.proxy is not None and upgrade.proxy.shown == f"http://127.0.0.1:{proxy.port}"
    assert PASSWORD not in repr(upgrade)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client.upgrade_request("/api/jobs/x/logs/tail").proxy is None


def test_an_unreachable_proxy_is_named_without_its_password_and_tried_again(
    fake_kube: FakeKube, s3: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = ForwardProxy()  # its port, closed again: nothing listens there
    port = closed.port
    closed.stop()
    monkeypatch.setenv("HTTPS_PROXY", f"http://raypod:{PASSWORD}@127.0.0.1:{port}")
    monkeypatch.setenv("HTTP_PROXY", f"http://raypod:{PASSWORD}@127.0.0.1:{port}")
    with pytest.raises(KubeApiError) as kube_error:
        kube_client(fake_kube).read()
    with pytest.raises(S3Error) as s3_error:
        s3_store(s3.endpoint).read_text(S3Location("inputs", "params.json"), "parameters")
    for error in (kube_error.value, s3_error.value):
        message = str(error)
        assert f"the proxy http://127.0.0.1:{port} (from HTTP" in message and "did not connect" in message
        assert PASSWORD not in message and PASSWORD not in repr(error)
    # A proxy that is down may come back: a passing fault, retried like any connection error.
    assert kube_error.value.retryable is not False and s3_error.value.transient


def test_a_client_that_does_not_trust_the_environment_takes_no_proxy_from_it(
    server: ScriptedServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.json("GET", "/api/version", {"ray_version": "2.60.0"})
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    client = HttpClient(server.url, error_class=RayApiError, trust_env=False)
    assert client.json("GET", "/api/version") == {"ray_version": "2.60.0"}
    assert client.upgrade_request("/api/jobs/x/logs/tail").proxy is None
    assert proxy.recorded == []


def test_s3_over_https_goes_through_the_proxys_tunnel_to_the_endpoint(
    fake_kube: FakeKube, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An HTTPS server that is not S3: what counts is that minio's request reached it through the tunnel.
    endpoint = fake_kube.url.removeprefix("https://")
    monkeypatch.setenv("SSL_CERT_FILE", str(fake_kube.ca_path))
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with pytest.raises(S3Error):
        s3_store(endpoint, secure=True).read_text(S3Location("inputs", "params.json"), "parameters")
    assert proxy.recorded and set(proxy.recorded) == {("CONNECT", endpoint)}
    assert fake_kube.requests and all(seen.path.startswith("/inputs") for seen in fake_kube.requests)


def test_a_dashboard_call_the_proxy_refuses_names_the_proxy_without_its_password(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ForwardProxy(credentials=("raypod", PASSWORD)) as proxy:
        # Other credentials than the proxy wants: it answers 407 itself, the dashboard sees nothing.
        monkeypatch.setenv("HTTP_PROXY", proxy.url.replace(PASSWORD, "wrong-" + PASSWORD))
        with pytest.raises(RayApiError) as raised:
            HttpClient(server.url, error_class=RayApiError).json("GET", "/api/version")
    assert raised.value.status == 407
    assert f"(through the proxy http://127.0.0.1:{proxy.port} from HTTP_PROXY)" in str(raised.value)
    assert PASSWORD not in str(raised.value) and server.count() == 0
