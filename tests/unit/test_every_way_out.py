"""The one guarantee of every way out, on fakes: whatever is raised once the run has begun (an
OSError, a bug), the run returns a result with a final status written where it can be, a one-line
reason and the exit code that goes with it; nothing a status write or a status line raises escapes.
tests/loopback/test_every_way_out_on_os_errors.py makes the same failures with real OS errors."""

from __future__ import annotations

import errno
import io
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import cast

import pytest

from raypod import exits
from raypod.artifacts import collect_results, keep_attempt_log
from raypod.clock import SystemClock
from raypod.config import BridgeConfig, parse_config
from raypod.contract import ID, JOB_STATUS, MESSAGE, REASON, BridgeStatus, Reason
from raypod.errors import ConfigError, LocalFileError, S3Error, os_error_text, reportable
from raypod.exits import ExitCodes
from raypod.logs import LineEcho
from raypod.objectstore import ObjectStore
from raypod.outcome import Ending, Outcome
from raypod.package import build_package, wheel_package
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import NO_RETRY
from raypod.runner import Runner, RunOptions, RunResult, outcome_of_unexpected, timestamped_printer
from raypod.s3 import _translate
from raypod.safetext import Scrubber
from raypod.status_store import StatusFile, StatusReporter
from raypod.workdir import working_dir_files
from tests.support.fakes import MemorySink
from tests.support.memory_store import MemoryStore

SECRET = "MARKER-SECRET-9c2e"
FULL_DISK = OSError(errno.ENOSPC, "No space left on device")


class FailingJob:
    """A JobSource whose ConfigMap read raises what a test gives it."""

    description = "a failing ConfigMap"
    identity = None

    def __init__(self, error: Exception) -> None:
        self.error = error

    def load(self, *, submitted: bool) -> BridgeConfig:
        raise self.error

    def kill_requested(self) -> bool:
        return False


class BrokenSink(MemorySink):
    """A status sink whose every write raises a plain OSError (not one of raypod's errors)."""

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        raise OSError(errno.EIO, "Input/output error")


def run_failing(
    error: Exception, recorded: Mapping[str, str] | None = None, *, codes: ExitCodes = ExitCodes.POSIX
) -> tuple[RunResult, MemorySink, str]:
    sink = MemorySink(recorded)
    out = io.StringIO()
    options = RunOptions(job_name="wayout", namespace="ns", exit_codes=codes)
    result = Runner(FailingJob(error), sink, options, status_out=out).run()
    return result, sink, out.getvalue()


# -- the runner's guarantee ------------------------------------------------------------------------------
def test_an_os_error_before_any_id_ends_failed_not_submitted_and_is_written() -> None:
    result, sink, out = run_failing(FULL_DISK)

    assert result.exit_code == exits.EXIT_FAILED
    assert (result.outcome.ending, result.outcome.status) == (Ending.FINAL, BridgeStatus.FAILED)
    assert sink.data[JOB_STATUS] == BridgeStatus.FAILED
    assert sink.data[REASON] == Reason.NOT_SUBMITTED
    assert sink.data[MESSAGE] == "Not submitted: raypod could not go on: No space left on device (ENOSPC)"
    assert "status.jobStatus=FAILED" in out  # the status line was printed too


@pytest.mark.parametrize(
    ("codes", "code"),
    [(ExitCodes.POSIX, exits.EXIT_FAILED), (ExitCodes.BRIDGE, exits.EXIT_OK), (ExitCodes.JOB, exits.EXIT_UNSETTLED)],
)
def test_an_os_error_once_an_id_is_recorded_ends_unknown_as_ray_may_run_the_job(codes: ExitCodes, code: int) -> None:
    result, sink, _ = run_failing(FULL_DISK, {ID: "raypod-wayout-1", JOB_STATUS: "RUNNING"}, codes=codes)

    assert result.exit_code == code
    assert sink.data[JOB_STATUS] == BridgeStatus.UNKNOWN
    assert sink.data[MESSAGE].startswith("Lost track of Ray job raypod-wayout-1: raypod could not go on: No space")


