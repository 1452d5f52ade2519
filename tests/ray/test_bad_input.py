"""The bad-input catalogue: every key, each wrong type or value, through the real CLI.

Each case must exit 2 with a line naming the key, write FAILED with that key in
status.message, and send nothing at all to Ray: the dashboard sits behind a recording proxy.
"""

from __future__ import annotations

import io
import json
import subprocess
from typing import Any

import pytest

from devtools.proxy import Proxy
from tests.support.helpers import BridgeJob

#: In resourceURL: it must not reach a message, nor any request.
PASSWORD = "pw-5e3b9c"
#: case -> (keys to set, None deleting one; the key the message must name)
CATALOGUE: dict[str, tuple[dict[str, str | None], str]] = {
    # resourceURL: {proxy} is the recording proxy's host:port, so a check that let the value through
    # would be seen contacting it (RESOURCE_URL_PROBLEMS says what each message must name).
    "resourceURL missing": ({"resourceURL": None}, "resourceURL"),
    "resourceURL without scheme": ({"resourceURL": "{proxy}"}, "resourceURL"),
    "resourceURL ftp": ({"resourceURL": "ftp://{proxy}"}, "resourceURL"),
    "resourceURL with password": ({"resourceURL": f"http://me:{PASSWORD}@{{proxy}}"}, "resourceURL"),
    "resourceURL bad port": ({"resourceURL": "http://127.0.0.1:99999"}, "resourceURL"),
    # updateInterval
    "updateInterval nan": ({"updateInterval": "nan"}, "updateInterval"),
    "updateInterval inf": ({"updateInterval": "inf"}, "updateInterval"),
    "updateInterval with unit": ({"updateInterval": "20s"}, "updateInterval"),
    "updateInterval a word": ({"updateInterval": "twenty"}, "updateInterval"),
    # locations
    "scriptLocation unknown": ({"jobdata.scriptLocation": "ftp"}, "jobdata.scriptLocation"),
    "scriptExtraLocation unknown": ({"jobdata.scriptExtraLocation": "git"}, "jobdata.scriptExtraLocation"),
    # the script
    "jobScript missing": ({"jobdata.jobScript": None}, "jobdata.jobScript"),
    "jobScript blank": ({"jobdata.jobScript": "  \n"}, "jobdata.jobScript"),
    "s3 jobScript without object": (
        {"jobdata.scriptLocation": "s3", "jobdata.jobScript": "bucket:"},
        "jobdata.jobScript",
    ),
    "s3 jobScript without colon": (
        {"jobdata.scriptLocation": "s3", "jobdata.jobScript": "bucket-without-colon"},
        "jobdata.jobScript",
    ),
    "s3 jobScript object missing": (
        {"jobdata.scriptLocation": "s3", "jobdata.jobScript": "nobucket-x:code.py"},
        "jobdata.jobScript",
    ),
    "s3 jobScript without s3.endpoint": (
        {"jobdata.scriptLocation": "s3", "jobdata.jobScript": "bucket:code.py", "s3.endpoint": None},
        "s3.endpoint",
    ),
    # scriptMetadata
    "metadata not JSON": ({"jobdata.scriptMetadata": "pip: numpy"}, "jobdata.scriptMetadata"),
    "metadata a list": ({"jobdata.scriptMetadata": "[1]"}, "jobdata.scriptMetadata"),
    "metadata unknown field": ({"jobdata.scriptMetadata": '{"conda": "env"}'}, "jobdata.scriptMetadata"),
    "metadata pip a number": ({"jobdata.scriptMetadata": '{"pip": 5}'}, "jobdata.scriptMetadata"),
    "metadata pip list of numbers": ({"jobdata.scriptMetadata": '{"pip": [1]}'}, "jobdata.scriptMetadata"),
    "metadata pip version a list": (
        {"jobdata.scriptMetadata": '{"pip": {"numpy": [1]}}'},
        "jobdata.scriptMetadata",
    ),
    "metadata env a list": ({"jobdata.scriptMetadata": '{"env": ["A=1"]}'}, "jobdata.scriptMetadata"),
    "metadata env name with =": ({"jobdata.scriptMetadata": '{"env": {"A=B": "1"}}'}, "jobdata.scriptMetadata"),
    "metadata env value null": ({"jobdata.scriptMetadata": '{"env": {"A": null}}'}, "jobdata.scriptMetadata"),
    # jobParameters
    "parameters not JSON": ({"jobdata.jobParameters": "{not json"}, "jobdata.jobParameters"),
    "parameters a list": ({"jobdata.jobParameters": "[1, 2]"}, "jobdata.jobParameters"),
    "parameters a string": ({"jobdata.jobParameters": '"x=1"'}, "jobdata.jobParameters"),
    "parameter value with =": ({"jobdata.jobParameters": '{"expr": "a=b"}'}, "jobdata.jobParameters"),
    "parameter value null": ({"jobdata.jobParameters": '{"a": null}'}, "jobdata.jobParameters"),
    "parameter name with space": ({"jobdata.jobParameters": '{"a b": "1"}'}, "jobdata.jobParameters"),
    "parameter name with =": ({"jobdata.jobParameters": '{"a=b": "1"}'}, "jobdata.jobParameters"),
    "parameter name an option": ({"jobdata.jobParameters": '{"--lr": "1"}'}, "jobdata.jobParameters"),
    "parameters nested too deeply": (
        {"jobdata.jobParameters": '{"p": ' + "[" * 5000 + "]" * 5000 + "}"},
        "jobdata.jobParameters",
    ),
    # extra location s3: metadata and parameters must be bucket:object
    "s3 metadata not a location": (
        {"jobdata.scriptExtraLocation": "s3", "jobdata.scriptMetadata": '{"env": {}}'},
        "jobdata.scriptMetadata",
    ),
    "s3 parameters not a location": (
        {"jobdata.scriptExtraLocation": "s3", "jobdata.jobParameters": "params.json"},
        "jobdata.jobParameters",
    ),
    # additionalData
    "additionalData absolute": ({"jobdata.additionalData": "bucket:/etc/passwd"}, "jobdata.additionalData"),
    "additionalData escaping": ({"jobdata.additionalData": "bucket:../../etc/passwd"}, "jobdata.additionalData"),
    "additionalData duplicate names": (
        {"jobdata.additionalData": "bkt1:x/data.csv, bkt2:y/data.csv"},
        "jobdata.additionalData",
    ),
    "additionalData a folder": ({"jobdata.additionalData": "bucket:data/"}, "jobdata.additionalData"),
    "additionalData dot-dot inside": ({"jobdata.additionalData": "bucket:a/../b"}, "jobdata.additionalData"),
    "additionalData without colon": ({"jobdata.additionalData": "bucket/file.csv"}, "jobdata.additionalData"),
    "additionalData named like the script": (
        {"jobdata.additionalData": "bucket:x/script.py"},
        "jobdata.additionalData",
    ),
    "additionalData without s3.endpoint": (
        {"jobdata.additionalData": "bucket:file.csv", "s3.endpoint": None},
        "s3.endpoint",
    ),
    # jobproperties
    "jobproperties not JSON": ({"jobproperties": "{auth: basic}"}, "jobproperties"),
    "jobproperties a list": ({"jobproperties": "[]"}, "jobproperties"),
    "jobproperties unknown key": ({"jobproperties": '{"entrypoint_num_cpu": 1}'}, "jobproperties"),
    "num_cpus a string": ({"jobproperties": '{"entrypoint_num_cpus": "two"}'}, "jobproperties"),
    "num_cpus negative": ({"jobproperties": '{"entrypoint_num_cpus": -1}'}, "jobproperties"),
    "num_gpus a bool": ({"jobproperties": '{"entrypoint_num_gpus": true}'}, "jobproperties"),
    "memory fractional": ({"jobproperties": '{"entrypoint_memory": 1.5}'}, "jobproperties"),
    "memory overflowing to infinity": ({"jobproperties": '{"entrypoint_memory": 1e400}'}, "jobproperties"),
    "num_cpus NaN": ({"jobproperties": '{"entrypoint_num_cpus": NaN}'}, "jobproperties"),
    "resources a list": ({"jobproperties": '{"entrypoint_resources": ["gpu"]}'}, "jobproperties"),
    "resources amount a string": ({"jobproperties": '{"entrypoint_resources": {"x": "a"}}'}, "jobproperties"),
    "metadata value a number": ({"jobproperties": '{"metadata": {"team": 1}}'}, "jobproperties"),
    "metadata key raypod sets": ({"jobproperties": '{"metadata": {"bridge-job": "other"}}'}, "jobproperties"),
    "runtime_env a list": ({"jobproperties": '{"runtime_env": ["pip"]}'}, "jobproperties"),
    "runtime_env working_dir clash": ({"jobproperties": '{"runtime_env": {"working_dir": "."}}'}, "jobproperties"),
    "runtime_env env_vars clash": (
        {"jobproperties": '{"runtime_env": {"env_vars": {}}}', "jobdata.scriptMetadata": '{"env": {"A": "1"}}'},
        "jobproperties",
    ),
    "activeDeadlineSeconds zero": ({"jobproperties": '{"activeDeadlineSeconds": 0}'}, "jobproperties"),
    "activeDeadlineSeconds a word": ({"jobproperties": '{"activeDeadlineSeconds": "soon"}'}, "jobproperties"),
    "submissionIdPrefix with slash": ({"jobproperties": '{"submissionIdPrefix": "a/b"}'}, "jobproperties"),
    "submissionIdPrefix empty": ({"jobproperties": '{"submissionIdPrefix": ""}'}, "jobproperties"),
    "auth digest": ({"jobproperties": '{"auth": "digest"}'}, "jobproperties"),
    "followLogs a string": ({"jobproperties": '{"followLogs": "yes"}'}, "jobproperties"),
    # S3 and upload
    "s3.secure not a bool": ({"s3.secure": "maybe"}, "s3.secure"),
    "s3.endpoint with a path": ({"s3.endpoint": "http://minio:9000/bucket"}, "s3.endpoint"),
    "s3.endpoint ftp": ({"s3.endpoint": "ftp://minio:9000"}, "s3.endpoint"),
    "s3.endpoint with a space": ({"s3.endpoint": "minio 9000"}, "s3.endpoint"),
    "s3upload.files absolute": ({"s3upload.files": "/etc/out.csv"}, "s3upload.files"),
    "s3upload.files escaping": ({"s3upload.files": "../other-job/out.csv"}, "s3upload.files"),
    "s3upload.files without bucket": ({"s3upload.files": "out.csv", "s3upload.bucket": None}, "s3upload.files"),
    # kill
    "kill not a bool": ({"kill": "perhaps"}, "kill"),
}


