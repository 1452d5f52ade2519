"""The help and the parser as a person meets them: one list of commands, one spelling of
"examples:", every example a command a shell and raypod accept, no abbreviated flags, and the
flags that only mean something with ``submit --wait`` refused without it. The real command line,
as child processes; the exhaustive checks parse in-process with the same parser."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from raypod.cli import build_parser, parse_command_line
from raypod.completion import subcommands
from raypod.runner import DEFAULT_STATUS_TIMEOUT
from tests.support.cli import raypod
from tests.support.helpers import REPO
from tests.support.hostile import Dashboard
from tests.support.scripted_server import ScriptedServer

COMMANDS = list(subcommands(build_parser()))
#: The commands that take a job's id.
WITH_ID = ("status", "logs", "stop", "delete")
#: What each command needs to parse at all (an abbreviated flag is then the only mistake).
MINIMAL = {
    "status": ["raypod-x-1"],
    "logs": ["raypod-x-1"],
    "stop": ["raypod-x-1"],
    "delete": ["raypod-x-1"],
    "validate": ["--config", "cm"],
    "completion": ["bash"],
}


def help_text(*command: str) -> str:
    completed = raypod(*command, "--help")
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def every_help() -> dict[str, str]:
    return {"raypod": help_text(), **{name: help_text(name) for name in COMMANDS}}


def example_commands(text: str) -> list[str]:
    """The raypod commands of a help's examples, each with its continuation lines joined as a shell
    joins them (a backslash before the line's end), environment assignments in front left on."""
    lines = text.split("\n")
    examples = lines[next(i for i, line in enumerate(lines) if line == "examples:") + 1 :]
    commands: list[str] = []
    joined = ""
    for line in examples:
        if not joined and not re.search(r"\braypod\b", line.split("#")[0]):
            continue
        joined += line.strip()
        if joined.endswith("\\"):
            joined = joined[:-1] + " "
            continue
        commands.append(joined)
        joined = ""
    assert not joined, f"a continuation with no next line: {joined!r}"
    return commands


def raypod_words(command: str) -> list[str]:
    """The words raypod's parser gets from ``command``, as the shell splits it: after ``raypod``,
    up to the first pipe or redirection (shlex with the shell's punctuation)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = list(lexer)
    if words[0] == "eval":  # eval "$(raypod completion bash)": the words inside the quotes
        return raypod_words(words[1].removeprefix("$(").removesuffix(")"))
    start = next(i for i, word in enumerate(words) if word == "raypod") + 1
    end = next((i for i, word in enumerate(words) if i >= start and set(word) <= set("|&;<>()")), len(words))
    return words[start:end]


# -- one list of commands, one spelling, every exit code -----------------------------------------------------
def test_the_top_level_help_lists_each_command_once_delete_and_completion_included() -> None:
    text = help_text()
    for name in COMMANDS:
        listed = [line for line in text.splitlines() if re.match(rf"^ {{2,}}{name}\b", line)]
        assert len(listed) == 1, (name, listed)
    assert "delete" in COMMANDS and "completion" in COMMANDS
    assert "\ncommands:" not in text


def test_every_help_spells_examples_the_same_and_has_some() -> None:
    for name, text in every_help().items():
        assert "examples:" in text, name
        assert "example:" not in text, name


def test_the_top_level_help_names_130_for_ctrl_c_and_143_for_sigterm_as_the_docs_do() -> None:
    text = " ".join(help_text().split())
    assert "130 interrupted by Ctrl-C (SIGINT)" in text
    assert "143 terminated by SIGTERM" in text
    docs = " ".join((REPO / "docs" / "cli.md").read_text(encoding="utf-8").split())
    assert re.search(r"130[^.]*Ctrl-C|Ctrl-C[^.]*130", docs) and "143 (SIGTERM)" in docs


# -- the examples ----------------------------------------------------------------------------------------------
def test_every_example_of_every_help_is_a_command_the_shell_and_raypod_accept() -> None:
    parser = build_parser()
    checked = 0
    for name, text in every_help().items():
        for command in example_commands(text):
            # A backslash swallowed by Python's string (not shown) leaves a run of blanks in the line.
            assert "   " not in command, (name, command)
            words = raypod_words(command)
            try:
                args = parse_command_line(parser, words)
            except SystemExit as leaving:
                raise AssertionError(f"raypod {name} --help: raypod refuses {command!r}") from leaving
            if name != "raypod":
                assert args.command == name, command
            checked += 1
    assert checked >= 2 * len(COMMANDS)


def test_the_example_reader_sees_a_swallowed_continuation() -> None:
    broken = "examples:\n  python -m raypod submit --script t.py --exclude 'data/'       --wait\n"
    assert "   " in example_commands(broken)[0]
    joined = "examples:\n  python -m raypod submit --script t.py \\\n      --wait | tee out\n"
    assert raypod_words(example_commands(joined)[0]) == ["submit", "--script", "t.py", "--wait"]


# -- what submit's help shows ------------------------------------------------------------------------------
def test_submit_help_hides_the_pod_only_flags_that_run_shows_and_submit_still_accepts_them(tmp_path: Path) -> None:
    submit, run = help_text("submit"), help_text("run")
    for flag in ("--namespace", "--termination-log"):
        assert flag not in submit, flag
        assert flag in run, flag
    completed = raypod(
        "submit", "--script", str(tmp_path / "absent.py"), "--namespace", "ns", "--termination-log", "",
        env={"RAY_API_SERVER_ADDRESS": ""},
    )  # fmt: skip
    assert completed.returncode == 2
    assert "unrecognized" not in completed.stderr and "bad input" in completed.stderr, completed.stderr


@pytest.mark.parametrize("command", WITH_ID)
def test_submission_id_is_described_in_every_command_that_takes_one(command: str) -> None:
    text = " ".join(help_text(command).split())
    assert "SUBMISSION_ID the job's submission id, as `submit` prints it" in text


# -- no abbreviations ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "abbreviated"),
    [
        (["submit", "--scr", "train.py"], "--scr"),
        (["status", "raypod-x-1", "--js"], "--js"),
        (["--vers"], "--vers"),
        (["--conf", "cm"], "--conf"),  # run, the default command
    ],
)
def test_an_abbreviated_flag_is_refused_with_exit_2(argv: list[str], abbreviated: str) -> None:
    completed = raypod(*argv)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert f"unrecognized arguments: {abbreviated}" in completed.stderr
    assert completed.stdout == ""


def test_no_long_flag_of_any_command_is_taken_from_a_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    tried = 0
    for name, sub in subcommands(parser).items():
        flags = [flag for action in sub._actions for flag in action.option_strings if flag.startswith("--")]
        for flag in flags:
            prefix = flag[:-1]
            if any(other != flag and other.startswith(prefix) for other in flags) or prefix == "--":
                continue
            with pytest.raises(SystemExit) as leaving:
                parse_command_line(parser, [name, *MINIMAL.get(name, []), prefix])
            assert leaving.value.code == 2
            assert f"unrecognized arguments: {prefix}" in capsys.readouterr().err, (name, flag)
            tried += 1
    assert tried > 40


# -- the flags of submit --wait --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "given", [["--interval", "3"], ["--status-timeout", "30"], ["--stop-on-interrupt"]], ids=lambda g: g[0]
)
def test_a_flag_of_wait_without_wait_is_an_argparse_error(tmp_path: Path, given: list[str]) -> None:
    script = tmp_path / "train.py"
    script.write_text("print(1)\n")
    completed = raypod("submit", "--script", str(script), *given, "--address", "http://127.0.0.1:9")
    assert completed.returncode == 2
    assert completed.stderr.startswith("usage: raypod submit"), completed.stderr
    assert f"raypod submit: error: argument {given[0]}: only with --wait" in completed.stderr
    assert completed.stdout == ""


def test_submit_wait_status_timeout_reports_unknown_once_the_dashboard_is_silent_that_long(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    with ScriptedServer() as server:
        dashboard = Dashboard(server, tmp_path)
        dashboard.script("poll", "RUNNING", "503")  # then 503 for ever
        completed = raypod(
            "submit", "--address", server.url, "--credentials", str(tmp_path), "--script", str(script),
            "--no-follow-logs", "--wait", "--interval", "0.5", "--status-timeout", "1",
            timeout=120,
        )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    assert "UNKNOWN" in completed.stderr


def test_submit_and_run_give_status_timeout_the_same_meaning_and_default() -> None:
    submit, run = (" ".join(help_text(name).split()) for name in ("submit", "run"))
    meaning = "how long the dashboard may stay unreachable before the job is reported UNKNOWN"
    assert meaning in submit and meaning in run
    assert f"statusTimeoutSeconds, else {DEFAULT_STATUS_TIMEOUT:g})" in submit
    assert f"and {DEFAULT_STATUS_TIMEOUT:g} elsewhere)" in run


def test_every_flag_docs_cli_md_names_is_one_the_parser_has() -> None:
    parser = build_parser()
    flags = {flag for sub in [parser, *subcommands(parser).values()] for a in sub._actions for flag in a.option_strings}
    docs = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", docs))
    # A script's own words (the Bridge convention's, an example's), and the abbreviation refused.
    not_raypods = {"--kwargs", "--epochs", "--scr"}
    assert named - not_raypods <= flags, sorted(named - not_raypods - flags)
    assert {"--status-timeout", "--s3-credentials", "--interval"} <= named
    for name in subcommands(parser):
        assert f"`{name}" in docs, name
