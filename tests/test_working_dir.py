"""``submit --working-dir``: Ray's ignore rules, the package's layout and size limit, and the job on the real head."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import requests

from devtools.proxy import Proxy
from raypod.errors import ConfigError
from raypod.package import JOB_FOLDER, UPLOAD_LIMIT, build_package, mib
from raypod.workdir import compile_pattern, script_in_working_dir, warn_of_shadowing, working_dir_files
from tests.support.helpers import Services, jobs_of, ray_job, unique, wait_for_ray_status
from tests.test_cli import client_args, raypod

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


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def packed_names(root: Path, excludes: list[str]) -> list[str]:
    return sorted(name + ("/" if path.is_dir() else "") for name, path in working_dir_files(root, excludes).items())


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


def test_a_dotfile_pattern_leaves_out_dotfiles_where_ray_2_60_packs_nothing(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "project", {"main.py": "", ".env": "", ".gitignore": ".*\n!.gitignore\n"})
    assert packed_names(root, []) == [".gitignore", "main.py"]
    # Ray matches the folder itself as '.', which '.*' matches: its package is empty (the difference
    # workdir.py documents).
    assert rays_packed_names(root, [], tmp_path / "ray.zip") == []


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


# -- the command line --------------------------------------------------------------------------------
def test_working_dir_flags_are_checked_before_anything_is_contacted(tmp_path: Path) -> None:
    project = make_tree(tmp_path / "project", {"main.py": ""})
    nowhere = ["--address", "http://127.0.0.1:9", "--credentials", str(tmp_path)]
    outside = raypod("submit", *nowhere, "--working-dir", str(project), "--script", str(tmp_path / "x.py"))
    assert outside.returncode == 2
    assert f"--script: {tmp_path / 'x.py'} is not a file inside --working-dir {project}" in outside.stderr
    missing = raypod("submit", *nowhere, "--working-dir", str(tmp_path / "nowhere"), "--script", "main.py")
    assert missing.returncode == 2
    assert f"bad input: --working-dir: {tmp_path / 'nowhere'} is not a directory" in missing.stderr
    loose = raypod("submit", *nowhere, "--script", str(project / "main.py"), "--exclude", "*.log")
    assert loose.returncode == 2 and "bad input: --exclude: only with --working-dir" in loose.stderr
    clash = raypod(
        "submit",
        *nowhere,
        "--working-dir",
        str(project),
        "--script",
        "main.py",
        "--properties",
        json.dumps({"runtime_env": {"working_dir": "s3://bucket/elsewhere.zip"}}),
    )
    assert clash.returncode == 2
    assert "bad input: --properties: runtime_env.working_dir clashes with the one raypod sets" in clash.stderr
    config = tmp_path / "cm.json"
    config.write_text(json.dumps({"data": {"jobdata.jobScript": "print(1)"}}))
    with_config = raypod("submit", *nowhere, "--config", str(config), "--working-dir", str(project))
    assert with_config.returncode == 2
    assert "--working-dir: only with --script; with --config they belong in the ConfigMap" in with_config.stderr


# -- against the real Ray head -----------------------------------------------------------------------
DRIVER = """\
import json, os, sys
import ray
import helper
from lib import util

print("DRIVER " + json.dumps({"helper": helper.VALUE, "util": util.NAME, "cwd": sorted(os.listdir("."))}))
ray.init()


@ray.remote
def in_a_worker():
    import helper
    from lib import util
    return [helper.VALUE, util.NAME, sorted(os.listdir("."))]


