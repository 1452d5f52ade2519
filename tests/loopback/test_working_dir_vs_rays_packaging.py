"""``submit --working-dir``: Ray's ignore rules, compared with what Ray 2.60's own packaging packs
(run in a child process: raypod never imports ray)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.working_dir import make_tree, packed_names

#: A tree with every kind of rule: nested .gitignore and .rayignore files, negations, anchors, '**',
#: folder patterns, escapes, wildcards, brackets, and an empty folder.
TRICKY_TREE = {
    "main.py": "",
    "helper.py": "",
    "notes.log": "",
    "keep.log": "",
    "a/b/c.log": "",
    "a/b/keep.log": "",
    "build/out.o": "",
    "build/keep.txt": "",
    "dist/x.whl": "",
    "src/pkg/__init__.py": "",
    "src/pkg/mod.py": "",
    "src/pkg/cache.tmp": "",
    "src/pkg/important.tmp": "",
    "src/pkg/secret.txt": "",
    "src/secret.txt": "",
    "src/.gitignore": "*.tmp\n/pkg/secret.txt\n!important.tmp\n",
    "data/raw/x.csv": "",
    "data/y.csv": "",
    "docs/a.md": "",
    "docs/sub/b.md": "",
    "weird[1].txt": "",
    "q1.txt": "",
    "q22.txt": "",
    "#hash.txt": "",
    "!bang.txt": "",
    "deep/x/y/z/target.bin": "",
    "deep/target.bin": "",
    "node_modules/m/index.js": "",
    "sub/node_modules/n.js": "",
    "other/.rayignore": "*\n",
    "other/f.txt": "",
    "space name.txt": "",
    "x/.gitignore": "y/\n",
    "x/y/z.txt": "",
    "x/yy/z.txt": "",
    "anchored/foo/bar.txt": "",
    "foo/bar.txt": "",
    "[ab]c.txt": "",
    "ac.txt": "",
    ".rayignore": "docs/**/*.md\n",
    ".gitignore": "\n".join(
        [
            "# a comment",
            "*.log",
            "!keep.log",
            "build/",
            "!build/keep.txt",
            "/dist",
            "data/raw",
            "q?.txt",
            "weird\\[1\\].txt",
            "\\#hash.txt",
            "\\!bang.txt",
            "**/target.bin",
            "node_modules/",
            "foo/bar.txt",
            "[!b]c.txt",
            "   ",
            "/",
        ]
    ),
}
TRICKY_EXCLUDES = ["space name.txt", "src/pkg/mod.py", "*.md", "!docs/a.md"]


def rays_packed_names(root: Path, excludes: list[str], out: Path) -> list[str]:
    """What Ray 2.60's own packaging puts in the zip, run in a child process (raypod never imports ray)."""
    code = (
        "import json, sys, zipfile\n"
        "from ray._private.runtime_env.packaging import _zip_files\n"
        "_zip_files(sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], include_gitignore=True)\n"
        "print(json.dumps(sorted(zipfile.ZipFile(sys.argv[3]).namelist())))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(root), json.dumps(excludes), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return list(json.loads(completed.stdout.strip().splitlines()[-1]))


# -- the ignore rules ------------------------------------------------------------------------------
def test_ignore_rules_pack_the_same_files_as_rays_own_packaging(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", TRICKY_TREE)
    (root / "empty").mkdir()
    ours = packed_names(root, TRICKY_EXCLUDES)
    assert ours == rays_packed_names(root, TRICKY_EXCLUDES, tmp_path / "ray.zip")
    # Not vacuous: each kind of rule left something out, and took something back.
    assert "main.py" in ours and "empty/" in ours
    left_out = ["notes.log", "build/out.o", "dist/x.whl", "src/pkg/cache.tmp", "docs/sub/b.md", "x/y/z.txt", "ac.txt"]
    assert not set(left_out) & set(ours)
    taken_back = ["keep.log", "a/b/keep.log", "build/keep.txt", "src/pkg/important.tmp"]
    assert set(taken_back) <= set(ours)


def test_a_dotfile_pattern_leaves_out_dotfiles_where_ray_2_60_packs_nothing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", {"main.py": "", ".env": "", ".gitignore": ".*\n!.gitignore\n"})
    assert packed_names(root, []) == [".gitignore", "main.py"]
    # Ray matches the folder itself as '.', which '.*' matches: its package is empty (the difference
    # workdir.py documents).
    assert rays_packed_names(root, [], tmp_path / "ray.zip") == []
