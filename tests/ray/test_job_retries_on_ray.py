"""Retries on the same cluster (``jobproperties.retries``) end to end: a flaky job on the real Ray
head, each attempt's log kept."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.helpers import BridgeJob, jobs_of

FLAKY_SCRIPT = """
import sys
from pathlib import Path

marker = Path(sys.argv[-1].split("=", 1)[1])
attempt = len(marker.read_text().splitlines()) + 1 if marker.exists() else 1
with marker.open("a") as handle:
    handle.write("ran\\n")
print(f"attempt {attempt} ran", flush=True)
sys.exit(0 if attempt >= 2 else 3)
"""


def test_a_flaky_job_is_retried_on_the_real_head_with_each_attempts_log_kept(
    bridge_job: BridgeJob, tmp_path: Path
) -> None:
    marker = tmp_path / "attempts"
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript=FLAKY_SCRIPT,
        jobdata__jobParameters=json.dumps({"marker": str(marker)}),
        jobproperties=json.dumps({"retries": 2, "retryDelaySeconds": 1}),
    )
    result_file = tmp_path / "result.json"

    result = bridge_job.run("--result", str(result_file), "--log-format", "json")

    assert result.returncode == 0, result.stderr
    status = result.status
    first = status["id"].removesuffix("-r1")
    assert (status["id"], status["status.attempt"], status["status.jobStatus"]) == (f"{first}-r1", "2", "SUCCEEDED")
    assert status["status.message"].startswith("Job succeeded (attempt 2 of 3); log uploaded to")
    assert {job["submission_id"]: job["status"] for job in jobs_of(bridge_job.services, bridge_job.name)} == {
        first: "FAILED",
        f"{first}-r1": "SUCCEEDED",
    }
    assert "attempt 1 ran" in bridge_job.log_text("logs.1")
    assert "attempt 2 ran" in bridge_job.log_text("logs")
    assert json.loads(result_file.read_text())["attempt"] == 2
    # Both attempts' output reached the pod's log, each once.
    assert [line for line in result.job_lines if line.startswith("attempt")] == ["attempt 1 ran", "attempt 2 ran"]
    # The pod's JSON lines name each attempt while it is the one watched: the retry's as attempt 2.
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    named = {(line["submission_id"], line["attempt"]) for line in lines}
    assert (f"{first}-r1", 2) in named, named
    assert named <= {(None, None), (first, 1), (f"{first}-r1", 2)}, named
    assert {line["configmap"] for line in lines} == {f"test-ns/{bridge_job.name}-bridge-cm"}
