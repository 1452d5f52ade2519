"""The statuses a run printed, in either voice (``raypod.voice``): the operator's pod prints the keys
it writes (``status status.jobStatus=RUNNING ...``), a command line the status and its message
(``RUNNING: Job is currently running.``)."""

from __future__ import annotations

import re

from raypod.contract import BridgeStatus

_STATUS = "|".join(status.value for status in BridgeStatus)
_LINE = re.compile(rf"^\d{{4}}-\d\d-\d\dT\S+Z (?:status .*?status\.jobStatus=)?({_STATUS})\b", re.MULTILINE)


def printed_statuses(out: str) -> list[str]:
    """Every status a run announced, in order; a command line's new message under the same status
    (a second ``PENDING: ...``) is not a new status."""
    seen = _LINE.findall(out)
    return [status for i, status in enumerate(seen) if i == 0 or seen[i - 1] != status]
