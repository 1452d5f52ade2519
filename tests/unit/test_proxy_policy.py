"""raypod's one proxy policy (raypod.proxies): which proxy a URL goes through, from the environment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.errors import ConfigError
from raypod.proxies import Proxy, bypassed, proxy_for, requests_proxies, target_of

PROXY = "http://user:pa55-w0rd-secret@proxy.corp:3128"


def test_https_urls_take_https_proxy_and_http_urls_take_http_proxy() -> None:
    env = {"HTTPS_PROXY": "http://tls-proxy:3128", "HTTP_PROXY": "http://plain-proxy:3128"}
    https = proxy_for("https://10.96.0.1:443/api", env)
    plain = proxy_for("http://ray-head:8265/api/jobs/", env)
    assert https is not None and https.shown == "http://tls-proxy:3128" and https.variable == "HTTPS_PROXY"
    assert plain is not None and plain.shown == "http://plain-proxy:3128" and plain.variable == "HTTP_PROXY"
    assert proxy_for("https://10.96.0.1/", {"HTTP_PROXY": "http://plain-proxy:3128"}) is None


def test_lower_case_wins_over_upper_case_and_empty_is_unset() -> None:
    env = {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"}
    chosen = proxy_for("https://s3.example:443", env)
    assert chosen is not None and chosen.shown == "http://lower:1"
    chosen = proxy_for("https://s3.example:443", {"https_proxy": " ", "HTTPS_PROXY": "http://upper:2"})
    assert chosen is not None and chosen.shown == "http://upper:2"
    assert proxy_for("https://s3.example", {"no_proxy": "s3.example", "HTTPS_PROXY": "http://upper:2"}) is None


def test_all_proxy_is_not_read() -> None:
    assert proxy_for("https://s3.example", {"ALL_PROXY": "http://any:1", "all_proxy": "http://any:1"}) is None
    assert requests_proxies("https://s3.example", {"ALL_PROXY": "http://any:1"}) == {
        "http": None,
        "https": None,
        "all": None,
    }


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "direct"),
    [
        ("kubernetes.default.svc", 443, ".svc", True),
        ("kubernetes.default.svc", 443, "svc", True),
        ("kubernetes.default.svc.cluster.local", 443, ".cluster.local", True),
        ("cluster.local", 443, ".cluster.local", True),
        ("notcluster.local", 443, ".cluster.local", False),
        ("badexample.com", 443, "example.com", False),
        ("s3.example.com", 443, "*.example.com", True),
        ("anything", 1, "*", True),
        ("10.96.0.1", 443, "10.96.0.0/12", True),
        ("10.112.0.1", 443, "10.96.0.0/12", False),
        ("10.96.0.1", 443, "10.96.0.1", True),
        ("10.96.0.1", 443, "10.96.0.1:443", True),
        ("10.96.0.1", 6443, "10.96.0.1:443", False),
        ("fd00::1", 443, "fd00::/8", True),
        ("[fd00::1]", 443, "[fd00::1]:443", True),
        ("fd00::1", 443, "fd00::1", True),
        ("ray-head", 8265, "ray-head:8265", True),
        ("ray-head", 80, "ray-head:8265", False),
        ("RAY-HEAD.", 80, " ray-head ,, other", True),
        ("127.0.0.1", 80, "localhost", False),
        ("127.0.0.1", 80, "", False),
    ],
)
def test_no_proxy_forms(host: str, port: int, no_proxy: str, direct: bool) -> None:
    assert bypassed(host, port, no_proxy) is direct


@given(st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,3}", fullmatch=True))
def test_a_name_in_no_proxy_covers_itself_and_its_subdomains_only(name: str) -> None:
    assert bypassed(name, 443, name) and bypassed(f"x.{name}", 443, name) and bypassed(f"x.{name}", 443, f".{name}")
    assert not bypassed(f"x{name}", 443, name)


def test_a_proxy_without_scheme_is_http_and_socks_is_refused_without_its_password() -> None:
    chosen = proxy_for("https://s3.example", {"HTTPS_PROXY": "proxy.corp:3128"})
    assert chosen is not None and chosen.url == "http://proxy.corp:3128"
    with pytest.raises(ConfigError, match="HTTPS_PROXY") as raised:
        proxy_for("https://s3.example", {"HTTPS_PROXY": "socks5://user:pa55-w0rd-secret@proxy.corp:1080"})
    assert "pa55-w0rd-secret" not in str(raised.value) and "proxy.corp:1080" in str(raised.value)


def test_the_proxy_password_is_never_in_what_is_shown() -> None:
    chosen = proxy_for("https://s3.example", {"HTTPS_PROXY": PROXY})
    assert chosen is not None
    assert chosen.shown == "http://proxy.corp:3128"
    assert "pa55-w0rd-secret" not in repr(chosen)
    assert chosen.credentials == ("user", "pa55-w0rd-secret")
    assert chosen.headers() == {"Proxy-Authorization": "Basic dXNlcjpwYTU1LXcwcmQtc2VjcmV0"}
    assert "pa55-w0rd-secret" in chosen.secrets() and "dXNlcjpwYTU1LXcwcmQtc2VjcmV0" in chosen.secrets()
    assert Proxy("http://proxy:1", "HTTP_PROXY").secrets() == []


def test_a_connect_names_host_and_port() -> None:
    assert target_of("https://10.96.0.1") == "10.96.0.1:443"
    assert target_of("http://ray-head:8265/x") == "ray-head:8265"
    assert target_of("https://[fd00::1]:6443") == "[fd00::1]:6443"
