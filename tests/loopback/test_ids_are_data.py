"""Ids are data, not paths (issue 20, class 8): an id that is no Ray submission id is bad input
before anything is contacted, wherever it comes from, and every id sent is one encoded path segment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.errors import RayApiError
from raypod.ray import RayJobsClient
from raypod.retry import NO_RETRY
from tests.support.cli import raypod
from tests.support.scripted_server import ScriptedServer

VICTIM = {"submission_id": "victim", "status": "SUCCEEDED", "entrypoint": "python x.py", "type": "SUBMISSION"}


@pytest.fixture
def dashboard() -> ScriptedServer:
    with ScriptedServer() as server:
        server.json("GET", "/api/version", {"version": "4", "ray_version": "2.60.0"})
        server.json("GET", "/api/jobs/victim", VICTIM)
        server.json("DELETE", "/api/jobs/victim", True)
        server.json("POST", "/api/jobs/victim/stop", {"stopped": True})
        yield server


@pytest.mark.parametrize("command", ["delete", "stop", "status", "logs"])
@pytest.mark.parametrize("submission_id", ["my-job/../victim", "..", "a b", "x" * 241, "a{b}"])
def test_a_command_given_an_id_that_is_no_ray_id_contacts_nothing_and_exits_2(
    dashboard: ScriptedServer, tmp_path: Path, command: str, submission_id: str
) -> None:
    result = raypod(command, "--address", dashboard.url, "--credentials", str(tmp_path), "--", submission_id)
    assert result.returncode == 2, result.stderr
    assert "SUBMISSION_ID" in result.stderr and "is not a Ray submission id" in result.stderr
    assert dashboard.seen == []


def test_delete_of_a_dotted_path_never_reaches_the_job_it_points_at(dashboard: ScriptedServer, tmp_path: Path) -> None:
    result = raypod("delete", "--address", dashboard.url, "--credentials", str(tmp_path), "my-job/../victim")
    assert result.returncode == 2
    assert dashboard.count("*", "/api/jobs/victim*") == 0


@pytest.mark.parametrize("submission_id", ["a/../victim", "../victim", "a?b#c", "50%"])
def test_the_client_sends_every_id_as_one_encoded_path_segment(dashboard: ScriptedServer, submission_id: str) -> None:
    client = RayJobsClient.connect(dashboard.url, retry=NO_RETRY)
    try:
        for call in (client.get_job, client.delete_job, client.stop_job):
            try:
                call(submission_id)
            except RayApiError:
                pass  # the scripted 404: only the path sent matters here
    finally:
        client.close()
    paths = {seen.path for seen in dashboard.seen}
    assert paths, "nothing was sent"
    assert all(
        path.startswith("/api/jobs/") and "/" not in path.removeprefix("/api/jobs/").removesuffix("/stop")
        for path in paths
    )
    assert dashboard.count("*", "/api/jobs/victim*") == 0


def test_submit_refuses_a_kuberay_id_that_is_a_path_naming_the_variable(
    dashboard: ScriptedServer, tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('hi')\n")
    result = raypod(
        "submit",
        "--address",
        dashboard.url,
        "--credentials",
        str(tmp_path),
        "--script",
        str(script),
        env={"RAY_JOB_SUBMISSION_ID": "my-job/../victim"},
    )
    assert result.returncode == 2, result.stderr
    assert "RAY_JOB_SUBMISSION_ID" in result.stderr
    assert dashboard.seen == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("id", "my-job/../victim"), ("jobproperties", json.dumps({"submissionIdPrefix": "../victim"}))],
)
def test_run_refuses_a_configmap_id_or_prefix_that_is_a_path_as_bad_input(
    dashboard: ScriptedServer, tmp_path: Path, key: str, value: str
) -> None:
    configmap = tmp_path / "cm.json"
    data = {"resourceURL": dashboard.url, "jobdata.jobScript": "/opt/x.py", key: value}
    configmap.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
    status = tmp_path / "status.json"
    result = raypod(
        "run",
        "--config",
        str(configmap),
        "--status-file",
        str(status),
        "--job-name",
        "j",
        "--credentials",
        str(tmp_path),
        "--termination-log",
        "",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert key in result.stderr and "is not a Ray submission id" in result.stderr
    assert json.loads(status.read_text())["status.reason"] == "BadInput"
    assert dashboard.seen == []
