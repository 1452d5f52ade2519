"""The commands for humans and CI: submit, status, logs, stop, list, validate.

They use the same pieces as ``run``: the ConfigMap parser, the JobRunner, the dashboard
client and the log follower. Exit codes: 0 done, 1 the job failed or Ray said no,
2 bad input (nothing was contacted or submitted).
"""

from __future__ import annotations

import argparse
import codecs
import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from raypod import status as st
from raypod.config import (
    JOB_PARAMETERS,
    JOB_PROPERTIES,
    JOB_SCRIPT,
    RESOURCE_URL,
    SCRIPT_LOCATION,
    SCRIPT_METADATA,
    UPDATE_INTERVAL,
    Metadata,
    parse_config,
    parse_metadata,
    parse_resource_url,
)
from raypod.credentials import RayCredentials
from raypod.entrypoint import build_runtime_env, job_metadata
from raypod.errors import ConfigError, RayApiError, RaypodError
from raypod.logs import LineEcho, LogFollower, echo_rest, log_chunks
from raypod.output import Progress, key_values, table
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import RetryPolicy
from raypod.source import ConfigSource, open_source

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: Like the Ray CLI: the flag, then these variables, in this order.
ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
#: A human waits for a short answer: a few quick retries, not the pod's patient policy.
CLI_RETRY = RetryPolicy(attempts=3, initial_wait=0.5, max_wait=2.0, deadline=10.0)
_POLL = 1.0


