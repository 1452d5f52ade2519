"""Which live source the log follower reads (raypod/logs.py ``LogFollower``), on a fake dashboard:
the state API's stream once the job runs, Ray's tail while it is PENDING (handing over at its first
bytes), the tail again when the stream is refused or keeps failing, and an end when neither works."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from raypod.errors import RayApiError
from raypod.logs import PENDING_TAIL_FOR, STREAM_TRIES, LineEcho, LiveLog, LogFollower
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
    """The four calls the follower makes; each open takes the next scripted answer (a Connection, or
    an error to raise). Past the script, every open is refused, so a looping follower shows up."""

    def __init__(self, tails: list[Connection | Exception], streams: list[Connection | Exception]) -> None:
        self.tails, self.streams = tails, streams
        self.opened: list[str] = []
        self.stream_nodes: list[str | None] = []
        self.live: list[Connection] = []
        #: The answers of get_job, in order (a JobInfo, or an error to raise).
        self.answers: list[JobInfo | Exception] = []

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
        answer = self.answers.pop(0) if self.answers else refused(500)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def open_log_stream(self, submission_id: str, node_id: str | None = None, **_: object) -> Connection:
        self.opened.append("stream")
        self.stream_nodes.append(node_id)
        return self._next(self.streams)

    def stream_chunks(self, response: Connection) -> Iterator[bytes]:
        yield from self._chunks(response)

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
    # stop() shuts a real stream's socket down; a fake one is told directly.
    monkeypatch.setattr("raypod.logs.abort_stream", Connection.abort)


def follow(sources: FakeSources, first: JobInfo) -> tuple[LiveLog, io.StringIO, list[str]]:
    out = io.StringIO()
    heard: list[str] = []
    live = LiveLog(sources, LineEcho(out), on_output=lambda: heard.append("output"))  # type: ignore[arg-type]
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
    """The follower's thread ended by itself (neither source usable)."""
    assert live.follower is not None
    live.follower._thread.join(JOIN)
    return not live.follower._thread.is_alive()


def tail_ended(live: LiveLog) -> None:
    """Ray's tail closed normally (the job ended); the follower waits for the next poll or stop."""
    follower = live.follower
    assert follower is not None
    until(lambda: follower.tail_ended)
    live.stop()


def test_a_running_job_is_followed_through_the_stream_alone() -> None:
    sources = FakeSources(tails=[], streams=[Connection([b"one\r\n", b"two\n"], hold=True)])
    live, out, heard = follow(sources, job("RUNNING", NODE))
    until(lambda: "two" in out.getvalue())
    live.stop()

    assert sources.opened == ["stream"]
    assert sources.stream_nodes == [NODE]
    assert out.getvalue() == "[job] one\n[job] two\n"
    assert heard == ["output", "output"]


def test_a_pending_job_is_followed_through_the_tail_until_its_first_bytes_then_the_stream() -> None:
    tail = Connection([b"Running entrypoint\n", b"never read\n"], hold=True)
    stream = Connection([b"Running entrypoint\n", b"tick\n"], hold=True)
    sources = FakeSources(tails=[tail], streams=[stream])
    sources.answers = [job("RUNNING", NODE)]
    live, out, _heard = follow(sources, job("PENDING"))
    until(lambda: "tick" in out.getvalue())
    live.stop()

    assert sources.opened == ["tail", "get_job", "stream"]
    assert tail.aborted.is_set(), "the tail is closed once the stream takes over"
    # The stream resends the log from its start: each line is still shown once.
    assert out.getvalue() == "[job] Running entrypoint\n[job] tick\n"


def test_an_older_ray_without_the_stream_is_followed_through_the_tail() -> None:
    sources = FakeSources(tails=[Connection([b"a\n", b"b\n"])], streams=[refused(404)])
    live, out, _heard = follow(sources, job("RUNNING", NODE))
    tail_ended(live)

    assert sources.opened == ["stream", "tail"]
    assert out.getvalue() == "[job] a\n[job] b\n"


def test_a_stream_that_keeps_breaking_without_a_byte_gives_way_to_the_tail() -> None:
    sources = FakeSources(tails=[Connection([b"a\n"])], streams=[broken() for _ in range(STREAM_TRIES)])
    live, out, _heard = follow(sources, job("RUNNING", NODE))
    tail_ended(live)

    assert sources.opened == ["stream"] * STREAM_TRIES + ["tail"]
    assert out.getvalue() == "[job] a\n"


