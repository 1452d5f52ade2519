"""The process's exit codes, defined once for ``run`` and every command."""

from __future__ import annotations

from raypod.contract import BridgeStatus, assert_never

#: The job SUCCEEDED (or the command did what it was asked).
EXIT_OK = 0
#: The job ended FAILED, KILL or UNKNOWN, or Ray said no.
EXIT_FAILED = 1
#: Bad configuration or inputs: nothing was submitted.
EXIT_BAD_INPUT = 2
#: 128 + SIGINT: a human command was interrupted.
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM: the pod was asked to go; the Ray job keeps running.
EXIT_TERMINATED = 143

SUMMARY = (
    "exit codes: 0 job SUCCEEDED; 1 job FAILED, KILL or UNKNOWN; 2 bad configuration or\n"
    "inputs (nothing submitted); 143 terminated by SIGTERM (the Ray job keeps running)."
)


def for_status(status: BridgeStatus) -> int:
    """A final Bridge status as an exit code: only SUCCEEDED is success."""
    match status:
        case BridgeStatus.SUCCEEDED:
            return EXIT_OK
        case BridgeStatus.FAILED | BridgeStatus.KILL | BridgeStatus.UNKNOWN:
            return EXIT_FAILED
        case BridgeStatus.SUBMITTED | BridgeStatus.PENDING | BridgeStatus.RUNNING:
            raise AssertionError(f"{status} is not a final status")
        case _:
            assert_never(status)
