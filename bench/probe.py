"""The head's own answer time under load: a thread of the benchmark asks the dashboard
``GET /api/jobs/<id>`` every PROBE_INTERVAL while a phase runs, and times each answer.

It asks the dashboard directly, not through the counting proxy, so its requests are no tool's.
A request that fails (no answer within ANSWER_TIMEOUT, a status other than 200, an answer that is
not the job's JSON) is a probe error: counted and kept, never left out. The answer times are those
of the answers that came.

The probe's own requests cost the dashboard CPU too; ``calibrate`` measures that cost alone, so
that the N-pods mode can take it off each phase's CPU (bench/pods.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import requests

from bench.report import percentile
from devtools.measure import CpuMeter

#: How often the probe asks: four times a second, so a 60 s phase gives about 240 answers (its
#: 99th percentile is then the third slowest).
PROBE_INTERVAL = 0.25
#: An answer slower than this is a probe error (it would hold up a watcher's poll as long).
ANSWER_TIMEOUT = 10.0
#: A probe stops by itself after this long, whatever the phase (every loop is bounded).
PROBE_LIMIT = 7200.0
#: How long ``cost_per_request`` runs the probe alone.
CALIBRATION_SECONDS = 20.0
#: A process that used less than this (net of idle) while the probe ran alone is taken to have spent
#: nothing on it: 5 clock ticks, above what the idle rate's own noise leaves over 20 s (up to 4 ticks
#: either way was seen), below what the processes that answer the probe use (dashboard.py and JobHead,
#: 0.1 and 0.16 s for 80 requests).
CALIBRATION_FLOOR = 0.05
#: How many of the errors' messages are kept (all are counted).
KEPT_ERRORS = 20


@dataclass
class ProbeFigures:
    """The answer times (ms) of the probe's requests that got an answer, and its errors."""

    answer_ms: list[float] = field(default_factory=list)
    errors: int = 0
    #: The first KEPT_ERRORS error messages.
    error_messages: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.answer_ms) + self.errors

    def quantile(self, percent: int) -> float:
        """The answer time (ms) at ``percent`` (nearest rank); NaN when no answer came."""
        return percentile(self.answer_ms, percent) if self.answer_ms else math.nan

    @property
    def p50(self) -> float:
        return self.quantile(50)

    @property
    def p99(self) -> float:
        return self.quantile(99)

    @property
    def max(self) -> float:
        return self.quantile(100)

    def raw(self) -> dict[str, object]:
        return {
            "answers": len(self.answer_ms),
            "p50_ms": _rounded(self.p50),
            "p99_ms": _rounded(self.p99),
            "max_ms": _rounded(self.max),
            "errors": self.errors,
            "error_messages": self.error_messages,
        }


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 2)


def milliseconds(value: float) -> str:
    """``12.3 ms``, or ``-`` when there is no figure (no answer came)."""
    return "-" if math.isnan(value) else f"{value:.1f} ms"


def p99_cell(figures: ProbeFigures) -> str:
    """The 99th percentile for a table, with the probe's errors when it had any."""
    errors = f" ({figures.errors} probe error{'s' if figures.errors != 1 else ''})" if figures.errors else ""
    return milliseconds(figures.p99) + errors


class Probe:
    """``GET {address}/api/jobs/{submission_id}`` every ``interval`` s from ``start()`` to ``stop()``."""

    def __init__(self, address: str, submission_id: str, interval: float = PROBE_INTERVAL) -> None:
        self.url = f"{address}/api/jobs/{submission_id}"
        self.submission_id = submission_id
        self.interval = interval
        self.figures = ProbeFigures()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def start(self) -> Probe:
        self._thread.start()
        return self

    def stop(self) -> ProbeFigures:
        """Stops asking; a request in flight is waited for (at most ANSWER_TIMEOUT) and counted."""
        self._stop.set()
        self._thread.join(ANSWER_TIMEOUT + 5)
        return self.figures

    def _run(self) -> None:
        limit = time.monotonic() + PROBE_LIMIT
        # Keep-alive, as the tools' clients do: the time is the head's answer, not a TCP handshake.
        with requests.Session() as session:
            next_at = time.monotonic()
            while not self._stop.is_set() and time.monotonic() < limit:
                self._ask(session)
                # On a fixed beat: a slow answer is followed by the next request at once, not a beat later.
                next_at = max(next_at + self.interval, time.monotonic())
                self._stop.wait(next_at - time.monotonic())

    def _ask(self, session: requests.Session) -> None:
        began = time.perf_counter()
        try:
            answer = session.get(self.url, timeout=ANSWER_TIMEOUT)
        except requests.RequestException as error:
            self._failed(f"{type(error).__name__}: {error}")
            return
        elapsed_ms = (time.perf_counter() - began) * 1000
        problem = self._problem(answer)
        if problem is None:
            self.figures.answer_ms.append(elapsed_ms)
        else:
            self._failed(problem)

    def _failed(self, problem: str) -> None:
        self.figures.errors += 1
        if len(self.figures.error_messages) < KEPT_ERRORS:
            self.figures.error_messages.append(problem[:300])

    def _problem(self, answer: requests.Response) -> str | None:
        """What is wrong with the answer, or None when it is the job's JSON."""
        if answer.status_code != 200:
            return f"HTTP {answer.status_code}: {answer.text[:200]}"
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("submission_id") != self.submission_id:
            return f"not the job's JSON: {answer.text[:200]}"
        return None


@dataclass(frozen=True)
class Calibration:
    """The probe alone on the idle head: the CPU seconds each dashboard process spent per probe
    request, net of its idle rate, and the answer times."""

    cost: dict[str, float]
    alone: ProbeFigures

    def raw(self) -> dict[str, object]:
        return {"cpu_s_per_request": {name: round(c, 6) for name, c in self.cost.items()}, "alone": self.alone.raw()}


def calibrate(
    address: str, submission_id: str, processes: Mapping[str, int], idle_rates: Mapping[str, float]
) -> Calibration:
    """The probe alone for CALIBRATION_SECONDS; ``idle_rates``: each process's CPU seconds per second idle."""
    meter = CpuMeter(processes).start()
    probe = Probe(address, submission_id).start()
    time.sleep(CALIBRATION_SECONDS)
    figures = probe.stop()
    used, elapsed = meter.read(), meter.elapsed
    net = {name: used[name] - idle_rates[name] * elapsed for name in processes}
    return Calibration(per_request_cost(net, figures.requests), figures)


def per_request_cost(net_cpu: Mapping[str, float], requests: int) -> dict[str, float]:
    """Each process's CPU seconds per probe request, from its CPU seconds net of idle over ``requests``;
    under CALIBRATION_FLOOR (or below zero) it is the idle rate's noise, and counts as nothing."""
    return {name: used / requests if used >= CALIBRATION_FLOOR and requests else 0.0 for name, used in net_cpu.items()}
