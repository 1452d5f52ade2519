"""``--log-format json``: stderr's log lines become one JSON object each (ts, level, msg, job_id),
for log collectors; stdout (status lines, the job's output, data) is unchanged."""

from __future__ import annotations

import json
import re

from tests.support.helpers import BridgeJob

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # the operator's 2006-01-02T15:04:05Z


def test_every_log_line_is_a_json_object_naming_the_job_once_its_id_is_known(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('to stdout', flush=True)\n")

    result = bridge_job.run("--log-format", "json")

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines, "a run logs at INFO"
    for line in lines:
        assert set(line) == {"ts", "level", "msg", "job_id"}, line
        assert TIME.match(line["ts"]) and line["level"] in ("DEBUG", "INFO", "WARNING", "ERROR")
    submission_id = result.status["id"]
    assert any(line["job_id"] == submission_id for line in lines)
    assert {line["job_id"] for line in lines} <= {None, submission_id}
    # stdout keeps its plain lines: the status changes and the job's output.
    assert "[job] to stdout" in result.stdout
    assert "status.jobStatus=SUCCEEDED" in result.stdout
