"""A recording HTTP forward proxy on loopback (what ``HTTP_PROXY``/``HTTPS_PROXY`` point at).

Unlike ``devtools.proxy`` (a reverse proxy in front of one server), clients are configured to
send it every request: absolute-URI requests (``GET http://host:port/path``) for ``http://``
targets, which it forwards, and ``CONNECT host:port`` for ``https://`` ones, which it tunnels.

- ``recorded`` lists what it was asked, in order: ``("GET", "http://...")`` or
  ``("CONNECT", "host:port")``; ``authorizations`` the ``Proxy-Authorization`` values seen.
- ``credentials=("user", "password")`` requires Basic proxy auth (407 otherwise).
- ``refuse_connect=True`` answers every ``CONNECT`` 403, as a proxy that may not reach internal hosts.

One thread per client connection, one request per connection for forwarded requests (the answer
is relayed until the server closes), every socket with a timeout: nothing here blocks for ever.
"""

from __future__ import annotations

import base64
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

_TIMEOUT = 30.0
_MAX_HEAD = 64 * 1024


@dataclass
class ForwardProxy:
    """``with ForwardProxy() as proxy: proxy.url ...``"""

    credentials: tuple[str, str] | None = field(default=None, repr=False)
    refuse_connect: bool = False
    recorded: list[tuple[str, str]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="forward-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """The proxy's URL, with its credentials if it requires them."""
        auth = f"{self.credentials[0]}:{self.credentials[1]}@" if self.credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def start(self) -> ForwardProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._listener.close()

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def targets(self) -> list[str]:
        """The hosts (``host:port``) it was asked to reach, whatever the method."""
        with self._lock:
            found = []
            for method, target in self.recorded:
                if method == "CONNECT":
                    found.append(target)
                else:
                    parts = urlsplit(target)
                    found.append(parts.netloc.rsplit("@", 1)[-1])
            return found

    # -- serving ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="forward-proxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(_TIMEOUT)
        try:
            head, rest = _read_head(client)
            if head is None:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = [line for line in lines[1:] if line]
            auth = next(
                (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-authorization:")), ""
            )
            with self._lock:
                self.recorded.append((method, target))
                if auth:
                    self.authorizations.append(auth)
            if not self._authorized(auth):
                _answer(client, 407, "Proxy Authentication Required", 'Proxy-Authenticate: Basic realm="test"\r\n')
                return
            if method == "CONNECT":
                self._tunnel(client, target, rest)
            else:
                self._forward(client, method, target, headers, rest)
        except (OSError, ValueError):
            pass  # a client or server that went away: the test sees it on its side
        finally:
            client.close()

    def _authorized(self, header: str) -> bool:
        if self.credentials is None:
            return True
        expected = base64.b64encode(f"{self.credentials[0]}:{self.credentials[1]}".encode()).decode()
        return header == f"Basic {expected}"

    def _tunnel(self, client: socket.socket, target: str, rest: bytes) -> None:
        if self.refuse_connect:
            _answer(client, 403, "Forbidden")
            return
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=_TIMEOUT)
        with upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            _pipe(client, upstream, self._stopping)

    def _forward(self, client: socket.socket, method: str, target: str, headers: list[str], rest: bytes) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            _answer(client, 400, "Bad Request")
            return
        kept = [
            h
            for h in headers
            if h.split(":", 1)[0].strip().lower() not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        request = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{h}\r\n" for h in kept) + "Connection: close\r\n\r\n"
        length = int(_header(headers, "content-length") or 0)
        while len(rest) < length:  # the whole body first (Content-Length: all the tests' clients send)
            chunk = client.recv(65536)
            if not chunk:
                return
            rest += chunk
        upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=_TIMEOUT)
        with upstream:
            upstream.sendall(request.encode("latin-1") + rest)
            answer, body = _read_head(upstream)
            if answer is None:
                return
            # Marked "Connection: close": the client must not send a second request on this one.
            answer_lines = [
                line for line in answer.split(b"\r\n") if not line.lower().startswith((b"connection:", b"keep-alive:"))
            ]
            client.sendall(b"\r\n".join([*answer_lines, b"Connection: close", b"", b""]) + body)
            _pipe(client, upstream, self._stopping)


def _header(headers: list[str], name: str) -> str:
    for line in headers:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            return None, b""
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _answer(client: socket.socket, status: int, reason: str, extra: str = "") -> None:
    client.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())


def _pipe(one: socket.socket, other: socket.socket, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes (or the proxy stops)."""
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(one, selectors.EVENT_READ, other)
        selector.register(other, selectors.EVENT_READ, one)
        idle = 0.0
        while not stopping.is_set() and idle < _TIMEOUT:
            events = selector.select(timeout=0.2)
            if not events:
                idle += 0.2
                continue
            idle = 0.0
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65536)
                if not data:
                    return
                key.data.sendall(data)
