"""The command line: ``python -m raypod [run|submit|status|logs|stop|list|validate] ...``.

Logging is configured here and only here. The commands' code is imported only when one
runs, so ``--help`` stays fast (no requests, no minio).
"""

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


ADDRESS_HELP = (
    "Ray dashboard address, e.g. http://127.0.0.1:8265 (a bare host:port means http); "
    "default: $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS"
)

TOP_EXAMPLE = (
    """\
commands:
  run       the pod: submit (or re-attach to) a ConfigMap's job, watch it, report, upload the log
  submit    submit a script (flags) or a ConfigMap's job; --wait follows it to the end
  status    one job's status (--json for scripts)
  logs      one job's log (--follow to stream it until the job ends)
  stop      stop a job and wait until Ray says it stopped
  list      every job on the cluster (--json for scripts)
  validate  check a ConfigMap offline and list every problem

examples:
  export RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265
  python -m raypod submit --script train.py --param epochs=3 --wait
  python -m raypod validate --config ./myjob-bridge-cm.yaml

"""
    + RUN_EXAMPLE
)

SUBMIT_EXAMPLE = """\
examples:
  # a local script, parameters and env vars as flags; prints the submission id
  python -m raypod submit --address http://127.0.0.1:8265 --script train.py \\
      --param epochs=3 --param name="two words" --env MODE=batch --pip 'rich>=13'
  # a Bridge ConfigMap, followed to the end (exit code 0/1/2 like run)
  python -m raypod submit --config ./myjob-bridge-cm.json --wait --interval 2

With --config the address is --address, else the ConfigMap's resourceURL, else the
environment. stdout holds the submission id (and with --wait the job's output);
status lines and progress go to stderr.
"""

STATUS_EXAMPLE = """\
examples:
  python -m raypod status raypod-myjob-3f2a9c01b7de
  python -m raypod status raypod-myjob-3f2a9c01b7de --json | jq -r .status
"""

LOGS_EXAMPLE = """\
examples:
  python -m raypod logs raypod-myjob-3f2a9c01b7de > job.log
  python -m raypod logs raypod-myjob-3f2a9c01b7de --follow
"""

STOP_EXAMPLE = """\
example:
  python -m raypod stop raypod-myjob-3f2a9c01b7de
exit codes: 0 the job stopped (or had already ended); 1 still running after --timeout
"""

LIST_EXAMPLE = """\
examples:
  python -m raypod list
  python -m raypod list --json | jq -r '.[] | select(.status=="RUNNING") | .submission_id'
"""

