"""``python -m bench.sources``: the two live sources of a job's output side by side on one head
(issue 24, goal 1): when the last output arrives through Ray's WebSocket tail
(``/api/jobs/<id>/logs/tail``) and through the state API's stream (``/api/v0/logs/stream``,
``interval=0.5``), relative to Ray's ``end_time``, for the kinds of the job mix; and what each costs
the dashboard (CPU per process role, net of idle) with N jobs followed by one source only.

A measurement, not part of ``make bench``: it prints its figures and the load average.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bench.mix import PENDING_JOB_CPUS, block_cpus
from bench.pods import quiet_rates
from bench.tools import job_entrypoint
from devtools.measure import CpuMeter
from devtools.ray_stream import abort_stream, open_follow_stream
from devtools.services import LocalRay
from raypod.ray import RayJobsClient

#: Bounds every wait here.
JOB_TIMEOUT = 180.0
#: How long both sources are kept open after the job ended (the tail closes by itself).
AFTER_END = 8.0


@dataclass
class Arrivals:
    """Wall-clock times (epoch seconds) at which each source delivered bytes."""

    tail: list[float] = field(default_factory=list)
    stream: list[float] = field(default_factory=list)
    tail_closed: float | None = None
    end_time: float | None = None
    status: str = ""


def submit(client: RayJobsClient, seconds: float, quiet: float = 0.0, cpus: float = 0.0) -> str:
    parameters: dict[str, object] = {"seconds": f"{seconds:g}", "interval": "0.5"}
    if quiet:
        parameters["quiet"] = f"{quiet:g}"
    payload: dict[str, object] = {"entrypoint": job_entrypoint(parameters)}
    if cpus:
        payload["entrypoint_num_cpus"] = cpus
    return client.submit_job(payload)


def follow(address: str, submission_id: str, tail: bool, stream: bool) -> Arrivals:
    """Follow the job through the chosen sources until AFTER_END s past its end (a client of its own,
    as each pod has)."""
    client = RayJobsClient.connect(address)
    arrivals = Arrivals()
    done = threading.Event()
    aborts: list[Callable[[], None]] = []

    def read_tail() -> None:
        socket = client.open_log_tail(submission_id, on_socket=lambda s: aborts.append(s.abort))
        try:
            for _ in client.tail_chunks(socket):
                arrivals.tail.append(time.time())
            arrivals.tail_closed = time.time()
        except Exception:
            pass

    def read_stream(node_id: str) -> None:
        response = open_follow_stream(client, submission_id, node_id)
        aborts.append(lambda: abort_stream(response))
        try:
            for _ in client.stream_chunks(response):
                arrivals.stream.append(time.time())
        except Exception:
            pass

    threads = []
    if tail:
        threads.append(threading.Thread(target=read_tail, daemon=True))
        threads[-1].start()
    limit = time.monotonic() + JOB_TIMEOUT
    stream_started = not stream
    ended_at: float | None = None
    while time.monotonic() < limit and not done.is_set():
        job = client.get_job(submission_id)
        if not stream_started and job.driver_node_id:
            threads.append(threading.Thread(target=read_stream, args=(job.driver_node_id,), daemon=True))
            threads[-1].start()
            stream_started = True
        if job.terminal:
            arrivals.status = str(job.status)
            arrivals.end_time = (job.end_time_ms or 0) / 1000
            if ended_at is None:
                ended_at = time.monotonic()
            if time.monotonic() - ended_at > AFTER_END:
                done.set()
        time.sleep(0.25)
    for abort in aborts:
        abort()
    client.close()
    for thread in threads:
        thread.join(timeout=5)
    return arrivals


KINDS = {
    "prints to its end (20 s)": dict(seconds=20.0),
    "silent for its last 10 s (20 s)": dict(seconds=20.0, quiet=10.0),
    "very short (2 s)": dict(seconds=2.0),
}


def timing(ray: LocalRay, repeats: int) -> None:
    client = RayJobsClient.connect(ray.address)
    for repeat in range(repeats):
        block_cpus(ray.address, 8.0)
        jobs = {name: submit(client, **kw) for name, kw in KINDS.items()}
        jobs["PENDING about 8 s, then prints 15 s"] = submit(client, 15.0, cpus=PENDING_JOB_CPUS)
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = {name: pool.submit(follow, ray.address, sid, True, True) for name, sid in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
        for name, a in results.items():
            end = a.end_time or float("nan")
            last_tail = (a.tail[-1] - end) if a.tail else float("nan")
            last_stream = (a.stream[-1] - end) if a.stream else float("nan")
            closed = (a.tail_closed - end) if a.tail_closed else float("nan")
            gaps_tail = _median_gap(a.tail)
            gaps_stream = _median_gap(a.stream)
            print(
                f"run {repeat + 1} {name:38} {a.status:9} last output vs end_time: tail {last_tail:+6.2f} s "
                f"(closed {closed:+5.2f} s, {len(a.tail)} pieces, median gap {gaps_tail:.2f} s), "
                f"stream {last_stream:+6.2f} s ({len(a.stream)} pieces, median gap {gaps_stream:.2f} s)",
                flush=True,
            )
    print(f"load average {os.getloadavg()}", flush=True)


def _median_gap(times: list[float]) -> float:
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    return gaps[len(gaps) // 2] if gaps else float("nan")


def cost(ray: LocalRay, jobs: int, seconds: float) -> None:
    client = RayJobsClient.connect(ray.address)
    processes = ray.dashboard_processes()
    idle = quiet_rates(processes)
    for label, tail, stream in (("none", False, False), ("tail", True, False), ("stream", False, True)):
        ids = [submit(client, seconds) for _ in range(jobs)]
        meter = CpuMeter(processes).start()
        threads = [threading.Thread(target=follow, args=(ray.address, s, tail, stream)) for s in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(JOB_TIMEOUT + 30)
        used = meter.read()
        net = {name: used[name] - idle[name] * meter.elapsed for name in used}
        roles = ", ".join(f"{name} {value:.2f}" for name, value in sorted(net.items()))
        print(
            f"cost {label:6} {jobs} jobs of {seconds:g} s: dashboard net CPU {sum(net.values()):.2f} s ({roles}); "
            f"wall {meter.elapsed:.1f} s; load average {os.getloadavg()}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cost-jobs", type=int, default=6)
    parser.add_argument("--cost-seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    # A SIGTERM stops the head too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ray = LocalRay().start()
    try:
        timing(ray, arguments.repeats)
        if arguments.cost_jobs:
            cost(ray, arguments.cost_jobs, arguments.cost_seconds)
    finally:
        ray.stop()


if __name__ == "__main__":
    main()
