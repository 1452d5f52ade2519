"""``submit --working-dir`` of a big directory shows its package being zipped and uploaded to the
dashboard (``PUT /api/packages/``), against a loopback dashboard: on a terminal one line rewritten in
place and wiped at the end (a real pty); without one, occasional plain lines (time driven by an
injected clock), JSON lines under ``--log-format json``. The upload stays streamed: raypod's peak RSS
does not grow with the package (docs/cli.md#output)."""

from __future__ import annotations

import functools
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.measure import run_measured
from raypod.cli import main
from raypod.terminal import TransferProgress
from tests.support.cli import SCRUBBED
from tests.support.hostile import Dashboard
from tests.support.scripted_server import ScriptedServer

MIB = 1024 * 1024


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    with ScriptedServer() as server:
        yield Dashboard(server, tmp_path)


def big_working_dir(root: Path, mib: int) -> Path:
    """A project of ``mib`` MiB that does not compress (so the package is as big)."""
    project = root / "project"
    (project / "data").mkdir(parents=True)
    (project / "train.py").write_text("print('training')\n")
    for index in range(mib // 4):
        (project / "data" / f"part{index}.bin").write_bytes(os.urandom(4 * MIB))
    return project


def submit_argv(dashboard: Dashboard, tmp_path: Path, project: Path) -> list[str]:
    return [
        "submit", "--address", dashboard.server.url, "--credentials", str(tmp_path),
        "--working-dir", str(project), "--script", "train.py",
    ]  # fmt: skip


def uploaded(dashboard: Dashboard) -> int:
    """The bytes of the package the dashboard was sent."""
    (put,) = [seen for seen in dashboard.server.seen if seen.method == "PUT"]
    return len(put.body)


def test_on_a_terminal_zipping_and_uploading_is_one_line_rewritten_then_wiped(
    dashboard: Dashboard, tmp_path: Path
) -> None:
    project = big_working_dir(tmp_path, 12)
    main_side, terminal_side = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    child = subprocess.Popen(
        [sys.executable, "-m", "raypod", *submit_argv(dashboard, tmp_path, project)],
        stdout=subprocess.PIPE,
        stderr=terminal_side,
        env=env,
    )
    os.close(terminal_side)
    shown = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # bounded: the child ends, or the test fails below
        ready, _, _ = select.select([main_side], [], [], 1.0)
        if not ready:
            if child.poll() is not None:
                break
            continue
        try:
            piece = os.read(main_side, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not piece:
            break
        shown += piece
    os.close(main_side)
    assert child.wait(timeout=60) == 0, shown
    assert child.stdout is not None
    stdout = child.stdout.read().decode()
    child.stdout.close()

    text = shown.decode()
    # The progress, wiped at its end; then the status lines, from a clean start of line.
    progress, _, status_lines = text.rpartition("\r\x1b[K")
    assert progress.startswith("\r\x1b[Kzipping --working-dir: "), text[:200]
    assert "\n" not in progress, progress  # one line rewritten in place, never a new one
    assert "\r\x1b[Kuploading _ray_pkg_" in progress and " of 12.0 MiB (" in progress, progress
    assert "\r" not in status_lines.replace("\r\n", "\n") and "SUBMITTED: Submitted to " in status_lines, status_lines
    assert stdout.strip() == dashboard.accepted[0]  # stdout is the id only
    assert uploaded(dashboard) > 12 * MIB


class Ticking:
    """A clock that moves one second each time it is read: the transfer 'takes' as many seconds as
    its progress is asked about, whatever the machine's speed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_without_a_terminal_zipping_and_uploading_print_occasional_lines(
    dashboard: Dashboard,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    log_format: str,
) -> None:
    project = big_working_dir(tmp_path, 12)
    for name in SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("raypod.commands.TransferProgress", functools.partial(TransferProgress, clock=Ticking()))

    code = main([*submit_argv(dashboard, tmp_path, project), "--log-format", log_format])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == dashboard.accepted[0]
    lines = captured.err.splitlines()
    messages = [json.loads(line)["msg"] for line in lines] if log_format == "json" else lines
    assert "\r" not in captured.err
    zipping = [line for line in messages if "zipping --working-dir: " in line]
    uploading = [line for line in messages if "uploading _ray_pkg_" in line]
    # Occasional: a line after the first seconds, then every 30 s, and the end; not one per chunk.
    assert 2 <= len(zipping) < 12 and 3 <= len(uploading) < 60, messages
    assert any(" of 12.0 MiB (" in line for line in zipping), zipping
    assert zipping[-1].endswith("s") and " 12.0 MiB in " in zipping[-1], zipping
    size = uploaded(dashboard) / MIB
    assert any(f" of {size:.1f} MiB (" in line for line in uploading), uploading
    assert f" {size:.1f} MiB in " in uploading[-1], uploading


def test_the_upload_is_streamed_so_peak_memory_stays_far_below_the_package(
    dashboard: Dashboard, tmp_path: Path
) -> None:
    project = big_working_dir(tmp_path, 64)
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}

    usage = run_measured([sys.executable, "-m", "raypod", *submit_argv(dashboard, tmp_path, project)], env=env)

    assert usage.returncode == 0, usage.stderr
    assert uploaded(dashboard) > 64 * MIB
    print(f"raypod's peak RSS submitting a 64 MiB working dir: {usage.peak_rss_kib / 1024:.1f} MiB")
    # raypod alone (its imports) takes about 30 MiB; a package held in memory would add 64 MiB.
    assert usage.peak_rss_kib < 48 * 1024, f"peak RSS {usage.peak_rss_kib / 1024:.1f} MiB"
