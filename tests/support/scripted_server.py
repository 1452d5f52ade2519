"""A scripted loopback HTTP server: each ``METHOD /path`` gets a crafted status, content type and body.

``ScriptedServer`` runs ``http.server`` in a thread on a free port of 127.0.0.1. It records every
request it gets (headers included) and counts the body bytes it managed to send. An answer is
given in one of two ways:

- ``script(method, path, answer)``: this exact path always gets this answer (checked first);
- ``route(method, pattern, *responders)``: a path matching the ``fnmatch`` pattern gets the next
  responder of the sequence, and the last one again once the sequence is spent. A responder is an
  ``Answer`` or a function of the request (``Seen``) that returns one.

An ``Answer`` can also break the connection without answering (``reset``: an RST, as a crashed
proxy does), send its body one byte at a time (``trickle``: a server that never hits a read
timeout), and can quote the request's credentials (``ECHO_AUTH`` in its body), as a misbehaving
proxy's error page does. Shared by ``tests/loopback/test_http.py``, ``tests/loopback/test_ray_answers.py`` and the
hostile-dashboard tests.
"""

from __future__ import annotations

import fnmatch
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: In an answer's body: replaced by the credentials header the request carried (or ``-``).
ECHO_AUTH = b"@AUTH@"


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: The body is sent this many times over (a large answer from one small block).
    repeat: int = 1
    #: Declare the length; without it the body ends when the connection closes.
    declare_length: bool = True
    #: Send only this many bytes of the body, then close (a broken answer).
    cut_after: int | None = None
    #: Answer nothing: reset the connection (RST) once the request is read.
    reset: bool = False
    #: Send the body one byte at a time, this many seconds apart (until the client leaves or the server stops).
    trickle: float | None = None


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def bare_path(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def credentials(self) -> str:
        return self.headers.get("authorization") or self.headers.get("x-ray-authorization") or "-"


Responder = Answer | Callable[[Seen], Answer]
NOT_SCRIPTED = Answer(404, b'{"message": "not scripted"}')


class _Route:
    def __init__(self, method: str, pattern: str, responders: tuple[Responder, ...]) -> None:
        if not responders:
            raise ValueError("a route needs at least one responder")
        self.method = method
        self.pattern = pattern
        self.queue: deque[Responder] = deque(responders)

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and fnmatch.fnmatchcase(path, self.pattern)

    def next(self) -> Responder:
        return self.queue.popleft() if len(self.queue) > 1 else self.queue[0]


class ScriptedServer:
    """``http.server`` in a thread on a free loopback port; stop it with ``stop()``, or use it in ``with``."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}
        self.seen: list[Seen] = []
        #: Body bytes written to the socket so far (the kernel's buffers may hold some of them).
        self.sent = 0
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server.seen.append(seen)
                answer = server.answer_for(seen)
                self.close_connection = True
                if answer.reset:
                    # Linger 0: closing sends an RST, not a FIN. The fd closes once the handler's
                    # files are closed too, right after this method.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                content = answer.body.replace(ECHO_AUTH, seen.credentials.encode("latin-1"))
                total = len(content) * answer.repeat
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                if answer.declare_length:
                    self.send_header("Content-Length", str(total))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                self.end_headers()
                budget = total if answer.cut_after is None else answer.cut_after
                try:
                    if answer.trickle is not None:
                        server.trickle(self.wfile, content[:budget], answer.trickle)
                        return
                    for _ in range(answer.repeat):
                        piece = content[:budget]
                        if not piece:
                            break
                        self.wfile.write(piece)
                        server.sent += len(piece)
                        budget -= len(piece)
                except OSError:
                    pass  # the client closed: what it read is what the test looks at

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="scripted-http", daemon=True
        )
        self._thread.start()

    # -- scripting ---------------------------------------------------------------------------------
    def script(self, method: str, path: str, answer: Answer) -> None:
        self.answers[f"{method} {path}"] = answer

    def json(self, method: str, path: str, value: object, status: int = 200) -> None:
        self.script(method, path, Answer(status, json.dumps(value, allow_nan=True).encode()))

    def route(self, method: str, pattern: str, *responders: Responder) -> None:
        """Paths matching ``pattern`` get these in turn, then the last one again (earlier routes win)."""
        with self._lock:
            self._routes.append(_Route(method, pattern, responders))

    def answer_for(self, seen: Seen) -> Answer:
        exact = self.answers.get(f"{seen.method} {seen.bare_path}")
        if exact is not None:
            return exact
        with self._lock:
            route = next((r for r in self._routes if r.matches(seen.method, seen.bare_path)), None)
            responder = route.next() if route is not None else NOT_SCRIPTED
        return responder(seen) if callable(responder) else responder

    # -- what happened -----------------------------------------------------------------------------
    def count(self, method: str = "*", pattern: str = "*") -> int:
        """How many requests matched ``method`` and the ``fnmatch`` pattern of their path."""
        return sum(
            1
            for s in list(self.seen)
            if fnmatch.fnmatchcase(s.method, method) and fnmatch.fnmatchcase(s.bare_path, pattern)
        )

    def reset(self) -> None:
        with self._lock:
            self.answers.clear()
            self._routes.clear()
            self.seen.clear()
            self.sent = 0

    def trickle(self, out: Any, content: bytes, interval: float) -> None:
        for index in range(len(content)):
            out.write(content[index : index + 1])
            out.flush()
            self.sent += 1
            if self._stopping.wait(interval):
                return

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
