"""The link check of ``make check`` (devtools/check_links.py): broken links and anchors are caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools.check_links import github_slug, link_problems, main

REPO = Path(__file__).resolve().parents[2]


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_repositorys_own_links_all_resolve() -> None:
    assert link_problems(REPO) == []


def test_a_link_to_a_missing_file_is_caught(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "See [the guide](docs/guide.md) and [cli](docs/cli.md).\n")
    write(tmp_path, "docs/cli.md", "# CLI\n")
    assert link_problems(tmp_path) == ["README.md:1: docs/guide.md: no such file in the repository"]


def test_a_link_to_a_missing_heading_is_caught(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "[ok](docs/cli.md#exit-codes), [bad](docs/cli.md#exit-code), [self](#install)\n")
    write(tmp_path, "docs/cli.md", "# CLI\n\n## Exit codes\n")
    assert link_problems(tmp_path) == [
        "README.md:1: docs/cli.md#exit-code: no heading #exit-code in docs/cli.md",
        "README.md:1: #install: no heading #install in README.md",
    ]


def test_a_link_out_of_the_clone_is_caught_even_when_the_file_exists(tmp_path: Path) -> None:
    write(tmp_path, "shared/CONTRACT.md", "# Contract\n")
    repo = tmp_path / "repo"
    write(repo, "README.md", "[c](../shared/CONTRACT.md)\n[a](/etc/hosts)\n[f](file:///etc/hosts)\n")
    assert link_problems(repo) == [
        "README.md:1: ../shared/CONTRACT.md points outside the repository",
        "README.md:2: /etc/hosts points outside the repository",
        "README.md:3: file:///etc/hosts points outside the repository",
    ]


def test_links_in_code_and_to_the_web_are_not_checked(tmp_path: Path) -> None:
    write(
        tmp_path,
        "README.md",
        "```\n[x](missing.md)\n```\n`[y](missing.md)` [web](https://example.com/x.md) [mail](mailto:a@b.c)\n",
    )
    assert link_problems(tmp_path) == []


def test_anchors_follow_githubs_rules() -> None:
    assert github_slug("Job properties (`jobproperties`)") == "job-properties-jobproperties"
    assert github_slug("The operator's rules") == "the-operators-rules"
    assert github_slug("run: the pod") == "run-the-pod"
    assert github_slug("A [link](x.md) and *emphasis*") == "a-link-and-emphasis"


def test_repeated_headings_get_numbered_anchors(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "# Notes\n## Notes\n## Notes\n[1](#notes-1) [2](#notes-2) [3](#notes-3)\n")
    assert link_problems(tmp_path) == ["a.md:4: #notes-3: no heading #notes-3 in a.md"]


def test_the_command_fails_and_names_each_broken_link(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "README.md", "[gone](gone.md)\n")
    assert main([str(tmp_path)]) == 1
    assert "README.md:1: gone.md: no such file in the repository" in capsys.readouterr().err


def test_a_document_the_code_names_must_exist_with_its_heading(tmp_path: Path) -> None:
    write(tmp_path, "docs/configmap.md", "# The ConfigMap\n## Job properties (`jobproperties`)\n")
    write(
        tmp_path,
        "raypod/properties.py",
        '# docs/configmap.md#job-properties-jobproperties\nHINT = "see docs/configmap.md#jobproperties"\n'
        'CONTRACT = "../shared/CONTRACT.md"\nGONE = "docs/contract.md"\n',
    )
    assert link_problems(tmp_path) == [
        "raypod/properties.py:2: docs/configmap.md#jobproperties: no heading #jobproperties in docs/configmap.md",
        "raypod/properties.py:3: ../shared/CONTRACT.md points outside the repository",
        "raypod/properties.py:4: docs/contract.md: no such file in the repository",
    ]
