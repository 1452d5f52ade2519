"""SIGTERM cuts a blocking call in flight (``raypod.interrupt``): an HTTP request or an S3 call
waiting for an answer that the server holds back ends with ``Terminated``, not with the answer.

The held server lets go after ``HOLD`` seconds: a call that was not cut then ends some other way
(an error, a result), and the test fails on what it got, not on how long it took.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

from raypod.config import S3Settings
from raypod.credentials import S3Credentials
from raypod.errors import Terminated
from raypod.http import HttpClient, Timeouts
from raypod.interrupt import in_flight
from raypod.process import install_terminate_handler
from raypod.retry import NO_RETRY
from raypod.s3 import S3Store

T = TypeVar("T")
HOLD = 20.0
#: When the signal is sent after the call starts (only how the test is staged, never asserted).
SIGNAL_AFTER = 0.5


@contextmanager
def held_server() -> Iterator[str]:
    """A loopback server that takes connections and answers nothing until the test ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    release = threading.Event()
    connections: list[socket.socket] = []

    def serve() -> None:
        while not release.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connections.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        release.set()
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(), which close() alone does not
        except OSError:
            pass
        listener.close()
        for connection in connections:
            connection.close()
        thread.join(timeout=5)


def under_sigterm(call: Callable[[], T]) -> T:
    """Run ``call`` with raypod's SIGTERM handler installed and the signal sent while it blocks."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    install_terminate_handler()
    timer = threading.Timer(SIGNAL_AFTER, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        return call()
    finally:
        timer.cancel()
        timer.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_sigterm_cuts_an_http_request_waiting_for_its_answer() -> None:
    with held_server() as address:
        client = HttpClient(f"http://{address}", retry=NO_RETRY, timeouts=Timeouts(connect=5, read=HOLD))
        with pytest.raises(Terminated, match="terminated during GET"):
            under_sigterm(lambda: client.request("GET", "/api/version"))
        client.close()
    assert not in_flight()


def test_sigterm_cuts_a_json_answer_being_waited_for() -> None:
    with held_server() as address:
        client = HttpClient(f"http://{address}", retry=NO_RETRY, timeouts=Timeouts(connect=5, read=HOLD))
        with pytest.raises(Terminated):
            under_sigterm(lambda: client.json("POST", "/api/jobs/", json_body={"entrypoint": "x"}))
        client.close()


def test_sigterm_cuts_an_s3_call_waiting_for_its_answer() -> None:
    with held_server() as address:
        store = S3Store(S3Settings(address, False, ""), S3Credentials("AKIAHELD", "held-secret-key"), NO_RETRY)
        with pytest.raises(Terminated, match="terminated during check of s3://bucket/object"):
            under_sigterm(lambda: store.object_exists("bucket", "object"))
    assert not in_flight()
