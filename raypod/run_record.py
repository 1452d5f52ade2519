"""The record a run leaves for people and machines once it ends: a one-line summary in the pod's
termination message (``kubectl describe pod`` shows it), and the ``--result`` JSON file."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from raypod.contract import ATTEMPT, END_TIME, ID, JOB_STATUS, MESSAGE, REASON, START_TIME, SUBMIT_TIME, assert_never
from raypod.outcome import Ending
from raypod.runner import RunResult
from raypod.safetext import one_line
from raypod.status_store import write_json_atomically

log = logging.getLogger(__name__)

#: Where Kubernetes reads a container's termination message (its ``terminationMessagePath``).
TERMINATION_LOG = Path("/dev/termination-log")
#: The kubelet keeps at most 4096 bytes of it.
MAX_TERMINATION_MESSAGE = 4096


def summary_line(result: RunResult) -> str:
    """One line: the status, its reason, the job and the message."""
    outcome, written = result.outcome, result.status
    submission_id = outcome.submission_id or written.get(ID, "")
    match outcome.ending:
        case Ending.TERMINATED:
            if submission_id:
                return f"terminated: Ray job {submission_id} keeps running; the next pod re-attaches to it"
            return "terminated: nothing was submitted"
        case Ending.DETACHED:
            return f"SUBMITTED: Ray job {submission_id}"
        case Ending.DELETED:
            return one_line(f"deleted: {outcome.message}", MAX_TERMINATION_MESSAGE)
        case Ending.FINAL | Ending.BAD_INPUT | Ending.ALREADY_FINAL:
            status = written.get(JOB_STATUS) or outcome.status
            reason = written.get(REASON) or outcome.reason
            message = written.get(MESSAGE) or outcome.message
            job = f" Ray job {submission_id}:" if submission_id else ""
            if result.not_written:
                message = f"{message.rstrip('.')}. This status is not recorded: {result.not_written}"
            return one_line(f"{status} ({reason}):{job} {message}", MAX_TERMINATION_MESSAGE)
        case _:
            assert_never(outcome.ending)


def result_document(result: RunResult) -> dict[str, Any]:
    """The ``--result`` file: what CI and scripts read instead of parsing the output."""
    outcome, written = result.outcome, result.status
    job = outcome.job
    collected = result.collected
    final = is_final(outcome.ending)
    return {
        "submissionId": outcome.submission_id or written.get(ID) or None,
        "attempt": attempt_number(written),
        "status": written.get(JOB_STATUS) or outcome.status or None,
        "final": final,
        "reason": (written.get(REASON) or outcome.reason or None) if final else None,
        "exitCode": result.exit_code,
        "message": written.get(MESSAGE) or outcome.message or None,
        "notRecorded": result.not_written or None,
        "submitTime": written.get(SUBMIT_TIME) or None,
        "startTime": written.get(START_TIME) or None,
        "endTime": written.get(END_TIME) or None,
        "driverExitCode": job.driver_exit_code if job is not None else None,
        "log": collected.log_uri if collected is not None else None,
        "resultFiles": {
            "found": list(collected.files_found) if collected is not None else [],
            "missing": list(collected.files_missing) if collected is not None else [],
        },
    }


def is_final(ending: Ending) -> bool:
    """Whether the run ends with a final status (written now, or kept from an earlier pod)."""
    match ending:
        case Ending.FINAL | Ending.BAD_INPUT | Ending.ALREADY_FINAL:
            return True
        case Ending.TERMINATED | Ending.DETACHED | Ending.DELETED:
            return False
        case _:
            assert_never(ending)


def attempt_number(written: Mapping[str, str]) -> int | None:
    """The attempt the status is about; None when nothing was submitted."""
    text = written.get(ATTEMPT, "")
    if text.isdigit():
        return int(text)
    return 1 if written.get(ID) else None


def termination_log_path(flag: str | None) -> Path | None:
    """``--termination-log``: a path; empty for none; absent for ``/dev/termination-log`` when the
    kubelet made it (inside a pod), so that raypod never creates a file in ``/dev`` elsewhere."""
    if flag is None:
        return TERMINATION_LOG if TERMINATION_LOG.exists() else None
    return Path(flag) if flag else None


def write_termination_message(path: Path | None, result: RunResult) -> None:
    """The summary, cut to the 4096 bytes the kubelet keeps (never inside a character)."""
    if path is None:
        return
    data = summary_line(result).encode("utf-8")[:MAX_TERMINATION_MESSAGE].decode("utf-8", "ignore")
    try:
        path.write_text(data, encoding="utf-8")
    except OSError as error:
        log.warning("could not write the termination message to %s: %s", path, error.strerror)


def write_result(path: Path, result: RunResult) -> None:
    """The result document, replaced atomically (a reader never sees half a file)."""
    try:
        write_json_atomically(path, result_document(result))
    except OSError as error:
        log.warning("could not write the result to %s: %s", path, error.strerror)
