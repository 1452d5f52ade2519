"""``python -m raypod`` from the folder that holds a checkout named ``raypod/``.

``python -m`` puts the current directory first on ``sys.path``; the checkout (no ``__init__.py``) was
taken as a namespace package ``raypod`` ahead of the editable install the tests run from, and the
command died with ``cannot import name '__version__'``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from raypod import __version__
from tests.support.helpers import REPO


def python_m_raypod(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "raypod", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def a_checkout_named_raypod(parent: Path) -> Path:
    """A folder shaped like a clone of the repository: no ``__init__.py``, the package one level down."""
    checkout = parent / "raypod"
    (checkout / "raypod").mkdir(parents=True)
    for name in ("README.md", "setup.cfg", "Makefile"):
        (checkout / name).write_text((REPO / name).read_text())
    return checkout


def test_python_m_raypod_runs_from_the_folder_that_holds_the_checkout(tmp_path: Path) -> None:
    a_checkout_named_raypod(tmp_path)
    result = python_m_raypod(tmp_path, "--version")
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, f"raypod {__version__}", "")


def test_a_command_runs_there_too(tmp_path: Path) -> None:
    a_checkout_named_raypod(tmp_path)
    result = python_m_raypod(tmp_path, "validate", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: raypod validate" in result.stdout
