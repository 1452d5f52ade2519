"""An address nothing listens on: one progress line for the retries (each one only with -v), then an
error naming the flag or variable the address came from: bad input (exit 2) for ``submit``, which
submitted nothing, exit 1 for the other commands. Loopback only."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.cli import raypod


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released: connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def retry_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "retrying" in line]


@pytest.mark.parametrize(
    ("origin", "flags", "env"),
    [
        ("--address", True, {}),
        ("RAY_ADDRESS", False, {"RAY_ADDRESS": "127.0.0.1:{port}"}),
        ("RAY_API_SERVER_ADDRESS", False, {"RAY_API_SERVER_ADDRESS": "http://127.0.0.1:{port}"}),
    ],
)
def test_a_refused_address_is_one_progress_line_then_bad_input_naming_where_it_came_from(
    tmp_path: Path, origin: str, flags: bool, env: dict[str, str]
) -> None:
    port = closed_port()
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")
    address = ["--address", f"http://127.0.0.1:{port}"] if flags else []

    result = raypod(
        "submit", *address, "--connect-timeout", "3", "--script", str(script),
        env={name: value.format(port=port) for name, value in env.items()},
        timeout=60,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    assert len(retry_lines(result.stderr)) == 1, result.stderr
    assert "retrying for up to 3 s" in result.stderr
    assert f"raypod: bad input: {origin}: cannot reach the Ray dashboard" in result.stderr
    assert "resourceURL" not in result.stderr
    assert len(result.stderr.splitlines()) == 2, result.stderr  # one retry line, one error: no FAILED status line
    assert result.stdout == ""


def test_verbose_shows_each_retry(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")

    result = raypod(
        "submit", "-v", "--address", f"http://127.0.0.1:{closed_port()}", "--connect-timeout", "3",
        "--script", str(script), timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert len(retry_lines(result.stderr)) > 1, result.stderr
    assert "(attempt 2)" in result.stderr


@pytest.mark.parametrize("command", [["list"], ["status", "raypod-train-0123456789ab"], ["logs", "raypod-x-1"]])
def test_the_other_commands_say_how_often_they_retry_and_name_where_the_address_came_from(
    tmp_path: Path, command: list[str]
) -> None:
    port = closed_port()

    result = raypod(*command, "--credentials", str(tmp_path), env={"RAY_ADDRESS": f"127.0.0.1:{port}"}, timeout=60)

    assert result.returncode == 1, result.stderr  # as `ray job`: the address may come back, it is not bad input
    assert retry_lines(result.stderr) == [line for line in result.stderr.splitlines() if "at most 2 more times" in line]
    assert len(retry_lines(result.stderr)) == 1, result.stderr
    assert result.stderr.splitlines()[-1].endswith("(the address from RAY_ADDRESS: is a Ray dashboard there?)")
    assert len(result.stderr.splitlines()) == 2, result.stderr
    assert result.stdout == ""
