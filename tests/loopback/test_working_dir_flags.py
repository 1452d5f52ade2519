"""``submit --working-dir``'s flags are checked before anything is contacted (a child process
pointed at an address nobody listens on)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import raypod
from tests.support.working_dir import make_tree


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