VALIDATE_EXAMPLE = """\
example:
  python -m raypod validate --config ./myjob-bridge-cm.yaml
Contacts nothing. Prints every problem, each naming its key; exit code 2 if there is any.
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
        epilog=TOP_EXAMPLE,
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
    add_cli_commands(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, example: str
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", metavar="URL", help=ADDRESS_HELP)
    parser.add_argument(
        "--credentials",
        type=Path,
        default=Path("/credentials"),
        metavar="DIR",
        help="a directory with an optional token (Ray token auth) and ca.crt (default: /credentials)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_cli_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = _command(
        commands, "submit", "submit a script or a ConfigMap's job and print its submission id", SUBMIT_EXAMPLE
    )
    source = submit.add_argument_group("what to run (one of)")
    source.add_argument("--config", type=Path, metavar="PATH", help="a ConfigMap: directory or JSON/YAML manifest")
    source.add_argument("--script", type=Path, metavar="FILE", help="a local Python script, sent with the job")
    flags = submit.add_argument_group("with --script")
    flags.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="a job parameter (after --kwargs); repeat"
    )
    flags.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="an env var of the job; repeat")
    flags.add_argument("--pip", action="append", default=[], metavar="SPEC", help="a pip requirement; repeat")
    flags.add_argument("--properties", metavar="JSON", help="jobproperties, e.g. '{\"entrypoint_num_cpus\": 1}'")
    submit.add_argument("--wait", action="store_true", help="follow the job to its end; exit 0/1/2 like run")
    submit.add_argument(
        "--interval", type=_positive_float, metavar="SECONDS", help="poll interval (default: updateInterval, or 2)"
    )
    submit.add_argument(
        "--job-name", default=os.environ.get("JOBNAME"), help="default: $JOBNAME, else the script's or ConfigMap's name"
    )
    submit.add_argument("--namespace", default=os.environ.get("NAMESPACE"), help="default: $NAMESPACE")
    submit.add_argument(
        "--s3-credentials",
        type=Path,
        default=Path("/s3credentials"),
        metavar="DIR",
        help="S3 secret (accesskey, secretkey) when the ConfigMap uses S3 (default: /s3credentials)",
    )
    submit.add_argument(
        "--no-follow-logs", dest="follow_logs", action="store_false", help="with --wait: do not print the job's output"
    )
    submit.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="how long an unreachable dashboard is retried (default: 30)",
    )
    _add_client_arguments(submit)

    status = _command(commands, "status", "show one job's status", STATUS_EXAMPLE)
    status.add_argument("submission_id", metavar="SUBMISSION_ID")
    status.add_argument("--json", action="store_true", help="Ray's job info as JSON")
    _add_client_arguments(status)

    logs = _command(commands, "logs", "print one job's log", LOGS_EXAMPLE)
    logs.add_argument("submission_id", metavar="SUBMISSION_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="stream new lines until the job ends")
    _add_client_arguments(logs)

    stop = _command(commands, "stop", "stop a job", STOP_EXAMPLE)
    stop.add_argument("submission_id", metavar="SUBMISSION_ID")
    stop.add_argument("--no-wait", action="store_true", help="return once the stop is requested")
    stop.add_argument(
        "--timeout", type=_positive_float, default=60.0, metavar="SECONDS", help="how long to wait (default: 60)"
    )
    _add_client_arguments(stop)

    listing = _command(commands, "list", "list the cluster's jobs", LIST_EXAMPLE)
    listing.add_argument("--json", action="store_true", help="Ray's job infos as a JSON array")
    _add_client_arguments(listing)

    validate = _command(commands, "validate", "check a ConfigMap without contacting anything", VALIDATE_EXAMPLE)
    validate.add_argument("--config", type=Path, metavar="PATH", required=True, help="directory or JSON/YAML manifest")
    validate.add_argument("-v", "--verbose", action="store_true", help="debug logging")


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


def configure_logging(verbose: bool, quiet: bool = False) -> None:
    """``quiet``: the human commands print what matters themselves; only warnings are logged."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO),
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

    - The job: ``--config`` when given, else ``<JOBNAME>-bridge-cm`` through the Kubernetes API.
    - The status: ``--status-file`` when given, else the same ConfigMap through the API when a
      service account is mounted (inside a pod), else stdout only.
    - ``kill``: with ``--config`` and the status going to the API, from either source (the
      mounted copy lags the API by the kubelet's sync period).

    ``NAMESPACE`` defaults to the service account's namespace; ``args.namespace`` is set to
    it so the Ray job's metadata names the same namespace.
    """
    from raypod.errors import ConfigError
    from raypod.kube import KillFromEither, KubeConfigMap, ServiceAccount, api_base_url, configmap_name
    from raypod.source import open_source
    from raypod.status import NullSink, StatusFile

    config_path: Path | None = getattr(args, "config", None)
    status_file: Path | None = getattr(args, "status_file", None)
    account = ServiceAccount.from_env()
    api: KubeConfigMap | None = None
    if config_path is None or (status_file is None and account.present()):
        if not account.present():
            raise ConfigError.single(
                "--config",
                f"missing: give a ConfigMap directory or manifest (no service-account token in {account.directory}, "
                "so the ConfigMap cannot be read through the Kubernetes API)",
            )
        if not args.job_name:
            raise ConfigError.single(
                "JOBNAME", "missing: set $JOBNAME or pass --job-name (it names <JOBNAME>-bridge-cm)"
            )
        args.namespace = args.namespace or account.namespace()
        if not args.namespace:
            raise ConfigError.single(
                "NAMESPACE", f"missing: set $NAMESPACE or pass --namespace ({account.directory}/namespace is absent)"
            )
        api = KubeConfigMap(api_base_url(), account, args.namespace, configmap_name(args.job_name))
    source: ConfigSource
    if config_path is None:
        assert api is not None
        source = api
    else:
        source = open_source(config_path)
    sink: StatusSink
    if status_file is not None:
        sink = StatusFile(status_file)
    elif api is not None:
        sink = api
        if config_path is not None:
            source = KillFromEither(source, api)
    else:
        sink = NullSink()
    return source, sink


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
    configure_logging(getattr(args, "verbose", False), quiet=args.command not in (None, "run"))
    if args.command == "run":
        return command_run(args)
    if args.command is not None:
        from raypod.commands import dispatch

        return dispatch(args)
    parser.print_help()
    return 2
