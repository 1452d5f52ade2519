"""The one rule for submission ids (issue 20, class 8): what it accepts and refuses, and that every
source of an id applies it, naming itself."""

from __future__ import annotations

import json

import pytest

from raypod.config import parse_config
from raypod.contract import MAX_SUBMISSION_ID_LENGTH, submission_id_problem
from raypod.entrypoint import new_submission_id
from raypod.errors import ConfigError
from raypod.properties import parse_job_properties
from raypod.ray import segment

MINIMAL = {"resourceURL": "http://ray:8265", "jobdata.jobScript": "/x.py"}


@pytest.mark.parametrize(
    "text",
    ["raysubmit_aBc123", "raypod-train-0123456789ab-r2", "02000000", "a.b:c@d+e=f~g", "x" * MAX_SUBMISSION_ID_LENGTH],
)
def test_ids_ray_and_raypod_make_are_accepted(text: str) -> None:
    assert submission_id_problem(text) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("my-job/../victim", "'/'"),
        ("a\\b", "'\\\\'"),
        ("a{b}", "'{'"),
        ("my job", "' '"),
        ("tab\there", "'\\t'"),
        ("jöb", "'ö'"),
        (".", "a path"),
        ("..", "a path"),
        ("", "empty"),
        ("x" * (MAX_SUBMISSION_ID_LENGTH + 1), "241 characters"),
    ],
)
def test_ids_that_are_paths_or_unreadable_by_ray_are_refused_saying_why(text: str, why: str) -> None:
    problem = submission_id_problem(text)
    assert problem is not None and why in problem and "is not a Ray submission id" in problem


def test_every_id_sent_is_one_path_segment() -> None:
    assert segment("a/../b") == "a%2F..%2Fb"


def test_a_configmap_id_that_is_a_path_is_a_problem_even_after_a_submission() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({**MINIMAL, "id": "a/../b"}, submitted=True)
    assert [key for key, _ in raised.value.problems] == ["id"]


@pytest.mark.parametrize("prefix", ["../victim", "a b", "x" * 230, "jöb"])
def test_a_prefix_whose_ids_break_the_rule_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_job_properties(json.dumps({"submissionIdPrefix": prefix}), "jobproperties")
    assert "submissionIdPrefix" in str(raised.value) and "is not a Ray submission id" in str(raised.value)


def test_a_job_name_that_would_make_a_bad_id_is_bad_input_naming_jobname() -> None:
    with pytest.raises(ConfigError) as raised:
        new_submission_id("a/../b")
    assert raised.value.problems[0][0] == "JOBNAME"
