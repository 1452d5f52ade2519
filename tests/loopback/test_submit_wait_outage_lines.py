"""``submit --wait`` through a dashboard outage: one line when it goes away, one when it comes back
(each failed check only with -v), and the job's end as usual. The real command line; a scripted
dashboard plays Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import raypod
from tests.support.hostile import Dashboard
from tests.support.scripted_server import ScriptedServer

#: Status checks answered 503 in a row, in the middle of the job.
OUTAGE = ("RUNNING", *(["503"] * 8), "RUNNING", "SUCCEEDED")


def submit_wait(server: ScriptedServer, tmp_path: Path, *more: str) -> tuple[int, str]:
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    result = raypod(
        "submit", "--address", server.url, "--credentials", str(tmp_path), "--script", str(script),
        "--interval", "0.5", "--no-follow-logs", "--wait", *more,
        timeout=120,
    )  # fmt: skip
    return result.returncode, result.stderr


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_an_outage_during_wait_is_one_line_going_and_one_coming_back(tmp_path: Path, verbose: bool) -> None:
    with ScriptedServer() as server:
        dashboard = Dashboard(server, tmp_path)
        dashboard.script("poll", *OUTAGE)

        code, err = submit_wait(server, tmp_path, *(["-v"] if verbose else []))

    assert code == 0, err
    warnings = [line for line in err.splitlines() if " WARNING " in line]
    assert len([line for line in warnings if "stopped answering" in line]) == 1, err
    assert len([line for line in warnings if "answers again, after" in line]) == 1, err
    assert len(warnings) == 2, err
    failed_checks = [line for line in err.splitlines() if "failed" in line and "503" in line]
    assert (len(failed_checks) > 2) is verbose, err
