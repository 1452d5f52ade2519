"""The final status comes soon after the job ends, not an interval later: the live log tells the
watch when the output goes quiet, and the watch polls early then (``raypod.watch_schedule``).

The timing itself (the lag from Ray's end_time) is measured by the benchmark; these tests check
the order of events and the requests made, never how long anything took.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass

from devtools.blocker import hold_cpus, release
from devtools.proxy import Proxy, Request
from raypod.clock import SystemClock
from raypod.credentials import RayAuthSources, S3CredentialSources
from raypod.runner import Runner, RunOptions
from raypod.session import SessionSettings
from raypod.source import ConfigMapJob, DirectorySource
from raypod.status_store import StatusFile
from raypod.watch_schedule import FIRST_LOOK, REPLAN_WAIT
from tests.support.helpers import BridgeJob

#: Long enough that a wait which ends by itself cannot be mistaken for one the tail's end cut short.
LONG_INTERVAL = 120
SHORT_JOB = "import time\nfor i in range(4):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n"


@dataclass(frozen=True)
class Event:
    what: str
    at: float


class RecordingClock(SystemClock):
    """The real clock, with each wait's start and end and each wake-up written down in order."""

    def __init__(self, terminate: threading.Event) -> None:
        super().__init__(terminate)
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def _note(self, what: str) -> None:
        with self._lock:
            self.events.append(Event(what, time.monotonic()))

    def wait(self, seconds: float) -> bool:
        self._note(f"wait {seconds:g}")
        terminated = super().wait(seconds)
        self._note("waited")
        return terminated

    def wake(self) -> None:
        self._note("wake")
        super().wake()


def in_process_run(job: BridgeJob, proxy: Proxy, *, follow: bool) -> tuple[int, RecordingClock, str]:
    """Run raypod in this process on the job (its status in a file), with the dashboard behind ``proxy``."""
    job.set(resourceURL=proxy.url)
    job.write_config()
    options = RunOptions(
        # The first wait is the whole interval: the jitter would only shorten it.
        job_name=job.name,
        namespace="test-ns",
        session=SessionSettings(first_poll_jitter=lambda: 1.0),
        ray_auth=RayAuthSources(directory=job.credentials_dir),
        s3_keys=S3CredentialSources(job.s3_credentials_dir),
        follow_logs=follow,
    )
    out = io.StringIO()
    runner = Runner(ConfigMapJob(DirectorySource(job.config_dir)), StatusFile(job.status_file), options, status_out=out)
    clock = RecordingClock(runner.clock.terminate)
    runner.clock = clock
    return runner.run().exit_code, clock, out.getvalue()


def remote_script(job: BridgeJob, text: str) -> None:
    """The job's script as a file 'on the Ray node' (this machine), so no package is uploaded."""
    script = job.root / "job.py"
    script.write_text(text)
    job.set(jobdata__scriptLocation="remote", jobdata__jobScript=str(script), updateInterval=str(LONG_INTERVAL))


def dashboard_calls(requests: list[Request], submission_id: str) -> list[str]:
    return [r.path.split("?")[0].replace(submission_id, "<id>") for r in requests]


def test_the_poll_after_the_output_goes_quiet_comes_early_not_an_interval_later(bridge_job: BridgeJob) -> None:
    remote_script(bridge_job, SHORT_JOB)
    with Proxy("127.0.0.1", bridge_job.services.ray.port, keep_alive=True) as proxy:
        code, clock, out = in_process_run(bridge_job, proxy, follow=True)
        requests = proxy.recorded()
    status = bridge_job.read_status()
    assert code == 0, out
    assert status["status.jobStatus"] == "SUCCEEDED"
    assert "[job] tick 3" in out

    submission_id = status["id"]
    calls = dashboard_calls(requests, submission_id)
    # The first poll a moment after the POST (FIRST_LOOK): the 2 s job has not ended by then.
    assert calls[:3] == ["/api/version", "/api/jobs/", "/api/jobs/<id>"]
    assert calls[-1] == "/api/v0/logs/file"  # the upload reads the file itself
    # Ray's tail, one connection for the run, never one per poll (and never the state API's stream).
    live = [call for call in calls if call.endswith(("/logs/tail", "/logs/stream"))]
    assert live == ["/api/jobs/<id>/logs/tail"]

    # The watch looked at the output every REPLAN_WAIT and polled once it went quiet: it never sat
    # out the interval (its waits together are shorter than one), and asked Ray a few times only.
    first_look, *waits = [event.what for event in clock.events if event.what.startswith("wait ")]
    assert first_look == f"wait {FIRST_LOOK:g}"
    assert all(float(what.split()[1]) <= REPLAN_WAIT for what in waits)
    assert len(waits) * REPLAN_WAIT < LONG_INTERVAL
    assert 2 <= calls.count("/api/jobs/<id>") <= 12


def test_a_job_pending_at_the_first_poll_is_polled_at_its_drivers_first_bytes_which_writes_running(
    bridge_job: BridgeJob,
) -> None:
    # The job asks for both CPUs, which another job holds for a few seconds: PENDING at the first
    # poll, so Ray's tail follows it until the driver's first bytes.
    # Ray's tail sends nothing while the job is PENDING; a driver of 6 s is still running when its
    # first bytes come through.
    remote_script(bridge_job, SHORT_JOB.replace("range(4)", "range(12)"))
    bridge_job.set(jobproperties=json.dumps({"entrypoint_num_cpus": 2}))
    blocker = hold_cpus(bridge_job.services.ray_address, 2, seconds=6)
    try:
        with Proxy("127.0.0.1", bridge_job.services.ray.port, keep_alive=True) as proxy:
            code, clock, out = in_process_run(bridge_job, proxy, follow=True)
            requests = proxy.recorded()
    finally:
        release(bridge_job.services.ray_address, blocker)
    assert code == 0, out
    assert "[job] tick 11" in out
    calls = dashboard_calls(requests, bridge_job.read_status()["id"])
    tail = calls.index("/api/jobs/<id>/logs/tail")
    # After the tail, the next call is a status poll: the watch's own, woken at the driver's first bytes
    # (the interval is 120 s), whose answer says RUNNING.
    assert calls[tail + 1] == "/api/jobs/<id>"
    assert "/api/v0/logs/stream" not in calls
    assert "wake" in [event.what for event in clock.events]
    assert "status.jobStatus=RUNNING" in out


def test_with_live_output_off_nothing_wakes_the_watch(bridge_job: BridgeJob) -> None:
    remote_script(bridge_job, "print('quiet')\n")
    bridge_job.set(updateInterval="2")
    with Proxy("127.0.0.1", bridge_job.services.ray.port, keep_alive=True) as proxy:
        code, clock, out = in_process_run(bridge_job, proxy, follow=False)
        requests = proxy.recorded()
    assert code == 0, out
    assert "wake" not in [event.what for event in clock.events]
    assert not [r for r in requests if "/logs/tail" in r.path or "/logs/stream" in r.path]
