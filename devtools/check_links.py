"""Every relative link in the repository's Markdown resolves inside the repository (``make check``).

A clone must be readable on its own: a link to a file, a folder or a heading (``file.md#section``,
GitHub's anchor rules) must find it in the clone, and no link may leave it (``../`` past the root,
an absolute path, ``file:``). Links to the web (``https:``, ``mailto:``) are not fetched.

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


def link_problems(root: Path, files: list[Path] | None = None) -> list[str]:
    """One line per link in ``files`` (default: every .md under ``root``) that does not resolve in ``root``."""
    root = root.resolve()
    problems: list[str] = []
    anchors_of: dict[Path, set[str]] = {}
    for source in files if files is not None else markdown_files(root):
        source = source.resolve()
        where = source.relative_to(root)
        for number, target in link_targets(source.read_text(encoding="utf-8")):
            if target.lower().startswith("file:") or target.startswith(("/", "\\")):
                problems.append(f"{where}:{number}: {target} points outside the repository")
                continue
            if SCHEME.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            path_part = path_part.split("?", 1)[0]
            linked = (source.parent / path_part).resolve() if path_part else source
            if not linked.is_relative_to(root):
                problems.append(f"{where}:{number}: {target} points outside the repository")
            elif not linked.exists():
                problems.append(f"{where}:{number}: {target}: no such file in the repository")
            elif anchor and linked.suffix == ".md":
                if linked not in anchors_of:
                    anchors_of[linked] = anchors(linked.read_text(encoding="utf-8"))
                if anchor not in anchors_of[linked]:
                    problems.append(f"{where}:{number}: {target}: no heading #{anchor} in {linked.relative_to(root)}")
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    files = markdown_files(root)
    problems = link_problems(root, files)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} broken link(s) in {len(files)} Markdown files", file=sys.stderr)
        return 1
    print(f"every link in {len(files)} Markdown files resolves inside the repository")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
