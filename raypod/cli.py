"""The command line: ``python -m raypod [run|submit|status|logs|stop|delete|list|validate|completion] ...``.

The parser only: handlers live in ``raypod.commands``, imported once a command runs, so
``--help`` stays fast (no requests, no minio).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from raypod import __version__
from raypod.completion import completion_script, subcommands
from raypod.contract import MIN_UPDATE_INTERVAL
from raypod.credentials import DEFAULT_CREDENTIALS_DIR, DEFAULT_S3_CREDENTIALS_DIR, RAY_TOKEN_SOURCES, S3_KEY_SOURCES
from raypod.exits import EXIT_BAD_INPUT, EXIT_CODE_CHOICES, EXIT_CODES_VARIABLE, EXIT_OK, SUMMARY
from raypod.pod_identity import started_as_pod

#: The pod's command run by hand: in ``run``'s help and the top level's.
RUN_COMMAND = """\
  JOBNAME=myjob NAMESPACE=default python -m raypod run \\
      --config ./myjob-bridge-cm.json --status-file ./status.json
"""

RUN_EXAMPLE = "examples:\n" + RUN_COMMAND + "\n" + SUMMARY + "\n"


ADDRESS_HELP = (
    "Ray dashboard address, e.g. http://127.0.0.1:8265 (a bare host:port means http); "
    "default: $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS, else KubeRay's $RAY_DASHBOARD_ADDRESS"
)

TOP_EXAMPLE = (
    """\
examples:
  export RAY_API_SERVER_ADDRESS=http://127.0.0.1:8265
  python -m raypod submit --script train.py --param epochs=3 --wait
  python -m raypod validate --config ./myjob-bridge-cm.yaml
"""
    + RUN_COMMAND
    + """\
  eval "$(raypod completion bash)"

"""
    + SUMMARY
    + "\n"
)

SUBMIT_EXAMPLE = """\
examples:
  # a local script, parameters and env vars as flags; prints the submission id
  python -m raypod submit --address http://127.0.0.1:8265 --script train.py \\
      --param epochs=3 --param name="two words" --env MODE=batch --pip 'rich>=13'
  # a project directory, as with `ray job submit --working-dir . -- python train.py`,
  # plus a wheel for a cluster without a package index
  python -m raypod submit --working-dir . --script train.py --exclude 'data/' \\
      --wheel dist/mylib-1.0-py3-none-any.whl --wait
  # a Bridge ConfigMap, followed to the end (exit code 0/1/2 like run)
  python -m raypod submit --config ./myjob-bridge-cm.json --wait --interval 2 --status-timeout 300

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
examples:
  python -m raypod stop raypod-myjob-3f2a9c01b7de
  python -m raypod stop raypod-myjob-3f2a9c01b7de --timeout 300
exit codes: 0 the job stopped (or had already ended); 1 still running after --timeout
"""

DELETE_EXAMPLE = """\
examples:
  python -m raypod delete raypod-myjob-3f2a9c01b7de
exit codes: 0 deleted; 1 the job has not ended (stop it first), or Ray does not know it
"""

LIST_EXAMPLE = """\
examples:
  python -m raypod list
  python -m raypod list --json | jq -r '.[] | select(.status=="RUNNING") | .submission_id'
"""

VALIDATE_EXAMPLE = """\
examples:
  python -m raypod validate --config ./myjob-bridge-cm.yaml
  python -m raypod validate --config ./myjob-configmap-dir/
Contacts nothing. Prints every problem, each naming its key; exit code 2 if there is any.
"""

COMPLETION_EXAMPLE = """\
examples:
  # in ~/.bashrc
  eval "$(raypod completion bash)"
  # in ~/.zshrc
  eval "$(raypod completion zsh)"
