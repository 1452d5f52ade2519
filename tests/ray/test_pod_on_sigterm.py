"""SIGTERM (pod deletion) in each phase of a run, against the real Ray head and S3 server.

Each test holds raypod in one phase with a fault (through devtools.proxy or the fake Kubernetes
API), sends SIGTERM, and checks that raypod leaves as the pod must: exit 143 (0 as the Bridge
Operator's pod, in Kubernetes mode, so that its phase is not Failed), no traceback, the
pending status written, nothing POSTed after the signal, the Ray job never stopped for it.

The seconds from the signal to the exit are measured and reported (``record_property`` and a
printed line, shown by ``-rA``), never asserted: the machines the suite runs on are shared. A
call in flight when the signal comes is cut short (``raypod.interrupt``; the cut itself is shown in
tests/loopback/test_sigterm_cuts_calls_in_flight.py), so that figure stays well under the grace period.

The watch itself (an outage, a hung poll) is covered in test_faults.py (this folder).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.fake_kube import FakeKube
from devtools.proxy import Proxy
from tests.support.helpers import (
    BridgeJob,
    KubeJob,
    Services,
    Watched,
    jobs_of,
    ray_job,
    stop_ray_job,
    transitions,
    wait_for_ray_status,
    wait_until,
    waiting_script,
)

JOBS = r"^/api/jobs/$"
PACKAGES = r"^/api/packages/"
FINAL = ("SUCCEEDED", "FAILED", "KILL", "UNKNOWN")
#: The most a test waits for raypod to leave after SIGTERM before it kills it (the pod's grace
#: period is 30 s; generous, as the machines are shared).
EXIT_LIMIT = 90.0
#: A proxy delay long enough that the signal lands while the call is held.
HOLD = 20.0
MiB = 1024 * 1024

Record = Callable[[str, object], None]


@contextmanager
def running(job: BridgeJob, *extra: str) -> Iterator[Watched]:
    """raypod started on ``job``; killed on the way out if a failed step left it running."""
    run = Watched(job.start(*extra))
    try:
        yield run
    finally:
        if run.process.poll() is None:
            run.finish(timeout=0.1)


def terminate(run: Watched, record_property: Record, phase: str) -> tuple[int, str, str, float]:
    """SIGTERM, then the exit code, stdout, stderr and the seconds until the process ended."""
    sent = time.monotonic()
    run.process.send_signal(signal.SIGTERM)
    try:
        run.process.wait(timeout=EXIT_LIMIT)
    except subprocess.TimeoutExpired:
        pass  # finish() kills it; its exit code then fails the test
    seconds = time.monotonic() - sent
    code, stdout, stderr = run.finish(timeout=10)
    record_property("exit_seconds", round(seconds, 2))
    print(f"exit_seconds={seconds:.2f} after SIGTERM {phase}")
    return code, stdout, stderr, sent


def unique_script(job: BridgeJob, body: str) -> str:
    """The job's script, unique to it: the working-dir package is named by its content, and a
    package Ray has already is not uploaded again."""
    return f"# {job.name}\n{body}"


def open_uploads(services: Services, bucket: str, object_name: str) -> list[object]:
    result = services.s3.client()._list_multipart_uploads(bucket, prefix=object_name)
    return list(result.uploads)


# -- 1. start-up ---------------------------------------------------------------------------------------------


def test_sigterm_while_the_kubernetes_api_is_down_at_start_exits_0_and_submits_nothing(
    tmp_path: Path, services: Services, fake_kube: FakeKube, ray_proxy: Proxy, record_property: Record
) -> None:
    kube_job = KubeJob(BridgeJob(tmp_path, services, kube=fake_kube))
    kube_job.create(
        resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('never runs')\n"
    )
    created = kube_job.data()
    fake_kube.fail("get", 503, None)
    with running(kube_job.job) as run:
        run.wait_for("retrying")
        code, stdout, stderr, _ = terminate(run, record_property, "while the ConfigMap read is retried")

    assert code == 0, stdout + stderr  # the operator's pod: phase Succeeded, so the next pod may come
    assert "Traceback" not in stderr
    assert "nothing was submitted" in stdout
    assert kube_job.data() == created  # no id, no status: nothing was written
    assert ray_proxy.recorded() == []  # Ray was never even asked
    assert jobs_of(services, kube_job.job.name) == []


# -- 2. the working-dir package upload ----------------------------------------------------------------------


def test_sigterm_during_the_package_upload_never_posts_the_job(
    bridge_job: BridgeJob, ray_proxy: Proxy, record_property: Record
) -> None:
    held = ray_proxy.delay("PUT", PACKAGES, seconds=HOLD)
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=unique_script(bridge_job, "print('never runs')\n"),
    )
    with running(bridge_job) as run:
        wait_until(lambda: held.hits > 0, "the package upload to be held", timeout=60)
        # SIGTERM cuts the PUT in flight (raypod.interrupt): raypod leaves without its answer
        # (tests/loopback/test_sigterm_cuts_calls_in_flight.py shows the cut itself).
        code, stdout, stderr, _ = terminate(run, record_property, "with the package upload in flight")

    assert code == 143, stdout + stderr
    assert "Traceback" not in stderr
    assert "nothing was submitted" in stdout
    assert ray_proxy.recorded("POST") == []
    status = bridge_job.read_status()
    assert "id" not in status and "status.jobStatus" not in status, status
    assert jobs_of(bridge_job.services, bridge_job.name) == []


# -- 3. the submission's retry loop -------------------------------------------------------------------------


def test_sigterm_while_the_submission_is_retried_keeps_the_id_and_the_next_run_submits_it_once(
    bridge_job: BridgeJob, ray_proxy: Proxy, record_property: Record
) -> None:
    ray_proxy.fail("POST", JOBS, status=503)
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=unique_script(bridge_job, "print('submitted once')\n"),
    )
    with running(bridge_job, "--connect-timeout", "120") as run:
        run.wait_for("failed (attempt 1)")
        code, stdout, stderr, sent = terminate(run, record_property, "in the POST retry loop")

    assert code == 143, stdout + stderr
    assert "Traceback" not in stderr
    posts = ray_proxy.recorded("POST", JOBS)
    assert posts, "the POST was never tried"
    # A POST already on its way when the signal came may be recorded a moment after it; none later.
    assert all(post.at < sent + 1.0 for post in posts), [post.at - sent for post in posts]
    status = bridge_job.read_status()
    submission_id = status["id"]  # persisted before the first POST
    assert "status.jobStatus" not in status, status
    assert "--status-file" in stdout and "attaches to it again" in stdout  # how a command line re-attaches
    assert jobs_of(bridge_job.services, bridge_job.name) == []

    ray_proxy.clear_rules()
    result = bridge_job.run(timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    assert result.status["id"] == submission_id
    assert [job["submission_id"] for job in jobs_of(bridge_job.services, bridge_job.name)] == [submission_id]
    assert "submitted once" in bridge_job.log_text()


# -- 4. waiting for Ray to confirm a stop ----------------------------------------------------------------


def test_sigterm_while_a_kill_waits_for_ray_leaves_the_status_pending_not_kill(
    bridge_job: BridgeJob, ray_proxy: Proxy, record_property: Record
) -> None:
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=unique_script(bridge_job, "print('never runs: no node has the resource')\n"),
        # No node has it: Ray keeps the job PENDING, and answers a stop with stopped:true but leaves it so.
        jobproperties=json.dumps({"entrypoint_resources": {"raypod_test_no_such_resource": 1}}),
    )
    submission_id = ""
    try:
        with running(bridge_job) as run:
            submission_id = bridge_job.wait_for_status("PENDING", timeout=60)["id"]
            # As the operator sets kill; one file, so a read of the directory never sees it half-written.
            (bridge_job.config_dir / "kill").write_text("true")
            stop_path = rf"^/api/jobs/{submission_id}/stop$"
            poll_path = rf"^/api/jobs/{submission_id}$"
            wait_until(
                lambda: bool(ray_proxy.recorded("POST", stop_path)), "raypod to ask Ray to stop the job", timeout=30
            )
            asked = len(ray_proxy.recorded("GET", poll_path))
            # A poll after the stop request: raypod is in its wait for Ray's confirmation.
            wait_until(lambda: len(ray_proxy.recorded("GET", poll_path)) > asked, "a poll after the stop", timeout=30)
            assert ray_job(bridge_job.services, submission_id)["status"] == "PENDING"
            code, stdout, stderr, _ = terminate(run, record_property, "while waiting for Ray to confirm a stop")

        assert code == 143, stdout + stderr
        assert "Traceback" not in stderr
        assert "KILL" not in transitions(stdout), transitions(stdout)
        status = bridge_job.read_status()
        assert status["status.jobStatus"] == "PENDING", status
        assert status["id"] == submission_id
        # SIGTERM asked Ray nothing more: the one stop request came from kill.
        assert len(ray_proxy.recorded("POST", stop_path)) == 1
    finally:
        if submission_id:
            stop_ray_job(bridge_job.services, submission_id)


# -- 5. the log upload ---------------------------------------------------------------------------------------

#: 13 MiB of output: the log upload takes three parts of 5 MiB.
BIG_OUTPUT = (
    "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(13 * 1024):\n    sys.stdout.write(line)\nprint('done')\n"
)


def test_sigterm_during_the_multipart_log_upload_aborts_it_and_the_next_run_uploads_the_log(
    bridge_job: BridgeJob, ray_proxy: Proxy, s3_proxy: Proxy, record_property: Record
) -> None:
    held = s3_proxy.delay("PUT", r"[?&]partNumber=1(&|$)", seconds=HOLD, times=1)
    bridge_job.set(
        resourceURL=ray_proxy.url,
        s3__endpoint=s3_proxy.endpoint,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=unique_script(bridge_job, BIG_OUTPUT),
        jobproperties=json.dumps({"followLogs": False}),  # 13 MiB need not go through stdout too
    )
    object_name = f"{bridge_job.name}/logs"
    with running(bridge_job) as run:
        wait_until(lambda: held.hits > 0, "the first part of the log upload to be held", timeout=120)
        # SIGTERM cuts the part in flight, and raypod aborts the upload (the cut itself:
        # tests/loopback/test_sigterm_cuts_calls_in_flight.py::test_sigterm_cuts_an_s3_part_upload_in_flight).
        code, stdout, stderr, _ = terminate(run, record_property, "with a multipart log upload in flight")

    assert code == 143, stdout + stderr
    assert "Traceback" not in stderr
    status = bridge_job.read_status()
    submission_id = status["id"]
    # No final status: the next pod re-attaches, uploads the log and writes it.
    assert status.get("status.jobStatus") not in FINAL, status
    assert not [seen for seen in transitions(stdout) if seen in FINAL], transitions(stdout)
    assert ray_job(bridge_job.services, submission_id)["status"] == "SUCCEEDED"
    assert s3_proxy.recorded("DELETE", r"[?&]uploadId="), "the multipart upload was not aborted"
    assert s3_proxy.recorded("POST", r"[?&]uploadId=") == []  # never completed
    assert open_uploads(bridge_job.services, bridge_job.bucket, object_name) == []

    s3_proxy.clear_rules()
    result = bridge_job.run(timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "attached to existing Ray job" in result.stdout
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    assert result.status["status.message"].endswith(f"log uploaded to s3://{bridge_job.bucket}/{object_name}.")
    log = bridge_job.log_text()
    assert len(log) >= 13 * MiB and log.endswith("done\n"), len(log)
    assert open_uploads(bridge_job.services, bridge_job.bucket, object_name) == []
    assert [job["submission_id"] for job in jobs_of(bridge_job.services, bridge_job.name)] == [submission_id]


# -- 6. the final status write (Kubernetes mode) -------------------------------------------------------------


def test_sigterm_while_the_final_status_write_is_retried_leaves_it_to_the_next_pod(
    tmp_path: Path, services: Services, fake_kube: FakeKube, ray_proxy: Proxy, record_property: Record
) -> None:
    kube_job = KubeJob(BridgeJob(tmp_path, services, kube=fake_kube))
    release = tmp_path / "release"
    kube_job.create(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=unique_script(kube_job.job, waiting_script(release)),
    )
    try:
        with running(kube_job.job) as run:
            submission_id = kube_job.wait_for("status.jobStatus", "RUNNING", timeout=60)["id"]
            fake_kube.fail("patch", 503, None)
            release.touch()
            assert wait_for_ray_status(services, submission_id, {"SUCCEEDED"}, timeout=60) == "SUCCEEDED"
            # Nothing changes between RUNNING and the end: the first refused patch is the final status.
            wait_until(lambda: any(r.status == 503 for r in fake_kube.calls("PATCH")), "the final write", timeout=60)
            run.wait_for("uploaded")
            code, stdout, stderr, _ = terminate(run, record_property, "while the final status write is retried")
    finally:
        release.touch()

    assert "Traceback" not in stderr
    assert kube_job.data()["status.jobStatus"] == "RUNNING"  # unwritten: the next pod writes the end
    assert ray_proxy.recorded("POST", rf"^/api/jobs/{submission_id}/stop$") == []

    fake_kube.clear_faults()
    again = kube_job.job.run(timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "attached to existing Ray job" in again.stdout
    assert kube_job.data()["status.jobStatus"] == "SUCCEEDED"
    assert len(jobs_of(services, kube_job.job.name)) == 1
    # SIGTERM cut the retried write: the pod leaves as after any SIGTERM (the operator's pod: 0), never
    # as a pod whose final write failed (1, a pod error), since the next pod writes the end.
    assert code == 0, stdout + stderr
    assert "could not write the final status" not in stderr
