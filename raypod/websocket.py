"""A minimal WebSocket client (RFC 6455, client side), over the standard library's sockets.

raypod needs one: Ray's log tail (``/api/jobs/<id>/logs/tail``) is a WebSocket, and it is the
one stream the dashboard ends when the job ends. raypod may not depend on a WebSocket library.

What it does, and what it leaves out on purpose:

- The opening handshake, over plain TCP or TLS (verified against a CA bundle, hostname
  checked), with the caller's headers (auth) and timeouts. No extension and no subprotocol is
  offered, and an answer that picks one anyway is refused. A redirect is not followed.
- Server frames are parsed incrementally (``FrameParser``). Data (text, binary, continuation)
  streams out in pieces as it arrives: a frame is never held whole, so memory stays bounded
  whatever its length. A frame declaring more than ``max_frame`` bytes, a masked server frame,
  reserved bits, unknown opcodes, fragmented or oversized control frames and misplaced
  continuations are protocol errors with a clear message.
- Text payloads are passed on as the UTF-8 bytes they are, not decoded: the reader shows them
  and replaces what does not decode (RFC 6455 would close the connection instead).
- Ping is answered with pong; a close frame is answered with close, then the data ends.
- Every frame the client sends is masked with a fresh key.
- ``abort()`` may be called from any thread: it wakes a reader blocked in ``recv``.

Blocking calls are ``cuttable`` (see raypod.interrupt): SIGTERM ends them in the main thread;
in a worker thread (the log follower) they end by ``abort()``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from raypod.interrupt import cuttable
from raypod.proxies import Proxy
from raypod.safetext import printable

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: The close codes that say the server ended the connection on purpose.
NORMAL_CLOSURE = 1000
NO_STATUS = 1005
#: Control frames carry at most this much (RFC 6455, 5.5).
MAX_CONTROL = 125
#: The largest data frame accepted. Ray sends up to 10 lines (or ~20000 characters) per frame,
#: more only for one longer line; frames stream in pieces, so this bounds nonsense, not memory.
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
#: The most an answer's head (status line and headers) may take.
MAX_HEAD = 64 * 1024
#: How much of a refusal's body is kept for the message.
MAX_REFUSAL_BODY = 8192
#: Read size: bounds what one read holds.
RECV_SIZE = 256 * 1024
#: A frame's first two bytes and the 16-bit length that may follow.
_SHORT_HEAD = struct.Struct(">BBH")


class WebSocketError(Exception):
    """The connection failed or broke. The text never holds a header value."""

    #: Whether trying again would meet the same answer (a refusal, a certificate, a broken server).
    lasting = False

    def __init__(self, message: str, *, lasting: bool | None = None) -> None:
        super().__init__(message)
        if lasting is not None:
            self.lasting = lasting


class WebSocketRefused(WebSocketError):
    """The server answered the upgrade with something other than 101 Switching Protocols."""

    lasting = True

    def __init__(self, status: int, reason: str, body: str, location: str = "") -> None:
        self.status = status
        self.reason = reason
        self.body = body
        self.location = location
        super().__init__(f"HTTP {status} {reason}: the upgrade to a WebSocket was refused")


class WebSocketUnanswered(WebSocketError):
    """The server took the connection but did not answer the upgrade in time."""

    lasting = True


class WebSocketCertificateError(WebSocketError):
    """The server's TLS certificate does not verify."""

    lasting = True


class WebSocketProtocolError(WebSocketError):
    """The server broke RFC 6455: the connection cannot be trusted any further."""

    lasting = True


class WebSocketAborted(WebSocketError):
    """``abort()`` ended the connection."""


@dataclass(frozen=True)
class Control:
    """A control frame (close, ping or pong) and its payload."""

    opcode: int
    payload: bytes


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")  # noqa: S324 - RFC 6455


def mask(payload: bytes, key: bytes) -> bytes:
    """``payload`` XOR the repeated 4-byte ``key`` (masking and unmasking are the same)."""
    size = len(payload)
    if not size:
        return b""
    repeated = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")


