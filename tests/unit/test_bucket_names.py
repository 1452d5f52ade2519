"""Bucket names in the ConfigMap follow S3's rules, wherever a key names a bucket."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.config import parse_config
from raypod.errors import ConfigError
from raypod.jobdata import bucket_name_problem

BASE = {"resourceURL": "http://ray:8265", "s3.endpoint": "s3:9000"}
EDGE = string.ascii_lowercase + string.digits
MIDDLE = EDGE + "-"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("ab", "it has 2 characters, not 3 to 63"),
        ("a" * 64, "it has 64 characters, not 3 to 63"),
        ("My-Bucket", "it holds 'B', 'M': only lowercase letters, digits, '.' and '-' are allowed"),
        ("my_bucket", "it holds '_': only lowercase letters, digits, '.' and '-' are allowed"),
        ("-bucket", "it must start and end with a letter or digit"),
        ("bucket.", "it must start and end with a letter or digit"),
        ("my..bucket", "it holds '..'"),
        ("192.168.5.4", "it is an IP address"),
        ("xn--bucket", "S3 reserves its prefix or suffix"),
        ("data-s3alias", "S3 reserves its prefix or suffix"),
        ("data--ol-s3", "S3 reserves its prefix or suffix"),
    ],
)
def test_a_name_breaking_s3s_rules_is_a_problem_saying_which(name: str, why: str) -> None:
    problem = bucket_name_problem(name)
    assert problem == f"bucket {name!r} is not an S3 bucket name: {why}"


@given(
    st.builds(
        lambda first, middle, last: first + middle + last,
        st.sampled_from(EDGE),
        st.text(MIDDLE, min_size=1, max_size=61),
        st.sampled_from(EDGE),
    )
)
def test_every_name_of_lowercase_letters_digits_and_hyphens_within_the_rule_is_accepted(name: str) -> None:
    if not name.startswith("xn--") and not name.endswith(("-s3alias", "--ol-s3", "--x-s3", "--table-s3")):
        assert bucket_name_problem(name) is None


@pytest.mark.parametrize("name", ["abc", "my-bucket", "logs.2026.team-a", "a" * 63, "1.2.3.4.5", "nobucket-x"])
def test_ordinary_names_are_accepted(name: str) -> None:
    assert bucket_name_problem(name) is None


def test_every_key_that_names_a_bucket_is_checked_and_all_are_reported() -> None:
    data = {
        **BASE,
        "jobdata.scriptLocation": "s3",
        "jobdata.jobScript": "Code_Bucket:train.py",
        "jobdata.scriptExtraLocation": "s3",
        "jobdata.scriptMetadata": "m:meta.json",
        "jobdata.jobParameters": "p..q:params.json",
        "jobdata.additionalData": "ok-bucket:a.csv, 10.0.0.1:b.csv",
        "s3upload.bucket": "Results",
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert sorted(key for key, _ in caught.value.problems) == [
        "jobdata.additionalData",
        "jobdata.jobParameters",
        "jobdata.jobScript",
        "jobdata.scriptMetadata",
        "s3upload.bucket",
    ]
    assert all("is not an S3 bucket name" in problem for _, problem in caught.value.problems)


def test_a_wheel_in_a_badly_named_bucket_is_a_problem_of_the_metadata() -> None:
    data = {**BASE, "jobdata.jobScript": "/x.py", "jobdata.scriptMetadata": '{"wheels": ["W:a-1.0-py3-none-any.whl"]}'}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    ((key, problem),) = caught.value.problems
    assert key == "jobdata.scriptMetadata" and problem.startswith("wheels: bucket 'W' is not an S3 bucket name")
