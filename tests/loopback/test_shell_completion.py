"""``raypod completion bash|zsh``: the script is valid bash, and bash, with it sourced, completes
commands, flags, choices and file names as the parser has them. The real command line prints the
script; a real bash runs it with ``COMP_WORDS`` set as its completion machinery sets them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.cli import raypod


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    completed = raypod("completion", "bash")
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    path = tmp_path_factory.mktemp("completion") / "raypod.bash"
    path.write_text(completed.stdout)
    return path


def complete(script: Path, *words: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for the last of ``words`` (the one being typed) after ``raypod``."""
    program = (
        'source "$1"; shift; COMP_WORDS=(raypod "$@"); COMP_CWORD=$#; '
        '_raypod_complete; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    completed = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "bash", str(script), *words],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    return [line for line in completed.stdout.splitlines() if line]


def test_the_bash_script_is_valid_bash(bash_script: Path) -> None:
    checked = subprocess.run(["bash", "-n", str(bash_script)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    assert "complete -F _raypod_complete raypod" in bash_script.read_text()


def test_a_command_is_completed_from_its_first_letters(bash_script: Path) -> None:
    assert complete(bash_script, "su") == ["submit"]
    assert complete(bash_script, "st") == ["status", "stop"]
    assert "delete" in complete(bash_script, "")


def test_a_flag_of_the_command_is_completed_from_its_first_letters(bash_script: Path) -> None:
    assert complete(bash_script, "submit", "--scr") == ["--script"]
    assert complete(bash_script, "logs", "raypod-x-1", "--fo") == ["--follow"]
    # `raypod --config X` is `raypod run --config X`: run's flags at the first place too.
    assert "--status-file" in complete(bash_script, "--status-f")


def test_flags_hidden_from_the_help_are_not_offered(bash_script: Path) -> None:
    assert complete(bash_script, "submit", "--termination") == []
    assert complete(bash_script, "run", "--termination") == ["--termination-log"]


def test_a_flags_choices_and_a_commands_positional_choices_are_offered(bash_script: Path) -> None:
    assert complete(bash_script, "run", "--exit-codes", "") == ["auto", "posix", "bridge", "job"]
    assert complete(bash_script, "list", "--log-format", "j") == ["json"]
    assert complete(bash_script, "completion", "") == ["bash", "zsh"]


def test_a_path_flag_completes_file_names_and_a_dir_flag_directory_names(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print(1)\n")
    (tmp_path / "tools").mkdir()
    assert complete(bash_script, "submit", "--script", "tr", cwd=tmp_path) == ["train.py"]
    assert complete(bash_script, "submit", "--working-dir", "", cwd=tmp_path) == ["tools"]
    # The script's own arguments, after `--`, are file names too.
    assert complete(bash_script, "submit", "--script", "train.py", "--", "t", cwd=tmp_path) == ["tools", "train.py"]


def test_the_zsh_script_is_the_bash_script_through_bashcompinit(bash_script: Path) -> None:
    completed = raypod("completion", "zsh")
    assert completed.returncode == 0, completed.stderr
    assert "bashcompinit" in completed.stdout
    assert completed.stdout.endswith(bash_script.read_text())


def test_another_shell_is_refused_with_exit_2() -> None:
    completed = raypod("completion", "fish")
    assert completed.returncode == 2
    assert "invalid choice: 'fish'" in completed.stderr
    assert completed.stdout == ""
