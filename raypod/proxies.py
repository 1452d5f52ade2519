"""Which HTTP proxy, if any, a URL is reached through: one policy for the Ray dashboard, S3 and
the Kubernetes API (docs/kubernetes.md, "Proxies").

The environment decides, read as curl, Python (``urllib``, ``requests``) and client-go read it:

- ``HTTPS_PROXY`` for an ``https://`` URL, ``HTTP_PROXY`` for an ``http://`` one, in either case
  (the lower-case name wins when both are set, as in curl and Python); an empty value is unset.
  ``ALL_PROXY`` is not read (client-go does not read it). A proxy given without a scheme
  (``proxy:3128``) is ``http://``; ``http://`` and ``https://`` proxies are supported, and any
  other scheme (``socks5://``) is a configuration error, not silently ignored.
- ``NO_PROXY`` (either case) lists what is reached directly, comma-separated: ``*`` (everything);
  a host name, which also covers its subdomains (``.svc`` and ``svc`` both cover
  ``kubernetes.default.svc``); an IP address or a CIDR block (``10.96.0.0/12``, IPv6 too); each may
  end with ``:port``, and then only that port is direct.
- Unlike client-go, loopback addresses are not direct by themselves: list them in ``NO_PROXY``.

A proxy URL may carry ``user:password@``: that is a secret, never shown (``Proxy.shown``), and
scrubbed from every message (``Proxy.secrets``).
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from raypod.errors import ConfigError
from raypod.safetext import basic_auth_secrets, bounded_text, secret_forms

_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Proxy:
    """A proxy that applies to a URL, and the variable that named it."""

    #: The proxy's URL as given (scheme added), credentials included: never shown.
    url: str = field(repr=False)
    #: The environment variable it came from, e.g. ``HTTPS_PROXY``.
    variable: str

    @property
    def shown(self) -> str:
        """The proxy's address without its credentials, for messages."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1], path="", query="", fragment=""))

    @property
    def credentials(self) -> tuple[str, str] | None:
        parts = urlsplit(self.url)
        if parts.username is None:
            return None
        return unquote(parts.username), unquote(parts.password or "")

    def headers(self) -> dict[str, str]:
        """``Proxy-Authorization`` for the proxy's credentials (Basic), or nothing."""
        credentials = self.credentials
        if credentials is None:
            return {}
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode("latin-1", "replace")).decode()
        return {"Proxy-Authorization": f"Basic {token}"}

    def secrets(self) -> list[str]:
        """What of this proxy must never appear in a message: its password, in every form."""
        credentials = self.credentials
        if credentials is None or not credentials[1]:
            return []
        # The password as decoded and as written in the URL (percent-encoded); not the whole URL,
        # whose pieces (the proxy's address) are no secret and must stay readable.
        return [*basic_auth_secrets(*credentials), *secret_forms(urlsplit(self.url).password or "")]


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy ``url`` goes through under this environment, or None (direct)."""
    env = os.environ if environ is None else environ
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or not parts.hostname:
        return None
    variable, value = _first_set(env, f"{scheme}_proxy")
    if value is None:
        return None
    _, no_proxy = _first_set(env, "no_proxy")
    if no_proxy and bypassed(parts.hostname, _port(parts.port, scheme), no_proxy):
        return None
    return _parse_proxy(variable, value)


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY``'s value lists ``host`` (a name or an IP address) on ``port``."""
    host = host.strip("[]").lower().rstrip(".")
    address = _address(host)
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, entry_port = _split_port(entry)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            if _covers_address(entry, address):
                return True
            continue
        name = entry.lstrip("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def requests_proxies(url: str, environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The ``proxies`` argument that makes ``requests`` follow this policy for ``url``: the proxy
    for both schemes, or None for every key ``requests`` would otherwise take from the environment
    (None removes it, so ``ALL_PROXY`` or requests' own reading of ``NO_PROXY`` cannot disagree)."""
    proxy = proxy_for(url, environ)
    chosen = proxy.url if proxy is not None else None
    return {"http": chosen, "https": chosen, "all": None}


def tunnel_refusal(error: BaseException, proxy: Proxy | None, target: str) -> str | None:
    """The message for an exception that says the proxy refused to connect to ``target`` (its
    answer to ``CONNECT``, or the proxy could not be reached at all), or None for any other error.

    Names the proxy without its credentials, the target, and what to change."""
    if proxy is None or not _is_proxy_error(error):
        return None
    answer = _innermost(error)
    said = f" ({answer})" if answer else ""
    return (
        f"the proxy {proxy.shown} (from {proxy.variable}) did not connect to {target}{said}; "
        f"let the proxy reach it, or list its host in NO_PROXY to reach it directly"
    )


def refused_for_good(error: BaseException) -> bool:
    """Whether the proxy answered the ``CONNECT`` with a 4xx (403: it may not reach that host; 407:
    it wants other credentials): asking again gets the same answer. A 5xx or no proxy at all may pass."""
    return _is_proxy_error(error) and re.search(r"Tunnel connection failed: 4\d\d", _innermost(error)) is not None


def target_of(url: str) -> str:
    """``host:port`` of a URL, as a ``CONNECT`` names it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{_port(parts.port, parts.scheme.lower())}"


# -- helpers ------------------------------------------------------------------------------------
def _first_set(env: Mapping[str, str], lower: str) -> tuple[str, str | None]:
    """The lower-case variable if set and not empty, else the upper-case one."""
    for name in (lower, lower.upper()):
        value = (env.get(name) or "").strip()
        if value:
            return name, value
    return lower.upper(), None


def _parse_proxy(variable: str, value: str) -> Proxy:
    url = value if "://" in value else f"http://{value}"
    parts = urlsplit(url)
    shown = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))
    if parts.scheme.lower() not in _SCHEMES:
        raise ConfigError.single(
            variable, f"{shown}: only http:// and https:// proxies are supported (set NO_PROXY to go direct)"
        )
    try:
        valid = bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError.single(variable, f"{shown} is not a proxy address (scheme://host:port)")
    return Proxy(url, variable)


def _port(port: int | None, scheme: str) -> int:
    return port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, ``1.2.3.4:80`` -> (host, port); a bare IPv6 address or CIDR keeps its colons."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _covers_address(entry: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        if "/" in entry:
            return address in ipaddress.ip_network(entry, strict=False)
        return address == ipaddress.ip_address(entry)
    except ValueError:
        return False  # a name, or nonsense: it names no address


def _chain(error: BaseException) -> list[BaseException]:
    """The exception and those it wraps, outermost first: requests' ``ProxyError`` holds urllib3's
    ``MaxRetryError``, whose ``reason`` is urllib3's ``ProxyError``, whose last argument is the
    ``OSError`` with the proxy's answer. Only what it wraps (arguments, ``reason``, ``__cause__``):
    ``__context__`` may be an earlier, unrelated failure."""
    chain = [error]
    for _ in range(10):
        seen = chain[-1]
        inner = [arg for arg in seen.args if isinstance(arg, BaseException)]
        reason = getattr(seen, "reason", None)
        nxt = inner[-1] if inner else reason if isinstance(reason, BaseException) else seen.__cause__
        if nxt is None or any(nxt is known for known in chain):
            break
        chain.append(nxt)
    return chain


def _is_proxy_error(error: BaseException) -> bool:
    from urllib3.exceptions import ProxyError

    return any(isinstance(seen, ProxyError) for seen in _chain(error))


def _innermost(error: BaseException) -> str:
    """The proxy's own answer (``Tunnel connection failed: 403 Forbidden``) or the innermost reason."""
    return bounded_text(str(_chain(error)[-1]).strip(), 200)
