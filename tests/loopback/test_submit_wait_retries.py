"""``submit --wait`` watches a job, so it retries it as ``run`` does (``jobproperties.retries``,
docs/configmap.md#retries): a failed attempt is submitted again as ``<id>-r1``, and the command's
exit code is the last attempt's. A scripted dashboard plays Ray."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.cli import main
from tests.support.hostile import Dashboard, pod_environment
from tests.support.scripted_server import ScriptedServer


def submit_wait(server: ScriptedServer, tmp_path: Path, *more: str) -> int:
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    properties = json.dumps({"retries": 1, "retryDelaySeconds": 0})
    with pod_environment():
        return main(
            [
                "submit",
                "--address",
                server.url,
                "--credentials",
                str(tmp_path),
                "--script",
                str(script),
                "--properties",
                properties,
                "--interval",
                "0.5",
                "--no-follow-logs",
                "--wait",
                *more,
            ]
        )


def test_submit_wait_submits_a_failed_attempt_again_and_ends_with_its_success(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedServer() as server:
        dashboard = Dashboard(server, tmp_path)
        dashboard.script("poll", "FAILED", "SUCCEEDED")  # attempt 1 fails, attempt 2 succeeds

        code = submit_wait(server, tmp_path)

    out, err = capsys.readouterr()
    assert code == 0, err
    first, second = dashboard.accepted
    assert second == f"{first}-r1"
    assert "attempt 2 of 2" in err, err
    assert out.splitlines()[0] == first


def test_submit_wait_ends_failed_once_every_attempt_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedServer() as server:
        dashboard = Dashboard(server, tmp_path)
        dashboard.script("poll", "FAILED")

        code = submit_wait(server, tmp_path)

    _, err = capsys.readouterr()
    assert code == 1, err
    first, second = dashboard.accepted
    assert second == f"{first}-r1"