def test_a_stream_that_answers_nothing_again_and_again_gives_way_to_the_tail() -> None:
    sources = FakeSources(tails=[Connection([b"a\n"])], streams=[Connection([]) for _ in range(STREAM_TRIES)])
    live, _out, _heard = follow(sources, job("RUNNING", NODE))
    tail_ended(live)

    assert sources.opened == ["stream"] * STREAM_TRIES + ["tail"]


def test_a_stream_that_breaks_after_output_reconnects_and_resent_bytes_are_no_new_output() -> None:
    first = Connection([b"a\n"])
    again = Connection([b"a\n", b"b\n"], hold=True)
    sources = FakeSources(tails=[], streams=[broken(), first, again])
    live, out, heard = follow(sources, job("RUNNING", NODE))
    until(lambda: "b" in out.getvalue())
    live.stop()

    assert sources.opened == ["stream", "stream", "stream"]
    assert out.getvalue() == "[job] a\n[job] b\n"
    assert heard == ["output", "output"]  # "a" resent by the reconnect was not heard again


def test_when_neither_source_is_usable_the_follower_ends_by_itself() -> None:
    sources = FakeSources(tails=[refused(400)], streams=[refused(404)])
    live, out, _heard = follow(sources, job("RUNNING", NODE))
    assert ended(live)

    assert sources.opened == ["stream", "tail"]
    assert out.getvalue() == ""


def test_a_tail_that_stops_while_the_job_runs_on_hands_over_to_the_stream() -> None:
    sources = FakeSources(
        tails=[Connection([])],  # closes at once, as Ray's does at a byte that is not UTF-8
        streams=[broken(), Connection([b"after\n"], hold=True)],
    )
    live, out, _heard = follow(sources, job("PENDING"))
    follower = live.follower
    assert follower is not None
    until(lambda: follower.tail_ended)
    live.observe(job("RUNNING", NODE))  # a poll: the job runs on after the tail's end
    until(lambda: "after" in out.getvalue())
    live.stop()

    assert sources.opened == ["tail", "stream", "stream"]
    assert out.getvalue() == "[job] after\n"


def test_follower_is_not_started_for_a_job_that_ended() -> None:
    sources = FakeSources(tails=[], streams=[])
    live, _out, _heard = follow(sources, job("SUCCEEDED", NODE))
    assert live.follower is None
    assert sources.opened == []


def test_when_a_poll_told_the_driver_node_the_hand_over_asks_ray_nothing() -> None:
    sources = FakeSources(tails=[Connection([b"x\n"], hold=True)], streams=[Connection([b"x\n"], hold=True)])
    follower = LogFollower(sources, "sub-1", LineEcho(io.StringIO()), node_id=NODE, running=False)  # type: ignore[arg-type]
    follower.start()
    until(lambda: bool(sources.stream_nodes))
    follower.stop()

    assert sources.opened == ["tail", "stream"]
    assert sources.stream_nodes == [NODE]


@pytest.mark.parametrize("answer", [job("RUNNING"), refused(503)], ids=["no-node-in-the-answer", "refused"])
def test_without_the_driver_node_the_tail_stays_the_source(answer: JobInfo | Exception) -> None:
    tail = Connection([b"a\n", b"b\n"])
    sources = FakeSources(tails=[tail], streams=[])
    sources.answers = [answer]
    live, out, _heard = follow(sources, job("RUNNING"))  # an answer without the driver's node
    tail_ended(live)

    assert sources.opened == ["tail", "get_job"]
    assert out.getvalue() == "[job] a\n[job] b\n"


def test_at_the_tails_first_bytes_the_watchs_poll_tells_the_node_and_the_stream_takes_over() -> None:
    tail = Connection([b"Running entrypoint\n", b"never read\n"], hold=True)
    stream = Connection([b"Running entrypoint\n", b"tick\n"], hold=True)
    sources = FakeSources(tails=[tail], streams=[stream])
    out, asked = io.StringIO(), []

    def the_watch_polls() -> None:
        # As the runner wires it: the watch wakes and polls; its answer reaches observe from its thread.
        asked.append("poll")
        threading.Thread(target=live.observe, args=(job("RUNNING", NODE),)).start()

    live = LiveLog(sources, LineEcho(out), on_driver_start=the_watch_polls)  # type: ignore[arg-type]
    live.observe(job("PENDING"))
    until(lambda: "tick" in out.getvalue())
    live.stop()

    assert asked == ["poll"]
    assert sources.opened == ["tail", "stream"], "the follower asked Ray nothing itself"
    assert sources.stream_nodes == [NODE]
    assert out.getvalue() == "[job] Running entrypoint\n[job] tick\n"