# -- address ---------------------------------------------------------------------------
def resolve_address(flag: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The dashboard URL from ``--address``, else RAY_API_SERVER_ADDRESS, else RAY_ADDRESS; None if none."""
    for origin, value in (("--address", flag), *((name, environ.get(name)) for name in ADDRESS_VARIABLES)):
        if value and value.strip():
            return dashboard_url(value.strip(), origin)
    return None


def dashboard_url(text: str, origin: str) -> str:
    """An http(s) dashboard URL; a bare ``host:port`` means http, as with ``ray job``."""
    if text in ("auto", "local"):
        raise ConfigError.single(
            origin, f"{text!r} needs the Ray SDK to find a cluster; give the dashboard's address, e.g. http://HOST:8265"
        )
    if text.startswith("ray://"):
        raise ConfigError.single(
            origin,
            f"{text!r} is a Ray Client address; raypod talks to the dashboard's REST API: "
            "give its address, e.g. http://HOST:8265",
        )
    if "://" not in text:
        text = f"http://{text}"
    try:
        return parse_resource_url(text)
    except ConfigError as error:
        raise ConfigError([(origin, problem) for _, problem in error.problems]) from None


def require_address(args: argparse.Namespace) -> str:
    address = resolve_address(args.address)
    if address is None:
        raise ConfigError.single(
            "--address", "missing: pass --address http://HOST:8265, or set RAY_API_SERVER_ADDRESS or RAY_ADDRESS"
        )
    return address


def connect(args: argparse.Namespace) -> RayJobsClient:
    return RayJobsClient.connect(require_address(args), RayCredentials.from_dir(args.credentials), retry=CLI_RETRY)


# -- sources for submit ------------------------------------------------------------------
class MappingSource:
    """A ConfigMap built in memory from ``submit``'s flags."""

    description = "command-line flags"

    def __init__(self, data: Mapping[str, str]) -> None:
        self.data = dict(data)

    def read(self) -> dict[str, str]:
        return dict(self.data)


class OverlaySource:
    """A ConfigMap source with some keys replaced by flags (``--address``, ``--interval``)."""

    def __init__(self, base: ConfigSource, overrides: Mapping[str, str]) -> None:
        self.base = base
        self.overrides = dict(overrides)
        self.description = base.description

    def read(self) -> dict[str, str]:
        return {**self.base.read(), **self.overrides}


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError.single(flag, f"expected KEY=VALUE, got {item!r}")
        result[key.strip()] = value
    return result


def flags_config(args: argparse.Namespace) -> dict[str, str]:
    """The ConfigMap keys that ``submit --script`` stands for, so the same parser checks them."""
    path: Path = args.script
    try:
        script = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError.single("--script", f"cannot read {path}: {error}") from error
    metadata: dict[str, object] = {}
    if args.pip:
        metadata["pip"] = list(args.pip)
    if args.env:
        metadata["env"] = _pairs(args.env, "--env")
    data = {
        SCRIPT_LOCATION: "inline",
        JOB_SCRIPT: script,
        UPDATE_INTERVAL: "2",
        JOB_PARAMETERS: json.dumps(_pairs(args.param, "--param")) if args.param else "",
        SCRIPT_METADATA: json.dumps(metadata) if metadata else "",
        JOB_PROPERTIES: args.properties or "",
    }
    return {key: value for key, value in data.items() if value}


_FLAG_OF_KEY = {
    JOB_SCRIPT: "--script",
    JOB_PARAMETERS: "--param",
    SCRIPT_METADATA: "--env/--pip",
    JOB_PROPERTIES: "--properties",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40]


def default_job_name(args: argparse.Namespace) -> str:
    """--job-name, $JOBNAME, else the script's or ConfigMap's name (``x-bridge-cm.json`` -> ``x``)."""
    if args.job_name:
        return str(args.job_name)
    if args.script is not None:
        return _slug(Path(args.script).stem) or "raypod"
    stem = Path(args.config).name.split(".")[0]
    return _slug(stem.removesuffix("-bridge-cm")) or "raypod"


def submit_source(args: argparse.Namespace) -> ConfigSource:
    if args.config is not None and args.script is not None:
        raise ConfigError.single("--config", "give either --config or --script, not both")
    overrides: dict[str, str] = {}
    if args.config is not None:
        loose = [flag for flag, value in (("--param", args.param), ("--env", args.env), ("--pip", args.pip)) if value]
        if loose or args.properties:
            raise ConfigError.single(
                ", ".join([*loose, *(["--properties"] if args.properties else [])]),
                "only with --script; with --config they belong in the ConfigMap",
            )
        base: ConfigSource = open_source(args.config)
        # An explicit --address wins; then the ConfigMap's resourceURL; then the environment.
        address = resolve_address(args.address, {}) if args.address else None
        if address is None and not base.read().get(RESOURCE_URL, "").strip():
            address = resolve_address(None)
    elif args.script is not None:
        data = flags_config(args)
        address = require_address(args)
        # Checked here so a problem names the flag the user typed, not the ConfigMap key.
        problems = validation_problems({**data, RESOURCE_URL: address})
        if problems:
            raise ConfigError([(_FLAG_OF_KEY.get(key, key), problem) for key, problem in problems])
        base = MappingSource(data)
    else:
        raise ConfigError.single("--script", "missing: give --script FILE, or --config PATH for a ConfigMap")
    if address:
        overrides[RESOURCE_URL] = address
    if args.interval is not None:
        overrides[UPDATE_INTERVAL] = str(args.interval)
    return OverlaySource(base, overrides)


# -- commands ----------------------------------------------------------------------------
def command_submit(args: argparse.Namespace) -> int:
    from raypod.cli import install_terminate_handler
    from raypod.lifecycle import JobRunner, RunOptions
    from raypod.status import NullSink

    source = submit_source(args)
    # The runner prints a line on each status change; the progress adds the elapsed time.
    progress = Progress(sys.stderr, plain_on_change=False)
    options = RunOptions(
        job_name=default_job_name(args),
        namespace=args.namespace or "",
        s3_credentials_dir=args.s3_credentials,
        ray_credentials=RayCredentials.from_dir(args.credentials),
        follow_logs=args.follow_logs,
        connect_timeout=args.connect_timeout,
    )
    # stdout carries only the id (and, with --wait, the job's output); the rest goes to stderr.
    runner = JobRunner(
        source,
        NullSink(),
        options,
        out=progress.clearing(sys.stderr),
        terminate=install_terminate_handler() if args.wait else None,
    )
    runner.echo = LineEcho(progress.clearing(sys.stdout), enabled=args.follow_logs)
    runner.submit_only = not args.wait
    shown: list[str] = []

    def on_poll(job: JobInfo) -> None:
        if not shown:
            shown.append(job.submission_id)
            print(job.submission_id, file=progress.clearing(sys.stdout), flush=True)
        progress.show(job.submission_id, job.status)

    runner.on_poll = on_poll
    code = runner.run()
    progress.clear()
    submission_id = runner.reporter.get(st.ID)
    if not args.wait and code == EXIT_OK:
        print(submission_id, flush=True)
    elif code == 143 and submission_id:
        print(f"raypod: Ray job {submission_id} keeps running; `raypod stop {submission_id}` stops it", file=sys.stderr)
    return code


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
        ("status", f"{job.status} (Bridge: {st.bridge_status(job.status)})"),
        ("message", job.message or "-"),
        ("entrypoint", job.entrypoint or "-"),
        ("start", st.format_ray_time(job.start_time_ms) or "-"),
        ("end", st.format_ray_time(job.end_time_ms) or "-"),
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
            st.format_ray_time(job.start_time_ms) or "-",
            st.format_ray_time(job.end_time_ms) or "-",
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
    try:
        if not ray.stop_job(args.submission_id):
            job = ray.get_job(args.submission_id)
            print(f"{args.submission_id} had already ended: {job.status}")
            return EXIT_OK
        if args.no_wait:
            print(f"{args.submission_id}: stop requested")
            return EXIT_OK
        job = wait_until_ended(ray, args.submission_id, args.timeout, Progress(sys.stderr), "stopping")
    finally:
        ray.close()
    print(f"{args.submission_id}: {job.status}")
    if job.terminal:
        return EXIT_OK
    print(f"raypod: {args.submission_id} is still {job.status} after {args.timeout:g} s", file=sys.stderr)
    return EXIT_FAILED


def wait_until_ended(ray: RayJobsClient, submission_id: str, timeout: float, progress: Progress, what: str) -> JobInfo:
    """Poll until the job ends or ``timeout`` passes; the last answer either way."""
    limit = time.monotonic() + timeout
    job = ray.get_job(submission_id)
    while not job.terminal and time.monotonic() < limit:
        progress.show(f"{what} {submission_id}", job.status)
        time.sleep(_POLL)
        job = ray.get_job(submission_id)
    progress.clear()
    return job


def command_logs(args: argparse.Namespace) -> int:
    ray = connect(args)
    out = sys.stdout
    try:
        job = ray.get_job(args.submission_id)
        if not args.follow:
            write_whole_log(ray, job, out)
            return EXIT_OK
        echo = LineEcho(out, enabled=True, prefix="")
        follower: LogFollower | None = None
        try:
            # Bounded by the job's life: it ends, or the dashboard stops answering (an error).
            while not job.terminal:
                if follower is None and job.status == "RUNNING" and job.driver_node_id:
                    follower = LogFollower(ray, job.submission_id, job.driver_node_id, echo)
                    follower.start()
                time.sleep(_POLL)
                job = ray.get_job(args.submission_id)
        finally:
            if follower is not None:
                follower.stop()
        echo_rest(ray, job, echo)
    finally:
        ray.close()
    print(f"raypod: job {job.submission_id} ended {job.status}", file=sys.stderr)
    return EXIT_OK


def write_whole_log(ray: RayJobsClient, job: JobInfo, out: TextIO) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in log_chunks(ray, job):
        out.write(decoder.decode(chunk))
    out.write(decoder.decode(b"", final=True))
    out.flush()


def validation_problems(data: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every problem of a ConfigMap that can be seen without contacting Ray or S3."""
    try:
        config = parse_config(data)
    except ConfigError as error:
        return error.problems
    problems: list[tuple[str, str]] = []
    # What parse_config leaves to submission time, checked here with the same builders.
    metadata = parse_metadata(config.metadata) if isinstance(config.metadata, str) else Metadata()
    packaged = config.script_location != "remote" or bool(config.additional_data)
    for check in (
        lambda: build_runtime_env("gcs://package.zip" if packaged else None, metadata, config.properties.runtime_env),
        lambda: job_metadata(config.properties, "job", "namespace"),
    ):
        try:
            check()
        except ConfigError as error:
            problems.extend(error.problems)
    return problems


def command_validate(args: argparse.Namespace) -> int:
    data = open_source(args.config).read()
    problems = validation_problems(data)
    for key, problem in problems:
        print(f"error: {key}: {problem}")
    if problems:
        print(f"{args.config}: {len(problems)} problem(s); nothing was contacted", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{args.config}: OK (nothing was contacted; inputs in S3 were not read)")
    return EXIT_OK


COMMANDS = {
    "submit": command_submit,
    "status": command_status,
    "logs": command_logs,
    "stop": command_stop,
    "list": command_list,
    "validate": command_validate,
}


def dispatch(args: argparse.Namespace) -> int:
    """Run one command; errors become one readable line and an exit code, never a traceback."""
    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        for line in error.lines:
            print(f"raypod: bad input: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RayApiError as error:
        if error.not_found and getattr(args, "submission_id", None):
            print(f"raypod: Ray has no job {args.submission_id} ({error.url})", file=sys.stderr)
        else:
            print(f"raypod: {error}", file=sys.stderr)
        return EXIT_FAILED
    except RaypodError as error:
        print(f"raypod: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("raypod: interrupted", file=sys.stderr)
        return 130