print("TASK " + json.dumps(ray.get(in_a_worker.remote())))
print("ARGV " + json.dumps(sys.argv[1:]))
"""


def printed(stdout: str, tag: str) -> object:
    for line in stdout.splitlines():
        if line.removeprefix("[job] ").startswith(tag + " "):
            return json.loads(line.removeprefix("[job] ")[len(tag) + 1 :])
    raise AssertionError(f"no {tag} line in {stdout}")


@pytest.mark.integration
def test_a_working_dir_is_the_jobs_directory_and_its_modules_import_in_remote_tasks(
    services: Services, tmp_path: Path
) -> None:
    project = make_tree(
        tmp_path / "project",
        {
            "scripts/train.py": DRIVER,
            "helper.py": "VALUE = 21\n",
            "lib/__init__.py": "",
            "lib/util.py": "NAME = 'util'\n",
            "data/keep.csv": "1\n",
            "data/big.bin": "x" * 1000,
            "notes.tmp": "",
            ".env": "SECRET=1\n",
            ".gitignore": ".env\n*.tmp\n",
        },
    )
    name = unique("wd")
    completed = raypod(
        "submit",
        *client_args(services, tmp_path),
        "--working-dir",
        str(project),
        "--script",
        "scripts/train.py",
        "--exclude",
        "*.bin",
        "--param",
        "epochs=3",
        "--job-name",
        name,
        "--wait",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The driver and a remote task on a worker both import the working dir's modules, from its top level.
    kept = [".gitignore", "data", "helper.py", "lib", "scripts"]
    assert printed(completed.stdout, "DRIVER") == {"helper": 21, "util": "util", "cwd": kept}
    assert printed(completed.stdout, "TASK") == [21, "util", kept]
    assert printed(completed.stdout, "ARGV") == ["--kwargs", "epochs=3"]
    [job] = jobs_of(services, name)
    info = ray_job(services, job["submission_id"])
    assert info["entrypoint"] == "python scripts/train.py --kwargs epochs=3"  # no `cd raypod_job`
    assert info["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_")


@pytest.mark.integration
def test_a_working_dir_over_rays_upload_limit_is_bad_input_and_nothing_reaches_ray(
    services: Services, tmp_path: Path
) -> None:
    project = make_tree(tmp_path / "project", {"main.py": "print(1)\n"})
    with (project / "weights.pt").open("wb") as weights:
        for _ in range(UPLOAD_LIMIT // (1024 * 1024) + 1):
            weights.write(os.urandom(1024 * 1024))  # random: it does not compress below the limit
    name = unique("too-big")
    with Proxy("127.0.0.1", services.ray.port) as proxy:
        completed = raypod(
            "submit",
            "--address",
            proxy.url,
            "--credentials",
            str(tmp_path),
            "--working-dir",
            str(project),
            "--script",
            "main.py",
            "--job-name",
            name,
        )
        assert completed.returncode == 2, completed.stdout + completed.stderr
        assert proxy.recorded("PUT") == [] and proxy.recorded("POST") == []
    assert (
        "raypod: bad input: --working-dir: the package is over the 100.0 MiB Ray's dashboard takes in one upload"
        in completed.stderr
    )
    assert "the largest files: weights.pt (101.0 MiB), main.py (9 B)" in completed.stderr
    assert jobs_of(services, name) == []


@pytest.mark.integration
def test_one_folder_down_in_the_package_a_module_cannot_be_imported_in_remote_tasks(
    services: Services, tmp_path: Path
) -> None:
    """Why a working dir is the package's top level: Ray puts only the top level on the workers' sys.path.

    The same files, laid out as a ConfigMap's are (in ``raypod_job/``), give the driver its module (its
    own folder is on its path) but not a remote task.
    """
    driver = (
        "import ray\nimport helper\nprint('DRIVER', helper.VALUE)\n\n\n@ray.remote\ndef in_a_worker():\n"
        "    import helper\n    return helper.VALUE\n\n\nprint('TASK', ray.get(in_a_worker.remote()))\n"
    )
    project = make_tree(tmp_path / "project", {"main.py": driver, "helper.py": "VALUE = 21\n"})
    output = tmp_path / "out"
    output.mkdir()
    package = build_package(working_dir_files(project), output, folder=JOB_FOLDER)
    address = services.ray_address
    requests.put(f"{address}/api/packages/gcs/{package.name}", data=package.path.read_bytes(), timeout=60)
    body = {"entrypoint": f"cd {JOB_FOLDER} && python main.py", "runtime_env": {"working_dir": package.uri}}
    submission_id = requests.post(f"{address}/api/jobs/", json=body, timeout=60).json()["submission_id"]
    assert wait_for_ray_status(services, submission_id, {"SUCCEEDED", "FAILED", "STOPPED"}) == "FAILED"
    log = requests.get(f"{address}/api/jobs/{submission_id}/logs", timeout=60).json()["logs"]
    assert "DRIVER 21" in log  # the driver imported helper...
    assert "ModuleNotFoundError: No module named 'helper'" in log  # ...the remote task could not