Completes the commands, each command's flags and their choices, and file names after a path flag.
"""

#: What a command's SUBMISSION_ID is, wherever one is taken.
SUBMISSION_ID_HELP = (
    "the job's submission id, as `submit` prints it and `list` shows it (e.g. raypod-myjob-3f2a9c01b7de)"
)
#: ``submit``'s flags that only mean something while the job is followed.
WAIT_ONLY_FLAGS = {
    "--interval": "interval",
    "--status-timeout": "status_timeout",
    "--stop-on-interrupt": "stop_on_interrupt",
}


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _interval(text: str) -> float:
    value = _positive_float(text)
    if value < MIN_UPDATE_INTERVAL:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_UPDATE_INTERVAL:g} seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raypod",
        description="Run one Bridge job on an external Ray cluster through its dashboard REST API.",
        epilog=TOP_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"raypod {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = _command(
        commands,
        "run",
        "submit (or re-attach to) the job of a ConfigMap, watch it, report its status, upload its log",
        RUN_EXAMPLE,
        description="Submit (or re-attach to) the job of a Bridge ConfigMap, watch it to the end, "
        "report its status and upload its log to S3.",
    )
    run.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="the ConfigMap: a directory with one file per key, or a JSON/YAML manifest",
    )
    _add_job_arguments(run, pod=True)
    run.add_argument(
        "--status-file",
        type=Path,
        metavar="FILE",
        help="outside a cluster: a JSON file of every key raypod writes; an id in it is re-attached to",
    )
    _add_status_timeout(run, "else never as the operator's pod and 600 elsewhere")
    _add_exit_codes_argument(
        run,
        "'bridge': the Bridge Operator's rules (UNKNOWN and SIGTERM exit 0 once the status is written); "
        "'posix': the code says how the job ended; 'job': a Kubernetes Job's podFailurePolicy (UNKNOWN exits 3, "
        "and the next pod re-attaches); 'auto' (default, also $RAYPOD_EXIT_CODES): 'bridge' when the "
        "status goes to the ConfigMap through the Kubernetes API, else 'posix'",
    )
    run.add_argument(
        "--pushgateway",
        default=os.environ.get("RAYPOD_PUSHGATEWAY") or None,
        metavar="URL",
        help="a Prometheus Pushgateway (also $RAYPOD_PUSHGATEWAY): the run's metrics are pushed to it once at "
        "exit, grouped by job=raypod, namespace and bridgejob; a failed push is a warning, never a failed run",
    )
    run.add_argument(
        "--pushgateway-delete",
        action="store_const",
        const="true",
        default=os.environ.get("RAYPOD_PUSHGATEWAY_DELETE", ""),
        help="delete the group when the run starts, and instead of the push when the BridgeJob is deleted "
        "(also $RAYPOD_PUSHGATEWAY_DELETE=true)",
    )
    _add_common_arguments(run)

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
    flags.add_argument(
        "script_args",
        nargs="*",
        metavar="-- ARG",
        help="after --: with --script, the script's own arguments, passed unchanged (before --kwargs and the "
        "--param tokens); without it, the command Ray runs, as `ray job submit -- python train.py --epochs 3`",
    )
    flags.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="an env var of the job; repeat")
    flags.add_argument("--pip", action="append", default=[], metavar="SPEC", help="a pip requirement; repeat")
    flags.add_argument("--properties", metavar="JSON", help="jobproperties, e.g. '{\"entrypoint_num_cpus\": 1}'")
    flags.add_argument(
        "--working-dir",
        type=Path,
        metavar="DIR",
        help="a local directory sent with the job, as with `ray job submit --working-dir`: the job runs in it, "
        "--script is a path inside it, its modules import in the driver and in remote tasks; its .gitignore "
        "and .rayignore files are honoured",
    )
    flags.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="with --working-dir: leave out the paths this .gitignore-style pattern matches; repeat",
    )
    flags.add_argument(
        "--wheel",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="a local .whl the job imports, installed by Ray with no package index (runtime_env.py_modules); repeat",
    )
    ray_flags = submit.add_argument_group(
        "with --script, as `ray job submit` (each sets the jobproperties key of its name; not with the same key "
        "in --properties)"
    )
    ray_flags.add_argument(
        "--submission-id",
        # Not `submission_id`: that is the other commands' positional, checked as such by dispatch.
        dest="new_submission_id",
        metavar="ID",
        help="the job's id (default: raypod-<job name>-<12 hex>); a job Ray already has under it is attached to",
    )
    ray_flags.add_argument("--runtime-env-json", metavar="JSON", help='runtime_env fields, e.g. \'{"conda": "x"}\'')
    ray_flags.add_argument(
        "--runtime-env", type=Path, metavar="FILE", help="runtime_env fields from a YAML or JSON file"
    )
    ray_flags.add_argument("--metadata-json", metavar="JSON", help="the job's metadata, a JSON object of strings")
    ray_flags.add_argument("--entrypoint-num-cpus", metavar="N", help="CPUs reserved for the driver")
    ray_flags.add_argument("--entrypoint-num-gpus", metavar="N", help="GPUs reserved for the driver")
    ray_flags.add_argument("--entrypoint-memory", metavar="BYTES", help="memory reserved for the driver")
    ray_flags.add_argument(
        "--entrypoint-resources", metavar="JSON", help="custom resources for the driver, e.g. '{\"tpu\": 1}'"
    )
    ray_flags.add_argument(
        "--entrypoint-label-selector", metavar="JSON", help="node labels the driver must run on, name to value"
    )
    following = submit.add_argument_group("following the job")
    following.add_argument("--wait", action="store_true", help="follow the job to its end; exit 0/1/2 like run")
    following.add_argument(
        "--interval",
        type=_interval,
        metavar="SECONDS",
        help="with --wait: poll interval (default: updateInterval, or 2)",
    )
    _add_status_timeout(following, "else 600", "with --wait: ")
    following.add_argument(
        "--stop-on-interrupt",
        action="store_true",
        help="with --wait: Ctrl-C or SIGTERM (a cancelled CI job) stops the Ray job, waits until Ray says it "
        "ended, then exits 130/143; 1 when Ray did not confirm the stop (a second interrupt leaves at once), "
        "and the job may still run (without the flag the job keeps running)",
    )
    _add_job_arguments(submit, pod=False)
    _add_address_argument(submit)
    _add_common_arguments(submit)

    status = _command(commands, "status", "show one job's status", STATUS_EXAMPLE)
    _add_submission_id(status)
    status.add_argument("--json", action="store_true", help="Ray's job info as JSON")
    _add_client_arguments(status)

    logs = _command(commands, "logs", "print one job's log", LOGS_EXAMPLE)
    _add_submission_id(logs)
    logs.add_argument("-f", "--follow", action="store_true", help="stream new lines until the job ends")
    _add_client_arguments(logs)

    stop = _command(commands, "stop", "stop a job", STOP_EXAMPLE)
    _add_submission_id(stop)
    stop.add_argument("--no-wait", action="store_true", help="return once the stop is requested")
    stop.add_argument(
        "--timeout", type=_positive_float, default=60.0, metavar="SECONDS", help="how long to wait (default: 60)"
    )
    _add_client_arguments(stop)

    delete = _command(commands, "delete", "delete a finished job's info and log from Ray", DELETE_EXAMPLE)
    _add_submission_id(delete)
    _add_client_arguments(delete)

    listing = _command(commands, "list", "list the cluster's jobs", LIST_EXAMPLE)
    listing.add_argument("--json", action="store_true", help="Ray's job infos as a JSON array")
    _add_client_arguments(listing)

    validate = _command(commands, "validate", "check a ConfigMap without contacting anything", VALIDATE_EXAMPLE)
    validate.add_argument("--config", type=Path, metavar="PATH", required=True, help="directory or JSON/YAML manifest")
    _add_exit_codes_argument(
        validate,
        "the convention of the pod run would be (also $RAYPOD_EXIT_CODES): with 'job' (a Kubernetes Job's pod) an "
        "UNKNOWN recorded by an earlier pod is re-attached to, not kept; 'auto' (default) is the operator's pod",
    )
    _add_verbose_argument(validate)

    completion = _command(commands, "completion", "print a shell completion script for raypod", COMPLETION_EXAMPLE)
    completion.add_argument("shell", choices=("bash", "zsh"), help="the shell the script is for")
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    example: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        epilog=example,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # Each parser decides for itself: a subparser does not inherit the top level's setting.
        allow_abbrev=False,
    )


def _pod_only(help_text: str, pod: bool) -> str:
    """Shown in ``run``'s help; hidden from ``submit``'s (still accepted), where its default serves:
    a person never types it, and a submitter pod gets it from its environment or the kubelet."""
    return help_text if pod else argparse.SUPPRESS


def _add_job_arguments(parser: argparse.ArgumentParser, *, pod: bool) -> None:
    """What ``run`` and ``submit`` share: the job's name, its S3 secret, its output, the patience."""
    parser.add_argument(
        "--job-name", default=os.environ.get("JOBNAME"), help="the BridgeJob's name (default: $JOBNAME)"
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("NAMESPACE"),
        help=_pod_only("its namespace (default: $NAMESPACE)", pod),
    )
    parser.add_argument(
        "--s3-credentials",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"S3 secret: accesskey and secretkey, when the job uses S3 (default: {DEFAULT_S3_CREDENTIALS_DIR})"
        if pod
        else f"a directory holding accesskey and secretkey, for a ConfigMap that uses S3. {S3_KEY_SOURCES}",
    )
    parser.add_argument(
        "--no-follow-logs",
        dest="follow_logs",
        action="store_false",
        help="do not copy the job's output to stdout while it runs",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="how long an unreachable dashboard is retried before submitting fails (default: 60)",
    )
    parser.add_argument(
        "--result",
        type=Path,
        metavar="FILE",
        help="at the end, write a JSON file: the id, the final status and its reason, the times, the driver's "
        "exit code, the log's S3 URI and the result files found and missing",
    )
    parser.add_argument(
        "--termination-log",
        default=None,
        metavar="PATH",
        help=_pod_only(
            "where the one-line summary goes at the end (default: /dev/termination-log, when the kubelet "
            "made it); an empty value turns it off",
            pod,
        ),
    )


