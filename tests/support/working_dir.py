"""Trees of files for ``submit --working-dir``, and the names raypod packs from one."""

from __future__ import annotations

from pathlib import Path

from raypod.workdir import working_dir_files


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def packed_names(root: Path, excludes: list[str]) -> list[str]:
    return sorted(name + ("/" if path.is_dir() else "") for name, path in working_dir_files(root, excludes).items())
