"""How the log follower reads Ray's tail (raypod/logs.py ``LogFollower``), on a fake dashboard: the
tail alone (never the state API's follow stream, which Ray keeps open after its client has gone),
opened again after a break, closed for a long PENDING, and an end with a warning when it cannot go on."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from raypod.errors import RayApiError
from raypod.logs import PENDING_TAIL_FOR, LineEcho, LiveLog
from raypod.ray import JobInfo

#: Bounds every wait for the follower's thread (it never takes long: nothing here sleeps).
JOIN = 10.0
NODE = "ab" * 28


@dataclass
class Connection:
    """One answer of the fake dashboard: its chunks, then either an end or a hold until aborted."""

    chunks: list[bytes]
    hold: bool = False
    aborted: threading.Event = field(default_factory=threading.Event)

    def abort(self) -> None:
        self.aborted.set()


class FakeSources:
    """The calls a follower could make; each tail opened takes the next scripted answer (a Connection,
    or an error to raise). Past the script, every open is refused, so a looping follower shows up;
    any other call is recorded, so one the follower must not make shows up too."""

    def __init__(self, tails: list[Connection | Exception]) -> None:
        self.tails = tails
        self.opened: list[str] = []
        self.live: list[Connection] = []

    def _next(self, script: list[Connection | Exception]) -> Connection:
        answer = script.pop(0) if script else refused(410)
        if isinstance(answer, Exception):
            raise answer
        self.live.append(answer)
        return answer

    def open_log_tail(self, submission_id: str, on_socket: Callable[[Connection], None] | None = None) -> Connection:
        self.opened.append("tail")
        connection = self._next(self.tails)
        if on_socket is not None:
            on_socket(connection)  # as the real client does: the follower can abort it
        return connection

    def tail_chunks(self, tail: Connection) -> Iterator[bytes]:
        yield from self._chunks(tail)

    def get_job(self, submission_id: str, **_: object) -> JobInfo:
        self.opened.append("get_job")
        raise refused(500)

    def open_log_stream(self, submission_id: str, *_: object, **__: object) -> Connection:
        self.opened.append("stream")
        raise refused(500)

    @staticmethod
    def _chunks(connection: Connection) -> Iterator[bytes]:
        for chunk in connection.chunks:
            if connection.aborted.is_set():
                raise RayApiError("GET", "/live", None, "aborted")
            yield chunk
        if connection.hold:
            connection.aborted.wait(JOIN)
            raise RayApiError("GET", "/live", None, "aborted")


def refused(status: int) -> RayApiError:
    return RayApiError("GET", "/live", status, "refused")


def broken() -> RayApiError:
    return RayApiError("GET", "/live", None, "connection reset")


def job(status: str, node: str | None = None) -> JobInfo:
    return JobInfo("sub-1", status, driver_node_id=node)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def fake_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("raypod.logs._RECONNECT_WAIT", 0.0)


def follow(sources: FakeSources, first: JobInfo) -> tuple[LiveLog, io.StringIO, list[str]]:
    out = io.StringIO()
    heard: list[str] = []
    live = LiveLog(sources, LineEcho(out), on_output=lambda _piece: heard.append("output"))  # type: ignore[arg-type]
    live.observe(first)
    return live, out, heard


def until(condition: Callable[[], bool]) -> None:
    """Wait, bounded, for the follower's thread to get somewhere."""
    for _ in range(int(JOIN * 100)):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("the follower never got there")


def ended(live: LiveLog) -> bool:
    """The follower's thread ended by itself (the tail cannot go on)."""
    assert live.follower is not None
    live.follower._thread.join(JOIN)
    return not live.follower._thread.is_alive()


def tail_ended(live: LiveLog) -> None:
    """Ray's tail closed normally (the job ended); the follower waits for the next poll or stop."""
    follower = live.follower
    assert follower is not None
    until(lambda: follower.tail_ended)
    live.stop()


def test_a_running_job_is_followed_through_the_tail_alone() -> None:
    sources = FakeSources(tails=[Connection([b"one\n", b"two\n"])])
    live, out, heard = follow(sources, job("RUNNING", NODE))
    tail_ended(live)

    assert sources.opened == ["tail"]
    assert out.getvalue() == "[job] one\n[job] two\n"
    assert heard == ["output", "output"]


def test_the_tails_clean_end_is_told_so_the_watch_polls_at_once() -> None:
    ends: list[str] = []
    sources = FakeSources(tails=[Connection([b"a\n"])])
    live = LiveLog(sources, LineEcho(io.StringIO()), on_end=lambda: ends.append("end"))  # type: ignore[arg-type]
    live.observe(job("RUNNING", NODE))
    tail_ended(live)

    assert ends == ["end"]


def test_at_the_tails_first_bytes_of_a_pending_job_the_watch_is_asked_for_one_poll() -> None:
    sources = FakeSources(tails=[Connection([b"Running entrypoint\n", b"tick\n"], hold=True)])
    out, asked = io.StringIO(), []
    live = LiveLog(sources, LineEcho(out), on_driver_start=lambda: asked.append("poll"))  # type: ignore[arg-type]
    live.observe(job("PENDING"))
    until(lambda: "tick" in out.getvalue())
    live.stop()

    assert asked == ["poll"]
    assert sources.opened == ["tail"], "the follower asked Ray nothing itself"
    assert out.getvalue() == "[job] Running entrypoint\n[job] tick\n"


