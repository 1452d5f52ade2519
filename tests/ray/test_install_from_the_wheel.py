"""README.md's Install section, step by step: the wheel built, a wheelhouse of it and its dependencies,
a fresh venv installed from that wheelhouse alone, then ``raypod --version`` and a real
``raypod submit --wait`` from that venv against the session's Ray head.

The venv's raypod must not come from the repository: the commands run outside it, with no
``PYTHONPATH``, and the import is checked to resolve inside the venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from raypod import __version__
from tests.support.cli import SCRUBBED
from tests.support.helpers import REPO, Services

TINY_SCRIPT = 'import sys\nprint("hello from the installed raypod", sys.argv[1:])\n'


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def outside_env() -> dict[str, str]:
    """The caller's environment without its Ray settings, its PYTHONPATH and its pip configuration."""
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith(("PIP_", "PYTHON"))}
    # Only the wheelhouse may be used: no index, no find-links from a pip.conf.
    return {**base, "PIP_CONFIG_FILE": os.devnull, "PYTHONUNBUFFERED": "1"}


def test_the_wheel_installs_from_a_wheelhouse_into_a_fresh_venv_and_submits_a_job(
    services: Services, tmp_path: Path
) -> None:
    dist, wheelhouse, venv = tmp_path / "dist", tmp_path / "wheelhouse", tmp_path / "venv"
    # `make wheel` runs this; here into tmp_path so the test leaves the clone's dist/ alone.
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO, cwd=tmp_path)
    (wheel,) = dist.glob("raypod-*.whl")
    assert wheel.name == f"raypod-{__version__}-py3-none-any.whl"
    # The machine that reaches an index: the wheel and every dependency's, with pip's own settings.
    run(sys.executable, "-m", "pip", "download", "--quiet", "--dest", wheelhouse, wheel, cwd=tmp_path)
    assert {"requests", "minio", "tenacity"} <= {path.name.split("-")[0].lower() for path in wheelhouse.iterdir()}

    # The air-gapped machine: a fresh venv, the wheelhouse and nothing else.
    env = outside_env()
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    python, installed = venv / "bin" / "python", venv / "bin" / "raypod"
    offline = ("--no-index", "--find-links", wheelhouse)
    run(python, "-m", "pip", "install", "--quiet", *offline, "raypod", cwd=tmp_path, env=env)
    where = run(python, "-c", "import raypod; print(raypod.__file__)", cwd=tmp_path, env=env).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    version = run(installed, "--version", cwd=tmp_path, env=env)
    assert version.stdout.strip() == f"raypod {__version__}"

    script = tmp_path / "tiny_job.py"
    script.write_text(TINY_SCRIPT)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    submitted = run(
        installed,
        "submit",
        "--address",
        services.ray_address,
        "--credentials",
        credentials,
        "--script",
        script,
        "--wait",
        cwd=tmp_path,
        env=env,
    )
    lines = submitted.stdout.splitlines()
    assert lines[0].startswith("raypod-tiny-job-"), submitted.stdout
    assert any("hello from the installed raypod" in line for line in lines[1:]), submitted.stdout
    assert "SUCCEEDED" in submitted.stderr, submitted.stderr
