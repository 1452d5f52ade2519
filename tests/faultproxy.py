"""An HTTP fault-injection proxy on loopback, in front of the real Ray dashboard or S3 server.

It works at the TCP level and parses only what it must: the request line, the headers and
the request body's framing (Content-Length or chunked). Everything else, including streamed
and chunked responses (Ray's log stream, S3 answers), is piped through byte for byte.

Each request gets its own upstream connection and both sides are told ``Connection: close``,
so a fault hits exactly one request and never a pooled connection's next one.

Rules are matched in order by method and path regex. A rule fires for its next ``times``
matching requests (or for ever) and can: answer with a status (e.g. 503), reset the
connection (RST), forward the request and then reset instead of answering ("the answer was
lost"), delay, or demand basic auth. ``down()`` resets every connection until ``up()``.
"""

from __future__ import annotations

import base64
import re
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field

#: What a rule does with a request.
RESPOND = "respond"
RESET = "reset"
DROP_RESPONSE = "drop_response"
DELAY = "delay"
REQUIRE_BASIC = "require_basic"
TRUNCATE = "truncate"

_HEAD_LIMIT = 64 * 1024
_IO_TIMEOUT = 30.0


@dataclass
class Rule:
    action: str
    method: str = ".*"
    path: str = ".*"
    #: How many matching requests it still fires for; None: for ever.
    times: int | None = None
    status: int = 503
    body: bytes = b""
    content_type: str = "text/plain"
    delay: float = 0.0
    credentials: tuple[str, str] | None = None
    #: REQUIRE_BASIC: drop the Authorization header once checked, as an ingress can be told to.
    strip: bool = False
    #: TRUNCATE: how many bytes of the answer's body get through before the reset.
    limit: int = 0
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        return re.fullmatch(self.method, method) is not None and re.search(self.path, target) is not None


