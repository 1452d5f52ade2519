"""Misspelled ConfigMap keys are problems with a suggestion; the operator's, other pods' and raypod's
own status keys are never flagged, and keys of other tools are left alone."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.config import parse_config
from raypod.config_keys import KNOWN_KEYS, SHORTEST_CLOSE_KEY, unknown_key_problems
from raypod.contract import FOREIGN_BRIDGE_KEYS, INPUT_KEYS, OWNED_KEYS
from raypod.errors import ConfigError

#: Every key the real operator writes (IBM/Bridge-Operator bridgejob_controller.go), ``message`` included.
OPERATOR_WRITES = (
    "updateInterval", "resourceURL", "jobproperties", "jobdata.jobScript", "jobdata.scriptLocation",
    "jobdata.scriptMetadata", "jobdata.jobParameters", "jobdata.scriptExtraLocation",
    "jobdata.additionalData", "s3.secret", "s3.endpoint", "s3.secure", "s3upload.bucket",
    "s3upload.files", "status.startTime", "status.endTime", "status.message", "kill", "message",
)  # fmt: skip
GOOD = {"resourceURL": "http://ray:8265", "jobdata.jobScript": "print(1)", "jobdata.scriptLocation": "inline"}
LONG_INPUT_KEYS = [key for key in INPUT_KEYS if len(key) >= SHORTEST_CLOSE_KEY]
LETTERS = string.ascii_letters + string.digits


@st.composite
def one_character_changed(draw: st.DrawFn) -> tuple[str, str]:
    """A known input key with one character replaced, inserted or deleted, and that key."""
    key = draw(st.sampled_from(LONG_INPUT_KEYS))
    at = draw(st.integers(0, len(key) - 1))
    char = draw(st.sampled_from(LETTERS))
    how = draw(st.sampled_from(["replace", "insert", "delete"]))
    changed = {
        "replace": key[:at] + char + key[at + 1 :],
        "insert": key[:at] + char + key[at:],
        "delete": key[:at] + key[at + 1 :],
    }[how]
    return changed, key


@given(one_character_changed())
def test_a_known_key_with_one_character_changed_is_a_problem_suggesting_that_key(case: tuple[str, str]) -> None:
    changed, key = case
    problems = unknown_key_problems([changed])
    if changed == key:
        assert problems == []
    else:
        ((flagged, problem),) = problems
        meant = problem.removeprefix("unknown key, raypod would ignore it: did you mean ").removesuffix("?")
        assert flagged == changed
        assert key in meant.split(" or ")


def test_a_key_as_near_to_two_known_keys_suggests_both() -> None:
    assert unknown_key_problems(["s3.secre"]) == [
        ("s3.secre", "unknown key, raypod would ignore it: did you mean s3.secret or s3.secure?")
    ]


@given(st.lists(st.sampled_from(sorted(KNOWN_KEYS | set(OPERATOR_WRITES))), unique=True))
def test_operator_keys_other_bridge_keys_and_status_keys_are_never_flagged(keys: list[str]) -> None:
    assert unknown_key_problems(keys) == []


def test_every_key_the_operator_and_raypod_write_is_known() -> None:
    assert set(OPERATOR_WRITES) | set(OWNED_KEYS) | set(FOREIGN_BRIDGE_KEYS) <= KNOWN_KEYS


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("jobdata.jobparameters", "jobdata.jobParameters"),
        ("jobdata.scriptmetadata", "jobdata.scriptMetadata"),
        ("jobProperties", "jobproperties"),
        ("job_properties", "jobproperties"),
        ("UpdateInterval", "updateInterval"),
        ("Kill", "kill"),
        ("status.JobStatus", "status.jobStatus"),
        ("s3upload.bukket", "s3upload.bucket"),
    ],
)
def test_the_issues_misspellings_suggest_the_key_meant(key: str, meant: str) -> None:
    assert unknown_key_problems([key]) == [(key, f"unknown key, raypod would ignore it: did you mean {meant}?")]


def test_an_unknown_key_under_a_raypod_prefix_lists_that_prefixs_keys() -> None:
    ((key, problem),) = unknown_key_problems(["s3.region"])
    assert key == "s3.region"
    assert "its s3.* keys: s3.endpoint, s3.secret, s3.secure" in problem


@pytest.mark.parametrize(
    "key",
    ["app.kubernetes.io/name", "owner", "kil", "ix", "status.somethingNew", "status.attemptz", "description"],
)
def test_keys_of_other_tools_and_new_status_keys_are_left_alone(key: str) -> None:
    assert unknown_key_problems([key]) == []


def test_parse_config_reports_every_misspelled_key_with_the_other_problems() -> None:
    data = {**GOOD, "jobdata.jobparameters": '{"a": 1}', "jobProperties": '{"retries": 2}', "updateInterval": "x"}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert [key for key, _ in caught.value.problems] == ["jobProperties", "jobdata.jobparameters", "updateInterval"]
    assert "did you mean jobdata.jobParameters?" in caught.value.lines[1]


def test_a_configmap_with_only_known_and_foreign_keys_parses() -> None:
    config = parse_config({**GOOD, "message": "operator note", "status.jobStatus": "", "team": "ml"})
    assert config.resource_url == "http://ray:8265"
