"""The process's exit codes, defined once for ``run`` and every command, in two conventions.

- ``POSIX``, for people, CI and a plain Kubernetes Job: the code says how the job ended.
- ``BRIDGE``, for the Bridge Operator's pod: the ConfigMap says how the job ended, and the
  operator fails a BridgeJob whose pod ends in phase Failed unless ``status.jobStatus`` is KILL or
  FAILED (its pod-error rule). So a pod that leaves a Ray job running (SIGTERM) or lost (UNKNOWN)
  exits 0 once its status is written; a non-zero code says the job failed, or that the pod could
  not record what happened.
"""

from __future__ import annotations

import enum

from raypod.contract import BridgeStatus, assert_never

#: The job SUCCEEDED (or the command did what it was asked).
EXIT_OK = 0
#: The job ended FAILED, KILL or UNKNOWN, or Ray said no; or the final status could not be written.
EXIT_FAILED = 1
#: Bad configuration or inputs: nothing was submitted.
EXIT_BAD_INPUT = 2
#: 128 + SIGINT: a human command was interrupted.
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM: the pod was asked to go; the Ray job keeps running.
EXIT_TERMINATED = 143

SUMMARY = (
    "exit codes: 0 job SUCCEEDED; 1 job FAILED, KILL or UNKNOWN; 2 bad configuration or\n"
    "inputs (nothing submitted); 143 terminated by SIGTERM (the Ray job keeps running).\n"
    "As the Bridge Operator's pod (--exit-codes bridge): UNKNOWN and SIGTERM exit 0 once the\n"
    "status is written, so that the operator does not call the pod failed."
)


#: Sets ``run --exit-codes``' default: ``bridge``, ``posix`` or ``auto``.
EXIT_CODES_VARIABLE = "RAYPOD_EXIT_CODES"


class ExitCodes(enum.Enum):
    """Which convention the exit code follows (see the module's docstring)."""

    POSIX = "posix"
    BRIDGE = "bridge"


#: What ``run --exit-codes`` (and ``RAYPOD_EXIT_CODES``) takes: a convention, or ``auto``.
EXIT_CODE_CHOICES = ("auto", *(codes.value for codes in ExitCodes))


def for_status(status: BridgeStatus, codes: ExitCodes = ExitCodes.POSIX) -> int:
    """A final Bridge status, written, as an exit code."""
    match status:
        case BridgeStatus.SUCCEEDED:
            return EXIT_OK
        case BridgeStatus.FAILED | BridgeStatus.KILL:
            return EXIT_FAILED
        case BridgeStatus.UNKNOWN:
            # The operator takes UNKNOWN as final with its times and message only if the pod does
            # not also end in phase Failed (that would make the BridgeJob FAILED, without them).
            return EXIT_OK if codes is ExitCodes.BRIDGE else EXIT_FAILED
        case BridgeStatus.SUBMITTED | BridgeStatus.PENDING | BridgeStatus.RUNNING:
            raise AssertionError(f"{status} is not a final status")
        case _:
            assert_never(status)


def for_termination(codes: ExitCodes) -> int:
    """SIGTERM, the Ray job left running for the next pod. Under the operator the pod must not end
    in phase Failed, or the BridgeJob is failed and no pod ever re-attaches."""
    match codes:
        case ExitCodes.POSIX:
            return EXIT_TERMINATED
        case ExitCodes.BRIDGE:
            return EXIT_OK
        case _:
            assert_never(codes)
