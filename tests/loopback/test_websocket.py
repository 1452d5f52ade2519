"""raypod's WebSocket client (RFC 6455, client side) against loopback servers that behave, and
servers that do not: the handshake, framing both ways, the close handshake, bounds, abort, TLS
and SIGTERM. (The frame parser's property tests are in tests/unit/test_websocket_frame_parser.py.)"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from devtools.forward_proxy import ForwardProxy
from raypod.credentials import RayCredentials
from raypod.errors import RayApiError, Terminated
from raypod.process import install_terminate_handler
from raypod.ray import RayJobsClient
from raypod.retry import NO_RETRY
from raypod.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    RECV_SIZE,
    TEXT,
    WebSocket,
    WebSocketAborted,
    WebSocketError,
    WebSocketProtocolError,
    WebSocketRefused,
    WebSocketUnanswered,
    accept_key,
    close_payload,
    encode_frame,
    mask,
)
from tests.support.websocket_frames import frame

#: How long a test server waits for the client before it gives up (only a bound, never asserted).
BOUND = 20.0


# -- a loopback server that speaks as a test scripts it -----------------------------------------
@dataclass
class Conversation:
    """One accepted connection: the client's request head, and the socket to script the rest on."""

    sock: socket.socket
    request: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def accept_upgrade(self, *, key: str | None = None, extra: str = "") -> None:
        accept = accept_key(key if key is not None else self.headers["sec-websocket-key"])
        self.sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
            ).encode()
        )

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def read_frame(self) -> tuple[bool, int, bytes, bool]:
        """The client's next frame: fin, opcode, unmasked payload, and whether it was masked."""
        first, second = self._exactly(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._exactly(2), "big")
        elif size == 127:
            size = int.from_bytes(self._exactly(8), "big")
        masked = bool(second & 0x80)
        key = self._exactly(4) if masked else b""
        payload = self._exactly(size)
        return bool(first & 0x80), first & 0x0F, mask(payload, key) if masked else payload, masked

    def _exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("the client closed the connection")
            data += chunk
        return data


@contextmanager
def ws_server(
    script: Callable[[Conversation], None], tls: ssl.SSLContext | None = None
) -> Iterator[tuple[str, list[Conversation]]]:
    """Serve one connection with ``script`` (after reading the request head); yields the URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(BOUND)
    seen: list[Conversation] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.settimeout(BOUND)
        try:
            if tls is not None:
                sock = tls.wrap_socket(sock, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            fields = (line.partition(":") for line in lines[1:])
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            conversation = Conversation(sock, head, headers)
            seen.append(conversation)
            script(conversation)
        except (OSError, ssl.SSLError, ConnectionError):
            pass  # the client went away: what it saw is what the test checks
        except BaseException as error:  # an assertion in the script
            errors.append(error)
        finally:
            sock.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}/api/jobs/job-1/logs/tail", seen
    finally:
        # The client is done: a server still waiting to accept (a client that never connected) is
        # woken now rather than after BOUND; a conversation under way is not touched.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        thread.join(BOUND)
        listener.close()
    if errors:
        raise errors[0]


def read_all(url: str, **options: object) -> tuple[bytes, WebSocket]:
    socket_ = WebSocket(url, **options).open()  # type: ignore[arg-type]
    return b"".join(socket_.chunks()), socket_


def close_politely(conversation: Conversation, code: int = 1000) -> tuple[int, bytes]:
    """Send close, and return the client's answer (its opcode and payload)."""
    conversation.send(frame(CLOSE, close_payload(code)))
    _fin, opcode, payload, _masked = conversation.read_frame()
    return opcode, payload


# -- the handshake ---------------------------------------------------------------------------------
def test_the_upgrade_sends_the_callers_headers_and_a_fresh_key() -> None:
    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        close_politely(conversation)

    with ws_server(script) as (url, seen):
        data, _ = read_all(url, headers={"Authorization": "Bearer token-123", "X-Extra": "yes"})
    request, headers = seen[0].request, seen[0].headers
    assert request.startswith(b"GET /api/jobs/job-1/logs/tail HTTP/1.1\r\n")
    assert headers["authorization"] == "Bearer token-123"
    assert headers["x-extra"] == "yes"
    assert headers["upgrade"] == "websocket"
    assert headers["connection"] == "Upgrade"
    assert headers["sec-websocket-version"] == "13"
    assert len(base64.b64decode(headers["sec-websocket-key"])) == 16
    assert headers["host"] == url.split("/")[2]
    assert data == b""


