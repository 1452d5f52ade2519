"""``submit --working-dir``: Ray's ignore rules, the package's layout and size limit, in-process."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import pytest

from raypod.errors import ConfigError
from raypod.package import build_package, mib
from raypod.workdir import (
    CODE_PY_CONSEQUENCE,
    compile_pattern,
    script_in_working_dir,
    warn_of_shadowing,
    working_dir_files,
)
from tests.support.working_dir import make_tree, packed_names


# -- the ignore rules ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.log", "a/b/c.log", True),  # no '/': any depth
        ("/top.txt", "sub/top.txt", False),  # leading '/': anchored
        ("a/b", "x/a/b", False),  # an inner '/' anchors too
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("**/z", "z", True),
        ("logs/", "logs", False),  # matched without a trailing slash: the folder itself is entered...
        ("logs/", "logs/a.txt", True),  # ...and what it holds is left out
        ("name", "name/inside.txt", True),
        ("!name", "name", True),
        ("!name", "name/inside.txt", False),  # a '!' pattern matches only what it names
        ("q?.txt", "q12.txt", False),
        ("[a-c]x", "bx", True),
        ("[!a-c]x", "bx", False),
        ("\\#x", "#x", True),
        ("*", "any/thing", True),
    ],
)
def test_a_gitwildmatch_pattern_matches_as_in_rays_matcher(pattern: str, path: str, matches: bool) -> None:
    compiled = compile_pattern(pattern)
    assert compiled is not None
    assert bool(compiled.regex.fullmatch(path)) is matches
    assert compiled.leaves_out is not pattern.startswith("!")


def test_blank_lines_comments_and_a_lone_slash_are_no_patterns() -> None:
    assert [compile_pattern(line) for line in ("", "   ", "# a comment", "/")] == [None] * 4


def test_gitignore_files_are_not_read_when_asked_as_ray_does(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", {"main.py": "", "out.log": "", ".gitignore": "*.log\n"})
    assert "out.log" not in working_dir_files(root)
    assert "out.log" in working_dir_files(root, use_gitignore=False)


def test_a_bad_pattern_is_bad_input_naming_its_file_and_line(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", {"main.py": "", ".gitignore": "ok.txt\n[z-a]\n"})
    with pytest.raises(ConfigError) as caught:
        working_dir_files(root)
    assert caught.value.problems[0][0] == "--working-dir"
    assert f"{root / '.gitignore'} line 2: bad pattern '[z-a]'" in caught.value.problems[0][1]
    with pytest.raises(ConfigError, match="--exclude line 1: bad pattern"):
        working_dir_files(root, ["[z-a]"])


def test_a_link_to_a_folder_holding_it_is_left_out_instead_of_walked_for_ever(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", {"main.py": "", "sub/a.txt": ""})
    (root / "sub" / "loop").symlink_to(root)
    (root / "broken").symlink_to(tmp_path / "nowhere")
    assert packed_names(root, []) == ["main.py", "sub/a.txt"]


# -- the script and the package ----------------------------------------------------------------------
def test_the_script_is_looked_for_in_the_working_dir_first_then_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_tree(tmp_path / "project", {"train.py": "", "scripts/eval.py": ""})
    make_tree(tmp_path, {"train.py": "", "outside.py": ""})
    monkeypatch.chdir(tmp_path)
    assert script_in_working_dir(Path("train.py"), Path("project")) == "train.py"  # DIR/train.py, not ./train.py
    assert script_in_working_dir(Path("project/scripts/eval.py"), Path("project")) == "scripts/eval.py"
    assert script_in_working_dir(project / "scripts" / "eval.py", project) == "scripts/eval.py"
    with pytest.raises(ConfigError, match=r"--script: outside\.py is not a file inside --working-dir project"):
        script_in_working_dir(Path("outside.py"), Path("project"))


def test_a_working_dir_package_holds_its_files_at_the_top_level_with_their_modes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", {"main.py": "x", "lib/util.py": "y", "run.sh": "echo"})
    (root / "run.sh").chmod(0o755)
    (root / "empty").mkdir()
    output = tmp_path / "out"
    output.mkdir()
    package = build_package(working_dir_files(root), output, folder=None)
    with zipfile.ZipFile(package.path) as archive:
        assert archive.namelist() == ["empty/", "lib/util.py", "main.py", "run.sh"]
        assert archive.getinfo("run.sh").external_attr >> 16 == 0o755
        assert archive.getinfo("main.py").external_attr >> 16 == 0o644
    # Content-addressed like every raypod package: the same files give the same name.
    again = tmp_path / "again"
    again.mkdir()
    assert build_package(working_dir_files(root), again, folder=None).name == package.name


def test_a_package_over_the_limit_is_bad_input_with_its_size_and_largest_files(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", {"main.py": "print(1)\n"})
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "mid.bin").write_bytes(os.urandom(200_000))
    files = working_dir_files(root)
    size = build_package(files, tmp_path, folder=None).path.stat().st_size
    # One byte over: found once the package is whole (its last bytes are the zip's directory).
    with pytest.raises(ConfigError) as caught:
        build_package(files, tmp_path, folder=None, key="--working-dir", limit=size - 1)
    key, problem = caught.value.problems[0]
    assert key == "--working-dir"
    assert problem == (
        f"the package is {mib(size)}, more than the {mib(size - 1)} Ray's dashboard takes in one upload; "
        "the largest files: big.bin (293.0 KiB), mid.bin (195.3 KiB), main.py (9 B)"
    )
    # A package far over the limit is refused as soon as zipping passes it, not after zipping it all.
    over = r"the package is over the 0\.1 MiB .*\(zipping stopped there; its files add up to 488\.3 KiB\)"
    with pytest.raises(ConfigError, match=over):
        build_package(files, tmp_path, folder=None, key="--working-dir", limit=100_000)
    assert len(list(tmp_path.glob("_ray_pkg_*"))) == 1  # only the first, whole one


def test_a_top_level_module_named_like_the_standard_library_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_of_shadowing(["code.py", "logging/__init__.py", "train.py", "data/code.py"])
    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 2
    assert warned[0].startswith("--working-dir: code.py at the top level has the name of a standard-library module")
    assert warned[1].startswith("--working-dir: logging at the top level")
    # Only code is imported by every Ray worker as it starts: only code.py gets what that does.
    assert CODE_PY_CONSEQUENCE in warned[0]
    assert CODE_PY_CONSEQUENCE not in warned[1]