def test_an_os_error_never_downgrades_a_final_status_an_earlier_pod_recorded() -> None:
    recorded = {ID: "raypod-wayout-1", JOB_STATUS: "SUCCEEDED", MESSAGE: "Job succeeded."}

    result, sink, _ = run_failing(FULL_DISK, recorded)

    assert (result.outcome.ending, result.exit_code) == (Ending.ALREADY_FINAL, exits.EXIT_OK)
    assert sink.writes == [] and sink.data == recorded


def test_a_bug_is_told_by_its_type_and_place_never_by_its_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    result, sink, out = run_failing(ValueError(f"Authorization: Bearer {SECRET}"))

    assert result.exit_code == exits.EXIT_FAILED
    message = sink.data[MESSAGE]
    assert message.startswith("Not submitted: internal error ValueError at test_every_way_out.py:")
    assert message.endswith("(a bug in raypod: please report it)")
    for text in (message, out, caplog.text, str(result.outcome)):
        assert SECRET not in text
    assert "Traceback" not in caplog.text


def test_a_status_write_that_raises_an_os_error_still_returns_a_result_with_exit_1(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = RunOptions(job_name="wayout", namespace="ns")

    result = Runner(FailingJob(FULL_DISK), BrokenSink(), options, status_out=io.StringIO()).run()

    assert result.exit_code == exits.EXIT_FAILED
    assert result.status[JOB_STATUS] == BridgeStatus.FAILED  # what --result and the summary carry
    assert "could not write the final status FAILED to memory sink: raypod could not go on" in caplog.text


def test_a_status_line_that_cannot_be_printed_is_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    timestamped_printer(SystemClock(), ClosedPipe())("status status.jobStatus=RUNNING")

    assert "could not print a status line: Broken pipe (EPIPE)" in caplog.text


# -- the status file ---------------------------------------------------------------------------------
def test_a_status_file_that_cannot_be_written_is_a_failed_write_kept_pending(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    reporter = StatusReporter(StatusFile(blocker / "status.json"))

    reporter.update({ID: "raypod-wayout-1"})  # a write that may wait: kept for the next one

    with pytest.raises(LocalFileError) as caught:
        reporter.update({JOB_STATUS: "RUNNING"}, must_persist=True)
    assert str(caught.value).startswith(f"cannot write status file {blocker / 'status.json'}: ")
    blocker.unlink()  # the disk is back: the next write carries everything pending
    reporter.update({MESSAGE: "again"})
    assert StatusFile(blocker / "status.json").load() == {
        ID: "raypod-wayout-1",
        JOB_STATUS: "RUNNING",
        MESSAGE: "again",
    }


# -- packaging: a file that cannot be read is bad input; a disk that is full is not ------------------------
def test_a_file_that_cannot_be_read_while_packaging_is_bad_input_naming_it(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    unreadable = tmp_path / "memory.bin"
    unreadable.symlink_to("/proc/self/mem")  # its read fails with EIO, even as root

    with pytest.raises(ConfigError) as caught:
        build_package({"memory.bin": unreadable}, tmp_path / "out", key="--working-dir")
    assert caught.value.problems == [("--working-dir", f"cannot read memory.bin ({unreadable}): Input/output error")]

    wheel = tmp_path / "lib-1.0-py3-none-any.whl"
    wheel.symlink_to("/proc/self/mem")
    with pytest.raises(ConfigError) as caught:
        wheel_package(wheel, "--wheel")
    assert caught.value.problems[0][1] == f"cannot read {wheel.name} ({wheel}): Input/output error"


def test_a_download_that_fills_the_disk_is_not_retried_and_a_reset_is() -> None:
    full = _translate(OSError(errno.ENOSPC, "No space left on device"), "download of in:big.bin", "x", Scrubber())
    reset = _translate(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "download", "x", Scrubber())

    assert isinstance(full, LocalFileError) and not full.transient
    assert str(full) == "download of in:big.bin failed: No space left on device (ENOSPC)"
    assert isinstance(reset, S3Error) and reset.transient


def test_an_os_error_is_told_by_the_systems_words_its_code_and_its_file() -> None:
    assert os_error_text(OSError(errno.EFBIG, "File too large", "/tmp/x.zip")) == "File too large (EFBIG): /tmp/x.zip"
    assert os_error_text(OSError("no errno")) == "OSError"
    assert str(reportable(FULL_DISK)) == "raypod could not go on: No space left on device (ENOSPC)"


# -- a retried attempt's log that could not be kept reaches the final message ------------------------
class RefusingStore(MemoryStore):
    def open_part_upload(self, *args: object, **kwargs: object) -> Iterator[bytes]:  # type: ignore[override]
        raise S3Error("upload failed: AccessDenied: no")


class LogOnlyRay:
    def log_chunks(self, job: JobInfo) -> Iterator[bytes]:
        yield b"attempt 1\n"


def test_a_retried_attempts_log_that_cannot_be_uploaded_is_told_not_only_logged() -> None:
    config = parse_config(
        {
            "resourceURL": "http://ray:8265",
            "jobdata.jobScript": "/x.py",
            "s3.endpoint": "s3:9000",
            "s3upload.bucket": "bkt",
        }
    )
    ray = cast(RayJobsClient, LogOnlyRay())
    job = JobInfo(submission_id="raypod-wayout-1", status="FAILED")
    echo = LineEcho(io.StringIO())

    kept = keep_attempt_log(ray, MemoryStore(), config, job, "wayout", 1, echo, NO_RETRY)
    refused = keep_attempt_log(ray, cast(ObjectStore, RefusingStore()), config, job, "wayout", 1, echo, NO_RETRY)

    assert kept is None
    assert refused == "attempt 1's log could not be uploaded to s3://bkt/wayout/logs.1: upload failed: AccessDenied: no"


def test_an_error_after_the_jobs_end_keeps_rays_status_and_says_what_failed() -> None:
    ended = Outcome.final("raypod-wayout-1", BridgeStatus.SUCCEEDED, "Job succeeded.")
    broken_pipe = reportable(BrokenPipeError(errno.EPIPE, "Broken pipe"))

    outcome = outcome_of_unexpected(broken_pipe, ended, {ID: "raypod-wayout-1", JOB_STATUS: "RUNNING"})

    assert (outcome.status, outcome.reason) == (BridgeStatus.SUCCEEDED, Reason.SUCCEEDED)
    assert outcome.message == "Job succeeded; then raypod could not go on: Broken pipe (EPIPE)."
    terminated = Outcome.terminated("raypod-wayout-1")
    assert outcome_of_unexpected(broken_pipe, terminated, {}) is terminated


def test_a_closed_output_stops_the_echo_and_never_the_logs_upload(caplog: pytest.LogCaptureFixture) -> None:
    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    store = MemoryStore()
    config = parse_config(
        {
            "resourceURL": "http://ray:8265",
            "jobdata.jobScript": "/x.py",
            "s3.endpoint": "s3:9000",
            "s3upload.bucket": "bkt",
        }
    )
    job = JobInfo(submission_id="raypod-wayout-1", status="SUCCEEDED")

    collected = collect_results(
        cast(RayJobsClient, LogOnlyRay()), store, config, job, "wayout", LineEcho(ClosedPipe()), NO_RETRY
    )

    assert collected.log_uri == "s3://bkt/wayout/logs"
    assert store.objects[("bkt", "wayout/logs")] == b"attempt 1\n"
    assert "the job's output is no longer printed: Broken pipe (EPIPE)" in caplog.text


def test_a_working_dir_entry_whose_kind_cannot_be_told_is_bad_input_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "main.py").write_text("")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_is_dir = Path.is_dir

    def is_dir(path: Path) -> bool:
        if path == locked:  # root reads everything: the permission error a user would meet, given
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_is_dir(path)

    monkeypatch.setattr(Path, "is_dir", is_dir)
    with pytest.raises(ConfigError) as caught:
        working_dir_files(tmp_path)
    assert caught.value.problems == [("--working-dir", f"cannot read {locked}: Permission denied")]