def test_an_answer_with_the_wrong_accept_key_is_refused() -> None:
    wrong_key = ws_server(lambda c: c.accept_upgrade(key="not-the-key"))
    with wrong_key as (url, _), pytest.raises(WebSocketProtocolError, match="Sec-WebSocket-Accept does not match"):
        WebSocket(url).open()


def test_an_answer_that_picks_an_extension_nobody_offered_is_refused() -> None:
    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade(extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")

    with ws_server(script) as (url, _), pytest.raises(WebSocketProtocolError, match="extensions nobody offered"):
        WebSocket(url).open()


def test_an_answer_other_than_101_is_a_refusal_with_its_status_and_body() -> None:
    def script(conversation: Conversation) -> None:
        body = b"Job job-1 does not exist"
        conversation.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    with ws_server(script) as (url, _), pytest.raises(WebSocketRefused) as caught:
        WebSocket(url).open()
    assert caught.value.status == 404
    assert caught.value.body == "Job job-1 does not exist"


def test_an_upgrade_answer_trickled_a_byte_at_a_time_ends_at_the_handshake_timeout() -> None:
    client_left = threading.Event()

    def script(conversation: Conversation) -> None:
        head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Pad: " + b"p" * 300 + b"\r\n\r\n"
        for index in range(len(head)):  # each byte well within the 1 s read timeout
            conversation.send(head[index : index + 1])
            if client_left.wait(0.1):
                return

    with ws_server(script) as (url, _):
        with pytest.raises(WebSocketUnanswered, match="no answer to the upgrade within 1 s"):
            WebSocket(url, handshake_timeout=1.0).open()
        client_left.set()


def test_a_header_that_would_split_the_request_is_refused_without_quoting_it() -> None:
    with ws_server(lambda c: None) as (url, _), pytest.raises(WebSocketError) as caught:
        WebSocket(url, headers={"Authorization": "Bearer se\r\ncret"}).open()
    assert "cret" not in str(caught.value)


def test_a_refusal_that_echoes_the_token_reaches_the_message_scrubbed() -> None:
    token = "tail-token-SECRET-4242"

    def script(conversation: Conversation) -> None:
        body = f"denied: {conversation.headers.get('authorization')}".encode()
        conversation.send(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    with ws_server(script) as (url, _):
        ray = RayJobsClient.connect(url.split("/api/")[0], RayCredentials(token=token), retry=NO_RETRY)
        with pytest.raises(RayApiError) as caught:
            ray.open_log_tail("job-1")
    assert caught.value.status == 401
    assert not caught.value.transient
    assert token not in str(caught.value) + caught.value.body


# -- data and control frames -----------------------------------------------------------------------
def test_text_binary_and_continuation_frames_arrive_in_order_and_pings_are_answered() -> None:
    pongs: list[bytes] = []

    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.send(
            frame(TEXT, b"first line\n"),
            frame(BINARY, b"\x00\xffraw"),
            frame(TEXT, b"frag", fin=False),
            frame(PING, b"are you there"),
            frame(CONTINUATION, b"mented ", fin=False),
            frame(CONTINUATION, "héllo\n".encode()),
        )
        _fin, opcode, payload, masked = conversation.read_frame()
        assert (opcode, masked) == (PONG, True)
        pongs.append(payload)
        close_politely(conversation)

    with ws_server(script) as (url, _):
        data, socket_ = read_all(url)
    assert data == b"first line\n\x00\xffrawfragmented " + "héllo\n".encode()
    assert pongs == [b"are you there"]
    assert socket_.close_code == 1000


def test_frames_the_client_sends_are_masked() -> None:
    got: list[tuple[bool, int, bytes, bool]] = []

    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        got.append(conversation.read_frame())
        got.append(conversation.read_frame())

    with ws_server(script) as (url, _):
        socket_ = WebSocket(url).open()
        socket_.send_message(b"x" * 300)
        socket_.send_message(b"\x01\x02", text=False)
        socket_.close()
    assert got == [(True, TEXT, b"x" * 300, True), (True, BINARY, b"\x01\x02", True)]


def test_the_servers_close_is_answered_with_its_code_and_ends_the_data() -> None:
    answers: list[tuple[int, bytes]] = []

    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.send(frame(TEXT, b"last words\n"))
        answers.append(close_politely(conversation, 1001))

    with ws_server(script) as (url, _):
        data, socket_ = read_all(url)
    assert data == b"last words\n"
    assert socket_.close_code == 1001
    assert answers == [(CLOSE, (1001).to_bytes(2, "big"))]


def test_a_connection_that_ends_without_a_close_frame_is_an_error() -> None:
    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.send(frame(TEXT, b"cut"))

    with ws_server(script) as (url, _), pytest.raises(WebSocketError, match="without a close frame"):
        read_all(url)


def test_a_frame_of_any_length_streams_through_in_bounded_pieces() -> None:
    size = 8 * RECV_SIZE + 123

    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        header = frame(BINARY, b"")[:1] + bytes((127,)) + size.to_bytes(8, "big")
        conversation.send(header)
        for start in range(0, size, 100_000):
            conversation.send(b"y" * min(100_000, size - start))
        close_politely(conversation)

    with ws_server(script) as (url, _):
        socket_ = WebSocket(url).open()
        pieces = [len(piece) for piece in socket_.chunks()]
    assert sum(pieces) == size
    assert max(pieces) <= RECV_SIZE


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (encode_frame(TEXT, b"hi", key=b"abcd"), "masked frame from the server"),
        (bytes((0x80 | 0x40 | TEXT, 2)) + b"hi", "reserved bits"),
        (frame(0x3, b"?"), "unknown opcode 3"),
        (frame(0xB), "unknown opcode 11"),
        (frame(PING, b"p", fin=False), "fragmented control frame"),
        (bytes((0x80 | PING, 126)) + (126).to_bytes(2, "big") + b"p" * 126, "control frame of 126 bytes"),
        (frame(CONTINUATION, b"orphan"), "continuation frame without a message"),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), "new message before the fragmented one ended"),
        (bytes((0x80 | BINARY, 127)) + (2**63 + 5).to_bytes(8, "big"), "more than the"),
        (bytes((0x80 | BINARY, 127)) + (65 * 1024 * 1024).to_bytes(8, "big"), "more than the 67108864 accepted"),
        (frame(CLOSE, b"\x03"), "close frame of one byte"),
        (frame(CLOSE, (999).to_bytes(2, "big")), "invalid code 999"),
    ],
)
def test_a_server_that_breaks_the_protocol_gets_a_clear_error(frames: bytes, message: str) -> None:
    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.send(frames)
        conversation.sock.recv(1)  # until the client goes

    with ws_server(script) as (url, _), pytest.raises(WebSocketProtocolError, match=message):
        read_all(url)


