"""``--log-format json`` is taken by every command (the parser alone; what a run logs with it is
in tests/ray/test_log_format_on_ray.py)."""

from __future__ import annotations


def test_the_flag_is_taken_by_every_command() -> None:
    from raypod.cli import build_parser

    parser = build_parser()
    for argv in (
        ["run", "--log-format", "json"],
        ["submit", "--log-format", "json"],
        ["status", "x", "--log-format", "json"],
        ["logs", "x", "--log-format", "json"],
        ["stop", "x", "--log-format", "json"],
        ["delete", "x", "--log-format", "json"],
        ["list", "--log-format", "json"],
        ["validate", "--config", "c", "--log-format", "json"],
    ):
        assert parser.parse_args(argv).log_format == "json", argv
