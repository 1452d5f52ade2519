"""The Makefile: `make help` lists every target, and the check targets really check.

`make help` is generated from the Makefile's own `## ` comments, so a target without one is missing
from it; and a target declared .PHONY without a recipe would succeed without doing anything.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = REPO / "Makefile"
#: A rule's targets: plain names before a single ``:`` (not ``:=``), such as ``test-unit test-ray: ...``.
RULE = re.compile(r"^([a-z][a-z0-9-]*(?: +[a-z][a-z0-9-]*)*) *:(?!=)", re.MULTILINE)


def make(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def makefile_targets() -> set[str]:
    """Every target the Makefile names: its .PHONY list and every rule with a plain name."""
    text = MAKEFILE.read_text().replace("\\\n", " ")
    phony = re.search(r"^\.PHONY:(.*)$", text, re.MULTILINE)
    assert phony is not None
    rules = {name for match in RULE.finditer(text) for name in match.group(1).split()}
    return set(phony.group(1).split()) | rules


def test_make_help_lists_every_target_with_a_description() -> None:
    targets = makefile_targets()
    listed = {}
    for line in make("help").splitlines():
        words = line.split(maxsplit=2)
        assert len(words) == 3 and words[0] == "make", f"not a 'make TARGET  description' line: {line!r}"
        listed[words[1]] = words[2]
    assert targets - set(listed) == set(), "targets missing from `make help`"
    assert set(listed) - targets == set(), "`make help` lists targets the Makefile does not have"
    # Not vacuous: the parse found the lanes of the pattern rule and the check targets.
    assert {"help", "test-unit", "test-image", "check", "lint", "typecheck", "links", "wheel"} <= targets


def test_the_check_targets_run_ruff_mypy_and_the_link_check() -> None:
    assert "ruff check" in make("-n", "lint")
    assert "ruff format --check" in make("-n", "lint")
    assert "mypy raypod devtools" in make("-n", "typecheck")
    assert "devtools.check_links" in make("-n", "links")
    everything = make("-n", "check")
    assert all(step in everything for step in ("ruff check", "mypy", "devtools.check_links"))
