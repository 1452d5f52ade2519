"""``raypod completion bash|zsh``: a shell completion script generated from the parser itself, so
it completes exactly the commands and flags ``--help`` shows, with no runtime dependency.

The script is plain bash; zsh runs it through its own ``bashcompinit``. It completes the command
names, each command's flags, a flag's choices, file names after a flag that takes a file, and
directory names after one that takes a directory. Flags hidden from the help are not offered.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from raypod import __version__

#: The name the script completes: the console script an install makes.
PROGRAM = "raypod"
#: The shell function the script defines.
FUNCTION = "_raypod_complete"
#: What a flag name or a choice may hold to be written into the script unquoted.
_PLAIN_WORD = re.compile(r"^[-\w.]+$")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's own parser, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _shown(action: argparse.Action) -> bool:
    return action.help != argparse.SUPPRESS


def _plain(word: str) -> str:
    if not _PLAIN_WORD.match(word):
        raise ValueError(f"{word!r} cannot be written into a completion script unquoted")
    return word


def _flags(parser: argparse.ArgumentParser) -> list[str]:
    return [_plain(flag) for action in parser._actions if _shown(action) for flag in action.option_strings]


def _value_kind(action: argparse.Action) -> str | None:
    """How the word after the flag is completed: ``choices:a b``, ``dirs``, ``files``, ``none``; or
    None when the flag takes no value."""
    if action.nargs == 0:
        return None
    if action.choices:
        return "choices:" + " ".join(_plain(str(choice)) for choice in action.choices)
    if action.type is Path:
        return "dirs" if action.metavar == "DIR" else "files"
    return "none"


def _value_cases(command: str, parser: argparse.ArgumentParser) -> list[str]:
    """One ``case`` branch per flag of ``command`` that takes a value (keyed ``command:--flag``)."""
    cases = []
    for action in parser._actions:
        kind = _value_kind(action)
        if not action.option_strings or kind is None:
            continue
        keys = "|".join(f"{command}:{_plain(flag)}" for flag in action.option_strings)
        cases.append(f"        {keys}) _raypod_values {kind.replace('choices:', 'choices ', 1)!r}; return 0 ;;")
    return cases


def _positional_choices(parser: argparse.ArgumentParser) -> str:
    """The choices of the command's first positional argument (``completion``'s shell), or ""."""
    for action in parser._actions:
        if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
            return " ".join(_plain(str(choice)) for choice in action.choices)
    return ""


def bash_script(parser: argparse.ArgumentParser) -> str:
    commands = subcommands(parser)
    names = " ".join(_plain(name) for name in commands)
    top_flags = " ".join(_flags(parser))
    flag_cases = "\n".join(
        f'        {name}) flags="{" ".join(_flags(sub))}"; words="{_positional_choices(sub)}" ;;'
        for name, sub in commands.items()
    )
    value_cases = "\n".join(case for name, sub in commands.items() for case in _value_cases(name, sub))
    return f"""\
# bash completion for {PROGRAM} {__version__}, generated from its parser by `{PROGRAM} completion bash`.
# Load it with: eval "$({PROGRAM} completion bash)"

# COMPREPLY from one completion kind: "choices a b", "files", "dirs" or "none".
_raypod_values() {{
    local line
    COMPREPLY=()
    case "$1" in
        choices\\ *) while IFS= read -r line; do COMPREPLY+=("$line"); done \\
            < <(compgen -W "${{1#choices }}" -- "$cur") ;;
        files) while IFS= read -r line; do COMPREPLY+=("$line"); done < <(compgen -f -- "$cur")
            type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null ;;
        dirs) while IFS= read -r line; do COMPREPLY+=("$line"); done < <(compgen -d -- "$cur")
            type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null ;;
    esac
    return 0
}}

{FUNCTION}() {{
    # zsh's bashcompinit: arrays counted from 0, as in bash.
    [[ -n "${{ZSH_VERSION-}}" ]] && setopt localoptions ksharrays
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="" command="" flags="" words="" i
    (( COMP_CWORD > 0 )) && prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    COMPREPLY=()
    if (( COMP_CWORD == 1 )) && [[ "$cur" != -* ]]; then
        _raypod_values "choices {names}"
        return 0
    fi
    command="${{COMP_WORDS[1]}}"
    # `raypod --config X` is `raypod run --config X`.
    case "$command" in -h|--help|--version) (( COMP_CWORD > 1 )) && return 0; command=run ;; -*) command=run ;; esac
    # After `--` come the script's own arguments: file names.
    for (( i = 2; i < COMP_CWORD; i++ )); do
        [[ "${{COMP_WORDS[i]}}" == "--" ]] && {{ _raypod_values files; return 0; }}
    done
    case "$command:$prev" in
{value_cases}
    esac
    case "$command" in
{flag_cases}
        *) return 0 ;;
    esac
    (( COMP_CWORD == 1 )) && flags="{top_flags} $flags"
    if [[ "$cur" == -* || -z "$words" ]]; then
        _raypod_values "choices $flags"
    else
        _raypod_values "choices $words"
    fi
    return 0
}}

complete -F {FUNCTION} {PROGRAM}
"""


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """The bash script through zsh's ``bashcompinit``: one script, two shells."""
    return (
        f"# zsh completion for {PROGRAM}: the bash script, through zsh's bashcompinit.\n"
        f'# Load it with: eval "$({PROGRAM} completion zsh)"\n'
        "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit; }\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser)
    )


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    return zsh_script(parser) if shell == "zsh" else bash_script(parser)
