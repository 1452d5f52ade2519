"""The watching baseline: what a user of the Ray SDK writes to follow a job to its end.

Submit the job; ask ``JobSubmissionClient.get_job_status`` every ``--interval`` seconds (1 by
default) until the job ends; write the final status to ``--status-file`` at once (JSON with ``id``
and ``status.jobStatus``, replaced in one step as raypod writes its own). With ``--follow`` the
job's output is printed live from ``tail_job_logs`` (one WebSocket through the dashboard), and,
as a careful user would, the end of that tail asks for the status at once instead of waiting for
the next poll. Run by bench/run.py (--lag and --pods) in the baseline's virtualenv.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time

from ray.job_submission import JobStatus, JobSubmissionClient
from sdk_arguments import watch_arguments

#: Printed with the wall time at which the tail ended.
TAIL_CLOSED = "sdk_watch: tail closed at"


def print_tail(client: JobSubmissionClient, submission_id: str, ended: threading.Event) -> None:
    """The job's output as it comes, in a thread of its own (the SDK's tail is async); ``ended`` on its close."""

    async def follow() -> None:
        async for text in client.tail_job_logs(submission_id):
            sys.stdout.write(text)
            sys.stdout.flush()

    try:
        asyncio.run(follow())
    finally:
        ended.set()
        # For the benchmark: when Ray closed the tail (bench/watched.py reads it).
        print(f"{TAIL_CLOSED} {time.time():.3f}", flush=True)


def wait_for_end(
    client: JobSubmissionClient, submission_id: str, interval: float, tail_ended: threading.Event, timeout: float
) -> JobStatus:
    """Poll until the job ends; the tail's end wakes the next poll once."""
    limit = time.monotonic() + timeout
    woken = False
    while True:
        status = client.get_job_status(submission_id)
        if status.is_terminal():
            return status
        if time.monotonic() > limit:
            raise SystemExit(f"job {submission_id} did not end within {timeout:.0f} s")
        if woken:
            time.sleep(interval)
        else:
            woken = tail_ended.wait(interval)


def write_status(path: str, submission_id: str, status: JobStatus) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"id": submission_id, "status.jobStatus": status.value}, handle)
    os.replace(temporary, path)


def main() -> int:
    args = watch_arguments()

    client = JobSubmissionClient(args.address)
    submission_id = client.submit_job(
        entrypoint=args.entrypoint, submission_id=args.submission_id, entrypoint_num_cpus=args.entrypoint_num_cpus
    )
    tail_ended = threading.Event()
    tail = None
    if args.follow:
        tail = threading.Thread(target=print_tail, args=(client, submission_id, tail_ended), daemon=True)
        tail.start()
    status = wait_for_end(client, submission_id, args.interval, tail_ended, args.timeout)
    write_status(args.status_file, submission_id, status)
    if tail is not None:
        # The tail closes about a second after the end (Ray's tail checks the status at each EOF).
        tail.join(args.timeout)
    return 0 if status == JobStatus.SUCCEEDED else 1


if __name__ == "__main__":
    raise SystemExit(main())
