"""Parsing the ConfigMap's keys: pure, no network."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.config import parse_config
from raypod.contract import DEFAULT_UPDATE_INTERVAL, MIN_UPDATE_INTERVAL
from raypod.errors import ConfigError
from raypod.jobdata import MAX_JSON_DEPTH, PARAMETER_NAME, Metadata, S3Location, parse_metadata, parse_parameters
from raypod.properties import KNOWN_PROPERTIES, parse_job_properties
from raypod.source import DirectorySource, ManifestSource, open_source
from tests.support.helpers import REPO

MINIMAL = {"resourceURL": "http://ray-head:8265", "jobdata.jobScript": "/opt/job.py"}


def problems_of(data: dict[str, str]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def test_minimal_config_uses_operator_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.script_location == "remote"
    assert config.script == "/opt/job.py"
    # scriptExtraLocation defaults to inline: empty metadata and parameters, parsed, not S3 objects.
    assert (config.metadata, config.parameters) == (Metadata(), {})
    assert config.update_interval == DEFAULT_UPDATE_INTERVAL
    assert config.s3 is None
    assert config.kill is False
    assert config.submission_id is None


@pytest.mark.parametrize(("text", "seconds"), [("20", 20.0), ("5", 5.0), ("0.5", 0.5), (" 30\n", 30.0), ("1e1", 10.0)])
def test_update_interval_is_decimal_seconds(text: str, seconds: float) -> None:
    assert parse_config({**MINIMAL, "updateInterval": text}).update_interval == seconds


@pytest.mark.parametrize("text", ["twenty", "nan", "inf", "-inf", ""])
def test_update_interval_must_be_a_finite_number(text: str) -> None:
    if not text:
        assert parse_config({**MINIMAL, "updateInterval": text}).update_interval == DEFAULT_UPDATE_INTERVAL
        return
    assert problems_of({**MINIMAL, "updateInterval": text})[0][0] == "updateInterval"


@pytest.mark.parametrize("text", ["0", "-5", "0.1"])
def test_an_update_interval_below_the_floor_is_raised_to_it_with_a_note(text: str) -> None:
    # The operator's updateInterval is a Go int with no minimum: "0" and "-5" reach the ConfigMap.
    config = parse_config({**MINIMAL, "updateInterval": text})
    assert config.update_interval == MIN_UPDATE_INTERVAL
    assert config.notes == (f"updateInterval {text!r} is below the 0.5 s floor: 0.5 s is used",)


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
    problems = problems_of({**MINIMAL, "jobdata.scriptLocation": "s3", "jobdata.jobScript": "bkt:code.py"})
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
    config = parse_config({**MINIMAL, "s3.endpoint": "m:9000", "jobdata.additionalData": "bkt:a/x.csv, cbk:y.bin ,"})
    assert [loc.base_name for loc in config.additional_data] == ["x.csv", "y.bin"]


@pytest.mark.parametrize(
    "value", ["bkt:../x", "bkt:a/../../x", "bkt:/etc/passwd/..", "bkt:dir/", "nocolon", "bkt:x.csv, cbk:other/x.csv"]
)
def test_additional_data_rejects_escapes_duplicates_and_bad_locations(value: str) -> None:
    problems = problems_of({**MINIMAL, "s3.endpoint": "m:9000", "jobdata.additionalData": value})
    assert problems[0][0] == "jobdata.additionalData"


def test_additional_data_may_not_shadow_the_script() -> None:
    problems = problems_of(
        {
            "resourceURL": "http://r:1",
            "jobdata.scriptLocation": "s3",
            "jobdata.jobScript": "bkt:code.py",
            "s3.endpoint": "m:9000",
            "jobdata.additionalData": "bkt:other/code.py",
        }
    )
    assert "same file name as the script" in problems[0][1]


def test_additional_data_may_not_overwrite_a_script_renamed_for_ray() -> None:
    # bkt:code.py runs as job_code.py; a data file of that name would replace it in the package.
    problems = problems_of(
        {
            "resourceURL": "http://r:1",
            "jobdata.scriptLocation": "s3",
            "jobdata.jobScript": "bkt:code.py",
            "s3.endpoint": "m:9000",
            "jobdata.additionalData": "bkt:x/job_code.py",
        }
    )
    assert problems == [
        ("jobdata.additionalData", "'bkt:x/job_code.py' has the same file name as the script ('job_code.py')")
    ]


def test_parameters_keep_order_and_render_json_scalars() -> None:
    params = parse_parameters(json.dumps({"b": "x y", "a": 1, "c": True, "d": 1.5, "e": [1, 2]}))
    assert list(params.items()) == [("b", "x y"), ("a", "1"), ("c", "true"), ("d", "1.5"), ("e", "[1,2]")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"k": "a=b"}', "has '=' in its value"),
        ('{"a=b": "v"}', "ParseKwargs splits each token on '='"),
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


def documented_job_properties() -> list[str]:
    """The keys of the "Job properties" table in docs/configmap.md (the first column's names)."""
    text = (REPO / "docs" / "configmap.md").read_text()
    section = text.split("## Job properties", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return sorted(name for row in rows for name in re.findall(r"`([A-Za-z_]+)`", row.split("|")[1]))


def test_unknown_job_property_lists_the_known_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_properties('{"entrypoint_num_cpu": 1, "followlogs": false}')
    [(key, message)] = caught.value.problems
    assert key == "jobproperties"
    unknown, rest = message.split("; known keys: ")
    known, hint = rest.split(" (", 1)
    assert unknown == "unknown key(s) entrypoint_num_cpu, followlogs"
    # A BridgeJob written for the first ray-pod, which ignored jobproperties, is told what to do.
    assert "the first ray-pod ignored jobproperties" in hint and "docs/configmap.md#job-properties" in hint
    # Every key the documentation lists, and only those: the message is the user's reference.
    assert known.split(", ") == documented_job_properties()
    assert "entrypoint_num_cpus" in known and "activeDeadlineSeconds" in known


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


def test_yaml_without_pyyaml_says_to_pip_install_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_yaml(name: str, *args: object, **kwargs: object) -> object:
        if name == "yaml":
            raise ImportError("No module named 'yaml'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_yaml)
    path = tmp_path / "cm.yaml"
    path.write_text("kind: ConfigMap\ndata: {}\n")
    with pytest.raises(ConfigError, match="`pip install PyYAML`") as raised:
        ManifestSource(path).read()
    # raypod is on no package index: `pip install raypod[yaml]` would install nothing.
    assert "raypod[" not in str(raised.value)


def test_missing_config_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        open_source(tmp_path / "nope")


# -- numbers in jobproperties are finite ---------------------------------------------------
#: JSON texts Python's json module reads as NaN or an infinity (1e400 overflows to inf).
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400"]
NUMBER_FIELDS = {
    "entrypoint_num_cpus": '{{"entrypoint_num_cpus": {}}}',
    "entrypoint_num_gpus": '{{"entrypoint_num_gpus": {}}}',
    "entrypoint_memory": '{{"entrypoint_memory": {}}}',
    "entrypoint_resources": '{{"entrypoint_resources": {{"custom": {}}}}}',
    "activeDeadlineSeconds": '{{"activeDeadlineSeconds": {}}}',
}


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize("field", sorted(NUMBER_FIELDS))
def test_non_finite_job_property_numbers_are_a_problem_naming_the_field(field: str, number: str) -> None:
    problems = problems_of({**MINIMAL, "jobproperties": NUMBER_FIELDS[field].format(number)})
    assert len(problems) == 1
    key, problem = problems[0]
    assert key == "jobproperties"
    assert field in problem
    assert "finite" in problem


def test_a_resource_amount_problem_names_the_resource() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_job_properties('{"entrypoint_resources": {"ok": 1, "bad": NaN}}')
    assert caught.value.problems == [
        ("jobproperties", "entrypoint_resources amount of 'bad' must be a finite, non-negative number, got nan")
    ]


def test_an_integer_too_large_for_a_float_is_not_a_finite_number() -> None:
    with pytest.raises(ConfigError, match="entrypoint_num_cpus must be a finite"):
        parse_job_properties('{"entrypoint_num_cpus": 1' + "0" * 400 + "}")


def test_finite_job_property_numbers_still_pass() -> None:
    props = parse_job_properties('{"entrypoint_num_cpus": 0, "entrypoint_memory": 1e9, "activeDeadlineSeconds": 1e-3}')
    assert (props.entrypoint_num_cpus, props.entrypoint_memory, props.active_deadline_seconds) == (0, 10**9, 1e-3)


@pytest.mark.parametrize("number", NON_FINITE)
def test_runtime_env_holding_a_non_finite_number_is_rejected(number: str) -> None:
    with pytest.raises(ConfigError, match="runtime_env holds NaN or an infinity") as caught:
        parse_job_properties(f'{{"runtime_env": {{"config": {{"setup_timeout_seconds": [{number}]}}}}}}')
    assert caught.value.problems[0][0] == "jobproperties"


# -- JSON nesting is bounded ---------------------------------------------------------------
def nested_list(levels: int) -> str:
    """JSON of ``levels`` lists, one inside the other, around a 1."""
    return "[" * levels + "1" + "]" * levels


#: key -> JSON whose total depth is MAX_JSON_DEPTH plus the extra levels given.
NESTING = {
    "jobdata.jobParameters": lambda extra: f'{{"p": {nested_list(MAX_JSON_DEPTH - 1 + extra)}}}',
    "jobdata.scriptMetadata": lambda extra: f'{{"env": {{"A": {nested_list(MAX_JSON_DEPTH - 2 + extra)}}}}}',
    "jobproperties": lambda extra: f'{{"runtime_env": {{"config": {nested_list(MAX_JSON_DEPTH - 2 + extra)}}}}}',
}


@pytest.mark.parametrize("key", sorted(NESTING))
def test_json_nested_to_the_depth_limit_is_accepted(key: str) -> None:
    parse_config({**MINIMAL, key: NESTING[key](0)})


@pytest.mark.parametrize("key", sorted(NESTING))
def test_json_nested_one_level_deeper_than_the_limit_is_a_problem_naming_the_key(key: str) -> None:
    assert problems_of({**MINIMAL, key: NESTING[key](1)}) == [
        (key, f"nests deeper than {MAX_JSON_DEPTH} levels of objects and lists")
    ]


@pytest.mark.parametrize("key", sorted(NESTING))
def test_json_nested_past_the_interpreters_recursion_limit_is_a_problem_not_a_recursion_error(key: str) -> None:
    levels = 100 * sys.getrecursionlimit()
    problems = problems_of({**MINIMAL, key: "[" * levels + "]" * levels})
    assert problems == [(key, f"nests deeper than {MAX_JSON_DEPTH} levels of objects and lists")]


def test_deep_metadata_read_later_from_s3_is_bounded_too() -> None:
    with pytest.raises(ConfigError, match="nests deeper"):
        parse_metadata('{"env": {"A": ' + nested_list(5000) + "}}")


# -- parameter names -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("--lr", "argparse would read it as an option"),
        ("-x", "argparse would read it as an option"),
        ("1abc", "not an identifier-like name"),
        ("a b", "holds whitespace"),
        ("a=b", "ParseKwargs splits each token on '='"),
        ("", "it is empty"),
        ("a/b", "not an identifier-like name"),
    ],
)
def test_parameter_names_that_are_not_identifier_like_are_rejected_saying_why(name: str, why: str) -> None:
    problems = problems_of({**MINIMAL, "jobdata.jobParameters": json.dumps({name: "1"})})
    assert len(problems) == 1
    key, problem = problems[0]
    assert key == "jobdata.jobParameters"
    assert repr(name) in problem
    assert "must start with a letter or '_'" in problem
    assert why in problem


@pytest.mark.parametrize("name", ["lr", "_x", "learning-rate", "a.b", "A1", "x_2.y-z"])
def test_identifier_like_parameter_names_are_accepted(name: str) -> None:
    assert parse_parameters(json.dumps({name: "1"})) == {name: "1"}


def test_every_bad_parameter_name_is_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_parameters('{"--lr": 1, "ok": 2, "1x": 3}')
    assert [problem.split(" ", 3)[2] for _, problem in caught.value.problems] == ["'--lr'", "'1x'"]


# -- updateInterval floor --------------------------------------------------------------------
def test_update_interval_at_the_floor_is_accepted() -> None:
    assert parse_config({**MINIMAL, "updateInterval": "0.5"}).update_interval == MIN_UPDATE_INTERVAL


def test_the_new_checks_are_all_listed_together() -> None:
    problems = problems_of(
        {
            **MINIMAL,
            "updateInterval": "nan",
            "jobdata.jobParameters": '{"--lr": "1"}',
            "jobproperties": '{"entrypoint_memory": 1e400, "entrypoint_num_cpus": NaN}',
        }
    )
    assert [key for key, _ in problems] == ["updateInterval", "jobdata.jobParameters", "jobproperties", "jobproperties"]


# -- any JSON: parsed, or a ConfigError; never another exception ----------------------------
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
PROPERTY_NAMES = st.sampled_from(KNOWN_PROPERTIES) | st.text(max_size=6)


@given(st.dictionaries(PROPERTY_NAMES, JSON_VALUES, max_size=6))
def test_any_jobproperties_json_parses_or_is_a_config_error(obj: dict[str, object]) -> None:
    try:
        props = parse_job_properties(json.dumps(obj))
    except ConfigError as error:
        assert error.problems and all(key == "jobproperties" for key, _ in error.problems)
        return
    for number in (props.entrypoint_num_cpus, props.entrypoint_num_gpus, props.active_deadline_seconds):
        assert number is None or math.isfinite(number)
    assert all(math.isfinite(amount) for amount in props.entrypoint_resources.values())
    json.dumps(props.runtime_env, allow_nan=False)  # what requests does with the POST body


@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
def test_any_parameters_json_parses_or_is_a_config_error(obj: dict[str, object]) -> None:
    try:
        params = parse_parameters(json.dumps(obj))
    except ConfigError as error:
        assert error.problems and all(key == "jobdata.jobParameters" for key, _ in error.problems)
        return
    for name, value in params.items():
        assert PARAMETER_NAME.fullmatch(name)
        assert "=" not in value


@given(st.text(max_size=40) | JSON_VALUES.map(json.dumps))
def test_any_text_in_the_json_keys_parses_or_is_a_config_error(text: str) -> None:
    for key in ("jobdata.jobParameters", "jobdata.scriptMetadata", "jobproperties"):
        try:
            parse_config({**MINIMAL, key: text})
        except ConfigError as error:
            assert {k for k, _ in error.problems} == {key}


# -- a config read again after the job was submitted -------------------------------------------------
def test_after_a_submission_a_bad_key_is_set_aside_with_its_default() -> None:
    data = {**MINIMAL, "kill": "maybe", "updateInterval": "soon", "jobdata.jobScript": ""}

    config = parse_config(data, submitted=True)

    assert {key for key, _ in config.set_aside} == {"kill", "updateInterval", "jobdata.jobScript"}
    assert config.kill is False
    assert config.update_interval == DEFAULT_UPDATE_INTERVAL
    assert config.resource_url == MINIMAL["resourceURL"]


def test_an_id_in_the_configmap_counts_as_a_submission() -> None:
    config = parse_config({**MINIMAL, "id": "raypod-train-0123", "kill": "maybe"})

    assert [key for key, _ in config.set_aside] == ["kill"]


def test_after_a_submission_a_bad_resource_url_is_still_raised() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({**MINIMAL, "resourceURL": "not an address", "kill": "maybe"}, submitted=True)

    assert "resourceURL" in [key for key, _ in caught.value.problems]


def test_before_a_submission_nothing_is_set_aside() -> None:
    assert parse_config(MINIMAL).set_aside == ()
    assert [key for key, _ in problems_of({**MINIMAL, "kill": "maybe"})] == ["kill"]
