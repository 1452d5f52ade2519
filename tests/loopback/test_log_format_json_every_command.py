"""``--log-format json``: every line each command writes on stderr is one JSON object (ts, level,
msg, configmap, submission_id, attempt), whatever wrote it: a log line, a status line, a progress line, an error; and
``validate``'s findings, lines for people, are JSON objects too. Data on stdout (an id, a table,
the job's log, ``--json``) is unchanged. Each command runs as a child process against a scripted
dashboard (docs/cli.md#output); a property runs every command in the ways it ends before anything is
contacted (bad input, argparse's refusal, any ConfigMap for ``validate``)."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cli import raypod
from tests.support.hostile import BASE_CONFIG, Dashboard, job_answer
from tests.support.scripted_server import Answer, ScriptedServer

SHAPE = {"ts", "level", "msg", "configmap", "submission_id", "attempt"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
JSON = ("--log-format", "json")


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``text`` as a JSON object of the documented shape."""
    objects = []
    for line in text.splitlines():
        if not line.strip():
            continue
        value = json.loads(line)  # a plain line fails here, naming itself
        assert isinstance(value, dict), line
        assert set(value) >= SHAPE, line
        assert TIME.match(value["ts"]) and value["level"] in ("DEBUG", "INFO", "WARNING", "ERROR"), line
        objects.append(value)
    return objects


def messages(completed: subprocess.CompletedProcess[str]) -> list[str]:
    return [line["msg"] for line in json_objects(completed.stderr)]


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    with ScriptedServer() as server:
        yield Dashboard(server, tmp_path)


def client(dashboard: Dashboard, tmp_path: Path) -> list[str]:
    return ["--address", dashboard.server.url, "--credentials", str(tmp_path), *JSON]


def script_file(tmp_path: Path) -> str:
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")
    return str(script)


