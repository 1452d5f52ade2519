"""Every test the docs name exists: ``unit/test_x.py::test_y`` or ``tests/ray/test_z.py`` in README.md,
docs/ and samples/ is a file of tests/, and a named test is defined in it (renames leave no stale row)."""

from __future__ import annotations

import re

from tests.support.helpers import REPO

LANES = "unit|loopback|ray|image"
WORD = r"\w*"
#: ``ray/test_run.py::test_x`` (docs/comparison.md's table), ``test_x_*`` for every test so named, or
#: ``tests/ray/test_run.py`` in prose.
NAMED_TEST = re.compile(rf"(?<![\w/])(?:tests/)?((?:{LANES})/test_\w+\.py)(?:::(test_\w+\*?))?")


def named_tests() -> set[tuple[str, str | None]]:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "samples").glob("*.md"))]
    return {(match[0], match[1] or None) for path in docs for match in NAMED_TEST.findall(path.read_text())}


def test_every_test_the_docs_name_exists() -> None:
    named = named_tests()
    missing = []
    for file, test in sorted(named, key=str):
        path = REPO / "tests" / file
        if not path.is_file():
            missing.append(file)
        elif test and not re.search(rf"^(?:async )?def {test.replace('*', WORD)}\(", path.read_text(), re.M):
            missing.append(f"{file}::{test}")
    assert missing == []
    # Not vacuous: comparison.md's table names tests by function, and prose names files.
    assert ("unit/test_install_requires.py", "test_install_requires_is_requests_minio_and_tenacity_only") in named
    assert len(named) > 30, len(named)