def encode_frame(opcode: int, payload: bytes, *, key: bytes | None = None, fin: bool = True) -> bytes:
    """One frame. With ``key`` (always, from a client) it is masked with it."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if key is not None else 0
    size = len(payload)
    if size < 126:
        head = bytes((first, mask_bit | size))
    elif size < 1 << 16:
        head = bytes((first, mask_bit | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + size.to_bytes(8, "big")
    if key is None:
        return head + payload
    return head + key + mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return code.to_bytes(2, "big") + reason.encode("utf-8")[: MAX_CONTROL - 2]


def parse_close(payload: bytes) -> tuple[int, str]:
    """A close frame's code (``NO_STATUS`` when it has none) and reason."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise WebSocketProtocolError("a close frame of one byte (a close code takes two)")
    code = int.from_bytes(payload[:2], "big")
    if code < 1000 or code in (1004, NO_STATUS, 1006, 1015) or 1016 <= code < 3000 or code >= 5000:
        raise WebSocketProtocolError(f"a close frame with the invalid code {code}")
    reason = payload[2:].decode("utf-8", "replace")
    return code, printable(reason)


class FrameParser:
    """Server-to-client frames, parsed as bytes arrive (no I/O here).

    ``feed`` returns, in order, the data that arrived (consecutive data joined into one
    ``bytes``, however the frames or reads cut it) and each complete control frame. A data
    frame's payload is passed on as it comes, so memory holds at most one read and one
    unfinished frame head or control frame (under 140 bytes).
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        #: An unfinished frame head, or an unfinished control frame.
        self._pending = b""
        #: Payload bytes still to come of the current data frame.
        self._remaining = 0
        #: A fragmented message is open: only continuation (and control) frames may come.
        self._in_message = False
        #: The close frame was parsed: nothing may follow it.
        self.closed = False

    def feed(self, data: bytes | memoryview) -> list[bytes | Control]:
        """``data`` may be a view of a buffer the caller reuses: nothing given back refers to it."""
        events: list[bytes | Control] = []
        pieces: list[bytes | memoryview] = []
        if self._pending:
            data, self._pending = self._pending + data, b""
        end = len(data)
        pos = 0
        if self._remaining:
            pos = min(self._remaining, end)
            pieces.append(data[:pos])
            self._remaining -= pos
        if self.closed and pos < end:
            raise WebSocketProtocolError("data after the close frame")
        head = _SHORT_HEAD.unpack_from
        while pos < end:
            if end - pos >= 4 and not self._in_message:
                # The common case, kept to a few steps (a 1 GB log is a million frames): a whole
                # unfragmented text or binary frame of under 64 KiB.
                first, second, size = head(data, pos)
                if (first == 0x81 or first == 0x82) and second <= 126:
                    start = pos + 4
                    if second < 126:
                        start, size = pos + 2, second
                    stop = start + size
                    if stop <= end:
                        pieces.append(data[start:stop])
                        pos = stop
                        continue
            pos, control = self._frame(data, pos, pieces)
            if control is not None:
                if pieces:
                    events.append(b"".join(pieces))
                    pieces = []
                events.append(control)
                if control.opcode == CLOSE:
                    # The last frame: whatever follows in this read is dropped, a later read is an error.
                    self.closed = True
                    break
        if pieces:
            events.append(b"".join(pieces))
        return events

    def _frame(
        self, data: bytes | memoryview, pos: int, pieces: list[bytes | memoryview]
    ) -> tuple[int, Control | None]:
        """Any frame at ``pos``, checked: its data goes to ``pieces``. Returns where the next one
        starts (the end of ``data`` when this one is unfinished), and the frame if it is a control."""
        end = len(data)
        if end - pos < 2:
            self._pending = bytes(data[pos:])
            return end, None
        first, second = data[pos], data[pos + 1]
        if second & 0x80:
            raise WebSocketProtocolError("a masked frame from the server (servers must not mask)")
        size, start = second, pos + 2
        if size == 126:
            start = pos + 4
            if end < start:
                self._pending = bytes(data[pos:])
                return end, None
            size = int.from_bytes(data[pos + 2 : start], "big")
        elif size == 127:
            start = pos + 10
            if end < start:
                self._pending = bytes(data[pos:])
                return end, None
            size = int.from_bytes(data[pos + 2 : start], "big")
        if first & 0x70:
            raise WebSocketProtocolError("reserved bits set in a frame (no extension was agreed)")
        opcode = first & 0x0F
        if opcode >= CLOSE:
            self._check_control(first, size)
            if end - start < size:
                self._pending = bytes(data[pos:])
                return end, None
            return start + size, Control(opcode, bytes(data[start : start + size]))
        if size > self.max_frame:
            raise WebSocketProtocolError(f"a frame of {size} bytes, more than the {self.max_frame} accepted")
        if opcode == CONTINUATION:
            if not self._in_message:
                raise WebSocketProtocolError("a continuation frame without a message to continue")
        elif opcode in (TEXT, BINARY):
            if self._in_message:
                raise WebSocketProtocolError("a new message before the fragmented one ended")
        else:
            raise WebSocketProtocolError(f"a frame with the unknown opcode {opcode}")
        self._in_message = not first & 0x80
        stop = start + size
        if stop > end:
            self._remaining = stop - end
            stop = end
        pieces.append(data[start:stop])
        return stop, None

    @staticmethod
    def _check_control(first: int, size: int) -> None:
        opcode = first & 0x0F
        if opcode not in (CLOSE, PING, PONG):
            raise WebSocketProtocolError(f"a frame with the unknown opcode {opcode}")
        if not first & 0x80:
            raise WebSocketProtocolError("a fragmented control frame")
        if size > MAX_CONTROL:
            raise WebSocketProtocolError(f"a control frame of {size} bytes (at most {MAX_CONTROL})")


@dataclass(frozen=True)
class _Target:
    tls: bool
    host: str
    port: int
    #: The request target: the path and query.
    resource: str

    @classmethod
    def of(cls, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
            raise WebSocketError("the address is not an http(s) or ws(s) URL with a host", lasting=True)
        tls = parts.scheme in ("https", "wss")
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            raise WebSocketError("the address has an invalid port", lasting=True) from None
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(tls, parts.hostname, port, resource)

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.tls else 80
        return host if self.port == default else f"{host}:{self.port}"


class WebSocket:
    """One client connection. Made without I/O, so that ``abort()`` can reach it before ``open()``.

    ``verify``: True (the system's CAs), False (no verification), or a CA bundle file or
    directory, as ``requests`` takes it. ``connect_timeout`` bounds the TCP connect,
    ``handshake_timeout`` each read and write of the TLS handshake and the whole HTTP answer to the
    upgrade (a server that trickles it cannot hold the tail), ``idle_timeout``
    each read after it (None: no limit, for a stream that may stay quiet for hours).

    ``read_size`` bounds one read (the one buffer that every read reuses). ``linger``: after a
    read that did not fill half of it, wait this long before the next.
    A server that sends many small frames (Ray's tail: one per 10 lines, about 1 KB) is then
    read in few large reads rather than one system call and one parse per frame (measured: 11
    µs of CPU per read, 0.47 s per 100 MB read eagerly). The kernel buffers what comes meanwhile.
    """

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        verify: bool | str = True,
        connect_timeout: float | None = 5.0,
        handshake_timeout: float | None = 60.0,
        idle_timeout: float | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        read_size: int = RECV_SIZE,
        linger: float = 0.0,
        what: str = "WebSocket",
        proxy: Proxy | None = None,
    ) -> None:
        self.url = url
        #: The HTTP proxy to tunnel through (CONNECT), as raypod.proxies chose it for ``url``.
        self._proxy = proxy
        self._target = _Target.of(url)
        self._headers = dict(headers or {})
        self._verify = verify
        self._connect_timeout = connect_timeout
        self._handshake_timeout = handshake_timeout
        #: When the answer to the upgrade must be complete (time.monotonic()), once the handshake began.
        self._handshake_ends: float | None = None
        self._idle_timeout = idle_timeout
        self._parser = FrameParser(max_frame)
        self._read_size = read_size
        self._linger = linger
        #: What SIGTERM names when it cuts a blocking call (no header value in it).
        self.what = what
        self._sock: socket.socket | None = None
        self._aborted = threading.Event()
        self._close_sent = False
        self._send_lock = threading.Lock()
        self._early = b""
        #: The server's close code and reason, once its close frame came.
        self.close_code: int | None = None
        self.close_reason = ""

    # -- the handshake ---------------------------------------------------------------------
    def open(self) -> WebSocket:
        """Connect and upgrade; raises WebSocketRefused for any answer but 101."""
        with cuttable(self.what):
            try:
                self._open()
            except BaseException:
                self._close_socket()
                raise
        return self

    def _open(self) -> None:
        target = self._target
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        request = self._request(key)
        address = (target.host, target.port) if self._proxy is None else _proxy_address(self._proxy)
        try:
            sock = socket.create_connection(address, timeout=self._connect_timeout)
        except OSError as error:
            through = f" to the proxy {self._proxy.shown}" if self._proxy is not None else ""
            raise WebSocketError(f"cannot connect{through}: {_os_reason(error)}") from None
        self._sock = sock
        self._raise_if_aborted()
        sock.settimeout(self._handshake_timeout)
        self._handshake_ends = None if self._handshake_timeout is None else time.monotonic() + self._handshake_timeout
        try:
            if self._proxy is not None:
                self._tunnel(sock, self._proxy)
            if target.tls:
                sock = self._tls_context().wrap_socket(sock, server_hostname=target.host)
                self._sock = sock
            sock.sendall(request)
            head, self._early = self._read_head(sock)
        except ssl.SSLCertVerificationError as error:
            raise WebSocketCertificateError(
                f"TLS verification failed ({error.verify_message or error.reason})"
            ) from None
        except TimeoutError:
            self._raise_if_aborted()
            raise WebSocketUnanswered(
                f"no answer to the upgrade within {self._handshake_timeout:g} s "
                "(a proxy that drops the upgrade headers leaves Ray's answer until the job ends)"
            ) from None
        except (OSError, ssl.SSLError) as error:
            self._raise_if_aborted()
            raise WebSocketError(f"the handshake failed: {_os_reason(error)}") from None
        status, reason, fields = _parse_head(head)
        if status != 101:
            body = self._refusal_body(sock, fields)
            raise WebSocketRefused(status, reason, body, fields.get("location", ""))
        self._check_upgrade(fields, key)
        sock.settimeout(self._idle_timeout)

    def _tunnel(self, sock: socket.socket, proxy: Proxy) -> None:
        """Ask the proxy for a tunnel to the target (``CONNECT``), as urllib3 does for ``requests``."""
        target = self._target
        host = f"[{target.host}]" if ":" in target.host else target.host
        lines = [f"CONNECT {host}:{target.port} HTTP/1.1", f"Host: {host}:{target.port}"]
        lines += [f"{name}: {value}" for name, value in proxy.headers().items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace"))
        head, early = self._read_head(sock)
        status, reason, _fields = _parse_head(head)
        if not 200 <= status < 300 or early:
            raise WebSocketError(
                f"the proxy {proxy.shown} (from {proxy.variable}) did not connect to {host}:{target.port} "
                f"(Tunnel connection failed: {status} {printable(reason)[:100]}); let the proxy reach it, "
                "or list its host in NO_PROXY to reach it directly",
                lasting=400 <= status < 500,
            )

    def _request(self, key: str) -> bytes:
        lines = [f"GET {self._target.resource} HTTP/1.1", f"Host: {self._target.host_header}"]
        ours = {"host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}
        for name, value in self._headers.items():
            if name.lower() in ours or name.lower().startswith("sec-websocket-"):
                continue
            if any(c in "\r\n\0" for c in name + value) or ":" in name:
                # Never quoted: the value may be a credential.
                raise WebSocketError("a header holds a line break or NUL; check the credential files", lasting=True)
            lines.append(f"{name}: {value}")
        lines += ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        try:
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise WebSocketError("a header value holds a character outside Latin-1", lasting=True) from None

    def _tls_context(self) -> ssl.SSLContext:
        verify = self._verify
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if isinstance(verify, str):
            if os.path.isdir(verify):
                return ssl.create_default_context(capath=verify)
            return ssl.create_default_context(cafile=verify)
        return ssl.create_default_context()

    def _read_head(self, sock: socket.socket) -> tuple[bytes, bytes]:
        data = b""
        while True:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                return data[:end], data[end + 4 :]
            if len(data) > MAX_HEAD:
                raise WebSocketProtocolError(f"an answer head longer than {MAX_HEAD} bytes")
            chunk = self._recv_in_handshake(sock, RECV_SIZE)
            if not chunk:
                self._raise_if_aborted()
                raise WebSocketError("the server closed the connection before it answered the upgrade")
            data += chunk

    def _recv_in_handshake(self, sock: socket.socket, size: int) -> bytes:
        """One read of the answer to the upgrade, within what is left of the handshake's time."""
        if self._handshake_ends is not None:
            left = self._handshake_ends - time.monotonic()
            if left <= 0:
                raise TimeoutError("the handshake's time is up")
            sock.settimeout(left)
        return sock.recv(size)

    def _refusal_body(self, sock: socket.socket, fields: Mapping[str, str]) -> str:
        """What came with a refusal, bounded: only a declared length is waited for."""
        body = self._early[:MAX_REFUSAL_BODY]
        declared = fields.get("content-length", "").strip()
        wanted = min(int(declared), MAX_REFUSAL_BODY) if declared.isdigit() else 0
        try:
            while len(body) < wanted:
                chunk = self._recv_in_handshake(sock, wanted - len(body))
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass  # the status says enough
        return body.decode("utf-8", "replace")

    def _check_upgrade(self, fields: Mapping[str, str], key: str) -> None:
        if fields.get("upgrade", "").lower() != "websocket":
            raise WebSocketProtocolError("the 101 answer does not upgrade to websocket")
        if "upgrade" not in [token.strip().lower() for token in fields.get("connection", "").split(",")]:
            raise WebSocketProtocolError("the 101 answer lacks 'Connection: Upgrade'")
        if fields.get("sec-websocket-accept", "") != accept_key(key):
            raise WebSocketProtocolError("the 101 answer's Sec-WebSocket-Accept does not match the key sent")
        for offered in ("sec-websocket-extensions", "sec-websocket-protocol"):
            if fields.get(offered):
                raise WebSocketProtocolError(f"the server chose a {offered[len('sec-websocket-') :]} nobody offered")

    # -- data ------------------------------------------------------------------------------
    def chunks(self) -> Iterator[bytes]:
        """The payload bytes of every data frame, in pieces as they arrive.

        Ends after the server's close frame (answered, then ``close_code`` says why); raises
        WebSocketError when the connection ends any other way, WebSocketAborted after
        ``abort()``. The socket is closed when the iteration ends.
        """
        sock = self._sock
        if sock is None:
            raise WebSocketError("the WebSocket is not open")
        # One buffer for every read: reads are views of it, and what is given out is copied from it.
        buffer = bytearray(self._read_size)
        view = memoryview(buffer)
        try:
            data: bytes | memoryview = self._early
            self._early = b""
            while True:
                for event in self._parser.feed(data) if data else ():
                    if isinstance(event, bytes):
                        yield event
                    elif event.opcode == PING:
                        self._send(PONG, event.payload)
                    elif event.opcode == CLOSE:
                        self.close_code, self.close_reason = parse_close(event.payload)
                        self._send_close(self.close_code if self.close_code != NO_STATUS else NORMAL_CLOSURE)
                        return
                if data and len(data) < self._read_size // 2 and self._linger:
                    self._aborted.wait(self._linger)
                data = view[: self._recv(sock, buffer)]
        finally:
            self._close_socket()

    def _recv(self, sock: socket.socket, buffer: bytearray) -> int:
        """Read into ``buffer``; returns how much came."""
        try:
            with cuttable(self.what):
                size = sock.recv_into(buffer)
        except (OSError, ssl.SSLError) as error:
            self._raise_if_aborted()
            raise WebSocketError(f"the connection broke: {_os_reason(error)}") from None
        if not size:
            self._raise_if_aborted()
            raise WebSocketError("the connection ended without a close frame")
        return size

    def send_message(self, payload: bytes, *, text: bool = True) -> None:
        """One whole message, as one masked frame."""
        self._send(TEXT if text else BINARY, payload)

    def close(self, code: int = NORMAL_CLOSURE) -> None:
        """Say goodbye (a close frame), then close the socket without waiting for the answer."""
        try:
            self._send_close(code)
        except WebSocketError:
            pass  # the connection is gone already
        finally:
            self._close_socket()

    def abort(self) -> None:
        """End the connection now, from any thread: a blocked read returns and raises WebSocketAborted."""
        self._aborted.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected, or closed already

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def _send_close(self, code: int) -> None:
        if not self._close_sent:
            self._close_sent = True
            self._send(CLOSE, close_payload(code))

    def _send(self, opcode: int, payload: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise WebSocketError("the WebSocket is not open")
        frame = encode_frame(opcode, payload, key=os.urandom(4))
        try:
            with self._send_lock, cuttable(self.what):
                sock.sendall(frame)
        except (OSError, ssl.SSLError) as error:
            self._raise_if_aborted()
            raise WebSocketError(f"the connection broke: {_os_reason(error)}") from None

    def _raise_if_aborted(self) -> None:
        if self._aborted.is_set():
            raise WebSocketAborted("the WebSocket was aborted")

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _proxy_address(proxy: Proxy) -> tuple[str, int]:
    parts = urlsplit(proxy.url)
    if parts.scheme != "http" or not parts.hostname:
        # A TLS connection to the proxy itself, inside which another TLS runs: not done here.
        raise WebSocketError(f"the proxy {proxy.shown} is not an http:// proxy, which the tail needs", lasting=True)
    return parts.hostname, parts.port or 80


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """The status, the reason phrase and the headers (lower-case names) of an answer's head."""
    status_line, *lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise WebSocketProtocolError("the answer to the upgrade is not HTTP")
    fields: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            fields[name.strip().lower()] = value.strip()
    reason = printable(parts[2] if len(parts) > 2 else "")[:100]
    return int(parts[1]), reason, fields


def _os_reason(error: BaseException) -> str:
    """A short reason, e.g. 'TimeoutError' or 'ConnectionRefusedError: [Errno 111] Connection refused'."""
    text = str(error)
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__
