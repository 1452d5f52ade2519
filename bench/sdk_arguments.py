"""The command lines the SDK baselines take from bench/run.py (they run as scripts in the
baseline's virtualenv, so this module is imported from their own folder)."""

from __future__ import annotations

import argparse


def _job_parser(interval_help: str) -> argparse.ArgumentParser:
    """What every baseline needs: where Ray is, and the job to submit."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--submission-id", required=True)
    parser.add_argument("--interval", type=float, default=1.0, help=interval_help)
    parser.add_argument("--timeout", type=float, default=1800.0)
    return parser


def baseline_arguments(interval_help: str = "status polls, in seconds") -> argparse.Namespace:
    """The lifecycle baselines (sdk_lifecycle.py, sdk_streaming.py): the job, and where its log goes."""
    parser = _job_parser(interval_help)
    parser.add_argument("--s3-endpoint", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--object", required=True)
    return parser.parse_args()


def watch_arguments() -> argparse.Namespace:
    """The watching baseline (sdk_watch.py): the job, and where its final status goes."""
    parser = _job_parser("status polls, in seconds")
    parser.add_argument("--status-file", required=True, help="the final status goes here, as raypod's does")
    parser.add_argument("--follow", action="store_true", help="print the job's output live with tail_job_logs")
    parser.add_argument("--entrypoint-num-cpus", type=float, default=0.0)
    return parser.parse_args()
