"""``raypod stop --timeout SECONDS``: how long stop waits for Ray to confirm; a job still running
after it exits 1 saying so (docs/cli.md). A scripted dashboard takes the stop and keeps the job
RUNNING; the waits run on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from raypod import commands
from raypod.cli import main
from raypod.jobs import WAIT_POLL
from tests.support.fakes import FakeClock
from tests.support.hostile import Dashboard, pod_environment
from tests.support.scripted_server import Answer, ScriptedServer

TAKEN = Answer(body=b'{"stopped": true}')


@pytest.mark.parametrize("timeout", [3, 7])
def test_stop_waits_for_ray_as_long_as_its_timeout_then_exits_1_saying_the_job_still_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], timeout: int
) -> None:
    clock = FakeClock(limit=120.0)  # a wait that never ends fails the test
    monkeypatch.setattr(commands, "SystemClock", lambda: clock)
    with ScriptedServer() as server:
        dashboard = Dashboard(server, tmp_path)
        dashboard.has("s1")
        dashboard.script("poll", "RUNNING")
        dashboard.script("stop", TAKEN)  # Ray takes the stop, and the job goes on
        with pod_environment():
            code = main(
                ["stop", "s1", "--address", server.url, "--credentials", str(tmp_path), "--timeout", str(timeout)]
            )
        polls = dashboard.count("GET", "/api/jobs/s1")

    out, err = capsys.readouterr()
    assert code == 1, err
    assert out.strip() == "s1: RUNNING"
    assert f"raypod: s1 is still RUNNING after {timeout} s" in err
    # Waited the timeout on the (fake) clock, one poll a WAIT_POLL: not less, not more.
    assert timeout <= clock.elapsed < timeout + WAIT_POLL
    assert polls == timeout / WAIT_POLL + 1
