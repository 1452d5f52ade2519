"""What a run on the real Ray head leaves behind once it ends: ``status.reason``, the termination
message and the ``--result`` file."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.helpers import BridgeJob

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")  # the operator's 2006-01-02T15:04:05Z


# -- end to end, on the real Ray head ---------------------------------------------------------------
def test_a_run_leaves_its_reason_summary_and_result_file(bridge_job: BridgeJob, tmp_path: Path) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import sys\nprint('bad input row 7', flush=True)\nsys.exit(3)\n",
        s3upload__files="model.pt",
    )
    result_file = tmp_path / "out" / "result.json"
    termination_log = tmp_path / "termination-log"

    run = bridge_job.run("--result", str(result_file), "--termination-log", str(termination_log))

    assert run.returncode == 1, run.stdout + run.stderr
    assert run.status["status.reason"] == "AppFailed"
    document = json.loads(result_file.read_text())
    assert document["submissionId"] == run.status["id"]
    assert (document["status"], document["reason"], document["final"], document["exitCode"]) == (
        "FAILED",
        "AppFailed",
        True,
        1,
    )
    assert document["driverExitCode"] == 3
    assert document["log"] == f"s3://{bridge_job.bucket}/{bridge_job.name}/logs"
    assert document["resultFiles"] == {"found": [], "missing": ["model.pt"]}
    assert all(TIME.match(document[key]) for key in ("submitTime", "startTime", "endTime"))
    assert termination_log.read_text().startswith(f"FAILED (AppFailed): Ray job {run.status['id']}: Job failed")


def test_bad_input_leaves_a_result_with_its_reason_and_nothing_submitted(bridge_job: BridgeJob, tmp_path: Path) -> None:
    bridge_job.set(jobdata__jobScript="/opt/job.py", kill="maybe")
    result_file = tmp_path / "result.json"

    run = bridge_job.run("--result", str(result_file), "--termination-log", "")

    assert run.returncode == 2
    document = json.loads(result_file.read_text())
    assert (document["status"], document["reason"], document["submissionId"]) == ("FAILED", "BadInput", None)
    assert document["message"].startswith("Bad input: kill: ")
