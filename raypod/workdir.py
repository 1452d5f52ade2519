"""A local working directory, walked as Ray packs one: ``--exclude``, ``.gitignore`` and ``.rayignore``.

The rules are gitwildmatch patterns, read and combined as Ray 2.60's packaging does
(``_dir_travel``, ``_get_excludes`` and ``_get_ignore_file`` in ray/_private/runtime_env/packaging.py):

- ``--exclude`` patterns are relative to the working dir; the patterns of a ``.gitignore`` or
  ``.rayignore`` are relative to its folder and apply below it. ``.gitignore`` files are not read
  when ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``, as with Ray's own clients.
- Within one file the last pattern that matches decides (``!`` takes a path back in); across files and
  ``--exclude``, a path any of them leaves out is left out.
- A folder left out is not entered. A path is matched without a trailing slash, so ``build/`` leaves
  out everything below ``build`` but ``!build/keep.txt`` can take one file back.
- A pattern without '/' matches at any depth; with a leading or inner '/' it is anchored to its
  base. A ``!`` pattern matches only the path it names, not what lies below it.

One difference, on purpose: a folder is never matched against its own rules. Ray matches the folder
itself as ``.``, so a ``.gitignore`` holding ``.*`` (all dotfiles) makes Ray 2.60 pack nothing at all.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from raypod.errors import ConfigError
from raypod.jobdata import runnable_name

log = logging.getLogger(__name__)

WORKING_DIR_FLAG = "--working-dir"
EXCLUDE_FLAG = "--exclude"
GITIGNORE = ".gitignore"
RAYIGNORE = ".rayignore"


@dataclass(frozen=True)
class Pattern:
    regex: re.Pattern[str]
    #: False for a ``!`` pattern, which takes back what an earlier one left out.
    leaves_out: bool


def compile_pattern(line: str) -> Pattern | None:
    """One gitwildmatch line; None for a blank line, a ``#`` comment or a lone ``/``.

    Raises ValueError for a pattern that is no valid expression (e.g. the range ``[z-a]``).
    """
    text = line.strip()
    if not text or text.startswith("#") or text == "/":
        return None
    leaves_out = not text.startswith("!")
    text = text if leaves_out else text[1:]
    text = text[1:] if text.startswith("\\") else text  # an escaped leading '#' or '!'
    segments = text.split("/")
    if not any(segments):
        return None
    if segments[0] == "":
        segments = segments[1:]  # a leading '/' anchors the pattern to its base
    elif (len(segments) == 1 or segments[1:] == [""]) and segments[0] != "**":
        segments = ["**", *segments]  # a bare name (or name/) matches at any depth
    if len(segments) > 1 and segments[-1] == "":
        segments[-1] = "**"  # a trailing '/' means everything below
    return Pattern(re.compile(_regex(segments, leaves_out)), leaves_out)


def _regex(segments: Sequence[str], leaves_out: bool) -> str:
    parts: list[str] = []
    slash = False  # whether the next segment is joined with a '/'
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "**":
            if index == 0:
                parts.append(".+" if last == 0 else "(?:.+/)?")
            elif index == last:
                parts.append("/.*")
            else:
                parts.append("(?:/.+)?")
                slash = True
            continue
        parts.append("/" if slash else "")
        if segment == "*":
            parts.append("[^/]+")
        else:
            parts.append(_glob(segment))
            if index == last and leaves_out:
                parts.append("(?:/.*)?")  # a name leaves out a folder with all it holds
        slash = True
    return "".join(parts)


def _glob(segment: str) -> str:
    """One path segment's wildcards (``*``, ``?``, ``[...]``, ``\\`` escapes) as a regular expression."""
    out: list[str] = []
    index, end = 0, len(segment)
    while index < end:
        char = segment[index]
        index += 1
        if char == "\\":
            if index < end:
                out.append(re.escape(segment[index]))
                index += 1
        elif char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (close := _bracket_end(segment, index)) is not None:
            out.append(_bracket(segment[index:close]))
            index = close + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _bracket_end(segment: str, start: int) -> int | None:
    """Where the ``[...]`` that opens before ``start`` closes; a ']' first (after any '!') is literal."""
    index = start + 1 if segment.startswith("!", start) else start
    if segment.startswith("]", index):
        index += 1
    close = segment.find("]", index)
    return None if close < 0 else close


def _bracket(body: str) -> str:
    negate = ""
    if body.startswith("!"):
        negate, body = "^", body[1:]
    elif body.startswith("^"):
        negate, body = "\\^", body[1:]  # '^' is literal in a glob, as in Ray's matcher
    # Characters a regex set reads specially but a glob set does not are escaped.
    escaped = re.sub(r"([\\\[&~|])", r"\\\1", body)
    return f"[{negate}{escaped}]"


@dataclass(frozen=True)
class Rules:
    """The patterns of one ignore file (or of ``--exclude``), relative to the folder ``base``."""

    base: str
    patterns: tuple[Pattern, ...]

    def leave_out(self, name: str) -> bool:
        """Whether the path ``name`` (relative to the working dir) is left out by these rules."""
        relative = name[len(self.base) + 1 :] if self.base else name
        decided = False
        for pattern in self.patterns:
            if pattern.regex.fullmatch(relative):
                decided = pattern.leaves_out
        return decided


