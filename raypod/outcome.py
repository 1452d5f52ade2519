"""How a run ends: the ``Outcome`` the lifecycle returns, and the rules that make one from an error
or from what an earlier pod recorded.

Every place that turns an ``Ending`` into words, a status or an exit code matches it with
``match`` and ends with ``assert_never``: a new ending fails ``mypy`` wherever it is not handled.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raypod.clock import format_ray_time
from raypod.contract import (
    ID,
    JOB_STATUS,
    MESSAGE,
    REASON,
    BridgeStatus,
    Reason,
    default_reason,
    submission_id_problem,
)
from raypod.errors import ConfigError, DeploymentError, RaypodError, SubmissionRejected
from raypod.ray import JobInfo
from raypod.safetext import MAX_MESSAGE, one_line, printable

if TYPE_CHECKING:
    from raypod.config import BridgeConfig
    from raypod.source import JobSource

log = logging.getLogger(__name__)


class Ending(enum.Enum):
    #: A final Bridge status to write; the exit code follows it.
    FINAL = "final"
    #: Bad configuration or inputs: nothing was submitted.
    BAD_INPUT = "bad input"
    #: SIGTERM: write what is pending and leave; the Ray job keeps running.
    TERMINATED = "terminated"
    #: Ray has the job and nobody watches it (``submit`` without ``--wait``).
    DETACHED = "detached"
    #: An earlier pod recorded a final status for this job: it is kept as it is.
    ALREADY_FINAL = "already final"
    #: SIGTERM, and the BridgeJob is being deleted: its Ray job was asked to stop; no status is
    #: written (its ConfigMap is gone).
    DELETED = "deleted"


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    submission_id: str = ""
    #: The Bridge status to write (or kept); None when the run leaves none (TERMINATED).
    status: BridgeStatus | None = None
    message: str = ""
    #: Ray's end time, when Ray reported one.
    end_time: str | None = None
    #: The watched job, when its log and results are to be collected.
    job: JobInfo | None = None
    #: With BAD_INPUT: every problem, each naming its key.
    problems: tuple[str, ...] = ()
    #: Why it ended, for machines (``status.reason``); empty while it has not.
    reason: str = ""

    @classmethod
    def final(
        cls,
        submission_id: str,
        status: BridgeStatus,
        message: str,
        job: JobInfo | None = None,
        *,
        reason: str | None = None,
    ) -> Outcome:
        end_time = format_ray_time(job.end_time_ms) if job is not None and job.terminal else None
        return cls(Ending.FINAL, submission_id, status, message, end_time, job, reason=reason or default_reason(status))

    @classmethod
    def bad_input(cls, error: ConfigError) -> Outcome:
        return cls(
            Ending.BAD_INPUT,
            status=BridgeStatus.FAILED,
            message=bad_input_message(error.lines),
            problems=tuple(error.lines),
            reason=Reason.BAD_INPUT,
        )

    @classmethod
    def terminated(cls, submission_id: str) -> Outcome:
        return cls(Ending.TERMINATED, submission_id)

    @classmethod
    def deleted(cls, submission_id: str, message: str) -> Outcome:
        return cls(Ending.DELETED, submission_id, message=message)

    @classmethod
    def detached(cls, submission_id: str, job: JobInfo | None = None) -> Outcome:
        """Nobody watches the job; ``job``: Ray had it already (it was attached to, not submitted)."""
        status = job.status.bridge if job is not None else BridgeStatus.SUBMITTED
        return cls(Ending.DETACHED, submission_id, status, job=job)

    @classmethod
    def lost(cls, submission_id: str, message: str, job: JobInfo | None = None) -> Outcome:
        """UNKNOWN: raypod cannot tell what became of a job Ray may still run."""
        return cls.final(submission_id, BridgeStatus.UNKNOWN, message, job)


def bad_input_message(problems: Sequence[str], limit: int = MAX_MESSAGE) -> str:
    """``Bad input: <problem>`` for one; for more, their count and as many as fit in ``limit``:
    ``Bad input (11 problems): <first>; <second>; ...``, so the reader knows there are more."""
    if len(problems) == 1:
        return one_line(f"Bad input: {problems[0]}", limit)
    lines = [printable(" ".join(problem.split())) or "(no text)" for problem in problems]
    more = "; ..."
    message = one_line(f"Bad input ({len(lines)} problems): {lines[0]}", limit - len(more))
    for shown, line in enumerate(lines[1:], 2):
        # Room is kept for "; ..." until the last problem, so the count is never the only hint.
        if len(message) + 2 + len(line) + (0 if shown == len(lines) else len(more)) > limit:
            return message + more
        message = f"{message}; {line}"
    return message


def outcome_of_error(error: RaypodError, submission_id: str = "", *, submitted: bool = False) -> Outcome:
    """How an error ends the run. ``submission_id`` is the id known so far; ``submitted`` says
    whether Ray may have the job (then an error means "unknown", not "not submitted")."""
    if isinstance(error, ConfigError):
        return Outcome.bad_input(error)
    if isinstance(error, DeploymentError) and not submitted:
        return Outcome.bad_input(ConfigError.single(error.what, error.problem))
    log.error("%s", error)
    if isinstance(error, SubmissionRejected):
        return Outcome.final(
            submission_id, BridgeStatus.FAILED, one_line(str(error), 400), reason=Reason.SUBMISSION_REJECTED
        )
    if not submitted:
        return Outcome.final(
            "", BridgeStatus.FAILED, one_line(f"Not submitted: {error}", 400), reason=Reason.NOT_SUBMITTED
        )
    # The job may be running on Ray: say that its state is unknown rather than leave a stale
    # status (the operator calls a pod that fails without a final status a pod error).
    return Outcome.lost(submission_id, one_line(f"Lost track of Ray job {submission_id}: {error}", 400))


def recorded_final(recorded: Mapping[str, str], *, lost_is_final: bool = True) -> Outcome | None:
    """The final status an earlier pod wrote once the job had ended: never downgraded later.
    ``lost_is_final`` False: an UNKNOWN is not an end, and the caller re-attaches by the id."""
    recorded_id = recorded.get(ID, "")
    status = BridgeStatus.parse(recorded.get(JOB_STATUS, ""))
    if status is BridgeStatus.UNKNOWN and not lost_is_final:
        return None
    if recorded_id and status is not None and status.final:
        reason = recorded.get(REASON) or default_reason(status)
        return Outcome(Ending.ALREADY_FINAL, recorded_id, status, recorded.get(MESSAGE, ""), reason=reason)
    return None


def outcome_of_unusable_config(error: ConfigError, recorded: Mapping[str, str]) -> Outcome:
    """The ConfigMap cannot even say where Ray is. With an id recorded, Ray may run the job, so
    "bad input" (nothing was submitted) would be false: the recorded end is kept, or the job's
    state is unknown."""
    recorded_id = recorded.get(ID, "")
    if not recorded_id:
        return Outcome.bad_input(error)
    final = recorded_final(recorded)
    if final is not None:
        return final
    log.error("cannot watch Ray job %s: %s", recorded_id, error)
    return Outcome.lost(recorded_id, one_line(f"Cannot watch Ray job {recorded_id}: {error}", 400))


def load_for_run(job: JobSource, recorded: Mapping[str, str]) -> BridgeConfig | Outcome:
    """The job's settings for a run, or how the run ends before it starts: the one decision that
    ``run`` makes and ``validate`` reports.

    ``recorded``: what an earlier pod wrote (an ``id`` re-attaches). A recorded id that is no Ray
    submission id names no job raypod could have submitted: bad input, with every other problem."""
    recorded_id = recorded.get(ID, "")
    id_problem = submission_id_problem(recorded_id) if recorded_id else None
    try:
        config = job.load(submitted=bool(recorded_id) and id_problem is None)
    except ConfigError as error:
        if id_problem is None:
            return outcome_of_unusable_config(error, recorded)
        problems = error.problems
    else:
        if id_problem is None:
            return config
        problems = []
    return Outcome.bad_input(ConfigError(dict.fromkeys([(ID, id_problem), *problems])))