def test_submit_wait_prints_only_json_lines_on_stderr_through_a_retry(dashboard: Dashboard, tmp_path: Path) -> None:
    dashboard.script("poll", "FAILED", "SUCCEEDED")
    properties = json.dumps({"retries": 1, "retryDelaySeconds": 0})
    completed = raypod(
        "submit", *client(dashboard, tmp_path), "--script", script_file(tmp_path), "--properties", properties,
        "--interval", "0.5", "--no-follow-logs", "--wait",
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    said = messages(completed)
    first, second = dashboard.accepted
    assert any(msg.startswith("SUCCEEDED: ") for msg in said), said
    assert any("attempt 2 of 2" in msg for msg in said), said
    # Each line names the attempt it is about: the retry's lines its id and number.
    named = {(line["submission_id"], line["attempt"]) for line in json_objects(completed.stderr)}
    assert named >= {(first, 1), (second, 2)}, named
    assert named <= {(None, None), (first, 1), (second, 2)}, named
    assert completed.stdout.splitlines()[0] == first  # data: the id, plain


def test_submit_without_wait_prints_only_json_lines_on_stderr(dashboard: Dashboard, tmp_path: Path) -> None:
    completed = raypod("submit", *client(dashboard, tmp_path), "--script", script_file(tmp_path))

    assert completed.returncode == 0, completed.stderr
    messages(completed)
    assert completed.stdout.strip() == dashboard.accepted[0]


def test_run_prints_only_json_lines_on_stderr(dashboard: Dashboard, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    for key, value in {"resourceURL": dashboard.server.url, **BASE_CONFIG}.items():
        (config / key).write_text(value)
    status_file = tmp_path / "status.json"
    completed = raypod(
        "run", "--config", str(config), "--status-file", str(status_file), "--credentials", str(tmp_path),
        "--s3-credentials", str(tmp_path / "s3"), "--no-follow-logs", *JSON,
        env={"JOBNAME": "json-lines", "NAMESPACE": "bridge"},
    )  # fmt: skip

    assert completed.returncode == 0, completed.stderr
    said = json_objects(completed.stderr)
    assert said, "a run logs at INFO"
    assert {line["submission_id"] for line in said} <= {None, dashboard.accepted[0]}
    assert {line["configmap"] for line in said} == {"bridge/json-lines-bridge-cm"}
    assert "SUCCEEDED: Job succeeded" in completed.stdout  # run's stdout keeps its status lines


def test_status_logs_and_list_print_only_json_lines_on_stderr(dashboard: Dashboard, tmp_path: Path) -> None:
    dashboard.has("s1")
    dashboard.server.script("GET", "/api/v0/logs/file", Answer(200, b"the job's own line\n", "text/plain"))
    dashboard.server.script("GET", "/api/jobs/", Answer(body=b"[" + job_answer("s1", "SUCCEEDED").body + b"]"))

    status = raypod("status", "s1", *client(dashboard, tmp_path))
    logs = raypod("logs", "s1", *client(dashboard, tmp_path))
    listed = raypod("list", *client(dashboard, tmp_path))

    for completed in (status, logs, listed):
        assert completed.returncode == 0, completed.stderr
        messages(completed)
    assert "status:" in status.stdout and "SUCCEEDED" in status.stdout  # data, plain
    assert logs.stdout == "the job's own line\n"
    assert listed.stdout.startswith("SUBMISSION ID")


def test_stop_and_delete_print_only_json_lines_on_stderr(dashboard: Dashboard, tmp_path: Path) -> None:
    dashboard.has("s1")
    dashboard.script("poll", "RUNNING")
    dashboard.script("stop", Answer(body=b'{"stopped": true}'))  # taken, and the job goes on

    stop = raypod("stop", "s1", *client(dashboard, tmp_path), "--timeout", "1")
    delete = raypod("delete", "s1", *client(dashboard, tmp_path))

    assert stop.returncode == 1
    assert [line["level"] for line in json_objects(stop.stderr) if "still RUNNING" in line["msg"]] == ["ERROR"]
    assert delete.returncode == 1
    assert any("stop it first" in msg for msg in messages(delete))


def test_an_error_and_a_bad_input_are_json_lines_at_level_error(dashboard: Dashboard, tmp_path: Path) -> None:
    missing = raypod("status", "nobody", *client(dashboard, tmp_path))
    bad = raypod("status", "s1", "--credentials", str(tmp_path), "--address", "ray://127.0.0.1:1", *JSON)

    assert missing.returncode == 1
    assert [line["level"] for line in json_objects(missing.stderr)] == ["ERROR"]
    assert "Ray has no job nobody" in messages(missing)[0]
    assert bad.returncode == 2
    assert [line["level"] for line in json_objects(bad.stderr)] == ["ERROR"]
    assert "bad input" in messages(bad)[0]


def test_validate_prints_its_findings_as_json_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"data": {"resourceURL": "http://ray:8265", "jobdata.jobScript": "print(1)\n"}}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": {"resourceURL": "not a url", "kill": "maybe"}}))

    ok = raypod("validate", "--config", str(good), *JSON)
    refused = raypod("validate", "--config", str(bad), *JSON)

    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert [line["level"] for line in json_objects(ok.stdout)] == ["INFO"]
    json_objects(ok.stderr)
    assert refused.returncode == 2
    findings = json_objects(refused.stdout)
    assert len(findings) >= 2 and {line["level"] for line in findings} == {"ERROR"}
    assert any("kill" in line["msg"] for line in findings)
    assert any("problem(s)" in msg for msg in messages(refused))


# -- every command, every offline way to end: a property -----------------------------------------
#: Values refused before anything is contacted.
BAD_ADDRESSES = ["ray://127.0.0.1:1", "ftp://ray:8265", "http://", "not an address at all"]
BAD_IDS = ["a b", "..", "x/y", "{id}", "é" * 3]
GOOD_ID = "raypod-train-3f2a9c01b7de"
ARGPARSE_REFUSALS = [["--bogus"], ["--address"], ["--timeout", "soon"], ["--interval", "-1"], ["--json", "--json=x"]]
#: Text that may hold anything: control characters, quotes, non-ASCII, a lone surrogate's escape.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@st.composite
def offline_command_lines(draw: st.DrawFn, root: Path) -> tuple[list[str], dict[str, str]]:
    """A command line of any command that ends before anything is contacted: bad input, argparse's
    refusal, or (validate) whatever the ConfigMap says. ``--log-format json`` anywhere before ``--``."""
    command = draw(st.sampled_from(["submit", "status", "logs", "stop", "delete", "list", "validate", "run"]))
    config = root / f"cm-{uuid.uuid4().hex}.json"  # each example its own ConfigMap and status file
    data = draw(
        st.dictionaries(
            st.sampled_from(["resourceURL", "kill", "jobdata.jobScript", "jobproperties", "jobdata.jobparameters",
                             "s3upload.bucket", "jobdata.scriptLocation", "updateInterval", "unknownKey"]),
            TEXT,
            max_size=6,
        )
    )  # fmt: skip
    if command == "run":
        data["resourceURL"] = draw(st.sampled_from(BAD_ADDRESSES))  # run stops at bad input
    config.write_text(json.dumps({"data": data}))
    words: list[str]
    if command == "validate":
        words = ["--config", str(config if draw(st.booleans()) else root / "missing.json")]
    elif command == "run":
        words = [
            "--config",
            str(config),
            "--status-file",
            str(config.with_suffix(".status")),
            "--job-name",
            "json-lines",
        ]
    else:
        address = draw(st.one_of(st.none(), st.sampled_from(BAD_ADDRESSES)))
        words = ["--address", address] if address else []
        if command in ("status", "logs", "stop", "delete"):
            words.append(draw(st.sampled_from(BAD_IDS)) if address else draw(st.sampled_from([*BAD_IDS, GOOD_ID])))
        if command == "submit":
            words += draw(st.sampled_from([["--script", str(root / "nope.py")], ["--param", "no-equals"], []]))
            words += ["--wait"] if draw(st.booleans()) else []
    if draw(st.booleans()):
        words += draw(st.sampled_from(ARGPARSE_REFUSALS))
    flag = draw(st.sampled_from([["--log-format", "json"], ["--log-format=json"]]))
    at = draw(st.integers(0, len(words)))
    return [command, *words[:at], *flag, *words[at:]], {"HOME": str(root)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_stderr_line_of_every_offline_command_is_a_json_object(tmp_path: Path, data: st.DataObject) -> None:
    argv, env = data.draw(offline_command_lines(tmp_path))

    completed = raypod(*argv, env=env, timeout=60)

    said = json_objects(completed.stderr)  # fails on the first plain line
    assert completed.returncode in (0, 1, 2), (argv, completed.stderr)
    if completed.returncode != 0:
        assert "ERROR" in {line["level"] for line in said}, (argv, said)  # how it ended, said at ERROR
    assert "Traceback" not in completed.stderr
    if argv[0] == "validate":
        json_objects(completed.stdout)  # its findings, for people: JSON too
