"""The command line both SDK baselines take from bench/run.py (they run as scripts in the
baseline's virtualenv, so this module is imported from their own folder)."""

from __future__ import annotations

import argparse


def baseline_arguments(interval_help: str = "status polls, in seconds") -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--entrypoint", required=True)
    parser.add_argument("--submission-id", required=True)
    parser.add_argument("--s3-endpoint", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--object", required=True)
    parser.add_argument("--interval", type=float, default=1.0, help=interval_help)
    parser.add_argument("--timeout", type=float, default=1800.0)
    return parser.parse_args()
