"""The soak's invariants, checked on what one run left: raypod's final record against Ray's own job
list, and every output of every pod. Pure functions of the evidence, so each can be tried alone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from devtools.soak_plan import RETRY_DELAY_SECONDS, Plan
from raypod.ray import JobInfo

INVARIANTS = (
    "duplicate_submission",
    "false_final_status",
    "missing_final_status",
    "traceback",
    "secret_leak",
    "grace_exceeded",
)
#: Not an invariant: the soak itself failed on a run (a bug of the soak, or the machine).
HARNESS = "soak_error"
FINAL = ("SUCCEEDED", "FAILED", "KILL", "UNKNOWN")
TRACEBACK = "Traceback (most recent call last)"
#: The script's first line: when the job really started (seconds since the epoch).
START_MARK = re.compile(r"SOAK-START (\d+(?:\.\d+)?)")
#: A secret counts as leaked when any this many characters of it in a row appear: a secret cut
#: before it was scrubbed leaks its first part only.
LEAK_WINDOW = 10
#: Clocks and Ray's records in whole milliseconds: a deadline is only called early past this margin.
DEADLINE_MARGIN = 1.0


@dataclass
class PodRun:
    number: int
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    #: The soak sent SIGTERM (as planned, or at the run's bound).
    terminated: bool = False
    #: Still alive the pod's grace period after SIGTERM: killed.
    grace_exceeded: bool = False
    result: str | None = None
    termination: str | None = None


@dataclass
class Evidence:
    plan: Plan
    job_name: str
    pods: list[PodRun]
    #: The status file's keys, or the ConfigMap's data, once the last pod ended.
    record: dict[str, str]
    #: Ray's own records of this job's submissions (GET /api/jobs/, not through the proxy).
    ray_jobs: list[dict[str, Any]]
    #: Ray's log of each submission id.
    logs: dict[str, str] = field(default_factory=dict)
    #: The run was cut at its bound, its last pod still running.
    bound_exceeded: bool = False
    bound: float = 0.0


@dataclass(frozen=True)
class Violation:
    invariant: str
    detail: str


def check(evidence: Evidence) -> list[Violation]:
    found: list[Violation] = []
    found += [Violation("duplicate_submission", d) for d in duplicate_submissions(evidence)]
    found += [Violation("false_final_status", d) for d in false_final_status(evidence)]
    found += [Violation("missing_final_status", d) for d in missing_final_status(evidence)]
    found += [Violation("traceback", d) for d in tracebacks(evidence)]
    found += [Violation("secret_leak", d) for d in secret_leaks(evidence)]
    found += [
        Violation("grace_exceeded", f"pod {pod.number} still ran 30 s after SIGTERM and was killed")
        for pod in evidence.pods
        if pod.grace_exceeded
    ]
    return found


def _attempt_of(submission_id: str, base: str) -> int | None:
    """1 for the first attempt's id, n for ``<base>-r<n-1>``, None for anything else."""
    if submission_id == base:
        return 1
    match = re.fullmatch(re.escape(base) + r"-r(\d+)", submission_id)
    return int(match.group(1)) + 1 if match else None


def duplicate_submissions(evidence: Evidence) -> list[str]:
    """Each attempt at most once on Ray, no more than retries + 1 of them, none that the record does not count."""
    ids = sorted(str(job.get("submission_id")) for job in evidence.ray_jobs)
    if not ids:
        return []
    problems = []
    bases = sorted({re.sub(r"(-r\d+)+$", "", submission_id) for submission_id in ids})
    if len(bases) > 1:
        problems.append(f"{len(bases)} different first attempts on Ray: {', '.join(ids)}")
    base = bases[0]
    allowed = evidence.plan.retries + 1
    for submission_id in ids:
        attempt = _attempt_of(submission_id, base)
        if attempt is None:
            problems.append(f"{submission_id} is an attempt id made from another attempt id")
        elif attempt > allowed:
            problems.append(f"{submission_id} is attempt {attempt}, with retries {evidence.plan.retries}")
    if len(ids) > allowed:
        problems.append(f"{len(ids)} submissions on Ray with retries {evidence.plan.retries}: {', '.join(ids)}")
    recorded = evidence.record.get("status.attempt") or "1"
    if evidence.record.get("status.jobStatus") in FINAL and recorded.isdigit() and len(ids) > int(recorded):
        problems.append(f"Ray has {len(ids)} attempts ({', '.join(ids)}), the final record counts {recorded}")
    return problems


def _started_at(log: str) -> float | None:
    match = START_MARK.search(log)
    return float(match.group(1)) if match else None


def _deadline_problem(evidence: Evidence, reason: str, job: dict[str, Any]) -> str | None:
    """Why a deadline that stopped ``job`` had not truly passed, or None if it had."""
    plan, submission_id = evidence.plan, str(job.get("submission_id"))
    submitted = float(job.get("start_time") or 0) / 1000
    ended = float(job.get("end_time") or 0) / 1000 or None
    if reason == "StartDeadlineExceeded":
        if plan.start_deadline is None:
            return "a start deadline fired that the job does not have"
        limit = submitted + plan.start_deadline
        started = _started_at(evidence.logs.get(submission_id, ""))
        if started is not None and started < limit - DEADLINE_MARGIN:
            return (
                f"the job started {started - submitted:.1f} s after its submission, within its "
                f"{plan.start_deadline} s start deadline, and was stopped for it"
            )
        if ended is not None and ended < limit - DEADLINE_MARGIN:
            after = ended - submitted
            return f"stopped {after:.1f} s after its submission, before its {plan.start_deadline} s start deadline"
        return None
    if plan.active_deadline is None:
        return "an active deadline fired that the job does not have"
    first = min(float(j.get("start_time") or 0) for j in evidence.ray_jobs) / 1000
    if ended is not None and ended < first + plan.active_deadline - DEADLINE_MARGIN:
        return f"stopped {ended - first:.1f} s after the first submission, before its {plan.active_deadline} s deadline"
    return None


def _pages_before_submitting(plan: Plan) -> bool:
    """The plan has the dashboard's start-up call answered by a page or a body that is not Ray's: raypod
    then ends at once as bad input (resourceURL) and submits nothing, as docs/failures.md says; a
    retry's submission ends the same way."""
    return any(f.kind in ("html404", "garbled") and f.target in ("version", "any") for f in plan.faults)


def _outage_past_connect_timeout(plan: Plan) -> bool:
    """The plan may keep the dashboard failing for the whole (short) ``--connect-timeout``: then
    raypod may end as docs/failures.md says, FAILED as bad input ("cannot reach the Ray dashboard")
    before submitting, or UNKNOWN ("Lost track") when the POST's answers were lost."""
    failing = ("down", "http5xx", "reset", "slow", "trickle", "lost_answer")
    return plan.connect_timeout <= 5 and any(
        f.kind in failing and f.target in ("", "version", "submit", "packages", "any") for f in plan.faults
    )


def false_final_status(evidence: Evidence) -> list[str]:
    """A final status agrees with what Ray says of the recorded attempt."""
    record, plan = evidence.record, evidence.plan
    status = record.get("status.jobStatus")
    if status not in FINAL:
        return []
    reason = record.get("status.reason", "")
    message = record.get("status.message", "")
    final_id = record.get("id", "")
    written = f"{status}/{reason or '-'} ({message[:300]})"
    job = next((j for j in evidence.ray_jobs if j.get("submission_id") == final_id), None)
    if job is None:
        allowed = {"BadInput", "NotSubmitted"} if plan.small_tmp else set()
        if _pages_before_submitting(plan) and "resourceURL" in message:
            allowed.add("BadInput")
        if _outage_past_connect_timeout(plan) and "cannot reach the Ray dashboard" in message:
            allowed.add("BadInput")
        if _outage_past_connect_timeout(plan) and status == "UNKNOWN" and "Lost track" in message:
            return []
        # A 400 to the POST is a rejection whoever sends it; an ingress's 404 page is not Ray's word.
        if any(f.target == "submit" and f.kind == "echo" for f in plan.faults):
            allowed.add("SubmissionRejected")
        if status == "FAILED" and reason in allowed:
            return []
        return [f"{written}, and Ray has no job {final_id or '(no id recorded)'}"]
    ray = str(job.get("status"))
    if _outage_past_connect_timeout(plan) and status == "UNKNOWN" and "Lost track" in message:
        return []
    if ray == "SUCCEEDED" and status == "SUCCEEDED":
        return []
    # Ray's own reason for the failure, through raypod's one table (AppFailed for a driver that exited).
    failure = JobInfo.parse(job).failure if ray == "FAILED" else None
    if failure is not None and status == "FAILED" and reason == failure.reason:
        attempt = _attempt_of(final_id, re.sub(r"(-r\d+)+$", "", final_id)) or 0
        retries_left = failure.retried and attempt < plan.retries + 1
        # A retry whose submission cannot reach Ray ends with the failed attempt (docs/configmap.md, Retries).
        unreachable = (_pages_before_submitting(plan) and "resourceURL" in message) or (
            _outage_past_connect_timeout(plan) and "could not be submitted" in message
        )
        if retries_left and not unreachable:
            return [f"{written} after attempt {attempt} of {plan.retries + 1}: retries left"]
        return []
    deadline = reason in ("DeadlineExceeded", "StartDeadlineExceeded")
    # Ray 2.60 keeps a job stopped before its start PENDING (docs/configmap.md, startDeadlineSeconds).
    if (
        status == "FAILED"
        and deadline
        and (ray == "STOPPED" or (ray == "PENDING" and reason == "StartDeadlineExceeded"))
    ):
        problem = _deadline_problem(evidence, reason, job)
        return [f"{written}: {problem}"] if problem else []
    if status == "FAILED" and reason == "DeadlineExceeded" and ray == "FAILED":
        # The attempt failed on its own and the deadline passed before the next one could start.
        problem = _retry_after_deadline_problem(evidence, job)
        return [f"{written}: {problem}"] if problem else []
    if status == "KILL":
        return [f"{written}, but nobody set kill; Ray reports {final_id} {ray}"]
    return [f"{written} while Ray reports {final_id} {ray}"]


def _retry_after_deadline_problem(evidence: Evidence, job: dict[str, Any]) -> str | None:
    plan = evidence.plan
    attempt = _attempt_of(str(job.get("submission_id")), re.sub(r"(-r\d+)+$", "", str(job.get("submission_id"))))
    if plan.active_deadline is None:
        return "an active deadline fired that the job does not have"
    if attempt is None or attempt >= plan.retries + 1:
        return "no attempt was left to wait for"
    first = min(float(j.get("start_time") or 0) for j in evidence.ray_jobs) / 1000
    next_start = float(job.get("end_time") or 0) / 1000 + RETRY_DELAY_SECONDS
    if next_start < first + plan.active_deadline - DEADLINE_MARGIN:
        return (
            f"the next attempt was due {next_start - first:.1f} s after the first submission, "
            f"before its {plan.active_deadline} s deadline"
        )
    return None


def missing_final_status(evidence: Evidence) -> list[str]:
    """The chain of pods ends with a final status, a --result file and a termination message."""
    record, last = evidence.record, evidence.pods[-1]
    status = record.get("status.jobStatus")
    if evidence.bound_exceeded:
        return [f"the run did not end within {evidence.bound:.0f} s; the record says {status or 'nothing'}"]
    problems = []
    if status not in FINAL:
        problems.append(f"pod {last.number} exited {last.returncode} leaving status {status or 'none'}")
    elif not record.get("status.reason"):
        problems.append(f"final {status} without status.reason")
    if last.result is None:
        problems.append(f"pod {last.number} exited {last.returncode} without a --result file")
    else:
        try:
            result = json.loads(last.result)
        except ValueError:
            result = None
        if not isinstance(result, dict) or result.get("final") is not True:
            problems.append(f"pod {last.number}'s --result file is not final: {last.result[:200]}")
        elif status in FINAL and result.get("status") != status:
            problems.append(f"the --result file says {result.get('status')}, the record {status}")
    if not last.termination:
        problems.append(f"pod {last.number} exited {last.returncode} without a termination message")
    return problems


def _exception_line(text: str) -> str:
    """The line that names the exception after the first traceback in ``text``."""
    lines = text[text.index(TRACEBACK) :].splitlines()[1:]
    return next((line for line in lines if line and not line.startswith(" ")), "?")


def tracebacks(evidence: Evidence) -> list[str]:
    problems = []
    for pod in evidence.pods:
        for name, text in (("stdout", pod.stdout), ("stderr", pod.stderr)):
            if TRACEBACK in text:
                problems.append(f"pod {pod.number} {name}: {_exception_line(text)[:300]}")
    if TRACEBACK in json.dumps(evidence.record):
        problems.append("in the status record")
    return problems


def _windows(secret: str) -> set[str]:
    body = secret[4:]  # past the readable prefix ("tok-"): only the random part counts
    return {body[i : i + LEAK_WINDOW] for i in range(len(body) - LEAK_WINDOW + 1)}


def outputs(evidence: Evidence) -> dict[str, str]:
    """Every text raypod left, by where: each pod's stdout, stderr, --result and termination
    message, the record, and Ray's records of the job (entrypoint, metadata, runtime_env)."""
    found = {"the status record": json.dumps(evidence.record), "Ray's job records": json.dumps(evidence.ray_jobs)}
    for pod in evidence.pods:
        found[f"pod {pod.number} stdout"] = pod.stdout
        found[f"pod {pod.number} stderr"] = pod.stderr
        found[f"pod {pod.number} --result"] = pod.result or ""
        found[f"pod {pod.number} termination message"] = pod.termination or ""
    return found


def secret_leaks(evidence: Evidence) -> list[str]:
    problems = []
    texts = outputs(evidence)
    for name, secret in evidence.plan.secrets.named().items():
        windows = _windows(secret)
        for where, text in texts.items():
            if secret in text:
                problems.append(f"the whole {name} in {where}")
            elif any(window in text for window in windows):
                problems.append(f"part of the {name} in {where}")
    return problems