@dataclass(frozen=True)
class Recorded:
    method: str
    target: str
    headers: dict[str, str] = field(repr=False)
    #: The rule action applied, or "forward".
    action: str = "forward"

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class FaultProxy:
    """``with FaultProxy(host, port) as proxy: proxy.url ...``; stopped on exit."""

    def __init__(self, upstream_host: str, upstream_port: int, *, tls: ssl.SSLContext | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.tls = tls
        self.rules: list[Rule] = []
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)

    # -- control ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(self, method: str, path: str, times: int | None = None, status: int = 503, body: bytes = b"") -> Rule:
        content_type = "application/xml" if body.startswith(b"<?xml") else "text/plain"
        return self.add(
            Rule(RESPOND, method, path, times, status=status, body=body or b"injected fault", content_type=content_type)
        )

    def reset(self, method: str, path: str, times: int | None = None) -> Rule:
        return self.add(Rule(RESET, method, path, times))

    def drop_response(self, method: str, path: str, times: int | None = 1) -> Rule:
        return self.add(Rule(DROP_RESPONSE, method, path, times))

    def delay(self, method: str, path: str, seconds: float, times: int | None = None) -> Rule:
        return self.add(Rule(DELAY, method, path, times, delay=seconds))

    def truncate(self, method: str, path: str, after: int, times: int | None = 1) -> Rule:
        """Forward, then reset the connection after ``after`` bytes of the answer's body."""
        return self.add(Rule(TRUNCATE, method, path, times, limit=after))

    def require_basic(self, username: str, password: str, *, strip: bool = False) -> Rule:
        return self.add(Rule(REQUIRE_BASIC, credentials=(username, password), strip=strip))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def down(self, seconds: float = 3600.0) -> None:
        """Reset every connection for this long (or until ``up()``)."""
        self._down_until = time.monotonic() + seconds

    def up(self) -> None:
        self._down_until = 0.0

    def recorded(self, method: str = ".*", path: str = ".*") -> list[Recorded]:
        with self._lock:
            seen = list(self.requests)
        return [r for r in seen if re.fullmatch(method, r.method) and re.search(path, r.target)]

    # -- serving ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="faultproxy-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(_IO_TIMEOUT)
            if time.monotonic() < self._down_until:
                _reset(client)
                return
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)
            head, rest = _read_head(client)
            if head is None:
                return
            method, target, header_lines = _parse_head(head)
            headers = {name.lower(): value for name, value in header_lines}
            body = _read_body(client, headers, rest)
            rule = self._match(method, target)
            action = rule.action if rule else "forward"
            with self._lock:
                self.requests.append(Recorded(method, target, headers, action))
            if rule is not None and rule.action == DELAY:
                self._stopped.wait(rule.delay)
            elif rule is not None and rule.action == RESET:
                _reset(client)
                return
            elif rule is not None and rule.action == RESPOND:
                _respond(client, rule.status, rule.body, rule.content_type)
                return
            elif rule is not None and rule.action == REQUIRE_BASIC and not _basic_ok(headers, rule.credentials):
                _respond(client, 401, b"basic auth required", "text/plain", {"WWW-Authenticate": 'Basic realm="ray"'})
                return
            elif rule is not None and rule.action == REQUIRE_BASIC and rule.strip:
                header_lines = [(name, value) for name, value in header_lines if name.lower() != "authorization"]
            upstream = socket.create_connection(self.upstream, timeout=_IO_TIMEOUT)
            upstream.sendall(_rebuild_head(method, target, header_lines) + body)
            if rule is not None and rule.action == DROP_RESPONSE:
                # Wait until the upstream has handled the request, then lose its answer.
                upstream.recv(1)
                _reset(client)
                return
            self._pipe(upstream, client, rule.limit if rule is not None and rule.action == TRUNCATE else None)
        except (OSError, ValueError):
            pass  # a client or upstream that went away: nothing to report
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    def _match(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _pipe(self, upstream: socket.socket, client: socket.socket, limit: int | None = None) -> None:
        """Copy the answer to the client (rewriting its Connection header) until either side closes.

        With ``limit``, only that many bytes of the body get through; then the client is reset.
        """
        head, rest = _read_head(upstream)
        if head is None:
            _reset(client)
            return
        status_line, *lines = head.decode("latin-1").split("\r\n")
        kept = [line for line in lines if line and line.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
        client.sendall(("\r\n".join([status_line, *kept, "Connection: close", "", ""])).encode("latin-1"))
        budget = limit
        pending = rest
        sockets: list[socket.socket] = [upstream, client]
        while not self._stopped.is_set():
            if pending:
                if budget is not None:
                    pending = pending[:budget]
                    budget -= len(pending)
                client.sendall(pending)
                pending = b""
            if budget is not None and budget <= 0:
                _reset(client)
                return
            readable, _, _ = select.select(sockets, [], [], 0.2)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is upstream:
                    pending = data
                # Anything the client sends now is ignored: one request per connection.


_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection"}


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset'."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > _HEAD_LIMIT:
            raise ValueError("head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _parse_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return method, target, headers


def _rebuild_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    kept = [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_HEADERS]
    return "\r\n".join([f"{method} {target} HTTP/1.1", *kept, "Connection: close", "", ""]).encode("latin-1")


def _read_exact(sock: socket.socket, buffered: bytes, size: int) -> tuple[bytes, bytes]:
    data = buffered
    while len(data) < size:
        chunk = sock.recv(min(65536, size - len(data)))
        if not chunk:
            raise ValueError("body cut short")
        data += chunk
    return data[:size], data[size:]


def _read_line(sock: socket.socket, buffered: bytes) -> tuple[bytes, bytes]:
    data = buffered
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("chunked body cut short")
        data += chunk
    line, _, rest = data.partition(b"\r\n")
    return line, rest


def _read_body(sock: socket.socket, headers: dict[str, str], buffered: bytes) -> bytes:
    """The raw request body, framing included, so it can be forwarded unchanged."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raw = b""
        while True:
            line, buffered = _read_line(sock, buffered)
            size = int(line.split(b";")[0], 16)
            chunk, buffered = _read_exact(sock, buffered, size + 2)
            raw += line + b"\r\n" + chunk
            if size == 0:
                # Trailers are not used by any client here: the chunk above held the final CRLF.
                return raw
    length = int(headers.get("content-length", "0") or 0)
    body, _ = _read_exact(sock, buffered, length)
    return body


def _respond(
    sock: socket.socket, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
) -> None:
    lines = [f"HTTP/1.1 {status} Injected", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    lines += ["Connection: close", "", ""]
    sock.sendall("\r\n".join(lines).encode("latin-1") + body)


def _basic_ok(headers: dict[str, str], credentials: tuple[str, str] | None) -> bool:
    if credentials is None:
        return True
    expected = "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
    return headers.get("authorization") == expected


def s3_error(code: str, message: str) -> bytes:
    """An S3 XML error body, as a real S3 server sends it."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>faultproxy</RequestId></Error>"
    ).encode()
