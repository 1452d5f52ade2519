"""A recording HTTP proxy on loopback, in front of the real Ray dashboard or S3 server.

It works at the TCP level and parses only the client's side, with one parser: the request line,
the headers and the body's framing (Content-Length or chunked). Answers, streamed and chunked ones
included (Ray's log stream, S3's replies), are piped through byte for byte. Every request is
recorded as a ``Request``: when its head was complete, its method, its target and its headers.

What is done with the connections is chosen when the proxy is made:

- per request (the default), to inject faults: each request gets its own upstream connection and
  both sides are told ``Connection: close``, so a fault hits exactly one request and never a pooled
  connection's next one. A WebSocket upgrade (Ray's log tail) is passed on as it was asked, and
  once upgraded its bytes are copied both ways; ``websockets=False`` makes the proxy behave as an
  ingress without WebSocket support instead: it drops ``Connection: Upgrade``, and Ray 2.60 then
  answers (500) only once the job has ended. (An ingress that refuses at once: a ``fail`` rule.)
  Rules are matched in order by method and path regex. A rule fires for its
  next ``times`` matching requests (or for ever) and can: answer with a status (e.g. 503), reset the
  connection (RST), forward the request and then reset instead of answering ("the answer was
  lost"), cut the answer short, trickle it (one byte at a time, as a stalled link or a hostile
  server sends it), delay, or demand basic auth.
- ``keep_alive=True``, to count: each client connection is piped to one upstream connection of its
  own, both ways, as the bytes come, so pooled connections stay pooled and timings are not
  distorted. The requests are recorded on the way; there are no rules.

Either way ``down()`` resets every new connection until ``up()``.

``s3_target`` and the ``S3_*`` patterns name S3's calls for one object: its single PUT, and each
step of a multipart upload (open, one part, complete), so a fault can hit a log of any size.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

#: What a rule does with a request.
RESPOND = "respond"
RESET = "reset"
DROP_RESPONSE = "drop_response"
DELAY = "delay"
REQUIRE_BASIC = "require_basic"
TRUNCATE = "truncate"
TRICKLE = "trickle"
#: What is recorded for a request no rule matched.
FORWARD = "forward"

_HEAD_LIMIT = 64 * 1024
_IO_TIMEOUT = 30.0
#: Keep-alive mode: how long connecting upstream and sending to it may take, as before the merge.
_RELAY_TIMEOUT = 10.0
_POLL = 0.2
_HOP_HEADERS = {"connection", "keep-alive", "proxy-connection"}


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
    #: DELAY: seconds before the request is forwarded; TRICKLE: seconds between two bytes of the answer.
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
class Request:
    #: time.monotonic() when the request's head was complete
    at: float
    method: str
    #: The request target as sent, query included.
    path: str
    #: Lower-case names.
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    #: The rule action applied, or FORWARD.
    action: str = FORWARD
    #: For a connection upgraded by this request (a WebSocket): time.monotonic() when it ended.
    closed_at: float | None = None


@dataclass(frozen=True)
class _Head:
    at: float
    method: str
    target: str
    #: (name, value) pairs as sent, in order.
    fields: list[tuple[str, str]]

    @property
    def headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.fields}


class RequestParser:
    """Splits one connection's client-to-server bytes into requests: each head, and its body with
    the framing (chunk sizes, trailers) kept, so that it can be forwarded unchanged."""

    def __init__(self) -> None:
        self._buffer = b""
        self._head: _Head | None = None
        self._body = b""
        self._length = 0
        self._chunked = False
        self._trailers = False

    def feed(self, data: bytes) -> list[tuple[_Head, bytes]]:
        """The requests that ``data`` completed, in order."""
        self._buffer += data
        complete = []
        while (request := self._next()) is not None:
            complete.append(request)
        return complete

    def _next(self) -> tuple[_Head, bytes] | None:
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end > _HEAD_LIMIT or (end < 0 and len(self._buffer) > _HEAD_LIMIT):
                raise ValueError("head too large")
            if end < 0:
                return None
            self._head = _parse_head(self._buffer[:end])
            self._buffer = self._buffer[end + 4 :]
            headers = self._head.headers
            self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            self._length = 0 if self._chunked else int(headers.get("content-length", "0") or 0)
            self._trailers = False
            self._body = b""
        if not (self._take_chunks() if self._chunked else self._take_length()):
            return None
        request = (self._head, self._body)
        self._head, self._body = None, b""
        return request

    def _take_length(self) -> bool:
        taken = self._buffer[: self._length]
        self._body += taken
        self._buffer = self._buffer[len(taken) :]
        self._length -= len(taken)
        return self._length == 0

    def _take_chunks(self) -> bool:
        """Move whole chunks to the body; True once the last one and the empty line after its trailers are in."""
        while (end := self._buffer.find(b"\r\n")) >= 0:
            last_line = self._trailers and end == 0
            if self._trailers:
                size = end + 2
            else:
                chunk = int(self._buffer[:end].split(b";")[0], 16)
                self._trailers = chunk == 0
                size = end + 2 + (chunk + 2 if chunk else 0)
                if len(self._buffer) < size:
                    return False
            self._body += self._buffer[:size]
            self._buffer = self._buffer[size:]
            if last_line:
                return True
        return False


class Proxy:
    """``with Proxy("127.0.0.1", port) as proxy: proxy.url ...``; stopped on exit.

    ``keep_alive=True``: the counting mode (see the module's docstring); ``tls``: the client side
    speaks TLS with this context (per-request mode only).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        keep_alive: bool = False,
        tls: ssl.SSLContext | None = None,
        websockets: bool = True,
    ) -> None:
        if keep_alive and tls is not None:
            raise ValueError("keep-alive mode does not terminate TLS")
        self.upstream = (upstream_host, upstream_port)
        self.keep_alive = keep_alive
        self.websockets = websockets
        self.tls = tls
        self.rules: list[Rule] = []
        self.requests: list[Request] = []
        #: Called with each request as it arrives, before it is forwarded (e.g. to rotate a token file
        #: while the refused request is on its way).
        self.on_request: Callable[[Request], None] | None = None
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(_POLL)
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept_loop, name="proxy", daemon=True)
        self._connections: list[threading.Thread] = []

    # -- control ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()
        # Each connection notices the stop within _POLL, unless it waits on a silent peer.
        limit = time.monotonic() + 5
        for thread in self._connections:
            thread.join(timeout=max(0.0, limit - time.monotonic()))

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        if self.keep_alive:
            raise ValueError("rules need a connection per request: make the proxy without keep_alive")
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(
        self,
        method: str,
        path: str,
        times: int | None = None,
        status: int = 503,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Rule:
        """Answer with ``status`` and ``body``; the content type is XML for an S3 error body, else text,
        unless ``content_type`` says otherwise (e.g. ``text/html`` for an ingress's page)."""
        if content_type is None:
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

    def trickle(self, method: str, path: str, seconds_per_byte: float, times: int | None = 1) -> Rule:
        """Forward, then pass the answer on one byte every ``seconds_per_byte``: each read gets data
        in time, so only a deadline on the whole call ends it."""
        return self.add(Rule(TRICKLE, method, path, times, delay=seconds_per_byte))

    def require_basic(self, username: str, password: str, *, strip: bool = False) -> Rule:
        return self.add(Rule(REQUIRE_BASIC, credentials=(username, password), strip=strip))

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    def down(self, seconds: float = 3600.0) -> None:
        """Reset every connection for this long (or until ``up()``)."""
        self._down_until = time.monotonic() + seconds

    def up(self) -> None:
        self._down_until = 0.0

    def recorded(self, method: str = ".*", path: str = ".*") -> list[Request]:
        """The requests so far, in order, whose method matches ``method`` and whose target ``path`` (regexes)."""
        with self._lock:
            seen = list(self.requests)
        return [r for r in seen if re.fullmatch(method, r.method) and re.search(path, r.path)]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- serving ---------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), name="proxy-conn", daemon=True)
            self._connections = [t for t in self._connections if t.is_alive()]
            self._connections.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            if time.monotonic() < self._down_until:
                _reset(client)
                return
            if self.keep_alive:
                upstream = socket.create_connection(self.upstream, timeout=_RELAY_TIMEOUT)
                self._relay(client, upstream)
                return
            client.settimeout(_IO_TIMEOUT)
            if self.tls is not None:
                client = self.tls.wrap_socket(client, server_side=True)
            upstream = self._forward_one(client)
        except (OSError, ValueError):
            pass  # a client or upstream that went away: nothing to report
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    def _record(self, head: _Head, action: str) -> Request:
        """Record a request; returns the record, which ``_record_close`` finds again."""
        request = Request(head.at, head.method, head.target, head.headers, action)
        with self._lock:
            self.requests.append(request)
        if self.on_request is not None:
            self.on_request(request)
        return request

    def _record_close(self, request: Request) -> None:
        """Note when an upgraded connection ended, unless ``clear_requests`` dropped its record meanwhile."""
        with self._lock:
            for position, recorded in enumerate(self.requests):
                if recorded is request:
                    self.requests[position] = replace(recorded, closed_at=time.monotonic())
                    return

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Keep-alive mode: copy both ways as the bytes come, recording each request on the way.

        After a request to upgrade the connection (a WebSocket, e.g. Ray's log tail), what the
        client sends is no longer HTTP: it is only copied."""
        parser = RequestParser()
        upgraded: Request | None = None
        try:
            for sock, data in self._both_ways(client, upstream):
                if sock is client and upgraded is None:
                    for head, _body in parser.feed(data):
                        request = self._record(head, FORWARD)
                        if "upgrade" in head.headers:
                            upgraded = request  # what follows is the WebSocket's, not HTTP
                            break
        finally:
            if upgraded is not None:
                self._record_close(upgraded)

    def _both_ways(self, client: socket.socket, upstream: socket.socket) -> Iterator[tuple[socket.socket, bytes]]:
        """Copy bytes both ways as they come, until either side closes or the proxy stops; each read
        is given to the caller (which side, what) before it is passed on."""
        sockets = [client, upstream]
        # Bounded by the stop flag: select wakes every _POLL seconds.
        while not self._stopped.is_set():
            readable, _, _ = select.select(sockets, [], [], _POLL)
            for sock in readable:
                data = sock.recv(256 * 1024)
                if not data:
                    return
                yield sock, data
                (upstream if sock is client else client).sendall(data)

    def _forward_one(self, client: socket.socket) -> socket.socket | None:
        """Per-request mode: read one request, apply the first matching rule; return the upstream connection."""
        request = _read_request(client)
        if request is None:
            return None
        head, body = request
        rule = self._match(head.method, head.target)
        record = self._record(head, rule.action if rule else FORWARD)
        fields = head.fields
        upgrade = self.websockets and "upgrade" in head.headers
        if rule is not None and rule.action == DELAY:
            if self._stopped.wait(rule.delay):
                return None
        elif rule is not None and rule.action == RESET:
            _reset(client)
            return None
        elif rule is not None and rule.action == RESPOND:
            _respond(client, rule.status, rule.body, rule.content_type)
            return None
        elif rule is not None and rule.action == REQUIRE_BASIC and not _basic_ok(head.headers, rule.credentials):
            _respond(client, 401, b"basic auth required", "text/plain", {"WWW-Authenticate": 'Basic realm="ray"'})
            return None
        elif rule is not None and rule.action == REQUIRE_BASIC and rule.strip:
            fields = [(name, value) for name, value in fields if name.lower() != "authorization"]
        upstream = socket.create_connection(self.upstream, timeout=_IO_TIMEOUT)
        upstream.sendall(_rebuild_head(head.method, head.target, fields, upgrade=upgrade) + body)
        if upgrade:
            # The answer (101, or a refusal) goes back as it is; after a 101 the bytes are the
            # WebSocket's, both ways.
            try:
                for _sock, _data in self._both_ways(client, upstream):
                    pass
            finally:
                self._record_close(record)
            return upstream
        if rule is not None and rule.action == DROP_RESPONSE:
            # Wait until the upstream has handled the request, then lose its answer.
            upstream.recv(1)
            _reset(client)
            return upstream
        limit = rule.limit if rule is not None and rule.action == TRUNCATE else None
        pace = rule.delay if rule is not None and rule.action == TRICKLE else None
        self._pipe(upstream, client, limit, pace)
        return upstream

    def _match(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target):
                    rule.hits += 1
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def _pipe(
        self, upstream: socket.socket, client: socket.socket, limit: int | None = None, pace: float | None = None
    ) -> None:
        """Copy the answer to the client (rewriting its Connection header) until either side closes.

        With ``limit``, only that many bytes of the body get through; then the client is reset. With
        ``pace``, the body goes one byte every ``pace`` seconds (until the proxy stops).
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
                if pace is not None:
                    for byte in range(len(pending)):
                        if self._stopped.wait(pace):
                            return
                        client.sendall(pending[byte : byte + 1])
                else:
                    client.sendall(pending)
                pending = b""
            if budget is not None and budget <= 0:
                _reset(client)
                return
            readable, _, _ = select.select(sockets, [], [], _POLL)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                if sock is upstream:
                    pending = data
                # Anything the client sends now is ignored: one request per connection.


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN: the peer sees 'connection reset'."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _read_request(sock: socket.socket) -> tuple[_Head, bytes] | None:
    """The first request on ``sock``, or None if the client went away before sending it whole."""
    parser = RequestParser()
    while chunk := sock.recv(65536):
        complete = parser.feed(chunk)
        if complete:
            return complete[0]
    return None


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """An answer's head (and what came after it), for the per-request mode's Connection rewrite."""
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


def _parse_head(head: bytes) -> _Head:
    at = time.monotonic()
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    fields = []
    for line in lines:
        name, _, value = line.partition(":")
        fields.append((name.strip(), value.strip()))
    return _Head(at, method, target, fields)


def _rebuild_head(method: str, target: str, fields: list[tuple[str, str]], *, upgrade: bool = False) -> bytes:
    """The request for the upstream: ``Connection: close``, or ``Connection: Upgrade`` for a passed-on upgrade."""
    kept = [f"{name}: {value}" for name, value in fields if name.lower() not in _HOP_HEADERS]
    connection = "Connection: Upgrade" if upgrade else "Connection: close"
    return "\r\n".join([f"{method} {target} HTTP/1.1", *kept, connection, "", ""]).encode("latin-1")


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


#: Targets of S3's calls for one object, as ``path`` regexes for rules (minio's query order). An
#: object under one part (5 MiB) is one ``PUT /<bucket>/<key>``; a larger one is a multipart
#: upload: a POST that opens it, a PUT per part, a POST that completes it (a DELETE aborts it).
S3_SINGLE_PUT = r"/{key}$"
S3_CREATE_MULTIPART = r"/{key}\?uploads=?$"
S3_UPLOAD_PART = r"/{key}\?partNumber={part}&uploadId="
S3_COMPLETE_MULTIPART = r"/{key}\?uploadId=[^&]+$"


def s3_target(pattern: str, key: str, part: int | str = r"\d+") -> str:
    """One of the ``S3_*`` patterns for the object ``key`` (``part``: one part's number, or any)."""
    return pattern.format(key=re.escape(key), part=part)


def s3_error(code: str, message: str) -> bytes:
    """An S3 XML error body, as a real S3 server sends it."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message>'
        "<RequestId>faultproxy</RequestId></Error>"
    ).encode()
