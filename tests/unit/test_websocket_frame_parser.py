"""raypod's WebSocket frame parser (``raypod.websocket.FrameParser``), property-tested in memory:
every payload and control frame in order however the bytes are cut, and any bytes met with data or
a protocol error in bounded memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from raypod.websocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    MAX_CONTROL,
    PING,
    TEXT,
    Control,
    FrameParser,
    WebSocketProtocolError,
    close_payload,
)
from tests.support.websocket_frames import frame

# -- the frame parser, property-tested -------------------------------------------------------------
messages = st.lists(
    st.tuples(st.sampled_from([TEXT, BINARY]), st.lists(st.binary(max_size=300), min_size=1, max_size=4)),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(messages, st.lists(st.binary(max_size=MAX_CONTROL), max_size=6), st.lists(st.integers(1, 400), max_size=20))
def test_the_parser_gives_every_payload_and_control_frame_in_order_however_the_bytes_are_cut(
    parts: list[tuple[int, list[bytes]]], pings: list[bytes], cuts: list[int]
) -> None:
    stream = b""
    expected_data = b""
    expected_pings: list[bytes] = []
    for index, (opcode, fragments) in enumerate(parts):
        for number, fragment in enumerate(fragments):
            stream += frame(opcode if number == 0 else CONTINUATION, fragment, fin=number == len(fragments) - 1)
            expected_data += fragment
            if index < len(pings) and number == 0:
                # A control frame may come between the fragments of a message.
                stream += frame(PING, pings[index])
                expected_pings.append(pings[index])
    stream += frame(CLOSE, close_payload(1000))
    parser = FrameParser()
    data, controls, position = b"", [], 0
    # Fed as views of one reused buffer, as WebSocket.chunks() feeds it: nothing may alias it.
    buffer = bytearray(max([*cuts, len(stream)]))
    for cut in [*cuts, len(stream)]:
        piece, position = stream[position : position + cut], position + cut
        buffer[: len(piece)] = piece
        events = parser.feed(memoryview(buffer)[: len(piece)]) if piece else []
        buffer[:] = b"\xee" * len(buffer)
        for event in events:
            if isinstance(event, Control):
                controls.append(event)
            else:
                assert isinstance(event, bytes)
                data += event
        if parser.closed:
            break
    assert data == expected_data
    assert [c.payload for c in controls if c.opcode == PING] == expected_pings
    assert controls[-1] == Control(CLOSE, close_payload(1000))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=10))
def test_the_parser_meets_any_bytes_with_data_or_a_protocol_error_and_bounded_memory(reads: list[bytes]) -> None:
    parser = FrameParser(max_frame=4096)
    try:
        for data in reads:
            parser.feed(data)
            assert len(parser._pending) <= 10 + MAX_CONTROL + 2
    except WebSocketProtocolError as error:
        assert str(error)
