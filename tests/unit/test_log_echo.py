"""The live echo's bookkeeping, without Ray: each of the job's lines printed once, in order,
whichever pass (the live tail or the upload's read) brought it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raypod.logs import (
    JOB_LINE_PREFIX,
    MAX_LINE,
    BlockSplitter,
    EchoPass,
    LineEcho,
    UniversalNewlines,
)
from tests.support.log_text import universal


# -- the echo's bookkeeping, without Ray ------------------------------------------------
def blocks(data: bytes, sizes: list[int], finish: bool = True) -> Iterator[tuple[int, bytes]]:
    splitter = BlockSplitter()
    start = 0
    for size in sizes:
        yield from splitter.push(data[start : start + size])
        start += size
    yield from splitter.push(data[start:])
    if finish:  # the live stream never ends: only the final pass flushes the last partial line
        yield from splitter.finish()


def test_echo_prints_each_line_once_when_the_upload_pass_takes_over_mid_line() -> None:
    log = b"".join(f"line {i}\r\n".encode() for i in range(50)) + b"a\rb\r\rc\n" + b"no newline at the end"
    out = io.StringIO()
    echo = LineEcho(out)
    follower, upload = EchoPass(echo, object(), translate=False), EchoPass(echo, object(), translate=True)
    # The follower reads the tail's text (universal newlines), cut in the middle of a line, then is cut off.
    text = universal(log)
    for start, end in [(0, 7), (7, 57), (57, 58), (58, 148)]:
        assert follower.push(text[start:end])
    echo.cut_off(follower.owner)
    assert not follower.push(b"late\n")
    # The upload pass reads the file's own bytes again, in other chunk sizes (one cut inside a \r\n).
    for start, end in [(0, 64), (64, 67), (67, 102), (102, 103), (103, len(log))]:
        upload.push(log[start:end])
    upload.finish()
    expected = [f"line {i}" for i in range(50)] + ["a", "b", "", "c", "no newline at the end"]
    assert out.getvalue().splitlines() == [JOB_LINE_PREFIX + line for line in expected]


line_bytes = st.lists(st.sampled_from([b"a", "é".encode(), b"\r", b"\n", b"\r\n", b" "]), max_size=60).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(line_bytes, st.lists(st.integers(0, 60), max_size=8))
def test_the_echo_reads_newlines_as_rays_tail_does_however_the_chunks_fall(data: bytes, cuts: list[int]) -> None:
    newlines = UniversalNewlines()
    translated, position = b"", 0
    for cut in sorted(cuts):
        translated += newlines.push(data[position:cut])
        position = max(position, cut)
    translated += newlines.push(data[position:])
    assert translated == universal(data)


def test_an_upload_pass_after_a_complete_live_pass_prints_nothing_again() -> None:
    log = b"".join(f"line {i}\n".encode() for i in range(1000))
    out = io.StringIO()
    echo = LineEcho(out)
    live = EchoPass(echo, object(), translate=False)
    for start in range(0, len(log), 1000):
        live.push(log[start : start + 1000])
    echo.cut_off(live.owner)
    shown = out.getvalue()
    upload = EchoPass(echo, object(), translate=True)
    for start in range(0, len(log), 4096):
        upload.push(log[start : start + 4096])
    upload.finish()
    assert out.getvalue() == shown
    assert shown.splitlines()[-1] == f"{JOB_LINE_PREFIX}line 999"


def test_an_endless_line_is_printed_in_bounded_pieces() -> None:
    log = b"y" * (3 * MAX_LINE + 10) + b"\nnext\n"
    pieces = list(blocks(log, [1000] * 300))
    assert max(len(block) for _, block in pieces) <= MAX_LINE + 1000
    assert b"".join(block for _, block in pieces) == log
    assert [offset for offset, _ in pieces] == [sum(len(b) for _, b in pieces[:i]) for i in range(len(pieces))]


@pytest.mark.parametrize("enabled", [True, False])
def test_disabled_echo_prints_nothing(enabled: bool) -> None:
    out = io.StringIO()
    LineEcho(out, enabled=enabled).feed(object(), 0, b"a\nb\n")
    assert out.getvalue() == ("[job] a\n[job] b\n" if enabled else "")


def test_echo_keeps_order_with_text_lines_and_replaces_invalid_utf8() -> None:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    echo = LineEcho(out)
    owner = object()
    out.write("status one\n")  # still in the text layer's buffer when the echo writes bytes
    first = "héllo\nwörld\n".encode()
    assert echo.feed(owner, 0, first)
    out.write("status two\n")
    assert echo.feed(owner, len(first), b"bad \xff byte\n")
    out.flush()
    assert raw.getvalue().decode("utf-8").splitlines() == [
        "status one",
        "[job] héllo",
        "[job] wörld",
        "status two",
        "[job] bad \ufffd byte",
    ]
