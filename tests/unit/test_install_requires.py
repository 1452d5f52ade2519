"""What the submitting side needs: setup.cfg's install_requires is `requests`, `minio` and
`tenacity`, and nothing else. (A whole run with the Ray SDK refused is in tests/ray/test_run_without_ray_sdk.py.)"""

from __future__ import annotations

import configparser

from tests.support.helpers import REPO
from tests.support.requirements import RUNTIME, requirement_name


def declared_requirements() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["options"]["install_requires"].splitlines()
    return {requirement_name(line) for line in lines if line.strip() and not line.strip().startswith("#")}


def test_install_requires_is_requests_minio_and_tenacity_only() -> None:
    assert declared_requirements() == RUNTIME