def _add_status_timeout(parser: argparse._ActionsContainer, default: str, prefix: str = "") -> None:
    """``run``'s and ``submit --wait``'s patience with a silent dashboard (``RunOptions.status_timeout_for``)."""
    parser.add_argument(
        "--status-timeout",
        type=_positive_float,
        default=None,
        metavar="SECONDS",
        help=f"{prefix}how long the dashboard may stay unreachable before the job is reported UNKNOWN "
        f"(default: jobproperties' statusTimeoutSeconds, {default})",
    )


def _add_submission_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submission_id", metavar="SUBMISSION_ID", help=SUBMISSION_ID_HELP)


def _add_exit_codes_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--exit-codes",
        choices=EXIT_CODE_CHOICES,
        default=os.environ.get(EXIT_CODES_VARIABLE) or "auto",
        help=help_text,
    )


def _add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", metavar="URL", help=ADDRESS_HELP)


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--credentials",
        type=Path,
        default=DEFAULT_CREDENTIALS_DIR,
        metavar="DIR",
        help="the resource secret: an optional token (Ray token auth), headers.json and ca.crt, and "
        f"username/password for auth 'basic' (default: {DEFAULT_CREDENTIALS_DIR}). {RAY_TOKEN_SOURCES}",
    )
    parser.add_argument(
        "--headers",
        default=None,
        metavar="JSON",
        help='extra headers for a dashboard behind an auth proxy, e.g. \'{"Cookie": "..."}\' (also '
        "$RAY_JOB_HEADERS); their values are never printed",
    )
    _add_verbose_argument(parser)


