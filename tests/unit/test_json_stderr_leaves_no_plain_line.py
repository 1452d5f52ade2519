"""``--log-format json``'s stderr (``raypod.terminal.json_stderr`` and ``json_refusal``): what raypod
does not print itself is a JSON line too: a library's warning, an error that escapes a command (in
its thread or another), argparse's refusal of the command line."""

from __future__ import annotations

import json
import sys
import threading
import warnings
from typing import Any

import pytest

from raypod.cli import main
from raypod.terminal import json_refusal, json_stderr

SECRET = "s3cr3t-t0ken"


def json_objects(text: str) -> list[dict[str, Any]]:
    objects = [json.loads(line) for line in text.splitlines()]
    assert all({"ts", "level", "msg"} <= set(line) for line in objects), text
    return objects


class Stderr:
    """What the test wrote to stderr so far (pytest's capture, which replaces ``sys.stderr``)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text

    def truncate(self, _size: int) -> None:
        self.getvalue()
        self.text = ""


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Stderr:
    return Stderr(capsys)


def test_a_librarys_warning_is_one_json_line_at_warning(stderr: Stderr) -> None:
    with json_stderr(True), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("certificate verification is off", UserWarning, stacklevel=1)

    (line,) = json_objects(stderr.getvalue())
    assert line["level"] == "WARNING"
    assert line["msg"].startswith("UserWarning: certificate verification is off (")


def test_an_error_that_escapes_a_command_is_one_json_line_and_exit_1_without_its_text(stderr: Stderr) -> None:
    with pytest.raises(SystemExit) as leaving, json_stderr(True):
        raise ValueError(f"the token {SECRET} was refused")

    assert leaving.value.code == 1  # as Python's own exit after a traceback
    (line,) = json_objects(stderr.getvalue())
    assert line["level"] == "ERROR" and line["error"] == "ValueError"
    assert "test_json_stderr_leaves_no_plain_line.py" in line["traceback"]  # where it happened
    assert SECRET not in stderr.getvalue()


def test_an_error_in_another_thread_is_one_json_line(stderr: Stderr) -> None:
    def fails() -> None:
        raise RuntimeError(SECRET)

    with json_stderr(True):
        thread = threading.Thread(target=fails)
        thread.start()
        thread.join(timeout=10)

    (line,) = json_objects(stderr.getvalue())
    assert (line["level"], line["error"]) == ("ERROR", "RuntimeError")
    assert SECRET not in stderr.getvalue()


def test_hooks_are_given_back_after_the_command(stderr: Stderr) -> None:
    before = (warnings.showwarning, threading.excepthook)
    with json_stderr(True):
        pass
    assert (warnings.showwarning, threading.excepthook) == before


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["status", "--log-format", "json"], "the following arguments are required: SUBMISSION_ID"),
        (["list", "--log-format=json", "--address"], "argument --address: expected one argument"),
        (["stop", "x", "--log-format", "json", "--timeout", "soon"], "argument --timeout: expected a number"),
        (["submit", "--log-format", "json", "--script", "a.py", "stray"], "unrecognized arguments: stray"),
    ],
)
def test_argparses_refusal_is_one_json_line_at_error_with_the_usage(stderr: Stderr, argv: list[str], said: str) -> None:
    with pytest.raises(SystemExit) as leaving:
        main(argv)

    assert leaving.value.code == 2
    (line,) = json_objects(stderr.getvalue())
    assert line["level"] == "ERROR" and said in line["msg"], line
    assert line["usage"].startswith("usage: raypod")


def test_without_the_flag_in_the_arguments_argparse_speaks_plain_text(stderr: Stderr) -> None:
    # `--log-format` itself refused, or after `--` (the script's): nothing says JSON yet.
    for argv in (["list", "--log-format", "xml"], ["submit", "--bogus", "--", "--log-format", "json"]):
        stderr.truncate(0)
        with pytest.raises(SystemExit):
            main(argv)
        assert stderr.getvalue().startswith("usage: raypod"), stderr.getvalue()


def test_a_refusal_keeps_its_lines_when_json_is_not_asked(stderr: Stderr) -> None:
    with json_refusal(False):
        print("usage: raypod x", file=sys.stderr)
    assert stderr.getvalue() == "usage: raypod x\n"