def test_when_the_watchs_poll_does_not_tell_the_node_in_time_the_follower_asks_ray_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("raypod.logs.NODE_FROM_POLL_WAIT", 0.01)
    sources = FakeSources(tails=[Connection([b"a\n"], hold=True)], streams=[Connection([b"a\n", b"b\n"], hold=True)])
    sources.answers = [job("RUNNING", NODE)]
    out, asked = io.StringIO(), []
    live = LiveLog(sources, LineEcho(out), on_driver_start=lambda: asked.append("poll"))  # type: ignore[arg-type]
    live.observe(job("PENDING"))
    until(lambda: "[job] b" in out.getvalue())
    live.stop()

    assert asked == ["poll"]
    assert sources.opened == ["tail", "get_job", "stream"]


def test_stop_while_waiting_for_the_watchs_poll_ends_the_follower_at_once() -> None:
    tail = Connection([b"a\n"], hold=True)
    sources = FakeSources(tails=[tail], streams=[])
    waiting = threading.Event()
    live = LiveLog(sources, LineEcho(io.StringIO()), on_driver_start=waiting.set)  # type: ignore[arg-type]
    live.observe(job("PENDING"))
    assert waiting.wait(JOIN)
    live.stop()  # joins the thread (bounded): it must not sit out NODE_FROM_POLL_WAIT

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


def test_a_job_pending_past_the_window_has_its_tail_closed_and_the_poll_that_finds_it_running_opens_the_stream() -> (
    None
):
    tail = Connection([], hold=True)
    sources = FakeSources(tails=[tail], streams=[Connection([b"started\n"], hold=True)])
    live, out, clock = pending_follower(sources)

    clock.now = PENDING_TAIL_FOR - 1
    live.observe(job("PENDING"))
    assert not tail.aborted.is_set()
    clock.now = PENDING_TAIL_FOR
    live.observe(job("PENDING"))  # the poll past the window closes the tail
    until(tail.aborted.is_set)
    live.observe(job("PENDING"))  # still waiting: nothing is opened again
    live.observe(job("RUNNING", NODE))
    until(lambda: "started" in out.getvalue())
    live.stop()

    assert sources.opened == ["tail", "stream"]
    assert sources.stream_nodes == [NODE]
    assert out.getvalue() == "[job] started\n"


def test_a_running_answer_without_the_node_reopens_the_tail_after_a_long_pending() -> None:
    first, second = Connection([], hold=True), Connection([b"a\n"])
    sources = FakeSources(tails=[first, second], streams=[])
    sources.answers = [refused(503)]  # the node question at the tail's first bytes: no answer
    live, out, clock = pending_follower(sources)
    clock.now = PENDING_TAIL_FOR
    live.observe(job("PENDING"))
    until(first.aborted.is_set)
    live.observe(job("RUNNING"))
    tail_ended(live)

    assert sources.opened == ["tail", "tail", "get_job"]
    assert out.getvalue() == "[job] a\n"


def test_a_job_that_ends_while_its_tail_is_closed_opens_nothing_and_stop_ends_the_follower() -> None:
    tail = Connection([], hold=True)
    sources = FakeSources(tails=[tail], streams=[])
    live, _out, clock = pending_follower(sources)
    clock.now = PENDING_TAIL_FOR + 5
    live.observe(job("PENDING"))
    until(tail.aborted.is_set)
    live.observe(job("STOPPED"))
    live.stop()

    assert live.follower is not None and not live.follower._thread.is_alive()
    assert sources.opened == ["tail"]


def test_a_running_job_keeps_its_source_however_long_it_runs() -> None:
    stream = Connection([b"a\n"], hold=True)
    sources = FakeSources(tails=[], streams=[stream])
    clock = Ticking()
    live = LiveLog(sources, LineEcho(io.StringIO()), monotonic=clock)  # type: ignore[arg-type]
    live.observe(job("RUNNING", NODE))
    until(lambda: sources.opened == ["stream"])
    clock.now = 10 * PENDING_TAIL_FOR
    live.observe(job("RUNNING", NODE))
    assert not stream.aborted.is_set()
    live.stop()
    assert sources.opened == ["stream"]
