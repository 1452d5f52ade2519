"""The command handlers: ``run`` (the pod) and the commands for humans and CI.

Each handler turns its flags into calls of the same pieces ``run`` uses: the ConfigMap
parser, the runner, the dashboard client, the job waits and the log follower. ``dispatch``
is the one table of commands and the one place an error becomes a line and an exit code.
"""

from __future__ import annotations

import argparse
import codecs
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from raypod.clock import SystemClock, format_ray_time
from raypod.credentials import RayAuthSources
from raypod.entrypoint import validation_problems
from raypod.errors import ConfigError, RayApiError, RaypodError, Terminated
from raypod.exits import (
    EXIT_BAD_INPUT,
    EXIT_CODE_CHOICES,
    EXIT_CODES_VARIABLE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    ExitCodes,
)
from raypod.flags import default_job_name, require_address, submit_job
from raypod.jobs import stop_and_wait, wait_until_ended
from raypod.log_context import set_log_job_id
from raypod.logs import LineEcho, LiveLog, echo_rest
from raypod.process import TerminateEvent, fallback_sink, install_terminate_handler, open_run_target
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import RetryPolicy
from raypod.run_record import termination_log_path, write_result, write_termination_message
from raypod.runner import Runner, RunOptions, RunResult, report_bad_input
from raypod.session import SessionSettings
from raypod.source import ConfigMapJob, open_source
from raypod.status_store import NullSink
from raypod.terminal import Progress, key_values, people_out, print_bad_input, print_error, table

log = logging.getLogger(__name__)

#: A human waits for a short answer: a few quick retries, not the pod's patient policy.
CLI_RETRY = RetryPolicy(attempts=3, initial_wait=0.5, max_wait=2.0, deadline=10.0)
#: ``logs --follow`` gives up after this long without an answer from the dashboard.
FOLLOW_MAX_SILENCE = 60.0


# -- the dashboard ---------------------------------------------------------------------------
def connect(args: argparse.Namespace) -> RayJobsClient:
    credentials = ray_auth(args, for_cli=True).read(basic=False)
    return RayJobsClient.connect(require_address(args.address), credentials, retry=CLI_RETRY)


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
    try:
        target = open_run_target(args.job_name, args.namespace, args.config, args.status_file, interrupt=terminate)
    except ConfigError as error:
        return leave_report(args, report_bad_input(error, fallback_sink(args.status_file), sys.stdout))
    if args.exit_codes not in EXIT_CODE_CHOICES:
        raise ConfigError.single(EXIT_CODES_VARIABLE, f"expected auto, bridge or posix, got {args.exit_codes!r}")
    codes = target.exit_codes if args.exit_codes == "auto" else ExitCodes(args.exit_codes)
    options = RunOptions(
        job_name=args.job_name,
        namespace=target.namespace,
        session=SessionSettings(connect_timeout=args.connect_timeout),
        ray_auth=ray_auth(args, for_cli=False),
        s3_credentials_dir=args.s3_credentials,
        follow_logs=args.follow_logs,
        exit_codes=codes,
        status_timeout=args.status_timeout,
    )
    runner = Runner(ConfigMapJob(target.source), target.sink, options, terminate=terminate, deletion=target.api)
    return leave_report(args, runner.run())


def leave_report(args: argparse.Namespace, result: RunResult) -> int:
    """The termination message and the ``--result`` file, then the exit code."""
    write_termination_message(termination_log_path(args.termination_log), result)
    if args.result is not None:
        write_result(args.result, result)
    return result.exit_code


def command_submit(args: argparse.Namespace) -> int:
    job, local = submit_job(args)
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
        session=SessionSettings(connect_timeout=args.connect_timeout, submit_only=not args.wait),
        local_inputs=local,
        ray_auth=ray_auth(args, for_cli=True),
        s3_credentials_dir=args.s3_credentials,
        follow_logs=args.follow_logs,
        on_poll=on_poll,
    )
    if args.stop_on_interrupt and not args.wait:
        raise ConfigError.single("--stop-on-interrupt", "only with --wait")
    terminate = install_terminate_handler() if args.wait else None
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
    submission_id = result.outcome.submission_id
    if not args.wait and result.exit_code == EXIT_OK:
        print(submission_id, flush=True)
    elif result.exit_code == EXIT_TERMINATED and submission_id:
        if args.stop_on_interrupt and terminate is not None:
            leave_report(args, result)
            return stop_after_interrupt(args, submission_id, terminate)
        print(f"raypod: Ray job {submission_id} keeps running; `raypod stop {submission_id}` stops it", file=sys.stderr)
    return leave_report(args, result)


def stop_after_interrupt(args: argparse.Namespace, submission_id: str, terminate: TerminateEvent) -> int:
    """``submit --wait --stop-on-interrupt``: the cancelled caller takes its Ray job down with it."""
    print(f"raypod: stopping Ray job {submission_id}", file=sys.stderr, flush=True)
    ray = connect(args)
    try:
        stop, job = stop_and_wait(ray, submission_id, clock=SystemClock(), timeout=STOP_ON_INTERRUPT_TIMEOUT)
    finally:
        ray.close()
    if job is not None and job.terminal:
        print(f"raypod: Ray job {submission_id} is {job.status}", file=sys.stderr)
    else:
        refused = f" (the stop call failed: {stop.refusal.reason})" if stop.refusal else ""
        still = job.status if job is not None else "in an unknown state"
        print(
            f"raypod: Ray job {submission_id} is still {still} {STOP_ON_INTERRUPT_TIMEOUT:g} s after the stop "
            f"request{refused}",
            file=sys.stderr,
        )
    return EXIT_INTERRUPTED if terminate.signum == signal.SIGINT else EXIT_TERMINATED


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
        ("status", f"{job.status} (Bridge: {job.status.bridge})"),
        ("message", job.message or "-"),
        ("entrypoint", job.entrypoint or "-"),
        ("start", format_ray_time(job.start_time_ms) or "-"),
        ("end", format_ray_time(job.end_time_ms) or "-"),
    ]
    if job.driver_exit_code is not None:
        pairs.append(("driver exit code", str(job.driver_exit_code)))
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
        deleted = ray.delete_job(args.submission_id)
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


def command_validate(args: argparse.Namespace) -> int:
    data = open_source(args.config).read()
    problems = validation_problems(data)
    # Its findings are for people, not data: JSON lines under --log-format json too.
    out = people_out(sys.stdout)
    for key, problem in problems:
        print_error(f"error: {key}: {problem}", out)
    if problems:
        print_error(f"{args.config}: {len(problems)} problem(s); nothing was contacted")
        return EXIT_BAD_INPUT
    print(f"{args.config}: OK (nothing was contacted; inputs in S3 were not read)", file=out, flush=True)
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
    set_log_job_id(getattr(args, "submission_id", None))
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print_bad_input(error.lines)
        return EXIT_BAD_INPUT
    except RayApiError as error:
        if error.job_unknown and getattr(args, "submission_id", None):
            print_error(f"raypod: Ray has no job {args.submission_id} ({error.url})")
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
