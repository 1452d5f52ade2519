"""Pure builders: entrypoint, runtime_env, submission body, package naming, status mapping."""

from __future__ import annotations

import shlex
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.clock import format_ray_time, format_time, parse_time
from raypod.config import S3Settings
from raypod.contract import BridgeStatus
from raypod.entrypoint import (
    build_entrypoint,
    build_runtime_env,
    build_submission,
    command_entrypoint,
    job_metadata,
    kwargs_tokens,
    new_submission_id,
)
from raypod.errors import ConfigError
from raypod.exits import for_status
from raypod.jobdata import INLINE_SCRIPT_NAME, Metadata, inline_script_name
from raypod.package import build_package
from raypod.properties import JobProperties
from raypod.ray import RayStatus


def test_s3_tokens_come_first_and_only_when_s3_is_configured() -> None:
    s3 = S3Settings("minio:9000", False, "my-secret")
    assert kwargs_tokens({"a": "1"}, s3=s3, bucket="bkt", job_name="job") == [
        "s3_secret=my-secret",
        "s3_bucket=bkt",
        "s3_prefix=job/",
        "s3_secure=false",
        "a=1",
    ]
    assert kwargs_tokens({"a": "1"}, s3=None, bucket=None, job_name="job") == ["a=1"]


def test_entrypoint_tokens_survive_the_shell_unchanged() -> None:
    tokens = ["greeting=hello  world", 'quote=it\'s "q"', "dollar=$HOME", "semi=a;b", "empty="]
    entrypoint = build_entrypoint("my script.py", tokens)
    assert shlex.split(entrypoint) == ["python", "my script.py", "--kwargs", *tokens]


def test_entrypoint_has_no_comma_joined_tokens() -> None:
    assert build_entrypoint("code.py", ["a=1", "b=2"]) == "python code.py --kwargs a=1 b=2"


def test_entrypoint_runs_the_script_inside_the_package_folder() -> None:
    assert build_entrypoint("code.py", ["a=1"], "raypod_job") == "cd raypod_job && python code.py --kwargs a=1"


def test_runtime_env_from_package_and_metadata() -> None:
    env = build_runtime_env("gcs://_ray_pkg_x.zip", Metadata(pip=("numpy==1",), env={"A": "b"}))
    assert env == {"working_dir": "gcs://_ray_pkg_x.zip", "pip": ["numpy==1"], "env_vars": {"A": "b"}}
    assert build_runtime_env(None, Metadata()) == {}


def test_runtime_env_extra_fields_merge_and_pip_options_wrap_packages() -> None:
    env = build_runtime_env(
        "gcs://p.zip",
        Metadata(pip=("six",)),
        {
            "pip": {"pip_install_options": ["--index-url", "http://mirror/simple"]},
            "config": {"setup_timeout_seconds": 9},
        },
    )
    assert env["pip"] == {"pip_install_options": ["--index-url", "http://mirror/simple"], "packages": ["six"]}
    assert env["config"] == {"setup_timeout_seconds": 9}


@pytest.mark.parametrize("field", ["working_dir", "env_vars"])
def test_runtime_env_field_clashing_with_raypods_is_an_error(field: str) -> None:
    with pytest.raises(ConfigError, match=f"runtime_env.{field} clashes"):
        build_runtime_env("gcs://p.zip", Metadata(env={"A": "1"}), {field: "x"})


def test_metadata_always_traces_back_to_the_bridge_job() -> None:
    props = JobProperties(metadata={"team": "x"})
    assert job_metadata(props, "job", "ns") == {"team": "x", "bridge-job": "job", "bridge-namespace": "ns"}
    with pytest.raises(ConfigError, match="bridge-job"):
        job_metadata(JobProperties(metadata={"bridge-job": "other"}), "job", "ns")


def test_submission_body_sends_only_what_is_set() -> None:
    body = build_submission(
        submission_id="s1",
        entrypoint="python x.py --kwargs",
        runtime_env={},
        metadata={},
        properties=JobProperties(entrypoint_num_cpus=0.5, entrypoint_resources={"r": 1.0}),
    )
    assert body == {
        "entrypoint": "python x.py --kwargs",
        "submission_id": "s1",
        "entrypoint_num_cpus": 0.5,
        "entrypoint_resources": {"r": 1.0},
    }


def test_submission_ids_are_unique_and_carry_the_prefix() -> None:
    first, second = new_submission_id("job"), new_submission_id("job")
    assert first != second and first.startswith("raypod-job-")
    assert new_submission_id("job", "nightly").startswith("nightly-")


def test_package_name_depends_only_on_content(tmp_path: Path) -> None:
    def make(folder: str, text: str) -> str:
        work = tmp_path / folder
        work.mkdir()
        (work / "script.py").write_text(text)
        (work / "data.csv").write_text("1,2\n")
        return build_package({"script.py": work / "script.py", "data.csv": work / "data.csv"}, work).name

    same_a, same_b, other = make("a", "print(1)"), make("b", "print(1)"), make("c", "print(2)")
    assert same_a == same_b != other
    assert same_a.startswith("_ray_pkg_") and same_a.endswith(".zip")


