"""``raypod run`` with a Pushgateway: exactly one push at exit on each way out (success, failure,
bad input, SIGTERM), made after the final status is written, to the group job/namespace/bridgejob,
in the text format read back strictly; a gateway that fails (500, refused, hanging) changes nothing
(the same exit code, the same status) and is one warning; no secret anywhere. raypod runs as a
child process; the dashboard (tests/support/hostile.py) and the gateway are scripted on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from raypod.outcome import Outcome
from raypod.pushgateway import GatewayAddress
from raypod.run_metrics import GatewaySettings, MetricsAtExit
from raypod.runner import RunResult
from tests.support.hostile import JOB_NAME, NAMESPACE, TOKEN, Pod
from tests.support.os_faults import KIB, Records, file_size_limit, incompressible_text, raypod_child
from tests.support.pushgateway import RecordingGateway, parse_exposition, parse_grouping_path
from tests.support.scripted_server import ECHO_AUTH, Answer, ScriptedServer, Seen

PASSWORD = "gw-pass-7c1e9b"
GROUP = {"job": "raypod", "namespace": NAMESPACE, "bridgejob": JOB_NAME}
FINAL_KEYS = ("status.jobStatus", "status.reason")


@pytest.fixture
def dashboard_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


@pytest.fixture
def gateway_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.stop()


class World:
    """One pod's ConfigMap, dashboard and records, and the gateway that records each call with the
    status file as it was when the call came."""

    def __init__(self, root: Path, dashboard: ScriptedServer, gateway: ScriptedServer, **data: str) -> None:
        self.pod = Pod(root, dashboard, data)
        self.records = Records.under(root / "records", self.pod.status_file)
        self.status_at_call: list[dict[str, str]] = []
        self.gateway = RecordingGateway(gateway, self._recording(Answer(200, b"", "text/plain")))
        self.gateway_url = f"http://ops:{PASSWORD}@127.0.0.1:{gateway.port}"

    def _recording(self, answer: Answer) -> Any:
        def respond(_seen: Seen) -> Answer:
            self.status_at_call.append(self.records.status)
            return answer

        return respond

    def argv(self, *extra: str) -> list[str]:
        return [*self.pod.argv(2.0, 0.5), *self.records.flags(status_file=False), *extra]

    def run(
        self, *extra: str, gateway: str | None = None, preexec_fn: Callable[[], None] | None = None
    ) -> subprocess.CompletedProcess[str]:
        url = self.gateway_url if gateway is None else gateway
        env = {"JOBNAME": JOB_NAME, "NAMESPACE": NAMESPACE}
        return raypod_child(*self.argv("--pushgateway", url, *extra), env=env, preexec_fn=preexec_fn)


def outputs(completed: subprocess.CompletedProcess[str], records: Records) -> str:
    files = [records.status_file, records.result_file, records.termination_log]
    return "\n".join([completed.stdout, completed.stderr, *(p.read_text() for p in files if p.is_file())])


def assert_no_secret(text: str) -> None:
    assert "Traceback" not in text, text
    for secret in (PASSWORD, TOKEN):
        assert secret not in text, f"{secret!r} leaked:\n{text}"


def assert_one_push_after_the_final_status(world: World) -> dict[str, Any]:
    key, families = world.gateway.only_push()
    assert key == GROUP
    assert [seen.method for seen in world.gateway.calls] == ["PUT"]
    # The status file held the final status when the push came: it is always written first.
    final = world.records.status
    assert [{k: s.get(k) for k in FINAL_KEYS} for s in world.status_at_call] == [{k: final.get(k) for k in FINAL_KEYS}]
    # The basic auth of the gateway's URL went as a header, not in the URL.
    assert world.gateway.pushes[0].headers["authorization"].startswith("Basic ")
    return families


def test_a_succeeded_run_pushes_its_figures_once_after_its_final_status(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer
) -> None:
    world = World(tmp_path, dashboard_server, gateway_server)
    world.pod.dashboard.script("poll", "PENDING", "RUNNING", "SUCCEEDED")
    completed = world.run()
    assert completed.returncode == 0, completed.stderr
    families = assert_one_push_after_the_final_status(world)
    reason = world.records.status["status.reason"]
    assert families["raypod_run_outcome"].labels == {"status": "SUCCEEDED", "reason": reason, "ending": "final"}
    assert families["raypod_run_outcome"].value == 1
    assert families["raypod_run_exit_code"].value == 0
    assert families["raypod_job_attempts"].value == 1
    # Ray's (scripted) times: the job took 60 s on Ray.
    assert families["raypod_job_duration_seconds"].value == 60
    assert families["raypod_run_duration_seconds"].value > 0
    assert abs(families["raypod_last_completion_timestamp_seconds"].value - time.time()) < 3600
    # No S3 in this ConfigMap: no log was uploaded, so no byte count is claimed.
    assert "raypod_log_uploaded_bytes" not in families
    assert_no_secret(outputs(completed, world.records))


def test_a_failed_run_pushes_its_failure_with_the_same_exit_code(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer
) -> None:
    world = World(tmp_path, dashboard_server, gateway_server)
    world.pod.dashboard.script("poll", "FAILED")
    completed = world.run()
    assert completed.returncode == 1, completed.stderr
    families = assert_one_push_after_the_final_status(world)
    # The reason written (which says why, for alerts) is the label's.
    reason = world.records.status["status.reason"]
    assert reason and families["raypod_run_outcome"].labels == {"status": "FAILED", "reason": reason, "ending": "final"}
    assert families["raypod_run_exit_code"].value == 1
    assert_no_secret(outputs(completed, world.records))


def test_bad_input_pushes_once_in_both_places_it_is_found(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer
) -> None:
    # In the ConfigMap (found by the run), and before it (no JOBNAME: not even the ConfigMap's name).
    world = World(tmp_path / "configmap", dashboard_server, gateway_server, **{"jobdata.scriptLocation": "nowhere"})
    completed = world.run()
    assert completed.returncode == 2, completed.stderr
    families = assert_one_push_after_the_final_status(world)
    assert families["raypod_run_outcome"].labels == {"status": "FAILED", "reason": "BadInput", "ending": "bad_input"}
    assert "raypod_job_attempts" not in families
    assert dashboard_server.count("POST") == 0

    gateway_server.reset()
    early = World(tmp_path / "nameless", dashboard_server, gateway_server)
    env = {k: v for k, v in os.environ.items() if k not in ("JOBNAME", "NAMESPACE")}
    completed = subprocess.run(
        [sys.executable, "-m", "raypod", *early.argv("--pushgateway", early.gateway_url, "--namespace", "ns")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    assert completed.returncode == 2, completed.stderr
    key, families = early.gateway.only_push()
    # No BridgeJob name: the empty value goes base64-encoded, as the Pushgateway requires.
    assert key == {"job": "raypod", "namespace": "ns", "bridgejob": ""}
    assert early.gateway.pushes[0].bare_path.endswith("/bridgejob@base64/=")
    assert families["raypod_run_outcome"].labels["ending"] == "bad_input"


def test_an_os_error_of_the_pods_own_disk_still_pushes_once_after_the_final_status(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer
) -> None:
    # The job's files cannot be made under a file-size limit: FAILED, nothing submitted, exit 1.
    script = {"jobdata.scriptLocation": "inline", "jobdata.jobScript": incompressible_text(700 * KIB)}
    world = World(tmp_path, dashboard_server, gateway_server, **script)
    completed = world.run(preexec_fn=file_size_limit(256 * KIB))
    assert completed.returncode == 1, completed.stderr
    assert "File too large" in world.records.status["status.message"]
    families = assert_one_push_after_the_final_status(world)
    reason = world.records.status["status.reason"]
    assert families["raypod_run_outcome"].labels == {"status": "FAILED", "reason": reason, "ending": "final"}
    assert_no_secret(outputs(completed, world.records))


def test_sigterm_pushes_once_within_the_grace_period(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer
) -> None:
    world = World(tmp_path, dashboard_server, gateway_server)
    world.pod.dashboard.script("poll", "RUNNING")
    child = subprocess.Popen(
        [sys.executable, "-m", "raypod", *world.argv("--pushgateway", world.gateway_url)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "JOBNAME": JOB_NAME, "NAMESPACE": NAMESPACE},
    )
    try:
        deadline = time.monotonic() + 60
        while world.records.status.get("status.jobStatus") != "RUNNING":
            assert time.monotonic() < deadline and child.poll() is None, "the job never showed RUNNING"
            time.sleep(0.1)
        assert world.gateway.calls == []
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 143, err
    families = assert_one_push_after_the_final_status(world)
    assert families["raypod_run_outcome"].labels == {"status": "RUNNING", "reason": "", "ending": "terminated"}
    assert families["raypod_run_exit_code"].value == 143
    assert_no_secret("\n".join([out, err, json.dumps(world.records.status)]))


def a_hanging_port() -> tuple[socket.socket, int]:
    """A port that takes the connection (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener, int(listener.getsockname()[1])


def comparable(completed: subprocess.CompletedProcess[str], records: Records) -> tuple[Any, ...]:
    result = records.result
    return (completed.returncode, records.status.get("status.jobStatus"), result["status"], result["reason"])


@pytest.mark.parametrize("job_ends", ["SUCCEEDED", "FAILED"])
def test_a_failing_gateway_changes_nothing_and_is_one_warning(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer, job_ends: str
) -> None:
    baseline_world = World(tmp_path / "none", dashboard_server, gateway_server)
    baseline_world.pod.dashboard.script("poll", job_ends)
    baseline_run = raypod_child(*baseline_world.argv(), env={"JOBNAME": JOB_NAME, "NAMESPACE": NAMESPACE})
    baseline = comparable(baseline_run, baseline_world.records)
    assert baseline[1] == job_ends

    listener, hanging_port = a_hanging_port()
    erroring = ScriptedServer()
    # The error page quotes the Authorization header it got, as a misbehaving proxy does.
    erroring.route("PUT", "/metrics/*", Answer(500, b"push failed for " + ECHO_AUTH, "text/plain"))
    try:
        gateways = {
            "500": f"http://ops:{PASSWORD}@127.0.0.1:{erroring.port}",
            "refused": f"http://ops:{PASSWORD}@127.0.0.1:9",
            "hanging": f"http://ops:{PASSWORD}@127.0.0.1:{hanging_port}",
        }
        for name, url in gateways.items():
            world = World(tmp_path / name, dashboard_server, gateway_server)
            world.pod.dashboard.script("poll", job_ends)
            completed = world.run(gateway=url)
            assert comparable(completed, world.records) == baseline, (name, completed.stderr[-2000:])
            warnings = [line for line in completed.stderr.splitlines() if "Pushgateway" in line]
            assert len(warnings) == 1 and "WARNING" in warnings[0], (name, completed.stderr)
            assert "the run ends as it would have" in warnings[0]
            assert_no_secret(outputs(completed, world.records))
            assert "Basic " not in completed.stderr
        assert erroring.count("PUT", "/metrics/*") == 1  # one try: no retries at exit
    finally:
        erroring.stop()
        listener.close()


def test_delete_on_request_deletes_the_group_before_the_run_and_still_pushes_at_exit(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer
) -> None:
    world = World(tmp_path, dashboard_server, gateway_server)
    completed = world.run("--pushgateway-delete")
    assert completed.returncode == 0, completed.stderr
    calls = world.gateway.calls
    assert [seen.method for seen in calls] == ["DELETE", "PUT"]
    assert parse_grouping_path(calls[0].bare_path) == parse_grouping_path(calls[1].bare_path) == GROUP
    assert calls[0].body == b""
    # The delete came before the run wrote anything; the push after its final status.
    assert world.status_at_call[0] == {}
    assert world.status_at_call[1]["status.jobStatus"] == "SUCCEEDED"
    assert parse_exposition(calls[1].body.decode())["raypod_run_outcome"].labels["status"] == "SUCCEEDED"


def test_an_unusable_gateway_address_is_one_warning_and_changes_nothing(
    tmp_path: Path, dashboard_server: ScriptedServer, gateway_server: ScriptedServer
) -> None:
    world = World(tmp_path, dashboard_server, gateway_server)
    completed = world.run(gateway=f"http://ops:{PASSWORD}@gateway:port")
    assert completed.returncode == 0, completed.stderr
    assert world.records.status["status.jobStatus"] == "SUCCEEDED"
    warnings = [line for line in completed.stderr.splitlines() if "RAYPOD_PUSHGATEWAY" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], completed.stderr
    assert_no_secret(outputs(completed, world.records))


def test_a_deleted_bridgejob_deletes_its_group_when_asked_and_pushes_otherwise(gateway_server: ScriptedServer) -> None:
    gateway = RecordingGateway(gateway_server)
    deleted = RunResult(143, Outcome.deleted("s-1", "The BridgeJob was deleted; Ray job s-1 is STOPPED."))
    address = GatewayAddress.parse(gateway_server.url)
    for delete in (True, False):
        metrics = MetricsAtExit(GatewaySettings(address, delete=delete), JOB_NAME, NAMESPACE)
        metrics.push(deleted)
        metrics.push(deleted)  # a second call is no second push
    assert [seen.method for seen in gateway.calls] == ["DELETE", "PUT"]
    assert parse_grouping_path(gateway.calls[0].bare_path) == GROUP
    families = parse_exposition(gateway.calls[1].body.decode())
    assert families["raypod_run_outcome"].labels == {"status": "", "reason": "", "ending": "deleted"}
