"""The package's modules import one another only downwards: no circle, counting the imports made
inside functions too (docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.helpers import REPO

PACKAGE = REPO / "raypod"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("raypod"):
            if node.module == "raypod":
                found.update(f"raypod.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("raypod."))
    return found


def graph() -> dict[str, set[str]]:
    modules = {f"raypod.{path.stem}": path for path in PACKAGE.glob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def circle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One circle of imports, as the modules on it, or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_module_of_the_package_imports_one_that_imports_it_back() -> None:
    edges = graph()
    assert len(edges) > 30
    assert circle_in(edges) is None


def test_the_circle_finder_finds_a_circle() -> None:
    assert circle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert circle_in({"a": {"b"}, "b": set()}) is None
