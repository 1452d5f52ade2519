"""What the benchmark's modes share to report: tables, ratios, the goals, and the kinds of requests."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from devtools.proxy import Request


@dataclass(frozen=True)
class Goal:
    goal: str
    result: str
    met: bool


@dataclass(frozen=True)
class Section:
    """One mode's part of the report: its markdown lines, the goals it checked, its raw figures, and
    its headline rows for the summary table (the README's): (measure, raypod, the SDK)."""

    lines: list[str]
    goals: list[Goal]
    raw: dict[str, object]
    headline: list[tuple[str, str, str]]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def percentile(values: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest of ``values`` that at least ``percent`` % of them
    are at or under (99: the 99th; 100: the max). Whole percents, so the rank is exact integer
    arithmetic (a float fraction such as 0.07 × 100 comes out as 7.000000000000001 and ranks one too high)."""
    if not values:
        raise ValueError("the percentile of no values")
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], not {percent}")
    rank = -(-percent * len(values) // 100)
    return sorted(values)[rank - 1]


def ratio(baseline: float, raypod: float) -> str:
    """How many times raypod's figure the baseline's is: above 1×, raypod uses less."""
    return f"{baseline / raypod:.1f}×" if raypod else "-"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(row) + " |" for row in rows],
    ]


def goals_table(goals: list[Goal]) -> list[str]:
    return table(("goal", "result", "met"), [(g.goal, g.result, "yes" if g.met else "**no**") for g in goals])


def is_status_path(path: str) -> bool:
    """``/api/jobs/<id>``: one status poll."""
    bare = path.split("?")[0].rstrip("/")
    return bare.startswith("/api/jobs/") and bare.count("/") == 3


def request_kind(request: Request) -> str:
    """``GET /api/jobs/<id>``, ``GET /api/jobs/<id>/logs/tail``, ``GET /api/v0/logs/stream``, ..."""
    path = request.path.split("?")[0]
    if is_status_path(path):
        path = "/api/jobs/<id>"
    elif path.startswith("/api/jobs/") and path.count("/") > 3:
        path = "/api/jobs/<id>/" + path.split("/", 4)[4]
    return f"{request.method} {path}"


def request_kinds(requests: list[Request]) -> str:
    """The requests by kind, in the order first seen: ``GET /api/version, GET /api/jobs/<id> ×4, ...``."""
    kinds: dict[str, int] = {}
    for request in requests:
        kind = request_kind(request)
        kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{k} ×{v}" if v > 1 else k for k, v in kinds.items())


def seconds(value: float) -> str:
    return f"{value:.1f} s"
