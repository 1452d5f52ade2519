"""Every relative link in the repository's Markdown resolves inside the repository (``make check``).

A clone must be readable on its own: a link to a file, a folder or a heading (``docs/cli.md#exit-codes``,
GitHub's anchor rules) must find it in the clone, and no link may leave it (``../`` past the root,
an absolute path, ``file:``). Links to the web (``https:``, ``mailto:``) are not fetched. The documents
that raypod's and devtools' code names (in messages and comments, from the root) are checked the same way.

    python -m devtools.check_links [ROOT]
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

#: Folders that are not the project's text: tools' caches, virtualenvs, build output.
SKIPPED_DIRS = frozenset({"build", "dist", "wheelhouse", "node_modules"})
#: A target with a scheme (``https:``, ``mailto:``) is the web's, not the clone's; ``file:`` is outside.
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
#: ``[text](target)`` and ``![alt](target "title")``; the target may be in ``<...>``.
INLINE_LINK = re.compile(r"\]\(\s*(<[^>]*>|[^\s)]*)(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
MARKDOWN_LINK_TEXT = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
#: A document named in code, its messages and comments: ``docs/configmap.md#retries``, from the root.
CODE_REFERENCE = re.compile(r"(?<![\w./-])((?:\.\./)*(?:[\w-]+/)*[\w-]+\.md)(?:#([\w-]+))?")
#: The folders whose Python may send a reader to a document.
CODE_FOLDERS = ("raypod", "devtools")


def markdown_files(root: Path) -> list[Path]:
    """The .md files under ``root``, without hidden folders (.git, .venv, caches) and build output."""

    def skipped(folder: str) -> bool:
        return folder.startswith(".") or folder in SKIPPED_DIRS or folder.endswith(".egg-info")

    def walk(folder: Path) -> Iterator[Path]:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir():
                if not skipped(entry.name):
                    yield from walk(entry)
            elif entry.suffix == ".md":
                yield entry

    return list(walk(root))


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """Numbered lines outside fenced code blocks, where Markdown makes links and headings."""
    fence = ""
    for number, line in enumerate(text.splitlines(), start=1):
        opened = FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
            continue
        yield number, line


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text in lower case, punctuation dropped, spaces as ``-``."""
    text = MARKDOWN_LINK_TEXT.sub(r"\1", heading)
    text = CODE_SPAN.sub(r"\2", text).replace("*", "").lower()
    kept = (c for c in text if c in " -_" or c.isalnum() or unicodedata.category(c).startswith("M"))
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor of a Markdown file: its headings' slugs (repeats get ``-1``, ``-2``) and HTML ids."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(text):
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            repeat = seen.get(slug, 0)
            seen[slug] = repeat + 1
            found.add(f"{slug}-{repeat}" if repeat else slug)
    return found


def link_targets(text: str) -> Iterator[tuple[int, str]]:
    """``(line, target)`` of every inline link and reference definition outside code."""
    for number, line in prose_lines(text):
        prose = CODE_SPAN.sub("", line)
        for target in [*INLINE_LINK.findall(prose), *REFERENCE_DEFINITION.findall(prose)]:
            yield number, target.strip("<>")


def code_references(root: Path) -> Iterator[tuple[Path, int, str]]:
    """``(file, line, target)`` of each Markdown document the Python of CODE_FOLDERS names."""
    for folder in CODE_FOLDERS:
        for source in sorted((root / folder).rglob("*.py")):
            for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
                for document, anchor in CODE_REFERENCE.findall(line):
                    yield source, number, f"{document}#{anchor}" if anchor else document


def resolve(root: Path, source: Path, base: Path, target: str, anchors_of: dict[Path, set[str]]) -> str | None:
    """Why ``target`` (a path relative to the folder ``base``, or ``#anchor`` in ``source``) does not
    resolve inside ``root``; None when it does."""
    if target.lower().startswith("file:") or target.startswith(("/", "\\")):
        return f"{target} points outside the repository"
    if SCHEME.match(target):
        return None
    path_part, _, anchor = target.partition("#")
    path_part = path_part.split("?", 1)[0]
    linked = (base / path_part).resolve() if path_part else source
    if not linked.is_relative_to(root):
        return f"{target} points outside the repository"
    if not linked.exists():
        return f"{target}: no such file in the repository"
    if anchor and linked.suffix == ".md":
        if linked not in anchors_of:
            anchors_of[linked] = anchors(linked.read_text(encoding="utf-8"))
        if anchor not in anchors_of[linked]:
            return f"{target}: no heading #{anchor} in {linked.relative_to(root)}"
    return None


def link_problems(root: Path) -> list[str]:
    """One line per link of the Markdown under ``root``, or document named by its code, that does not
    resolve inside ``root``."""
    root = root.resolve()
    problems: list[str] = []
    anchors_of: dict[Path, set[str]] = {}
    for source in markdown_files(root):
        source = source.resolve()
        where = source.relative_to(root)
        for number, target in link_targets(source.read_text(encoding="utf-8")):
            problem = resolve(root, source, source.parent, target, anchors_of)
            if problem:
                problems.append(f"{where}:{number}: {problem}")
    # Code names documents by their path from the root of the repository.
    for source, number, target in code_references(root):
        problem = resolve(root, source, root, target, anchors_of)
        if problem:
            problems.append(f"{source.relative_to(root)}:{number}: {problem}")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    files = markdown_files(root)
    problems = link_problems(root)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} broken link(s)", file=sys.stderr)
        return 1
    print(f"every link in {len(files)} Markdown files, and every document {'/'.join(CODE_FOLDERS)} name, resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
