"""Parsing the ConfigMap's keys: pure, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.config import (
    DEFAULT_UPDATE_INTERVAL,
    S3Location,
    parse_config,
    parse_job_properties,
    parse_metadata,
    parse_parameters,
)
from raypod.errors import ConfigError
from raypod.source import DirectorySource, ManifestSource, open_source

MINIMAL = {"resourceURL": "http://ray-head:8265", "jobdata.jobScript": "/opt/job.py"}


def problems_of(data: dict[str, str]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_minimal_config_uses_operator_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.script_location == "remote"
    assert config.script == "/opt/job.py"
    assert config.extra_location == "inline"
    assert config.update_interval == DEFAULT_UPDATE_INTERVAL
    assert config.s3 is None
    assert config.kill is False
    assert config.submission_id is None


@pytest.mark.parametrize(("text", "seconds"), [("20", 20.0), ("5", 5.0), ("0.5", 0.5), (" 30\n", 30.0), ("1e1", 10.0)])
def test_update_interval_is_decimal_seconds(text: str, seconds: float) -> None:
    assert parse_config({**MINIMAL, "updateInterval": text}).update_interval == seconds


@pytest.mark.parametrize("text", ["twenty", "0", "-5", "nan", "inf"])
def test_update_interval_must_be_a_positive_number(text: str) -> None:
    assert problems_of({**MINIMAL, "updateInterval": text})[0][0] == "updateInterval"


def test_values_are_stripped_of_surrounding_whitespace() -> None:
    config = parse_config({"resourceURL": "  http://ray:8265/\n", "jobdata.jobScript": " /x.py \n", "kill": " TRUE\n"})
    assert config.resource_url == "http://ray:8265"
    assert config.script == "/x.py"
    assert config.kill is True


def test_every_problem_is_reported_not_only_the_first() -> None:
    keys = [key for key, _ in problems_of({"updateInterval": "x", "jobdata.scriptLocation": "ftp"})]
    assert keys == ["resourceURL", "updateInterval", "jobdata.scriptLocation", "jobdata.jobScript"]


@pytest.mark.parametrize("url", ["ray-head:8265", "ftp://ray:21", "http://", "http://user:pw@ray:8265"])
def test_resource_url_must_be_http_or_https(url: str) -> None:
    problems = problems_of({**MINIMAL, "resourceURL": url})
    assert problems[0][0] == "resourceURL"
    assert "pw" not in problems[0][1]


def test_s3_script_location_is_parsed() -> None:
    config = parse_config(
        {
            **MINIMAL,
            "jobdata.scriptLocation": "s3",
            "jobdata.jobScript": "mybucket:ray/code.py",
            "s3.endpoint": "s3:9000",
        }
    )
    assert config.script == S3Location("mybucket", "ray/code.py")
    # Named like the standard library's `code` (which Ray imports), it runs under another name.
    assert config.script_name == "job_code.py"


def test_s3_inputs_without_an_endpoint_is_an_error() -> None:
    problems = problems_of({**MINIMAL, "jobdata.scriptLocation": "s3", "jobdata.jobScript": "b:code.py"})
    assert problems == [("s3.endpoint", "missing, but the job's inputs are in S3")]


@pytest.mark.parametrize(
    ("endpoint", "secure_key", "expected"),
    [
        ("minio:9000", "", ("minio:9000", False)),
        ("minio:9000", "true", ("minio:9000", True)),
        ("https://minio.example.com", "", ("minio.example.com", True)),
        ("http://minio:9000", "true", ("minio:9000", False)),
    ],
)
def test_s3_endpoint_and_secure(endpoint: str, secure_key: str, expected: tuple[str, bool]) -> None:
    config = parse_config({**MINIMAL, "s3.endpoint": endpoint, "s3.secure": secure_key, "s3.secret": "s"})
    assert config.s3 is not None
    assert (config.s3.endpoint, config.s3.secure) == expected


def test_s3_secure_must_be_a_boolean() -> None:
    assert problems_of({**MINIMAL, "s3.endpoint": "m:9000", "s3.secure": "maybe"})[0][0] == "s3.secure"


def test_additional_data_lands_under_base_names() -> None:
    config = parse_config({**MINIMAL, "s3.endpoint": "m:9000", "jobdata.additionalData": "b:a/x.csv, c:y.bin ,"})
    assert [loc.base_name for loc in config.additional_data] == ["x.csv", "y.bin"]


@pytest.mark.parametrize(
    "value", ["b:../x", "b:a/../../x", "b:/etc/passwd/..", "b:dir/", "nocolon", "b:x.csv, c:other/x.csv"]
)
def test_additional_data_rejects_escapes_duplicates_and_bad_locations(value: str) -> None:
    problems = problems_of({**MINIMAL, "s3.endpoint": "m:9000", "jobdata.additionalData": value})
    assert problems[0][0] == "jobdata.additionalData"


def test_additional_data_may_not_shadow_the_script() -> None:
    problems = problems_of(
        {
            "resourceURL": "http://r:1",
            "jobdata.scriptLocation": "s3",
            "jobdata.jobScript": "b:code.py",
            "s3.endpoint": "m:9000",
            "jobdata.additionalData": "b:other/code.py",
        }
    )
    assert "same file name as the script" in problems[0][1]


def test_additional_data_may_not_overwrite_a_script_renamed_for_ray() -> None:
    # b:code.py runs as job_code.py; a data file of that name would replace it in the package.
    problems = problems_of(
        {
            "resourceURL": "http://r:1",
            "jobdata.scriptLocation": "s3",
            "jobdata.jobScript": "b:code.py",
            "s3.endpoint": "m:9000",
            "jobdata.additionalData": "b:x/job_code.py",
        }
    )
    assert problems == [
        ("jobdata.additionalData", "'b:x/job_code.py' has the same file name as the script ('job_code.py')")
    ]


def test_parameters_keep_order_and_render_json_scalars() -> None:
    params = parse_parameters(json.dumps({"b": "x y", "a": 1, "c": True, "d": 1.5, "e": [1, 2]}))
    assert list(params.items()) == [("b", "x y"), ("a", "1"), ("c", "true"), ("d", "1.5"), ("e", "[1,2]")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"k": "a=b"}', "has '=' in its value"),
        ('{"a=b": "v"}', "must be non-empty"),
        ('{"k": null}', "is null"),
        ("[]", "must be a JSON object"),
        ("{", "is not valid JSON"),
    ],
)
def test_parameters_that_the_job_parser_cannot_read_are_rejected(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_parameters(text)
    assert caught.value.problems[0][0] == "jobdata.jobParameters"
    assert fragment in caught.value.problems[0][1]


def test_metadata_pip_as_dict_or_list_and_env() -> None:
    meta = parse_metadata(json.dumps({"pip": {"numpy": "1.26.4", "pandas": ">=2", "rich": ""}, "env": {"A": 1}}))
    assert meta.pip == ("numpy==1.26.4", "pandas>=2", "rich")
    assert meta.env == {"A": "1"}
    assert parse_metadata('{"pip": ["requests>=2", "six"]}').pip == ("requests>=2", "six")


@pytest.mark.parametrize("text", ['{"pip": "numpy"}', '{"env": ["A"]}', '{"conda": {}}', '{"pip": [""]}'])
def test_bad_metadata_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_metadata(text)
    assert caught.value.problems[0][0] == "jobdata.scriptMetadata"


def test_job_properties_known_keys() -> None:
    props = parse_job_properties(
        json.dumps(
            {
                "entrypoint_num_cpus": 1,
                "entrypoint_num_gpus": 0.5,
                "entrypoint_memory": 1024,
                "entrypoint_resources": {"custom": 2},
                "metadata": {"team": "a"},
                "runtime_env": {"config": {"setup_timeout_seconds": 60}},
                "activeDeadlineSeconds": 30,
                "submissionIdPrefix": "nightly",
                "auth": "basic",
                "followLogs": False,
            }
        )
    )
    assert props.entrypoint_num_cpus == 1
    assert props.entrypoint_memory == 1024
    assert props.entrypoint_resources == {"custom": 2.0}
    assert props.active_deadline_seconds == 30
    assert props.submission_id_prefix == "nightly"
    assert props.auth == "basic"
    assert props.follow_logs is False


def test_unknown_job_property_lists_the_known_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_properties('{"entrypoint_num_cpu": 1}')
    message = caught.value.problems[0][1]
    assert "entrypoint_num_cpu" in message and "entrypoint_num_cpus" in message and "activeDeadlineSeconds" in message


@pytest.mark.parametrize(
    "text",
    [
        '{"entrypoint_num_cpus": "1"}',
        '{"entrypoint_memory": 1.5}',
        '{"activeDeadlineSeconds": 0}',
        '{"metadata": {"a": 1}}',
        '{"submissionIdPrefix": "bad prefix"}',
        '{"auth": "kerberos"}',
    ],
)
def test_job_properties_with_wrong_types_are_rejected(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_properties(text)
    assert caught.value.problems[0][0] == "jobproperties"


def test_directory_source_reads_one_file_per_key_and_skips_kubernetes_internals(tmp_path: Path) -> None:
    (tmp_path / "resourceURL").write_text("http://ray:8265\n")
    (tmp_path / "..data").mkdir()
    (tmp_path / "..2026_11_25").mkdir()
    assert DirectorySource(tmp_path).read() == {"resourceURL": "http://ray:8265\n"}


def test_manifest_source_reads_json_and_yaml(tmp_path: Path) -> None:
    as_json = tmp_path / "cm.json"
    as_json.write_text(json.dumps({"kind": "ConfigMap", "data": {"updateInterval": "5"}}))
    assert ManifestSource(as_json).read() == {"updateInterval": "5"}
    as_yaml = tmp_path / "cm.yaml"
    as_yaml.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  updateInterval: 5\n  kill: true\n"
    )
    assert ManifestSource(as_yaml).read() == {"updateInterval": "5", "kill": "true"}


def test_manifest_of_another_kind_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text('{"kind": "Secret", "data": {}}')
    with pytest.raises(ConfigError, match="Secret, not a ConfigMap"):
        ManifestSource(path).read()


def test_yaml_without_the_extra_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_yaml(name: str, *args: object, **kwargs: object) -> object:
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    path = tmp_path / "cm.yaml"
    path.write_text("kind: ConfigMap\ndata: {}\n")
    with pytest.raises(ConfigError, match=r"raypod\[yaml\]"):
        ManifestSource(path).read()


def test_missing_config_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(tmp_path / "nope")