def test_a_protocol_error_on_the_tail_is_a_permanent_ray_error() -> None:
    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.send(frame(CONTINUATION, b"orphan"))
        conversation.sock.recv(1)

    with ws_server(script) as (url, _):
        ray = RayJobsClient.connect(url.split("/api/")[0], retry=NO_RETRY)
        tail = ray.open_log_tail("job-1")
        with pytest.raises(RayApiError, match="continuation frame") as caught:
            list(ray.tail_chunks(tail))
    assert not caught.value.transient


# -- ending it from elsewhere ----------------------------------------------------------------------
def test_abort_from_another_thread_ends_a_read_that_waits_for_data() -> None:
    waiting = threading.Event()
    outcome: list[BaseException] = []

    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        waiting.set()
        conversation.sock.recv(1)  # nothing is sent: the client blocks in its read

    with ws_server(script) as (url, _):
        socket_ = WebSocket(url).open()

        def reader() -> None:
            try:
                list(socket_.chunks())
            except BaseException as error:
                outcome.append(error)

        thread = threading.Thread(target=reader)
        thread.start()
        assert waiting.wait(BOUND)
        socket_.abort()
        thread.join(BOUND)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], WebSocketAborted)


def test_abort_before_open_stops_the_handshake() -> None:
    with ws_server(lambda c: c.sock.recv(1)) as (url, seen):
        socket_ = WebSocket(url)
        socket_.abort()
        with pytest.raises(WebSocketAborted):
            socket_.open()
    assert seen == []  # nothing was sent


