"""A counting HTTP proxy on loopback: forwards bytes both ways, records each request line.

It sits in front of the Ray dashboard so that raypod and the Ray SDK can be counted the
same way, whatever HTTP library they use. Only the client-to-server direction is parsed
(request line, headers, body length); answers are passed through untouched.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

_POLL = 0.5


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic() when the request's headers were complete
    method: str
    path: str


class _RequestParser:
    """Finds request boundaries in one connection's client-to-server bytes."""

    def __init__(self, record: Callable[[str, str], None]) -> None:
        self._record = record
        self._buffer = b""
        self._body_left = 0
        self._chunked = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while True:
            if self._body_left:
                take = min(self._body_left, len(self._buffer))
                self._buffer = self._buffer[take:]
                self._body_left -= take
                if self._body_left:
                    return
            if self._chunked:
                if not self._skip_chunk():
                    return
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end].decode("latin-1")
            self._buffer = self._buffer[end + 4 :]
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) >= 2:
                self._record(parts[0], parts[1])
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            self._body_left = int(headers.get("content-length", "0") or 0)
            self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()

    def _skip_chunk(self) -> bool:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            return False
        size = int(self._buffer[:end].split(b";")[0], 16)
        if size == 0:
            # Last chunk: an empty trailer section ends the body.
            trailer_end = self._buffer.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                return False
            self._buffer = self._buffer[trailer_end + 4 :]
            self._chunked = False
            return True
        if len(self._buffer) < end + 2 + size + 2:
            return False
        self._buffer = self._buffer[end + 2 + size + 2 :]
        return True


class CountingProxy:
    """``with CountingProxy("http://127.0.0.1:8265") as proxy:`` then use ``proxy.address``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(_POLL)
        self.address = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept, name="counting-proxy", daemon=True)

    def __enter__(self) -> CountingProxy:
        self._accept_thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._accept_thread.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.close()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def snapshot(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append(Request(time.monotonic(), method, path))

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._upstream, timeout=10)
        except OSError:
            client.close()
            return
        parser = _RequestParser(self._record)
        sockets = [client, upstream]
        try:
            # Bounded by the stop flag: select wakes every _POLL seconds.
            while not self._stop.is_set():
                readable, _, _ = select.select(sockets, [], [], _POLL)
                for sock in readable:
                    data = sock.recv(256 * 1024)
                    if not data:
                        return
                    if sock is client:
                        parser.feed(data)
                        upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()
