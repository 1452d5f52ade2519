"""Every way out writes the final status, the ``--result`` file and the termination message, also when
the pod's own disk fails it: a full TMPDIR (a tmpfs the test mounts), a file-size limit (``ulimit
-f``), a file that cannot be read (``/proc/self/mem`` reads EIO, even as root), a status file on a
read-only or full disk. raypod runs as a child process; the dashboard, when one is needed, is scripted
on loopback (tests/support/hostile.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.hostile import Dashboard
from tests.support.os_faults import (
    KIB,
    Records,
    assert_way_out,
    file_size_limit,
    incompressible_text,
    raypod_child,
    tmpfs,
)
from tests.support.scripted_server import Answer, ScriptedServer

#: Nobody listens here: a run that gets this far contacts nothing.
NOWHERE = "http://127.0.0.1:9"


def config_dir(folder: Path, resource_url: str, script: str) -> Path:
    folder.mkdir(parents=True)
    for key, value in {
        "resourceURL": resource_url,
        "updateInterval": "0.5",
        "jobdata.scriptLocation": "inline",
        "jobdata.jobScript": script,
    }.items():
        (folder / key).write_text(value)
    return folder


def run_args(tmp_path: Path, config: Path, records: Records, *, status_file: bool = True) -> list[str]:
    (tmp_path / "credentials").mkdir(exist_ok=True)
    return [
        "run",
        "--config",
        str(config),
        "--job-name",
        "wayout",
        "--namespace",
        "ns",
        "--credentials",
        str(tmp_path / "credentials"),
        "--connect-timeout",
        "1",
        "--no-follow-logs",
        *records.flags(status_file=status_file),
    ]


def submit_args(tmp_path: Path, project: Path, records: Records) -> list[str]:
    (tmp_path / "credentials").mkdir(exist_ok=True)
    return [
        "submit",
        "--address",
        NOWHERE,
        "--credentials",
        str(tmp_path / "credentials"),
        "--working-dir",
        str(project),
        "--script",
        "main.py",
        "--wait",
        *records.flags(status_file=False),
    ]


# -- the job's files cannot be made: nothing is submitted ---------------------------------------------
def test_a_tmpdir_that_fills_while_zipping_ends_failed_not_submitted_with_every_record(tmp_path: Path) -> None:
    # The 700 KiB script fits in the 1 MiB TMPDIR; its zip (most of its size again) does not.
    config = config_dir(tmp_path / "cm", NOWHERE, incompressible_text(700 * KIB))
    records = Records.under(tmp_path / "records")
    with tmpfs(tmp_path / "small-tmp", 1024) as small_tmp:
        completed = raypod_child(*run_args(tmp_path, config, records), env={"TMPDIR": str(small_tmp)})
        left_behind = list(small_tmp.iterdir())

    assert_way_out(completed, records, status="FAILED", reason="NotSubmitted", code=1, says="No space left on device")
    assert records.status["status.jobStatus"] == "FAILED"
    assert records.status["status.reason"] == "NotSubmitted"
    assert f"cannot make the job's files in {tmp_path / 'small-tmp'}" in records.status["status.message"]
    assert "id" not in records.status  # nothing was submitted, so no id was persisted
    assert left_behind == []  # the half-made package is cleaned up


def test_a_file_size_limit_while_writing_the_jobs_files_ends_failed_not_submitted(tmp_path: Path) -> None:
    config = config_dir(tmp_path / "cm", NOWHERE, incompressible_text(700 * KIB))
    records = Records.under(tmp_path / "records")

    completed = raypod_child(*run_args(tmp_path, config, records), preexec_fn=file_size_limit(256 * KIB))

    assert_way_out(completed, records, status="FAILED", reason="NotSubmitted", code=1, says="File too large (EFBIG)")
    assert records.status["status.jobStatus"] == "FAILED"
    assert "File too large" in records.status["status.message"]


def test_a_file_size_limit_while_zipping_a_working_dir_ends_failed_with_the_result_and_summary(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('hi')\n")
    (project / "data.bin").write_bytes(os.urandom(1024 * KIB))  # random bytes zip to more than their size
    records = Records.under(tmp_path / "records")

    completed = raypod_child(*submit_args(tmp_path, project, records), preexec_fn=file_size_limit(512 * KIB))

    assert_way_out(completed, records, status="FAILED", reason="NotSubmitted", code=1, says="File too large (EFBIG)")
    assert completed.stderr.count("File too large") == 1, completed.stderr  # the error alone: no FAILED line repeats it


def test_a_file_in_the_working_dir_that_cannot_be_read_is_bad_input_naming_it(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('hi')\n")
    # A regular file whose read fails with EIO, whoever reads it (root ignores chmod 000).
    (project / "memory.bin").symlink_to("/proc/self/mem")
    records = Records.under(tmp_path / "records")

    completed = raypod_child(*submit_args(tmp_path, project, records))

    says = f"--working-dir: cannot read memory.bin ({project / 'memory.bin'}): Input/output error"
    assert_way_out(completed, records, status="FAILED", reason="BadInput", code=2, says=says)
    assert completed.stderr.count(says) == 1, completed.stderr  # said once: no status line repeats it
    assert f"bad input: {says}" in completed.stderr


# -- the status file cannot be written: the result and the summary still are -----------------------------
def test_a_status_file_on_a_read_only_disk_submits_nothing_and_still_writes_the_result(
    tmp_path: Path, server: ScriptedServer
) -> None:
    config = config_dir(tmp_path / "cm", server.url, "print('hello')\n")
    dashboard = Dashboard(server, config)
    with tmpfs(tmp_path / "read-only", 64, read_only=True) as read_only:
        records = Records.under(tmp_path / "records", status_file=read_only / "status.json")
        completed = raypod_child(*run_args(tmp_path, config, records))

    # The id cannot be persisted before the POST, so nothing is posted (a next pod could not re-attach).
    assert dashboard.posts == 0
    assert_way_out(completed, records, status="FAILED", reason="NotSubmitted", code=1, says="Read-only file system")
    assert "could not write the final status FAILED to status file" in completed.stderr


def test_a_status_file_whose_disk_fills_after_the_id_still_ends_with_the_result_and_exit_1(
    tmp_path: Path, server: ScriptedServer
) -> None:
    config = config_dir(tmp_path / "cm", server.url, "print('hello')\n")
    dashboard = Dashboard(server, config)
    dashboard.script("poll", "RUNNING", "SUCCEEDED")
    # One page: the first write (the id, before the POST) fits; a replacement needs a second page.
    with tmpfs(tmp_path / "one-page", 4) as one_page:
        records = Records.under(tmp_path / "records", status_file=one_page / "status.json")
        completed = raypod_child(*run_args(tmp_path, config, records))
        status = records.status

    assert dashboard.posts == 1
    assert set(status) == {"id", "status.attempt"}  # what the next pod re-attaches by
    assert_way_out(completed, records, status="SUCCEEDED", reason="Succeeded", code=1, says="Job succeeded")
    assert records.result["submissionId"] == status["id"]
    assert "status not written to status file" in completed.stderr  # the writes during the watch
    assert "could not write the final status SUCCEEDED to status file" in completed.stderr
    assert "No space left on device (ENOSPC)" in completed.stderr


# -- a closed stdout: a status line cannot be printed, the status is still written -----------------------
def test_a_closed_stdout_never_stops_the_status_from_being_written(tmp_path: Path, server: ScriptedServer) -> None:
    config = config_dir(tmp_path / "cm", server.url, "print('hello')\n")
    Dashboard(server, config).script("poll", "RUNNING", "SUCCEEDED")
    records = Records.under(tmp_path / "records")
    (tmp_path / "credentials").mkdir()
    read_end, write_end = os.pipe()
    os.close(read_end)  # every print to stdout fails: EPIPE
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "raypod", *run_args(tmp_path, config, records)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)

    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    assert records.status["status.jobStatus"] == "SUCCEEDED"
    assert records.result["status"] == "SUCCEEDED"
    assert records.termination_message.startswith("SUCCEEDED (Succeeded):")


# -- a retried attempt's log that could not be kept ---------------------------------------------------
def test_a_retried_attempts_log_that_cannot_be_uploaded_reaches_the_final_message(
    tmp_path: Path, server: ScriptedServer
) -> None:
    config = config_dir(tmp_path / "cm", server.url, "print('hello')\n")
    host = server.url.removeprefix("http://")
    for key, value in {
        "jobproperties": '{"retries": 1, "retryDelaySeconds": 0}',
        "s3.endpoint": host,
        "s3upload.bucket": "results",
    }.items():
        (config / key).write_text(value)
    s3_credentials = tmp_path / "s3credentials"
    s3_credentials.mkdir()
    (s3_credentials / "accesskey").write_text("placeholder-access\n")
    (s3_credentials / "secretkey").write_text("placeholder-secret\n")
    # Before the dashboard's own routes: the log (GET /api/jobs/<id>/logs), once no stream endpoint answers.
    server.route("GET", "/api/jobs/*/logs", Answer(body=b'{"logs": "an attempt\\n"}'))
    dashboard = Dashboard(server, config)
    dashboard.script("poll", "FAILED", "SUCCEEDED")
    # Every S3 call is refused by the same loopback server: no log upload succeeds.
    denied = Answer(403, b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>", "application/xml")
    for method in ("GET", "HEAD", "PUT", "POST"):
        server.route(method, "/results*", denied)
    records = Records.under(tmp_path / "records")

    completed = raypod_child(*run_args(tmp_path, config, records), "--s3-credentials", str(s3_credentials))

    assert dashboard.posts == 2
    message = records.status["status.message"]
    assert message.startswith(
        "Job succeeded (attempt 2 of 2); the log could not be uploaded to s3://results/wayout/logs:"
    )
    kept = "attempt 1's log could not be uploaded to s3://results/wayout/logs.1: "
    assert f"{kept}upload to s3://results/wayout/logs.1 failed: AccessDenied" in message, message
    assert_way_out(completed, records, status="SUCCEEDED", reason="Succeeded", code=0, says="attempt 1's log")
