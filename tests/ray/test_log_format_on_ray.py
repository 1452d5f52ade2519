"""``--log-format json``: stderr's log lines become one JSON object each (ts, level, msg, configmap,
submission_id, attempt), for log collectors; stdout (status lines, the job's output, data) is unchanged.
The pod's identity from the Downward API's variables reaches Ray's own record of the job."""

from __future__ import annotations

import json
import re

from tests.support.helpers import BridgeJob, ray_job

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # the operator's 2006-01-02T15:04:05Z


def test_every_log_line_is_a_json_object_naming_the_job_once_its_id_is_known(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('to stdout', flush=True)\n")

    result = bridge_job.run("--log-format", "json")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, "a run logs at INFO"
    for line in lines:
        assert set(line) == {"ts", "level", "msg", "configmap", "submission_id", "attempt"}, line
        assert TIME.match(line["ts"]) and line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
        assert line["configmap"] == f"test-ns/{bridge_job.name}-bridge-cm", line
    submission_id = result.status["id"]
    assert any(line["submission_id"] == submission_id for line in lines)
    assert {(line["submission_id"], line["attempt"]) for line in lines} <= {(None, None), (submission_id, 1)}
    # stdout keeps its plain lines: the status changes and the job's output.
    assert "[job] to stdout" in result.stdout
    assert "SUCCEEDED: Job succeeded" in result.stdout


UID = "0b6c9a52-3d0e-4a53-9a57-2f3c1d6e9b10"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_pods_identity_and_the_trace_context_reach_rays_record_of_the_job(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('traced', flush=True)\n")
    pod = {"POD_NAME": f"{bridge_job.name}-pod", "POD_UID": UID, "NODE_NAME": "node-1", "TRACEPARENT": TRACEPARENT}

    result = bridge_job.run("--log-format", "json", env=pod)

    assert result.returncode == 0, result.stderr
    # Ray's own job info, as its dashboard, `ray job list` and `raypod status` show it.
    assert ray_job(bridge_job.services, result.status["id"])["metadata"] == {
        "bridge-job": bridge_job.name,
        "bridge-namespace": "test-ns",
        "bridge-pod": f"{bridge_job.name}-pod",
        "bridge-pod-uid": UID,
        "bridge-pod-node": "node-1",
        "traceparent": TRACEPARENT,
    }


def test_a_malformed_trace_context_is_left_out_and_the_job_runs(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('traced', flush=True)\n")

    result = bridge_job.run(env={"POD_NAME": "Not A Pod", "TRACEPARENT": "00-zz-00f067aa0ba902b7-01"})

    assert result.returncode == 0, result.stderr
    metadata = ray_job(bridge_job.services, result.status["id"])["metadata"]
    assert metadata == {"bridge-job": bridge_job.name, "bridge-namespace": "test-ns"}