def test_a_job_a_poll_found_running_needs_no_poll_at_the_tails_first_bytes() -> None:
    sources = FakeSources(tails=[Connection([b"a\n"])])
    asked: list[str] = []
    live = LiveLog(sources, LineEcho(io.StringIO()), on_driver_start=lambda: asked.append("poll"))  # type: ignore[arg-type]
    live.observe(job("RUNNING", NODE))
    tail_ended(live)

    assert asked == []


def test_a_tail_that_breaks_after_output_reconnects_and_resent_bytes_are_no_new_output() -> None:
    first = Connection([b"a\n"], hold=True)
    again = Connection([b"a\n", b"b\n"])
    sources = FakeSources(tails=[broken(), first, again])
    live, out, heard = follow(sources, job("RUNNING", NODE))
    until(lambda: "a" in out.getvalue())
    first.abort()  # the connection breaks
    tail_ended(live)

    assert sources.opened == ["tail", "tail", "tail"]
    assert out.getvalue() == "[job] a\n[job] b\n"
    assert heard == ["output", "output"]  # "a" resent by the reconnect was not heard again


def test_a_refused_tail_ends_the_follower_with_a_warning_and_nothing_else_is_opened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sources = FakeSources(tails=[refused(400)])
    live, out, _heard = follow(sources, job("RUNNING", NODE))
    assert ended(live)

    assert sources.opened == ["tail"]
    assert out.getvalue() == ""
    assert "not shown live" in caplog.text


def test_a_tail_that_stops_while_the_job_runs_on_ends_live_output_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sources = FakeSources(tails=[Connection([b"before\n"])])  # closes, as Ray's does at a byte that is not UTF-8
    live, out, _heard = follow(sources, job("RUNNING", NODE))
    follower = live.follower
    assert follower is not None
    until(lambda: follower.tail_ended)
    live.observe(job("RUNNING", NODE))  # a poll: the job runs on after the tail's end
    assert ended(live)

    assert sources.opened == ["tail"]
    assert out.getvalue() == "[job] before\n"
    assert "no longer shown live" in caplog.text


def test_follower_is_not_started_for_a_job_that_ended() -> None:
    sources = FakeSources(tails=[])
    live, _out, _heard = follow(sources, job("SUCCEEDED", NODE))
    assert live.follower is None
    assert sources.opened == []


def test_stop_ends_a_held_tail_at_once() -> None:
    tail = Connection([b"a\n"], hold=True)
    sources = FakeSources(tails=[tail])
    live, out, _heard = follow(sources, job("RUNNING", NODE))
    until(lambda: "a" in out.getvalue())
    live.stop()  # joins the thread (bounded)

    assert tail.aborted.is_set()
    assert live.follower is not None and not live.follower._thread.is_alive()
    assert sources.opened == ["tail"]


# -- a long PENDING: the tail closed until a poll finds the job running ----------------------------
class Ticking:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pending_follower(sources: FakeSources) -> tuple[LiveLog, io.StringIO, Ticking]:
    out, clock = io.StringIO(), Ticking()
    live = LiveLog(sources, LineEcho(out), monotonic=clock)  # type: ignore[arg-type]
    live.observe(job("PENDING"))
    until(lambda: sources.opened == ["tail"])
    return live, out, clock


def test_a_job_pending_past_the_window_has_its_tail_closed_and_the_poll_that_finds_it_running_opens_it_again() -> None:
    tail = Connection([], hold=True)
    sources = FakeSources(tails=[tail, Connection([b"started\n"], hold=True)])
    live, out, clock = pending_follower(sources)

    clock.now = PENDING_TAIL_FOR - 1
    live.observe(job("PENDING"))
    assert not tail.aborted.is_set()
    clock.now = PENDING_TAIL_FOR
    live.observe(job("PENDING"))  # the poll past the window closes the tail
    until(tail.aborted.is_set)
    live.observe(job("PENDING"))  # still waiting: nothing is opened again
    assert sources.opened == ["tail"]
    live.observe(job("RUNNING", NODE))
    until(lambda: "started" in out.getvalue())
    live.stop()

    assert sources.opened == ["tail", "tail"]
    assert out.getvalue() == "[job] started\n"


def test_a_job_that_ends_while_its_tail_is_closed_opens_nothing_and_stop_ends_the_follower() -> None:
    tail = Connection([], hold=True)
    sources = FakeSources(tails=[tail])
    live, _out, clock = pending_follower(sources)
    clock.now = PENDING_TAIL_FOR + 5
    live.observe(job("PENDING"))
    until(tail.aborted.is_set)
    live.observe(job("STOPPED"))
    live.stop()

    assert live.follower is not None and not live.follower._thread.is_alive()
    assert sources.opened == ["tail"]


def test_a_running_job_keeps_its_tail_however_long_it_runs() -> None:
    tail = Connection([b"a\n"], hold=True)
    sources = FakeSources(tails=[tail])
    clock = Ticking()
    live = LiveLog(sources, LineEcho(io.StringIO()), monotonic=clock)  # type: ignore[arg-type]
    live.observe(job("RUNNING", NODE))
    until(lambda: sources.opened == ["tail"])
    clock.now = 10 * PENDING_TAIL_FOR
    live.observe(job("RUNNING", NODE))
    assert not tail.aborted.is_set()
    live.stop()
    assert sources.opened == ["tail"]
