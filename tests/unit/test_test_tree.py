"""The test tree itself: every test module lies in one of the four lane folders, and none imports another.

A lane is a folder (tests/conftest.py marks each test from its path), so a test module outside them
would run in no lane; and a test module that imports another one would drag that lane's fixtures and
costs into its own. What test modules share lives in tests/support/.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
LANES = ("unit", "loopback", "ray", "image")


def module_name(path: Path) -> str:
    """``tests.unit.test_x`` for tests/unit/test_x.py, ``tests.support`` for tests/support/__init__.py."""
    parts = path.relative_to(TESTS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool) -> list[str]:
    """Every module ``source`` (the module ``name``) imports, relative imports made absolute."""
    package = name if is_package else name.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from tests.unit import test_x` imports the module tests.unit.test_x.
            found += [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return found


def of_lanes(modules: list[str]) -> list[str]:
    """Those of ``modules`` that are a lane folder (tests.unit) or in one (tests.unit.test_x)."""
    lanes = tuple(f"tests.{lane}" for lane in LANES)
    return sorted({m for m in modules if m in lanes or m.startswith(tuple(f"{lane}." for lane in lanes))})


def lane_imports(path: Path) -> list[str]:
    """The modules of the lane folders that the file at ``path`` imports."""
    return of_lanes(imported_modules(path.read_text(), module_name(path), path.name == "__init__.py"))


def test_every_test_module_is_in_a_lane_folder() -> None:
    test_files = sorted(TESTS.rglob("test_*.py"))
    outside = [str(path.relative_to(TESTS)) for path in test_files if path.relative_to(TESTS).parts[0] not in LANES]
    assert outside == [], f"test modules outside tests/{{{','.join(LANES)}}}/: {outside}"
    # Not vacuous: the walk found the four lanes, each with tests, and the whole suite.
    per_lane = {lane: len(list((TESTS / lane).glob("test_*.py"))) for lane in LANES}
    assert all(count > 0 for count in per_lane.values()), per_lane
    assert len(test_files) > 30, len(test_files)
    for folder in (*LANES, "support"):
        assert (TESTS / folder / "__init__.py").is_file(), f"tests/{folder}/ needs an __init__.py"


def test_no_module_under_tests_imports_a_test_module() -> None:
    modules = sorted(TESTS.rglob("*.py"))
    offenders = {str(path.relative_to(TESTS)): lane_imports(path) for path in modules}
    assert {path: names for path, names in offenders.items() if names} == {}
    # Not vacuous: the walk read the support modules and the conftest, and it does see such imports.
    assert {"conftest.py", "support/helpers.py", "unit/test_test_tree.py"} <= set(offenders)
    planted = "from tests.ray.test_run import x\nimport tests.unit.test_config\nfrom ..loopback import test_http\n"
    assert of_lanes(imported_modules(planted, "tests.image.test_z", is_package=False)) == [
        "tests.loopback",
        "tests.loopback.test_http",
        "tests.ray.test_run",
        "tests.ray.test_run.x",
        "tests.unit.test_config",
    ]
    assert of_lanes(imported_modules("from tests.support.helpers import REPO\n", "tests.unit.test_z", False)) == []
