"""The command line: ``python -m raypod [run] ...``. Logging is configured here and only here."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from raypod import __version__

if TYPE_CHECKING:
    from raypod.source import ConfigSource
    from raypod.status import StatusSink

log = logging.getLogger("raypod")

RUN_EXAMPLE = """\
example:
  JOBNAME=myjob NAMESPACE=default python -m raypod run \\
      --config ./myjob-bridge-cm.json --status-file ./status.json

exit codes: 0 job SUCCEEDED; 1 job FAILED, KILL or UNKNOWN; 2 bad configuration or
inputs (nothing submitted); 143 terminated by SIGTERM (the Ray job keeps running).
"""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raypod",
        description="Run one Bridge job on an external Ray cluster through its dashboard REST API.",
        epilog=RUN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"raypod {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="submit (or re-attach to) the job of a ConfigMap, watch it, report its status, upload its log",
        description="Submit (or re-attach to) the job of a Bridge ConfigMap, watch it to the end, "
        "report its status and upload its log to S3.",
        epilog=RUN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(run)
    return parser


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="the ConfigMap: a directory with one file per key, or a JSON/YAML manifest",
    )
    parser.add_argument(
        "--job-name", default=os.environ.get("JOBNAME"), help="the BridgeJob's name (default: $JOBNAME)"
    )
    parser.add_argument("--namespace", default=os.environ.get("NAMESPACE"), help="its namespace (default: $NAMESPACE)")
    parser.add_argument(
        "--credentials",
        type=Path,
        default=Path("/credentials"),
        metavar="DIR",
        help="resource secret: username, password, optional token and ca.crt (default: /credentials)",
    )
    parser.add_argument(
        "--s3-credentials",
        type=Path,
        default=Path("/s3credentials"),
        metavar="DIR",
        help="S3 secret: accesskey and secretkey (default: /s3credentials)",
    )
    parser.add_argument(
        "--status-file",
        type=Path,
        metavar="FILE",
        help="outside a cluster: a JSON file of every key raypod writes; an id in it is re-attached to",
    )
    parser.add_argument(
        "--no-follow-logs",
        dest="follow_logs",
        action="store_false",
        help="do not copy the job's output to stdout while it runs",
    )
    parser.add_argument(
        "--status-timeout",
        type=_positive_float,
        default=600.0,
        metavar="SECONDS",
        help="how long the dashboard may stay unreachable before the job is reported UNKNOWN (default: 600)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long an unreachable dashboard is retried before submitting fails (default: 60)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%SZ",
        stream=sys.stderr,
    )
    logging.Formatter.converter = __import__("time").gmtime
    # Third-party chatter (connection pools) stays out of the pod's log unless asked for.
    for noisy in ("urllib3", "tenacity"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def install_terminate_handler() -> threading.Event:
    """SIGTERM (pod deletion) and SIGINT stop the watch, never the Ray job."""
    event = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.warning("received %s: writing the last status and leaving", signal.Signals(signum).name)
        event.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return event


def open_run_target(args: argparse.Namespace) -> tuple[ConfigSource, StatusSink]:
    """Where `run` reads the ConfigMap from and writes its status to.

    Outside a cluster: ``--config`` and ``--status-file`` (or stdout only).
    """
    from raypod.errors import ConfigError
    from raypod.source import open_source
    from raypod.status import NullSink, StatusFile

    sink: StatusSink = StatusFile(args.status_file) if args.status_file else NullSink()
    if args.config is None:
        raise ConfigError.single("--config", "missing: give a ConfigMap directory or manifest")
    return open_source(args.config), sink


def command_run(args: argparse.Namespace) -> int:
    from raypod.credentials import RayCredentials
    from raypod.errors import ConfigError
    from raypod.lifecycle import EXIT_BAD_INPUT, JobRunner, RunOptions
    from raypod.status import NullSink, StatusFile, StatusReporter

    try:
        source, sink = open_run_target(args)
        if not args.job_name:
            raise ConfigError.single("JOBNAME", "missing: set $JOBNAME or pass --job-name")
        ray_credentials = RayCredentials.from_dir(args.credentials)
    except ConfigError as error:
        for line in error.lines:
            log.error("bad input: %s", line)
        fallback = StatusFile(args.status_file) if args.status_file else NullSink()
        StatusReporter(fallback).update(
            {"status.jobStatus": "FAILED", "status.message": f"Bad input: {error.lines[0]}"}
        )
        return EXIT_BAD_INPUT
    options = RunOptions(
        job_name=args.job_name,
        namespace=args.namespace or "default",
        s3_credentials_dir=args.s3_credentials,
        ray_credentials=ray_credentials,
        follow_logs=args.follow_logs,
        status_timeout=args.status_timeout,
        connect_timeout=args.connect_timeout,
    )
    runner = JobRunner(source, sink, options, out=sys.stdout, terminate=install_terminate_handler())
    return runner.run()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `run` is the default command: `python -m raypod --config X` means `run --config X`.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    configure_logging(getattr(args, "verbose", False))
    if args.command == "run":
        return command_run(args)
    parser.print_help()
    return 2
