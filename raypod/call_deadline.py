"""A whole HTTP call bounded in time: connect, request, and the answer to its last byte.

``requests`` has a connect timeout and a read timeout, and the read timeout counts from each
read: a server that sends one byte every few seconds keeps a call alive for ever. Here a timer
shuts down the sockets a call uses when its deadline passes, which wakes the thread blocked on
them at once (a blocked read sees the end of the stream); the caller then asks ``expired`` and
reports the call as timed out.

``DeadlineAdapter`` is mounted on the ``requests.Session``: its connections register their
socket with the deadline of the call running in the same thread (``CallDeadline``, a context
manager). Outside a deadline they behave as urllib3's own.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

#: An upload's deadline grows with its size at this rate (bytes per second): a large package or
#: S3 part on a slow link is not cut, a stalled one still is.
MIN_UPLOAD_RATE = 1024 * 1024

_current = threading.local()


class CallDeadline:
    """``with CallDeadline(seconds):`` the calls made in this thread end by then (None: no bound)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        #: Whether the deadline passed while the call was under way.
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = False
        self._timer: threading.Timer | None = None
        self._outer: CallDeadline | None = None

    def __enter__(self) -> CallDeadline:
        self._outer = getattr(_current, "deadline", None)
        _current.deadline = self
        if self.seconds is not None:
            self._timer = threading.Timer(max(self.seconds, 0.0), self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        _current.deadline = self._outer
        with self._lock:
            # A pooled connection outlives the call: a late timer must not shut it down.
            self._done = True
            self._sockets.clear()
        if self._timer is not None:
            self._timer.cancel()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self._done:
                return
            if self.expired:
                _shut(sock)
            elif not any(known is sock for known in self._sockets):
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, also for TLS: ssl's own would drop the TLS state under the reader.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


def _watch(sock: socket.socket | None) -> None:
    deadline: CallDeadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a pooled connection, already connected
        super().request(*args, **kwargs)


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _DeadlineHTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool}


def use_deadline_pools(manager: Any) -> None:
    """A urllib3 ``PoolManager`` (minio's) whose connections ``CallDeadline`` can cut."""
    manager.pool_classes_by_scheme = _POOLS


class DeadlineAdapter(HTTPAdapter):
    """urllib3's pools, with connections that ``CallDeadline`` can cut (proxied ones too; not SOCKS)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        use_deadline_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager
