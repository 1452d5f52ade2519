"""The command handlers: ``run`` (the pod) and the commands for humans and CI.

Each handler turns its flags into calls of the same pieces ``run`` uses: the ConfigMap
parser, the runner, the dashboard client, the job waits and the log follower. ``dispatch``
is the one table of commands and the one place an error becomes a line and an exit code.
"""

from __future__ import annotations

import argparse
import codecs
import enum
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from raypod.clock import SystemClock, format_ray_time
from raypod.config import checked_submission_id
from raypod.contract import ID, assert_never
from raypod.credentials import DEFAULT_S3_CREDENTIALS_DIR, RAY_TOKEN_SOURCES, RayAuthSources, S3CredentialSources
from raypod.entrypoint import checked_config
from raypod.errors import ConfigError, RayApiError, RaypodError, Terminated
from raypod.events import events_for
from raypod.exits import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    ExitCodes,
    chosen_exit_codes,
    lost_is_final,
)
from raypod.flags import default_job_name, require_address, submit_job
from raypod.interrupt import TerminateEvent, leave_on_signal
from raypod.jobs import PENDING_STOP_HELD, PendingStop, delete_ended_job, stop_and_wait, wait_until_ended
from raypod.kube import configmap_name
from raypod.log_context import set_log_configmap, set_log_submission
from raypod.logs import LineEcho, LiveLog, echo_rest
from raypod.outcome import Ending, Outcome, load_for_run, recorded_final
from raypod.pod_identity import PodIdentity
from raypod.process import fallback_sink, fallback_voice, install_terminate_handler, open_run_target
from raypod.ray import JobInfo, RayJobsClient, RayStatus, stranger_at
from raypod.retry import RetryPolicy
from raypod.run_metrics import GatewaySettings, MetricsAtExit
from raypod.run_record import termination_log_path, write_result, write_termination_message
from raypod.runner import Runner, RunOptions, RunResult, report_bad_input
from raypod.session import START_STOP_CONFIRM, SessionSettings
from raypod.source import ConfigMapJob, MappingSource, open_source
from raypod.status_store import NullSink, recorded_keys
from raypod.terminal import (
    Progress,
    TransferProgress,
    key_values,
    people_out,
    print_bad_input,
    print_error,
    table,
)
from raypod.voice import Voice

log = logging.getLogger(__name__)

#: A human waits for a short answer: a few quick retries, not the pod's patient policy.
CLI_RETRY = RetryPolicy(attempts=3, initial_wait=0.5, max_wait=2.0, deadline=10.0, quiet_retries=True)
#: ``submit``'s calls: as patient as the pod's, but one line per retried call, not one per retry.
SUBMIT_RETRY = RetryPolicy(quiet_retries=True)
#: ``logs --follow`` gives up after this long without an answer from the dashboard.
FOLLOW_MAX_SILENCE = 60.0


# -- the dashboard ---------------------------------------------------------------------------
def connect(args: argparse.Namespace) -> RayJobsClient:
    """The dashboard client, once ``/api/version`` shows a Ray dashboard answers at the address
    (anything else is bad input naming the flag or variable it came from)."""
    credentials = ray_auth(args, for_cli=True).read(basic=False)
    address = require_address(args.address)
    ray = RayJobsClient.connect(address.url, credentials, retry=CLI_RETRY)
    try:
        ray.version()
    except RayApiError as error:
        ray.close()
        stranger = stranger_at(address.url, address.origin, error)
        if stranger is not None:
            raise stranger from error
        if error.status is None:
            # Nothing answered: say where the address came from, the first thing to check.
            raise RaypodError(f"{error} (the address from {address.origin}: is a Ray dashboard there?)") from error
        raise
    except BaseException:
        ray.close()
        raise
    return ray


def ray_auth(args: argparse.Namespace, *, for_cli: bool) -> RayAuthSources:
    """The token and header sources Ray's own clients read; ``~/.ray/auth_token`` only at a terminal
    or in CI, never in the pod."""
    user_token = Path.home() / ".ray" / "auth_token" if for_cli else None
    return RayAuthSources(args.credentials, os.environ, user_token, args.headers)


# -- commands ----------------------------------------------------------------------------
#: How long ``submit --stop-on-interrupt`` waits for Ray to confirm the stop.
STOP_ON_INTERRUPT_TIMEOUT = 60.0


def command_run(args: argparse.Namespace) -> int:
    """The pod: the job from a ConfigMap, its status to the ConfigMap (or a file), to its end."""
    # First, so SIGTERM also cuts short the Kubernetes API's retries.
    terminate = install_terminate_handler()
    gateway = GatewaySettings.parse(args.pushgateway, args.pushgateway_delete)
    metrics = MetricsAtExit(gateway, args.job_name or "", args.namespace or "")
    try:
        target = open_run_target(args.job_name, args.namespace, args.config, args.status_file, interrupt=terminate)
    except ConfigError as error:
        sink, voice = fallback_sink(args.status_file), fallback_voice(args.status_file)
        return leave_report(args, report_bad_input(error, sink, sys.stdout, voice), metrics)
    metrics.namespace = target.namespace
    metrics.delete_at_start()
    codes = chosen_exit_codes(args.exit_codes, auto=target.exit_codes)
    set_log_configmap(target.namespace, configmap_name(args.job_name))
    options = RunOptions(
        job_name=args.job_name,
        namespace=target.namespace,
        session=SessionSettings(connect_timeout=args.connect_timeout),
        ray_auth=ray_auth(args, for_cli=False),
        # The pod reads the secret its BridgeJob names, never AWS_* keys of its environment.
        s3_keys=S3CredentialSources(args.s3_credentials or DEFAULT_S3_CREDENTIALS_DIR),
        follow_logs=args.follow_logs,
        exit_codes=codes,
        status_timeout=args.status_timeout,
        on_poll=metrics.queue.observe,
        pod=PodIdentity.from_environ(os.environ),
        voice=target.voice,
        left_running=None if target.voice is Voice.POD else rerun_attaches(args.status_file),
        run_again="" if target.voice is Voice.POD else run_again(args.status_file, args.config),
    )
    runner = Runner(
        ConfigMapJob(target.source),
        target.sink,
        options,
        terminate=terminate,
        deletion=target.api,
        events=events_for(target.api),
    )
    return leave_report(args, runner.run(), metrics)


def rerun_attaches(status_file: Path | None) -> Callable[[str], str]:
    """``run`` outside the pod cut short: what the job does now, and how to find it again."""

    def said(submission_id: str) -> str:
        again = f"; `raypod run --status-file {status_file}` attaches to it again" if status_file else ""
        return f"{keeps_running(submission_id)}{again}"

    return said


def run_again(status_file: Path | None, config: Path | None) -> str:
    """How to run a job again whose final status an earlier run recorded (a command line's hint)."""
    if status_file is not None:
        return f"to run the job again, delete {status_file} or pass another --status-file"
    if config is not None:
        return f"to run the job again, remove raypod's keys (id, status.*) from {config}"
    return ""


def leave_report(args: argparse.Namespace, result: RunResult, metrics: MetricsAtExit | None = None) -> int:
    """The termination message and the ``--result`` file, the metrics' one push, then the exit code."""
    write_termination_message(termination_log_path(args.termination_log), result)
    if args.result is not None:
        write_result(args.result, result)
    if metrics is not None:
        # After the final status (written by the run) and the local records: bounded, and it never
        # changes the exit code.
        metrics.push(result)
    return result.exit_code


def command_submit(args: argparse.Namespace) -> int:
    job, local, address_origin = submit_job(args)
    # The runner prints a line on each status change; the progress adds the elapsed time.
    progress = Progress(sys.stderr, plain_on_change=False)
    job_out = progress.clearing(sys.stdout)
    shown: list[str] = []

    def on_poll(job: JobInfo) -> None:
        if not shown:
            shown.append(job.submission_id)
            print(job.submission_id, file=job_out, flush=True)
        progress.show(job.submission_id, job.status)

    options = RunOptions(
        job_name=default_job_name(args),
        namespace=args.namespace or "",
        session=SessionSettings(
            connect_timeout=args.connect_timeout,
            submit_only=not args.wait,
            address_origin=address_origin,
            retry=SUBMIT_RETRY,
        ),
        local_inputs=local,
        ray_auth=ray_auth(args, for_cli=True),
        s3_keys=S3CredentialSources(args.s3_credentials, os.environ),
        follow_logs=args.follow_logs,
        status_timeout=args.status_timeout,
        on_poll=on_poll,
        left_running=stopping if args.stop_on_interrupt else keeps_running,
        voice=Voice.CLI,
        # CI sets TRACEPARENT; in a pod (in-cluster CI) its name, uid and node come along too.
        pod=PodIdentity.from_environ(os.environ),
        progress=TransferProgress(sys.stderr),
    )
    terminate = install_terminate_handler(pod=False) if args.wait else None
    # stdout carries only the id (and, with --wait, the job's output); the rest goes to stderr.
    runner = Runner(
        job,
        NullSink(),
        options,
        status_out=progress.clearing(sys.stderr),
        job_out=job_out,
        terminate=terminate,
    )
    result = runner.run()
    progress.clear()
    outcome = result.outcome
    submission_id = outcome.submission_id
    if not args.wait and result.exit_code == EXIT_OK:
        print(submission_id, flush=True)
        if outcome.job is not None:
            print(
                f"raypod: Ray job {submission_id} was submitted already ({outcome.job.status}): nothing new was "
                f"submitted; `raypod logs {submission_id} --follow` follows it, `raypod status {submission_id}` "
                "shows it",
                file=sys.stderr,
            )
    elif outcome.ending is Ending.TERMINATED and submission_id and args.stop_on_interrupt and terminate is not None:
        leave_report(args, result)
        return stop_after_interrupt(args, submission_id, terminate)
    return leave_report(args, result)


def keeps_running(submission_id: str) -> str:
    """``submit --wait`` cut short: what the job does now, in the words of the command line."""
    return (
        f"Ray job {submission_id} keeps running on Ray; `raypod logs --follow {submission_id}` follows it, "
        f"`raypod stop {submission_id}` stops it (`submit --wait --stop-on-interrupt` stops it on Ctrl-C)"
    )


def stopping(submission_id: str) -> str:
    """``submit --wait --stop-on-interrupt`` cut short: the job is stopped next (``stop_after_interrupt``)."""
    return f"Ray job {submission_id} is stopped next"


def stop_after_interrupt(args: argparse.Namespace, submission_id: str, terminate: TerminateEvent) -> int:
    """``submit --wait --stop-on-interrupt``: the cancelled caller takes its Ray job down with it.

    130 (SIGINT) or 143 (SIGTERM) only once Ray confirms the job ended; otherwise 1, saying the job
    may still run on Ray: the stop timed out or failed, the job has not started (Ray 2.60 holds the
    stop of a PENDING job until it starts), or a second interrupt left at once."""
    may_run = f"it may still run on Ray (`raypod status {submission_id}`, `raypod stop {submission_id}`)"
    try:
        with leave_on_signal():
            # Said once a second interrupt does what it says.
            print(
                f"raypod: stopping Ray job {submission_id}; interrupt again to leave without waiting for Ray's "
                "confirmation",
                file=sys.stderr,
                flush=True,
            )
            stop, job = stop_confirmed(args, submission_id)
    except Terminated:
        left = f"left before Ray confirmed the stop of {submission_id}"
        print_error(f"raypod: interrupted again: {left}; {may_run}")
        return EXIT_FAILED
    except RayApiError as error:
        print_error(f"raypod: Ray job {submission_id} was not stopped ({error}); {may_run}")
        return EXIT_FAILED
    if job is not None and job.terminal:
        print(f"raypod: Ray job {submission_id} is {job.status}", file=sys.stderr)
        return EXIT_INTERRUPTED if terminate.signum == signal.SIGINT else EXIT_TERMINATED
    if job is not None and job.status is RayStatus.PENDING and stop.taken:
        why = f"it is PENDING: {PENDING_STOP_HELD}"
    else:
        refused = f" (the stop call failed: {stop.refusal.reason})" if stop.refusal else ""
        still = job.status if job is not None else "in an unknown state"
        why = f"it is still {still} {STOP_ON_INTERRUPT_TIMEOUT:g} s after the stop request{refused}"
    print_error(f"raypod: Ray job {submission_id} was not confirmed stopped: {why}; {may_run}")
    return EXIT_FAILED


def stop_confirmed(args: argparse.Namespace, submission_id: str) -> tuple[PendingStop, JobInfo | None]:
    """Stop the job and wait for Ray's confirmation: up to STOP_ON_INTERRUPT_TIMEOUT, or until a
    taken stop leaves the job PENDING for START_STOP_CONFIRM (waiting longer changes nothing)."""
    ray = connect(args)
    try:
        clock = SystemClock()
        stop, job = stop_and_wait(ray, submission_id, clock=clock, timeout=START_STOP_CONFIRM)
        if job is not None and (job.terminal or (job.status is RayStatus.PENDING and stop.taken)):
            return stop, job
        rest = STOP_ON_INTERRUPT_TIMEOUT - START_STOP_CONFIRM
        return stop_and_wait(ray, submission_id, clock=clock, timeout=rest)
    finally:
        ray.close()


def command_status(args: argparse.Namespace) -> int:
    ray = connect(args)
    try:
        job = ray.get_job(args.submission_id)
    finally:
        ray.close()
    if args.json:
        print(json.dumps(dict(job.raw), indent=2, sort_keys=True))
        return EXIT_OK
    print(key_values(describe(job)))
    return EXIT_OK


def describe(job: JobInfo) -> list[tuple[str, str]]:
    pairs = [
        ("submission id", job.submission_id),
        ("status", str(job.status)),
        ("message", job.message or "-"),
        ("entrypoint", job.entrypoint or "-"),
        ("start", format_ray_time(job.start_time_ms) or "-"),
        ("end", format_ray_time(job.end_time_ms) or "-"),
    ]
    if job.driver_exit_code is not None:
        pairs.append(("driver exit code", str(job.driver_exit_code)))
    if job.error_type:
        # Ray's own name for why it failed; the Bridge's words for it are the pod's (status.reason).
        pairs.append(("error type", job.error_type))
    if job.metadata:
        pairs.append(("metadata", ", ".join(f"{k}={v}" for k, v in sorted(job.metadata.items()))))
    runtime_env = job.raw.get("runtime_env") or {}
    if isinstance(runtime_env, dict) and runtime_env:
        pairs.append(("runtime_env", json.dumps(runtime_env, sort_keys=True)))
    return pairs


def command_list(args: argparse.Namespace) -> int:
    ray = connect(args)
    try:
        jobs = ray.list_jobs()
    finally:
        ray.close()
    jobs.sort(key=lambda job: job.start_time_ms or 0)
    if args.json:
        print(json.dumps([dict(job.raw) for job in jobs], indent=2, sort_keys=True))
        return EXIT_OK
    if not jobs:
        print("no jobs")
        return EXIT_OK
    rows = [
        [
            job.submission_id or "-",
            job.status,
            _bridge_name(job.metadata),
            format_ray_time(job.start_time_ms) or "-",
            format_ray_time(job.end_time_ms) or "-",
            job.message or "-",
        ]
        for job in jobs
    ]
    print(table(["SUBMISSION ID", "STATUS", "BRIDGE JOB", "START", "END", "MESSAGE"], rows))
    return EXIT_OK


def _bridge_name(metadata: Mapping[str, str]) -> str:
    name = metadata.get("bridge-job")
    if not name:
        return "-"
    namespace = metadata.get("bridge-namespace")
    return f"{namespace}/{name}" if namespace else name


def command_stop(args: argparse.Namespace) -> int:
    ray = connect(args)
    progress = Progress(sys.stderr)
    try:
        stop, job = stop_and_wait(
            ray,
            args.submission_id,
            clock=SystemClock(),
            timeout=args.timeout,
            wait=not args.no_wait,
            on_poll=lambda job: None if job.terminal else progress.show(f"stopping {args.submission_id}", job.status),
        )
    finally:
        progress.clear()
        ray.close()
    if stop.taken is False:
        print(f"{args.submission_id} had already ended: {job.status if job else 'ended'}")
        return EXIT_OK
    if job is None:
        if stop.refusal is not None:
            raise stop.refusal
        print(f"{args.submission_id}: stop requested")
        return EXIT_OK
    print(f"{args.submission_id}: {job.status}")
    if job.terminal:
        return EXIT_OK
    if job.status is RayStatus.PENDING and stop.taken:
        print_error(f"raypod: {args.submission_id} is still PENDING after {args.timeout:g} s: {PENDING_STOP_HELD}")
        return EXIT_FAILED
    refused = f"; Ray refused the stop: {stop.refusal.reason}" if stop.refusal else ""
    print_error(f"raypod: {args.submission_id} is still {job.status} after {args.timeout:g} s{refused}")
    return EXIT_FAILED


def command_delete(args: argparse.Namespace) -> int:
    """Only an ended job: Ray refuses a running one with a traceback, so it is asked first."""
    ray = connect(args)
    try:
        job = ray.get_job(args.submission_id)
        if not job.terminal:
            print_error(
                f"raypod: {args.submission_id} is {job.status}: stop it first "
                f"(`raypod stop {args.submission_id}`), then delete it"
            )
            return EXIT_FAILED
        deleted = delete_ended_job(ray, args.submission_id, clock=SystemClock())
    finally:
        ray.close()
    if not deleted:
        print_error(f"raypod: Ray did not delete {args.submission_id}")
        return EXIT_FAILED
    print(f"{args.submission_id}: deleted ({job.status})")
    return EXIT_OK


def command_logs(args: argparse.Namespace) -> int:
    ray = connect(args)
    out = sys.stdout
    try:
        job = ray.get_job(args.submission_id)
        if not args.follow:
            write_whole_log(ray, job, out)
            return EXIT_OK
        echo = LineEcho(out, enabled=True, prefix="")
        live = LiveLog(ray, echo)
        try:
            # Bounded by the job's life: it ends, or the dashboard stops answering (an error).
            ended = wait_until_ended(
                ray, args.submission_id, clock=SystemClock(), max_silence=FOLLOW_MAX_SILENCE, on_poll=live.observe
            )
        finally:
            live.stop()
        job = ended or job
        echo_rest(ray, job, echo)
    finally:
        ray.close()
    print(f"raypod: job {job.submission_id} ended {job.status}", file=sys.stderr)
    return EXIT_OK


def write_whole_log(ray: RayJobsClient, job: JobInfo, out: TextIO) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in ray.log_chunks(job):
        out.write(decoder.decode(chunk))
    out.write(decoder.decode(b"", final=True))
    out.flush()


class Plan(enum.Enum):
    """What ``run`` does with a ConfigMap before it contacts anything."""

    SUBMIT = "submit"
    #: Bad input: FAILED (BadInput) is written, exit 2, nothing submitted.
    REFUSE = "refuse"
    #: An ``id`` is recorded: Ray's job is watched; problems are set aside (never submitted, never retried).
    ATTACH = "attach"
    #: An earlier pod recorded a final status: it is kept.
    KEEP_FINAL = "keep final"
    #: An ``id`` is recorded, but the ConfigMap cannot say where Ray is: UNKNOWN is written.
    UNKNOWN = "unknown"
    #: ``kill`` is set and nothing was submitted: KILL is written, nothing submitted.
    KILLED = "killed"


@dataclass(frozen=True)
class Verdict:
    plan: Plan
    #: Every problem of the ConfigMap, each naming its key (whether run refuses or sets them aside).
    problems: tuple[tuple[str, str], ...]
    submission_id: str = ""


def run_verdict(data: Mapping[str, str], codes: ExitCodes = ExitCodes.BRIDGE) -> Verdict:
    """What ``run`` would do with this ConfigMap as a pod whose status is recorded in it, under the
    exit-code convention ``codes`` (the operator's by default), decided by the same calls ``run`` makes
    (``load_for_run``, then the session's first state)."""
    problems = tuple(checked_config(data)[1])
    recorded = recorded_keys(data)
    loaded = load_for_run(ConfigMapJob(MappingSource(data)), recorded)
    if isinstance(loaded, Outcome):
        match loaded.ending:
            case Ending.BAD_INPUT:
                return Verdict(Plan.REFUSE, problems)
            case Ending.ALREADY_FINAL:
                return Verdict(Plan.KEEP_FINAL, problems, loaded.submission_id)
            case Ending.FINAL:
                return Verdict(Plan.UNKNOWN, problems, loaded.submission_id)
            case Ending.TERMINATED | Ending.DETACHED | Ending.DELETED:
                raise AssertionError(f"no run ends {loaded.ending} before it starts")
            case _:
                assert_never(loaded.ending)
    final = recorded_final(recorded, lost_is_final=lost_is_final(codes))
    if final is not None:
        return Verdict(Plan.KEEP_FINAL, problems, final.submission_id)
    submission_id = loaded.submission_id or recorded.get(ID, "")
    if submission_id:
        return Verdict(Plan.ATTACH, problems, submission_id)
    return Verdict(Plan.KILLED if loaded.kill else Plan.SUBMIT, problems)


def verdict_text(verdict: Verdict) -> str:
    """What ``run`` would do, in one sentence."""
    count = f"{len(verdict.problems)} problem(s)"
    job = f"Ray job {verdict.submission_id}"
    match verdict.plan:
        case Plan.SUBMIT:
            return "run would submit the job"
        case Plan.REFUSE:
            return f"run would refuse it: bad input, exit 2, nothing submitted ({count})"
        case Plan.ATTACH if verdict.problems:
            return (
                f"run would re-attach to {job} (its id is recorded) and set the {count} aside: it watches the job, "
                "but never submits or retries it (were Ray not to have it, run would refuse it as bad input)"
            )
        case Plan.ATTACH:
            return f"run would re-attach to {job} (its id is recorded) and watch it"
        case Plan.KEEP_FINAL:
            return f"run would keep the final status recorded for {job}"
        case Plan.UNKNOWN:
            return f"run would write UNKNOWN for {job}: without a usable resourceURL it cannot watch it"
        case Plan.KILLED:
            return "run would write KILL and submit nothing: kill is set"
        case _:
            assert_never(verdict.plan)


def command_validate(args: argparse.Namespace) -> int:
    codes = chosen_exit_codes(args.exit_codes, auto=ExitCodes.BRIDGE)  # auto: the operator's pod
    verdict = run_verdict(open_source(args.config).read(), codes)
    # Its findings are for people, not data: JSON lines under --log-format json too.
    out = people_out(sys.stdout)
    for key, problem in verdict.problems:
        print_error(f"error: {key}: {problem}", out)
    if verdict.problems:
        print_error(f"{args.config}: {len(verdict.problems)} problem(s); nothing was contacted")
        print_error(f"{args.config}: {verdict_text(verdict)}")
        return EXIT_BAD_INPUT
    ok = f"{args.config}: OK (nothing was contacted; inputs in S3 were not read)"
    print(f"{ok}; {verdict_text(verdict)}", file=out, flush=True)
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": command_run,
    "submit": command_submit,
    "status": command_status,
    "logs": command_logs,
    "stop": command_stop,
    "delete": command_delete,
    "list": command_list,
    "validate": command_validate,
}


def dispatch(args: argparse.Namespace) -> int:
    """Run one command; errors become one readable line and an exit code, never a traceback."""
    set_log_submission(getattr(args, "submission_id", None))
    try:
        if getattr(args, "submission_id", None) is not None:
            # Checked before anything is contacted: an id is data, never a path.
            checked_submission_id(args.submission_id, "SUBMISSION_ID")
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print_bad_input(error.lines)
        return EXIT_BAD_INPUT
    except RayApiError as error:
        if error.job_unknown and getattr(args, "submission_id", None):
            print_error(f"raypod: Ray has no job {args.submission_id} ({error.url})")
        elif error.unauthorized:
            print_error(f"raypod: {error}; {RAY_TOKEN_SOURCES}")
        else:
            print_error(f"raypod: {error}")
        return EXIT_FAILED
    except RaypodError as error:
        print_error(f"raypod: {error}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print_error("raypod: interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        print_error("raypod: terminated")
        return EXIT_TERMINATED