def test_sigterm_cuts_a_read_in_the_main_thread_as_it_cuts_any_call() -> None:
    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.sock.recv(1)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    with ws_server(script) as (url, _):
        socket_ = WebSocket(url, what="GET the tail").open()
        install_terminate_handler()
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        try:
            with pytest.raises(Terminated, match="terminated during GET the tail"):
                list(socket_.chunks())
        finally:
            timer.cancel()
            timer.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


# -- TLS -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def tls_server_context(authority: trustme.CA, host: str = "127.0.0.1") -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    authority.issue_cert(host).configure_cert(context)
    return context


def test_tls_is_verified_against_the_given_ca_bundle(authority: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    authority.cert_pem.write_to_path(str(bundle))

    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.send(frame(TEXT, b"over tls\n"))
        close_politely(conversation)

    with ws_server(script, tls_server_context(authority)) as (url, _):
        data, _socket = read_all(url, verify=str(bundle))
    assert data == b"over tls\n"


def test_a_certificate_the_bundle_does_not_trust_fails_verification(authority: trustme.CA) -> None:
    server = ws_server(lambda c: None, tls_server_context(authority))
    with server as (url, _), pytest.raises(WebSocketError, match="TLS verification failed"):
        WebSocket(url, verify=True).open()


def test_a_certificate_for_another_host_fails_verification(authority: trustme.CA, tmp_path: Path) -> None:
    bundle = tmp_path / "ca.crt"
    authority.cert_pem.write_to_path(str(bundle))
    server = ws_server(lambda c: None, tls_server_context(authority, "ray.example"))
    with server as (url, _), pytest.raises(WebSocketError, match="TLS verification failed"):
        WebSocket(url, verify=str(bundle)).open()


# -- through a proxy: the same policy as every other call (raypod.proxies) ----------------------------------
def test_the_tail_tunnels_through_the_proxy_the_policy_picks_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def script(conversation: Conversation) -> None:
        conversation.accept_upgrade()
        conversation.send(frame(TEXT, b"through the proxy\n"))
        close_politely(conversation)

    with ForwardProxy(credentials=("raypod", "tail-proxy-pa55word")) as proxy, ws_server(script) as (url, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        ray = RayJobsClient.connect(url.split("/api/")[0], retry=NO_RETRY)
        tail = ray.open_log_tail("job-1")
        assert b"".join(ray.tail_chunks(tail)) == b"through the proxy\n"
        assert proxy.recorded == [("CONNECT", url.split("/")[2])]
        assert proxy.authorizations == ["Basic cmF5cG9kOnRhaWwtcHJveHktcGE1NXdvcmQ="]
    # Inside the tunnel, the upgrade is the one a direct connection sends.
    assert seen[0].request.startswith(b"GET /api/jobs/job-1/logs/tail HTTP/1.1\r\n")
    assert "proxy-authorization" not in seen[0].headers


def test_a_proxy_that_refuses_the_tails_connect_is_a_lasting_error_naming_it_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with (
        ForwardProxy(credentials=("raypod", "tail-proxy-pa55word"), refuse_connect=True) as refusing,
        ws_server(lambda conversation: None) as (url, _seen),
    ):
        monkeypatch.setenv("HTTP_PROXY", refusing.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        ray = RayJobsClient.connect(url.split("/api/")[0], retry=NO_RETRY)
        with pytest.raises(RayApiError) as caught:
            ray.open_log_tail("job-1")
        # The server still waits for a connection: end it.
        socket.create_connection(("127.0.0.1", int(url.split("/")[2].split(":")[1])), timeout=BOUND).close()
    message = str(caught.value)
    assert (
        f"the proxy http://127.0.0.1:{refusing.port} (from HTTP_PROXY) did not connect to {url.split('/')[2]}"
        in message
    )
    assert "403" in message and "tail-proxy-pa55word" not in message
    assert not caught.value.transient  # lasting: live output stops; the job's log is printed at its end