#: What the resourceURL cases' messages say: the problem itself, not "cannot reach the Ray dashboard"
#: (which a value let through to a connection attempt would end with, also as bad input).
RESOURCE_URL_PROBLEMS = {
    "resourceURL missing": "Bad input: resourceURL: missing: ",
    "resourceURL without scheme": "Bad input: resourceURL: expected an http:// or https:// address, got ",
    "resourceURL ftp": "Bad input: resourceURL: expected an http:// or https:// address, got ",
    "resourceURL with password": "Bad input: resourceURL: must not hold a user or password",
    "resourceURL bad port": "Bad input: resourceURL: bad port in ",
}


def apply(job: BridgeJob, changes: dict[str, str | None], proxy: Proxy) -> None:
    for key, value in changes.items():
        if value is None:
            job.data.pop(key, None)
        else:
            job.data[key] = value.replace("{proxy}", proxy.endpoint)


def assert_bad_input(job: BridgeJob, proxy: Proxy, key: str, *extra: str) -> str:
    result = job.run(*extra)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "bad input: " in line]
    assert lines and lines[0].split("bad input: ", 1)[1].startswith(f"{key}: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.status["status.jobStatus"] == "FAILED"
    assert result.status["status.message"].startswith(f"Bad input: {key}: ")
    assert proxy.recorded() == [], "bad input must be found before Ray is contacted"
    assert PASSWORD not in result.stdout + result.stderr + json.dumps(result.status)  # never repeated
    return result.status["status.message"]


@pytest.mark.parametrize("case", sorted(CATALOGUE))
def test_wrong_value_exits_2_naming_the_key_and_contacts_no_one(
    bridge_job: BridgeJob, ray_proxy: Proxy, case: str
) -> None:
    changes, key = CATALOGUE[case]
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('never')\n")
    apply(bridge_job, changes, ray_proxy)
    message = assert_bad_input(bridge_job, ray_proxy, key)
    if case in RESOURCE_URL_PROBLEMS:
        assert message.startswith(RESOURCE_URL_PROBLEMS[case]), message


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [(json.dumps({"pip": 5}).encode(), "pip must be"), (b"\xff\xfe{}", "is not UTF-8 text")],
    ids=["wrong-type", "not-text"],
)
def test_wrong_metadata_in_s3_exits_2(
    bridge_job: BridgeJob, ray_proxy: Proxy, s3_client: Any, metadata: bytes, reason: str
) -> None:
    """Values read from S3 get the same checks, after the download and still before Ray."""
    bucket = f"inputs-{bridge_job.name}"
    s3_client.make_bucket(bucket)
    for name, raw in (("meta.json", metadata), ("params.json", b'{"ok": "1"}')):
        s3_client.put_object(bucket, name, io.BytesIO(raw), len(raw))
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('never')\n",
        jobdata__scriptExtraLocation="s3",
        jobdata__scriptMetadata=f"{bucket}:meta.json",
        jobdata__jobParameters=f"{bucket}:params.json",
    )
    assert reason in assert_bad_input(bridge_job, ray_proxy, "jobdata.scriptMetadata")


