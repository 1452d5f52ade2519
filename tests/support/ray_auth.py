"""The secrets and credential directories of the Ray auth tests. Header values are secrets: never printed."""

from __future__ import annotations

from pathlib import Path

from tests.support.helpers import RAY_AUTH_TOKEN

TOKEN = RAY_AUTH_TOKEN
COOKIE_SECRET = "oauth-proxy-SESSION-4b8e2f6a1c"


def credentials_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text)
    return directory