def test_package_holds_files_in_its_job_folder(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("x")
    package = build_package({"s.py": tmp_path / "s.py"}, tmp_path)
    with zipfile.ZipFile(package.path) as archive:
        assert archive.namelist() == ["raypod_job/s.py"]
    assert package.uri == f"gcs://{package.name}"


@pytest.mark.parametrize(
    ("ray", "bridge"),
    [
        ("PENDING", "PENDING"),
        ("RUNNING", "RUNNING"),
        ("SUCCEEDED", "SUCCEEDED"),
        ("FAILED", "FAILED"),
        ("STOPPED", "KILL"),
    ],
)
def test_ray_status_maps_to_bridge_status(ray: str, bridge: str) -> None:
    assert RayStatus(ray).bridge == bridge


def test_a_status_ray_never_gives_is_no_ray_status() -> None:
    with pytest.raises(ValueError, match="WEIRD"):
        RayStatus("WEIRD")


def test_exit_code_is_zero_only_for_success() -> None:
    finals = [BridgeStatus(s) for s in ("SUCCEEDED", "FAILED", "KILL", "UNKNOWN")]
    assert [for_status(s) for s in finals] == [0, 1, 1, 1]
    with pytest.raises(AssertionError, match="not a final status"):
        for_status(BridgeStatus.RUNNING)


def test_times_use_the_operators_go_layout_in_utc() -> None:
    moment = datetime(2022, 4, 19, 21, 32, 40, tzinfo=timezone.utc)
    assert format_time(moment) == "2022-04-19T21:32:40Z"
    assert format_ray_time(int(moment.timestamp() * 1000)) == "2022-04-19T21:32:40Z"
    assert format_ray_time(None) is None
    assert parse_time("2022-04-19T21:32:40Z") == moment
    assert parse_time("19/04/2022 21:32:40") is None


def test_submission_id_from_the_configmaps_uid_is_the_same_in_every_pod() -> None:
    first, again = new_submission_id("train", None, "0b1c-uid"), new_submission_id("train", None, "0b1c-uid")
    assert first == again and first.startswith("raypod-train-") and len(first) == len("raypod-train-") + 12
    assert new_submission_id("train", None, "another-uid") != first
    assert new_submission_id("train") != new_submission_id("train")  # no uid known: random


def test_the_bridge_convention_sends_kwargs_even_with_no_parameters() -> None:
    assert build_entrypoint("code.py", []) == "python code.py --kwargs"


def test_without_the_bridge_convention_kwargs_comes_only_with_parameters() -> None:
    assert build_entrypoint("ap.py", [], always_kwargs=False) == "python ap.py"
    assert build_entrypoint("ap.py", ["a=1"], always_kwargs=False) == "python ap.py --kwargs a=1"


def test_the_scripts_own_arguments_come_before_kwargs_and_the_parameters() -> None:
    entrypoint = build_entrypoint("ap.py", ["a=1"], "raypod_job", always_kwargs=False, args=["data.csv", "-n", "3"])
    assert entrypoint == "cd raypod_job && python ap.py data.csv -n 3 --kwargs a=1"


#: Any text the shell can carry in one word: no NUL, which no argv can hold.
SHELL_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@given(args=st.lists(SHELL_TEXT, max_size=8), tokens=st.lists(SHELL_TEXT, max_size=4))
def test_any_argument_list_reaches_the_script_unchanged_through_the_shell(args: list[str], tokens: list[str]) -> None:
    entrypoint = build_entrypoint("ap.py", tokens, always_kwargs=False, args=args)
    kwargs = ["--kwargs", *tokens] if tokens else []
    assert shlex.split(entrypoint) == ["python", "ap.py", *args, *kwargs]


@given(command=st.lists(SHELL_TEXT, min_size=1, max_size=8))
def test_a_command_after_double_dash_reaches_the_shell_word_for_word_as_ray_job_submit_sends_it(
    command: list[str],
) -> None:
    # `ray job submit -- COMMAND` sends shlex.join(COMMAND) (ray/dashboard/modules/job/cli.py, Ray 2.60);
    # the real head's side is tests/ray/test_entrypoint_command_on_ray.py.
    assert shlex.split(command_entrypoint(command)) == command


@pytest.mark.parametrize("name", ["train.py", "ap_2.py", "My-Job.v2.py", "_x.py"])
def test_a_local_script_keeps_its_plain_file_name_on_ray(name: str) -> None:
    assert inline_script_name(name) == name


@pytest.mark.parametrize(
    "name", ["my job.py", "-x.py", ".hidden.py", "a;b.py", "train", "train.pyc", "é.py", "$x.py", "a" * 101 + ".py"]
)
def test_a_local_script_whose_name_is_not_plain_runs_as_script_py(name: str) -> None:
    assert inline_script_name(name) == INLINE_SCRIPT_NAME


def test_a_local_script_named_like_a_module_ray_imports_keeps_the_job_prefix() -> None:
    assert inline_script_name("code.py") == "job_code.py"
