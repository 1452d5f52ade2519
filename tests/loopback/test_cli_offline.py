"""The commands that contact nothing (``--help``, ``--version``, ``validate``), run as child processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.cli import raypod


# -- without Ray ------------------------------------------------------------------------------
def test_every_command_help_has_an_example_and_help_imports_no_http_library() -> None:
    for command in ("run", "submit", "status", "logs", "stop", "list", "validate"):
        completed = raypod(command, "--help")
        assert completed.returncode == 0, completed.stderr
        assert "example" in completed.stdout and "python -m raypod" in completed.stdout, command
    probe = (
        "import sys\nfrom raypod.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in ('requests', 'minio', 'tenacity', 'urllib3') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in completed.stdout, completed.stdout
    for command in ("submit", "status", "logs", "stop", "list", "validate"):
        assert command in completed.stdout


def test_version_prints_the_package_version() -> None:
    from raypod import __version__

    completed = raypod("--version")
    assert completed.returncode == 0
    assert completed.stdout.strip() == f"raypod {__version__}"


def test_validate_lists_every_problem_naming_its_key_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "cm"
    config.mkdir()
    for key, value in {
        "resourceURL": "ftp://ray:8265",
        "updateInterval": "twenty",
        "jobdata.scriptLocation": "ftp",
        "jobdata.jobScript": "print(1)",
        "jobdata.jobParameters": '{"expr": "a=b"}',
        "jobproperties": '{"entrypoint_num_cpu": 1, "activeDeadlineSeconds": -5}',
    }.items():
        (config / key).write_text(value)
    completed = raypod("validate", "--config", str(config))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    errors = [line for line in completed.stdout.splitlines() if line.startswith("error: ")]
    keys = [line.split(":")[1].strip() for line in errors]
    assert keys == [
        "resourceURL",
        "updateInterval",
        "jobdata.scriptLocation",
        "jobdata.jobParameters",
        "jobproperties",
        "jobproperties",
    ], errors
    assert any("entrypoint_num_cpu" in line and "known keys" in line for line in errors)
    assert any("activeDeadlineSeconds" in line for line in errors)
    assert "6 problem(s)" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_validate_reports_a_runtime_env_clash_found_only_at_submission(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.json"
    data = {
        "resourceURL": "http://ray.example:8265",
        "jobdata.scriptLocation": "inline",
        "jobdata.jobScript": "print(1)",
        "jobproperties": json.dumps({"runtime_env": {"working_dir": "s3://elsewhere/dir.zip"}}),
    }
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
    completed = raypod("validate", "--config", str(manifest))
    assert completed.returncode == 2
    assert "error: jobproperties: runtime_env.working_dir clashes" in completed.stdout


def test_a_bad_raypod_exit_codes_is_bad_input_for_validate_and_run_alike(tmp_path: Path) -> None:
    # argparse checks --exit-codes' choices, but not its default, which comes from the environment.
    manifest = tmp_path / "cm.json"
    data = {
        "resourceURL": "http://ray.example:8265",
        "jobdata.scriptLocation": "inline",
        "jobdata.jobScript": "print(1)",
    }
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
    env = {"RAYPOD_EXIT_CODES": "bogus", "JOBNAME": "x", "NAMESPACE": "ns"}
    for command in (["validate"], ["run", "--status-file", str(tmp_path / "status.json")]):
        completed = raypod(*command, "--config", str(manifest), env=env)
        assert completed.returncode == 2, completed.stderr
        assert "RAYPOD_EXIT_CODES: expected one of auto, posix, bridge, job, got 'bogus'" in completed.stderr
        assert "Traceback" not in completed.stderr


def test_validate_accepts_a_good_manifest_and_exits_0(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.json"
    data = {
        "resourceURL": "http://ray.example:8265",
        "jobdata.scriptLocation": "inline",
        "jobdata.jobScript": "print(1)",
        "jobdata.jobParameters": '{"epochs": 3}',
        "jobproperties": json.dumps({"entrypoint_num_cpus": 1, "activeDeadlineSeconds": 3600}),
    }
    manifest.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
    completed = raypod("validate", "--config", str(manifest))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "OK" in completed.stdout
