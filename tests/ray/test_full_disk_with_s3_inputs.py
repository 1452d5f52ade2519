"""A pod's TMPDIR too small for the job's ``additionalData`` (a tmpfs the test mounts), with the inputs
in the real S3 server: the run ends FAILED, not submitted, with the final status, the ``--result`` file
and the termination message, at once and without a traceback. Whether the disk fills while the
object is downloaded or while it is zipped, nothing reaches Ray."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support.helpers import BridgeJob, jobs_of, put_object
from tests.support.os_faults import KIB, Records, assert_way_out, tmpfs

MIB = 1024 * KIB


def run_with_small_tmpdir(bridge_job: BridgeJob, s3_client: Any, tmp_path: Path, tmpdir_kib: int) -> Records:
    data = put_object(s3_client, bridge_job.bucket, "inputs/data.bin", os.urandom(3 * MIB))
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('never')\n")
    bridge_job.set(jobdata__additionalData=data)
    records = Records.under(tmp_path / "records", status_file=bridge_job.status_file)
    with tmpfs(tmp_path / "small-tmp", tmpdir_kib) as small_tmp:
        result = bridge_job.run(*records.flags(status_file=False), env={"TMPDIR": str(small_tmp)}, timeout=120)
        assert list(small_tmp.iterdir()) == []  # nothing of the half-made inputs is left
    completed = subprocess.CompletedProcess([], result.returncode, result.stdout, result.stderr)
    assert_way_out(completed, records, status="FAILED", reason="NotSubmitted", code=1, says="No space left on device")
    assert result.status["status.jobStatus"] == "FAILED" and "id" not in result.status
    assert jobs_of(bridge_job.services, bridge_job.name) == []
    assert "retrying" not in result.stderr  # a full disk is not a passing fault
    return records


def test_additional_data_that_fills_tmpdir_while_zipping_ends_failed_not_submitted(
    bridge_job: BridgeJob, s3_client: Any, tmp_path: Path
) -> None:
    # 3 MiB of random bytes fit in 5 MiB; their zip (as large again) does not.
    records = run_with_small_tmpdir(bridge_job, s3_client, tmp_path, 5 * 1024)

    assert "cannot make the job's files in" in records.result["message"]


def test_additional_data_larger_than_tmpdir_ends_failed_at_once_without_retrying_the_download(
    bridge_job: BridgeJob, s3_client: Any, tmp_path: Path
) -> None:
    records = run_with_small_tmpdir(bridge_job, s3_client, tmp_path, 1024)

    assert "download of" in records.result["message"], records.result
