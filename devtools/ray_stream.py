"""Ray's state API follow stream (``/api/v0/logs/stream``), for the benchmark's measurements only.

raypod itself never follows it: Ray 2.60 keeps such a request open after its client has gone until
the log grows again (``raypod.logs.LogFollower`` says why that rules it out). So every stream opened
here holds one of the state API's in-progress requests on the head it was opened on until that head
stops: use it only on a head of one's own.
"""

from __future__ import annotations

import socket

import requests

from raypod.http import Timeouts
from raypod.ray import RayJobsClient
from raypod.retry import NO_RETRY


def open_follow_stream(client: RayJobsClient, submission_id: str, node_id: str) -> requests.Response:
    """The driver's log, followed: Ray's agent reads the file every 0.5 s and sends what it gained."""
    params = {"submission_id": submission_id, "lines": "-1", "node_id": node_id, "interval": "0.5"}
    return client.http.request(
        "GET",
        "/api/v0/logs/stream",
        params=params,
        stream=True,
        retry=NO_RETRY,
        timeouts=Timeouts(client.http.timeouts.connect, None),
    )


def abort_stream(response: requests.Response) -> None:
    """Wake a thread blocked reading this streamed response.

    ``response.close()`` from another thread blocks on the reader's buffer lock; shutting
    the socket down does not, and the reader then sees the end of the stream.
    """
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        # After "Connection: close" (a proxy, an ingress) http.client hands the socket over to
        # the response itself: reach it through the response's file object.
        file = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(file, "raw", None), "_sock", None)
    if not isinstance(sock, socket.socket):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake
