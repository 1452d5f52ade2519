"""WebSocket frames as a server sends them, for the tests of raypod's client and of its frame parser."""

from __future__ import annotations

from raypod.websocket import encode_frame


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    return encode_frame(opcode, payload, fin=fin)