def _add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="stderr's lines as text, or one JSON object per line (ts, level, msg, configmap, submission_id, "
        "attempt); stdout's data is unchanged",
    )


def _add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The commands that ask the dashboard about one job, or all."""
    _add_address_argument(parser)
    _add_common_arguments(parser)


def _after_double_dash(argv: list[str], words: list[str]) -> bool:
    """Whether ``words`` are exactly what follows the first ``--`` of ``argv``."""
    return "--" in argv and argv[argv.index("--") + 1 :] == words


def parse_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse's reading of ``argv`` (which names its command) and the checks argparse cannot
    express, each an argparse error (usage, message, exit 2). Parses only: nothing runs."""
    args = parser.parse_args(argv)
    if getattr(args, "script_args", None) and not _after_double_dash(argv, args.script_args):
        # argparse takes stray words as positionals: only what follows `--` goes to the script.
        parser.error(f"unrecognized arguments: {' '.join(args.script_args)} (the script's own go after --)")
    if args.command == "submit" and not args.wait:
        for flag, dest in WAIT_ONLY_FLAGS.items():
            if getattr(args, dest) not in (None, False):
                subcommands(parser)["submit"].error(f"argument {flag}: only with --wait")
    return args


def _asks_for_json(argv: list[str]) -> bool:
    """Whether the raw arguments say ``--log-format json`` (before any ``--``): argparse's own
    refusal comes before the flag is parsed."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    pairs = zip(words, [*words[1:], ""], strict=True)
    return any(word == "--log-format=json" or (word, after) == ("--log-format", "json") for word, after in pairs)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv and not started_as_pod(os.environ):
        # A person typed `raypod`: the usage, as argparse answers a missing command (the pod's
        # image runs with no arguments, and is told apart by its environment).
        parser.print_usage(sys.stderr)
        print("raypod: error: a command is required (raypod --help lists them)", file=sys.stderr)
        return EXIT_BAD_INPUT
    # `run` is the default command: `python -m raypod --config X` means `run --config X`.
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["run", *argv]
    from raypod.terminal import json_refusal, json_stderr

    with json_refusal(_asks_for_json(argv)):
        args = parse_command_line(parser, argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if args.command == "completion":
        print(completion_script(parser, args.shell), end="")
        return EXIT_OK
    from raypod.process import configure_logging

    json_lines = args.log_format == "json"
    configure_logging(args.verbose, quiet=args.command != "run", json_lines=json_lines)
    with json_stderr(json_lines):
        # Inside: a warning while the clients are imported is a JSON line too.
        from raypod.lean_imports import import_requests

        import_requests()  # first, before any module of raypod's imports requests
        from raypod.commands import dispatch

        return dispatch(args)
