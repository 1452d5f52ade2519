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
from raypod.s3 import PART_SIZE, S3Store
from tests.support.scripted_server import Answer, ScriptedServer, Seen

T = TypeVar("T")
HOLD = 20.0
#: When the signal is sent after the call starts (only how the test is staged, never asserted).
SIGNAL_AFTER = 0.5
#: The S3 answers a multipart upload needs before its first part: the bucket's region, the upload's id.
LOCATION = b'<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></LocationConstraint>'
INITIATED = (
    b'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult>'
    b"<Bucket>bucket</Bucket><Key>log</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>"
)
S3_ERROR = b"<Error><Code>InternalError</Code><Message>held</Message></Error>"


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


def test_sigterm_cuts_an_s3_part_upload_in_flight() -> None:
    """A multipart upload (the job's log) whose part the server holds: SIGTERM, sent the moment the
    whole part has arrived, ends the upload there and then, not when the answer comes."""
    release = threading.Event()

    def hold_the_part(seen: Seen) -> Answer:
        if "partNumber=" not in seen.path:
            return Answer(500, S3_ERROR, "application/xml")
        os.kill(os.getpid(), signal.SIGTERM)  # raypod is now waiting for this part's answer
        release.wait(HOLD)
        return Answer(500, S3_ERROR, "application/xml")  # what an upload that was not cut gets

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with ScriptedServer() as server:
        server.route("GET", "/bucket", Answer(200, LOCATION, "application/xml"))
        server.route("POST", "/bucket/log", Answer(200, INITIATED, "application/xml"))
        server.route("PUT", "/bucket/log", hold_the_part)
        server.route("DELETE", "/bucket/log", Answer(204, b""))
        store = S3Store(
            S3Settings(server.url.removeprefix("http://"), False, ""),
            S3Credentials("AKIAHELD", "held-secret-key"),
            NO_RETRY,
        )
        install_terminate_handler()
        try:
            upload = store.open_part_upload("bucket", "log")
            with pytest.raises(Terminated, match="terminated during upload to s3://bucket/log"):
                upload.write(b"x" * (PART_SIZE + 1))  # one whole part goes out, one byte stays
        finally:
            release.set()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    assert server.count("PUT", "/bucket/log") == 1
    assert not in_flight()