def test_missing_s3_object_for_additional_data_exits_2(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('never')\n",
        jobdata__additionalData=f"nobucket-{bridge_job.name}:data.csv",
    )
    assert "does not exist" in assert_bad_input(bridge_job, ray_proxy, "jobdata.additionalData")


def test_missing_job_name_exits_2(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__jobScript="/x.py")
    bridge_job.write_config()
    env = {k: v for k, v in bridge_job.env().items() if k != "JOBNAME"}
    completed = subprocess.run(bridge_job.command(), capture_output=True, text=True, timeout=60, env=env)
    assert completed.returncode == 2
    assert "bad input: JOBNAME" in completed.stderr
    assert ray_proxy.recorded() == []


def test_missing_s3_credentials_exits_2(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('never')\n")
    for name in ("accesskey", "secretkey"):
        (bridge_job.s3_credentials_dir / name).unlink()
    assert "accesskey" in assert_bad_input(bridge_job, ray_proxy, "s3.secret")


def test_token_that_would_break_a_header_exits_2_naming_the_file_not_the_token(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    marker = "TokenMarker-5c7e"
    token = bridge_job.credentials_dir / "token"
    token.write_text(f"{marker}\n{marker}\n")
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('never')\n")
    result = bridge_job.run()
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"bad input: {token}: holds a line break" in result.stderr
    assert result.status["status.jobStatus"] == "FAILED"
    assert result.status["status.message"].startswith(f"Bad input: {token}: ")
    assert "TokenMarker" not in result.stdout + result.stderr + json.dumps(result.status)
    assert ray_proxy.recorded() == []


@pytest.mark.parametrize("interval", ["0", "-5"])
def test_an_update_interval_below_the_floor_runs_at_the_floor_and_the_final_message_says_so(
    bridge_job: BridgeJob, interval: str
) -> None:
    # The operator's updateInterval is a Go int with no minimum: a BridgeJob may well say "0".
    bridge_job.set(updateInterval=interval, jobdata__scriptLocation="inline", jobdata__jobScript="print('ok')\n")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    assert result.status["status.message"].endswith(
        f"(updateInterval {interval!r} is below the 0.5 s floor: 0.5 s is used)."
    )
