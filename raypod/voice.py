"""How a run speaks: as the operator's pod, or as a command line.

The operator's pod (its status goes to the ConfigMap through the Kubernetes API) prints the keys it
writes, one line per change, as the pod's log has always shown them. Everywhere else (``submit``,
``run`` on a laptop or in CI) raypod is a command line: a status line reads as Ray's own words
(``RUNNING: Job is currently running.``), and nothing is said about what the user never asked for.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from raypod.contract import JOB_STATUS, MESSAGE, REASON, Reason


class Voice(enum.Enum):
    #: The operator's pod: the status keys, as written to the ConfigMap.
    POD = "pod"
    #: A command line: the status and Ray's (or raypod's) message.
    CLI = "cli"


#: Ends where no job ran on Ray: the error line that said why is the whole story.
NOTHING_RAN = (Reason.BAD_INPUT, Reason.NOT_SUBMITTED, Reason.SUBMISSION_REJECTED)


def cli_status_line(changes: Mapping[str, str], current: Mapping[str, str]) -> str | None:
    """``STATUS: message`` once the status or its message changed; None for the other keys (the id,
    the attempt, the times), and for an end where nothing ran on Ray (bad input, not submitted,
    rejected): its error is printed once, on its own, and a ``FAILED`` line would only repeat it."""
    if JOB_STATUS not in changes and MESSAGE not in changes:
        return None
    status = current.get(JOB_STATUS, "")
    if not status or current.get(REASON) in NOTHING_RAN:
        return None
    message = current.get(MESSAGE, "")
    return f"{status}: {message}" if message else status
