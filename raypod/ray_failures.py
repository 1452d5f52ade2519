"""Ray's own reason for a failed job (its JobInfo's ``error_type``, with ``driver_exit_code``), and the
one table that turns it into ``status.reason`` and says whether another attempt can succeed.

docs/configmap.md (``status.reason``, Retries) says the same in words. Standard library and
``contract`` only: ``ray`` checks the field with ``error_type_of``, the session reads the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from raypod.contract import Reason, TextEnum, assert_never

#: Longer than any name Ray gives; a longer string is junk, not a reason.
MAX_ERROR_TYPE = 64
#: What Ray's enum names look like; anything else (lower case, spaces, control characters) is junk.
ERROR_TYPE_SHAPE = re.compile(r"[A-Z][A-Z0-9_]*")
#: The POSIX shell's exit codes for a command it could not run: Ray runs the entrypoint with ``sh -c``.
SHELL_NOT_FOUND = 127
SHELL_NOT_EXECUTABLE = 126


class RayErrorType(TextEnum):
    """Every ``error_type`` Ray 2.60 sends (``ray.job_submission.JobErrorType``), on FAILED only."""

    #: The runtime_env could not be built (pip, conda, working_dir, py_modules), after Ray's own 3 tries.
    RUNTIME_ENV_SETUP_FAILURE = "RUNTIME_ENV_SETUP_FAILURE"
    #: The supervisor actor did not start within ``RAY_JOB_START_TIMEOUT_SECONDS`` (15 min): no resources.
    JOB_SUPERVISOR_ACTOR_START_TIMEOUT = "JOB_SUPERVISOR_ACTOR_START_TIMEOUT"
    #: Ray could not create the supervisor actor (an exception at submission, or it vanished).
    JOB_SUPERVISOR_ACTOR_START_FAILURE = "JOB_SUPERVISOR_ACTOR_START_FAILURE"
    #: The supervisor actor could not be scheduled (e.g. its node died).
    JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE = "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"
    #: Ray's monitor of the job failed with an unexpected exception.
    JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE = "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE"
    #: The supervisor actor died while the job ran (its node lost, killed, out of memory).
    JOB_SUPERVISOR_ACTOR_DIED = "JOB_SUPERVISOR_ACTOR_DIED"
    #: The supervisor could not start the entrypoint's process (an exception, not an exit code).
    JOB_ENTRYPOINT_COMMAND_START_ERROR = "JOB_ENTRYPOINT_COMMAND_START_ERROR"
    #: The entrypoint exited non-zero (``driver_exit_code``).
    JOB_ENTRYPOINT_COMMAND_ERROR = "JOB_ENTRYPOINT_COMMAND_ERROR"


def error_type_of(value: object) -> str | None:
    """Ray's ``error_type`` as an answer gives it, checked: a name in the shape of Ray's enum, else
    None (absent, like any optional field of the wrong type)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ERROR_TYPE:
        return None
    return value if ERROR_TYPE_SHAPE.fullmatch(value) else None


@dataclass(frozen=True)
class RayFailure:
    """One row of the table: the ``status.reason`` of a job Ray failed, and whether to retry it."""

    reason: str
    #: Another attempt can succeed: ``jobproperties.retries`` applies. False: the same job fails
    #: the same way again, so it ends at once.
    retried: bool


def ray_failure(error_type: str | None, exit_code: int | None = None) -> RayFailure:
    """The table's row for a job Ray reports FAILED. No ``error_type`` (an older Ray, or junk that
    ``error_type_of`` left out): ``AppFailed``. A well-formed name Ray 2.60 does not have: itself,
    retried as an ``AppFailed`` would be (nothing says that a retry cannot help)."""
    if error_type is None:
        return RayFailure(Reason.APP_FAILED, retried=True)
    try:
        known = RayErrorType(error_type)
    except ValueError:
        checked = error_type_of(error_type)
        return RayFailure(checked or Reason.APP_FAILED, retried=True)
    return _row(known, exit_code)


def _row(error_type: RayErrorType, exit_code: int | None) -> RayFailure:
    # Ray already tries a runtime_env 3 times (RUNTIME_ENV_RETRY_TIMES) and pip retries its own
    # connections: what is left (a package or version that does not exist, a build that fails, a
    # conflict) fails again. A supervisor that could not start or died, or a process that could not
    # be forked, depends on the cluster's state at that moment: another attempt can succeed.
    match error_type:
        case RayErrorType.RUNTIME_ENV_SETUP_FAILURE:
            return RayFailure(Reason.RUNTIME_ENV_SETUP_FAILED, retried=False)
        case RayErrorType.JOB_SUPERVISOR_ACTOR_START_TIMEOUT:
            return RayFailure(Reason.SUPERVISOR_START_TIMEOUT, retried=True)
        case RayErrorType.JOB_SUPERVISOR_ACTOR_START_FAILURE:
            return RayFailure(Reason.SUPERVISOR_START_FAILED, retried=True)
        case RayErrorType.JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE:
            return RayFailure(Reason.SUPERVISOR_UNSCHEDULABLE, retried=True)
        case RayErrorType.JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE:
            return RayFailure(Reason.SUPERVISOR_FAILED, retried=True)
        case RayErrorType.JOB_SUPERVISOR_ACTOR_DIED:
            return RayFailure(Reason.SUPERVISOR_DIED, retried=True)
        case RayErrorType.JOB_ENTRYPOINT_COMMAND_START_ERROR:
            return RayFailure(Reason.ENTRYPOINT_START_FAILED, retried=True)
        case RayErrorType.JOB_ENTRYPOINT_COMMAND_ERROR if exit_code == SHELL_NOT_FOUND:
            # The shell found no such command (python missing on the cluster's image): it stays missing.
            return RayFailure(Reason.ENTRYPOINT_NOT_FOUND, retried=False)
        case RayErrorType.JOB_ENTRYPOINT_COMMAND_ERROR if exit_code == SHELL_NOT_EXECUTABLE:
            return RayFailure(Reason.ENTRYPOINT_NOT_EXECUTABLE, retried=False)
        case RayErrorType.JOB_ENTRYPOINT_COMMAND_ERROR:
            return RayFailure(Reason.APP_FAILED, retried=True)
        case _:
            assert_never(error_type)
