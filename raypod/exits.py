"""The process's exit codes, defined once for ``run`` and every command, in three conventions.

- ``POSIX``, for people and CI: the code says how the job ended.
- ``BRIDGE``, for the Bridge Operator's pod: the ConfigMap says how the job ended, and the
  operator fails a BridgeJob whose pod ends in phase Failed unless ``status.jobStatus`` is KILL or
  FAILED (its pod-error rule). So a pod that leaves a Ray job running (SIGTERM) or lost (UNKNOWN)
  exits 0 once its status is written; a non-zero code says the job failed, or that the pod could
  not record what happened.
- ``JOB``, for a plain Kubernetes Job whose ``podFailurePolicy`` reads the code
  (samples/kubernetes/job.yaml): a code that ends the Job (the job ended on Ray, bad input) is
  never one that a new pod could settle (UNKNOWN, a final status not written: exit 3), because
  the new pod re-attaches to the Ray job by its recorded id and finds out.
"""

from __future__ import annotations

import enum

from raypod.contract import BridgeStatus, assert_never
from raypod.errors import ConfigError

#: The job SUCCEEDED (or the command did what it was asked).
EXIT_OK = 0
#: The job ended FAILED or KILL (and, but as a Kubernetes Job's pod, UNKNOWN), or Ray said no; or
#: the final status could not be written.
EXIT_FAILED = 1
#: Bad configuration or inputs: nothing was submitted.
EXIT_BAD_INPUT = 2
#: As a Kubernetes Job's pod: UNKNOWN, or the final status could not be written. The Ray job may
#: still run, or its end is not recorded: a new pod re-attaches by the recorded id and settles it.
EXIT_UNSETTLED = 3
#: 128 + SIGINT: a human command was interrupted.
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM: the pod (or a CI job) was asked to go; the Ray job keeps running.
EXIT_TERMINATED = 143

SUMMARY = (
    "exit codes: 0 job SUCCEEDED; 1 job FAILED, KILL or UNKNOWN; 2 bad configuration or\n"
    "inputs (nothing submitted); 130 interrupted by Ctrl-C (SIGINT), 143 terminated by\n"
    "SIGTERM: the Ray job keeps running.\n"
    "As the Bridge Operator's pod (--exit-codes bridge): UNKNOWN and SIGTERM exit 0 once the\n"
    "status is written, so that the operator does not call the pod failed.\n"
    "As a Kubernetes Job's pod (--exit-codes job): UNKNOWN, or a final status not written,\n"
    "exits 3, so that the Job's podFailurePolicy gives a new pod, which re-attaches."
)


#: Sets ``run --exit-codes``' default: ``bridge``, ``posix``, ``job`` or ``auto``.
EXIT_CODES_VARIABLE = "RAYPOD_EXIT_CODES"


class ExitCodes(enum.Enum):
    """Which convention the exit code follows (see the module's docstring)."""

    POSIX = "posix"
    BRIDGE = "bridge"
    JOB = "job"


#: What ``run --exit-codes`` (and ``RAYPOD_EXIT_CODES``) takes: a convention, or ``auto``.
EXIT_CODE_CHOICES = ("auto", *(codes.value for codes in ExitCodes))


def chosen_exit_codes(choice: str, auto: ExitCodes) -> ExitCodes:
    """``--exit-codes`` (its default is ``$RAYPOD_EXIT_CODES``, which argparse does not check): a
    convention, or ``auto``, the one the context implies."""
    if choice not in EXIT_CODE_CHOICES:
        expected = ", ".join(EXIT_CODE_CHOICES)
        raise ConfigError.single(EXIT_CODES_VARIABLE, f"expected one of {expected}, got {choice!r}")
    return auto if choice == "auto" else ExitCodes(choice)


def for_status(status: BridgeStatus, codes: ExitCodes = ExitCodes.POSIX) -> int:
    """A final Bridge status, written, as an exit code."""
    match status:
        case BridgeStatus.SUCCEEDED:
            return EXIT_OK
        case BridgeStatus.FAILED | BridgeStatus.KILL:
            return EXIT_FAILED
        case BridgeStatus.UNKNOWN:
            return _for_lost(codes)
        case BridgeStatus.SUBMITTED | BridgeStatus.PENDING | BridgeStatus.RUNNING:
            raise AssertionError(f"{status} is not a final status")
        case _:
            assert_never(status)


def _for_lost(codes: ExitCodes) -> int:
    match codes:
        case ExitCodes.POSIX:
            return EXIT_FAILED
        case ExitCodes.BRIDGE:
            # The operator takes UNKNOWN as final with its times and message only if the pod does
            # not also end in phase Failed (that would make the BridgeJob FAILED, without them).
            return EXIT_OK
        case ExitCodes.JOB:
            return EXIT_UNSETTLED
        case _:
            assert_never(codes)


def for_unrecorded(codes: ExitCodes) -> int:
    """The final status (or bad input's FAILED) could not be written. Under the operator a pod
    error is then the truth; a Kubernetes Job's next pod re-attaches and writes it."""
    match codes:
        case ExitCodes.POSIX | ExitCodes.BRIDGE:
            return EXIT_FAILED
        case ExitCodes.JOB:
            return EXIT_UNSETTLED
        case _:
            assert_never(codes)


def for_termination(codes: ExitCodes, *, interrupted: bool = False) -> int:
    """SIGTERM (or Ctrl-C, ``interrupted``), the Ray job left running. Shells and CI read 130 as
    interrupted and 143 as terminated, so each signal keeps its own code. Under the operator the pod
    must not end in phase Failed, or the BridgeJob is failed and no pod ever re-attaches."""
    match codes:
        case ExitCodes.POSIX | ExitCodes.JOB:
            return EXIT_INTERRUPTED if interrupted else EXIT_TERMINATED
        case ExitCodes.BRIDGE:
            return EXIT_OK
        case _:
            assert_never(codes)


def lost_is_final(codes: ExitCodes) -> bool:
    """Whether an UNKNOWN an earlier pod recorded is kept as the job's end. A Kubernetes Job's next
    pod is there to find out (exit 3 asked for it): it re-attaches by the recorded id instead."""
    match codes:
        case ExitCodes.POSIX | ExitCodes.BRIDGE:
            return True
        case ExitCodes.JOB:
            return False
        case _:
            assert_never(codes)
