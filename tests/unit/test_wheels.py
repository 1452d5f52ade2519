"""Wheels for clusters without a package index (metadata ``wheels`` and ``submit --wheel``): their
content-addressed names, the metadata's checks, the merge with the user's ``py_modules``, the size limit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from raypod.entrypoint import build_runtime_env
from raypod.errors import ConfigError
from raypod.jobdata import Metadata, parse_metadata
from raypod.package import UPLOAD_LIMIT, wheel_package
from raypod.wheels import content_addressed_name
from tests.support.wheels import make_wheel


# -- naming, parsing, merging ------------------------------------------------------------------------
def test_a_wheel_is_uploaded_under_a_name_of_its_content_that_pip_still_reads_as_a_wheel(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    one = wheel_package(make_wheel(first, "mylib", "1.0", "one"), "--wheel")
    other = wheel_package(make_wheel(second, "mylib", "1.0", "two"), "--wheel")  # same file name, other content
    again = wheel_package(make_wheel(second, "mylib", "1.0", "one"), "--wheel")
    assert one.name != other.name and one.name == again.name
    digest = hashlib.sha256((first / "mylib-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    assert one.name == f"mylib-1.0-0{digest[:32]}-py3-none-any.whl"
    assert one.uri == f"gcs://{one.name}"
    name, version, build, tags = parse_wheel_filename(one.name)
    assert (name, str(version), sorted(str(tag) for tag in tags)) == ("mylib", "1.0", ["py3-none-any"])
    assert isinstance(build[0], int) and digest[:32].endswith(build[1])  # a build tag: a number, then the rest
    # A build tag of the wheel's own is replaced: the hash must be the one tie-breaker.
    assert content_addressed_name("my_lib-2.0.post1-7-cp311-cp311-manylinux_2_17_x86_64.whl", "ab" * 32) == (
        f"my_lib-2.0.post1-0{'ab' * 16}-cp311-cp311-manylinux_2_17_x86_64.whl"
    )


def test_wheels_in_the_metadata_are_checked_naming_the_key_and_each_wheel() -> None:
    good = parse_metadata(json.dumps({"wheels": ["bkt:wheels/mylib-1.0-py3-none-any.whl"]}))
    assert [str(location) for location in good.wheels] == ["bkt:wheels/mylib-1.0-py3-none-any.whl"]
    with pytest.raises(ConfigError) as caught:
        parse_metadata(
            json.dumps(
                {
                    "wheels": [
                        "no-colon.whl",
                        "bkt:lib.tar.gz",
                        "bkt:not-a-wheel.whl",
                        "bkt:a/mylib-1.0-py3-none-any.whl",
                        "bkt:b/MyLib-2.0-py3-none-any.whl",
                    ]
                }
            )
        )
    assert caught.value.lines == [
        "jobdata.scriptMetadata: wheels: expected bucket:object, got 'no-colon.whl' (no ':')",
        "jobdata.scriptMetadata: wheels: wheel 'bkt:lib.tar.gz' is not a .whl file",
        "jobdata.scriptMetadata: wheels: wheel 'bkt:not-a-wheel.whl': 'not-a-wheel.whl' is not a wheel file name "
        "(name-version[-build]-python-abi-platform.whl, e.g. mylib-1.0-py3-none-any.whl)",
        "jobdata.scriptMetadata: wheels: wheel 'bkt:b/MyLib-2.0-py3-none-any.whl' and wheel "
        "'bkt:a/mylib-1.0-py3-none-any.whl' are both wheels of MyLib",
    ]
    with pytest.raises(ConfigError, match=r"wheels must be a list of bucket:object \.whl files"):
        parse_metadata(json.dumps({"wheels": "bkt:mylib-1.0-py3-none-any.whl"}))


def test_the_users_py_modules_are_merged_with_the_wheels_and_anything_else_is_an_error() -> None:
    wheels = ["gcs://mylib-1.0-0abc-py3-none-any.whl"]
    env = build_runtime_env(None, Metadata(), {"py_modules": ["s3://bucket/shared.zip", wheels[0]]}, wheels)
    assert env == {"py_modules": ["s3://bucket/shared.zip", wheels[0]]}
    assert build_runtime_env(None, Metadata(), {"py_modules": ["s3://b/x.zip"]}) == {"py_modules": ["s3://b/x.zip"]}
    with pytest.raises(ConfigError, match=r"runtime_env\.py_modules must be a list of URIs to be merged"):
        build_runtime_env(None, Metadata(), {"py_modules": "s3://bucket/shared.zip"}, wheels)


def test_a_wheel_over_rays_upload_limit_is_bad_input_before_it_is_read(tmp_path: Path) -> None:
    wheel = tmp_path / "huge-1.0-py3-none-any.whl"
    with wheel.open("wb") as sparse:
        sparse.truncate(UPLOAD_LIMIT + 1)
    with pytest.raises(ConfigError) as caught:
        wheel_package(wheel, "--wheel")
    assert caught.value.lines == [
        "--wheel: the wheel huge-1.0-py3-none-any.whl is 100.0 MiB, more than the 100.0 MiB Ray's dashboard "
        "takes in one upload"
    ]