def compile_rules(lines: Iterable[str], base: str, origin: str, key: str) -> Rules:
    patterns: list[Pattern] = []
    for number, line in enumerate(lines, 1):
        try:
            pattern = compile_pattern(line)
        except (ValueError, re.error) as error:
            raise ConfigError.single(key, f"{origin} line {number}: bad pattern {line.strip()!r} ({error})") from None
        if pattern is not None:
            patterns.append(pattern)
    return Rules(base, tuple(patterns))


def working_dir_files(root: Path, excludes: Sequence[str] = (), *, use_gitignore: bool = True) -> dict[str, Path]:
    """Every file (and empty folder) of ``root`` that goes into its package, by its path in the package.

    Symbolic links are followed, as Ray does; a broken one is skipped, and so is a link to a folder
    that holds it (which would never end).
    """
    require_directory(root)
    found: dict[str, Path] = {}
    rules = [compile_rules(excludes, "", EXCLUDE_FLAG, EXCLUDE_FLAG)]
    try:
        _walk(root, "", rules, found, frozenset({root.resolve()}), use_gitignore)
    except OSError as error:
        # An entry whose kind cannot even be told (no permission, an I/O error): the user's input.
        where = error.filename or root
        raise ConfigError.single(WORKING_DIR_FLAG, f"cannot read {where}: {error.strerror or error}") from None
    return found


def require_directory(working_dir: Path) -> None:
    if not working_dir.is_dir():
        raise ConfigError.single(WORKING_DIR_FLAG, f"{working_dir} is not a directory")


def _walk(
    folder: Path, name: str, rules: list[Rules], found: dict[str, Path], inside: frozenset[Path], use_gitignore: bool
) -> None:
    ignore_files = (GITIGNORE, RAYIGNORE) if use_gitignore else (RAYIGNORE,)
    active = rules + [_ignore_file_rules(folder / file, name) for file in ignore_files if (folder / file).is_file()]
    try:
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as error:
        raise ConfigError.single(WORKING_DIR_FLAG, f"cannot read {folder}: {error.strerror}") from None
    if not entries and name:
        found[name] = folder  # an empty folder is packed too, as Ray does
    for entry in entries:
        entry_name = f"{name}/{entry.name}" if name else entry.name
        if any(rule.leave_out(entry_name) for rule in active):
            continue
        if entry.is_dir():
            real = entry.resolve()
            if real in inside:
                log.warning("%s: %s links to a folder that holds it; left out", WORKING_DIR_FLAG, entry)
                continue
            _walk(entry, entry_name, active, found, inside | {real}, use_gitignore)
        elif entry.is_file():
            found[entry_name] = entry


def _ignore_file_rules(path: Path, base: str) -> Rules:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise ConfigError.single(WORKING_DIR_FLAG, f"cannot read {path}: {error.strerror}") from None
    return compile_rules(lines, base, str(path), WORKING_DIR_FLAG)


def script_in_working_dir(script: Path, working_dir: Path) -> str:
    """The script's path inside the working dir, where the job runs it from.

    As with ``ray job submit --working-dir DIR -- python x.py``, a relative path is looked for in DIR
    first; else the path as given must lead to a file inside DIR.
    """
    require_directory(working_dir)
    root = Path(os.path.abspath(working_dir))
    candidates = ([] if script.is_absolute() else [root / script]) + [script]
    for candidate in candidates:
        if not candidate.is_file():
            continue
        try:
            # abspath, not resolve: a link inside the working dir is packed where it is.
            return Path(os.path.abspath(candidate)).relative_to(root).as_posix()
        except ValueError:
            continue
    raise ConfigError.single("--script", f"{script} is not a file inside {WORKING_DIR_FLAG} {working_dir}")


#: The standard-library module every Ray worker imports as it starts (``import ray`` -> pdb -> code),
#: and the classic Bridge script's name: a top-level ``code.py`` runs inside each worker's start-up.
IMPORTED_AS_WORKERS_START = "code"
#: What that does, as Ray 2.60 shows it (tests/ray/test_code_py_in_a_working_dir_on_ray.py).
CODE_PY_CONSEQUENCE = (
    "every Ray worker imports it as it starts (import ray -> pdb -> code), so its top-level statements run "
    'there, and if they exit or raise (a script without an `if __name__ == "__main__":` guard) the job\'s '
    "supervisor dies at start: the job stays PENDING, a stop is held, until Ray gives up on the worker "
    "(5 tries, each after worker_register_timeout_seconds: about 6 min by default) and fails it as "
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"
)


def warn_of_shadowing(files: Iterable[str]) -> None:
    """Ray puts the package's top level first on every worker's sys.path: a top-level module named like
    one of the standard library (or ``ray``) is imported instead of it there, and ``code`` is imported by
    every worker as it starts (``CODE_PY_CONSEQUENCE``)."""
    top_level = sorted({name.split("/", 1)[0] for name in files})
    for name in top_level:
        if runnable_name(name) != name:
            consequence = CODE_PY_CONSEQUENCE if name.removesuffix(".py") == IMPORTED_AS_WORKERS_START else ""
            log.warning(
                "%s: %s at the top level has the name of a standard-library module; Ray puts the top level on "
                "every worker's sys.path, where it is imported instead of that module%s",
                WORKING_DIR_FLAG,
                name,
                f"; {consequence}" if consequence else "",
            )
