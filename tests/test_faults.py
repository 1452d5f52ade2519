"""Faults between raypod and the real Ray dashboard / S3 server, injected by devtools.proxy.

Every job here is a real Ray job. Jobs that must stay running while a fault is injected wait
for a release file the test creates, so no test depends on how fast the machine is.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from pathlib import Path

import pytest

from devtools.proxy import Proxy, Rule, s3_error
from devtools.services import free_port
from raypod.errors import RayApiError, S3Error, Terminated
from raypod.retry import RetryPolicy
from tests.helpers import (
    BridgeJob,
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

pytestmark = pytest.mark.integration

JOBS = r"^/api/jobs/$"
ONE_JOB = r"^/api/jobs/[^/?]+$"


def start_waiting_job(bridge_job: BridgeJob, proxy: Proxy, tmp_path: Path, *extra: str) -> tuple[Watched, Path]:
    """raypod running a job, through the proxy, that waits until the returned file exists."""
    release = tmp_path / "release"
    bridge_job.set(resourceURL=proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript=waiting_script(release))
    return Watched(bridge_job.start(*extra)), release


def test_lost_answer_to_the_submission_leaves_exactly_one_job(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    lost = ray_proxy.drop_response("POST", JOBS, times=1)
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('once')\n")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert lost.hits == 1
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    # Ray got the POST whose answer was lost; raypod looked the id up instead of posting again.
    assert [job["submission_id"] for job in jobs_of(bridge_job.services, bridge_job.name)] == [result.status["id"]]
    assert len(ray_proxy.recorded("POST", JOBS)) == 1
    assert "answer was lost" in result.stderr


def test_a_second_post_answered_already_exists_attaches_to_the_first(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    """The answer is lost and so is the look-up: the retried POST meets Ray's "already exists"."""
    ray_proxy.drop_response("POST", JOBS, times=1)
    lookup = ray_proxy.fail("GET", ONE_JOB, times=1, status=503)
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('one')\n")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert lookup.hits == 1
    assert len(ray_proxy.recorded("POST", JOBS)) == 2
    assert "the earlier POST went through" in result.stderr
    assert [job["submission_id"] for job in jobs_of(bridge_job.services, bridge_job.name)] == [result.status["id"]]


def test_refused_and_overloaded_submission_is_retried_and_submitted_once(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    busy = ray_proxy.fail("POST", JOBS, times=1, status=429)
    broken = ray_proxy.fail("POST", JOBS, times=1, status=503)
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('ok')\n")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert (busy.hits, broken.hits) == (1, 1)
    assert len(ray_proxy.recorded("POST", JOBS)) == 3
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1


def test_other_4xx_from_ray_is_not_retried_and_fails_with_rays_reason(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    ray_proxy.fail("POST", JOBS, status=400, body=b"Traceback (most recent call last):\nValueError: no such thing\n")
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('x')\n")
    result = bridge_job.run()
    assert result.returncode == 1, result.stderr
    assert result.status["status.jobStatus"] == "FAILED"
    assert "Ray rejected the job: ValueError: no such thing" in result.status["status.message"]
    assert len(ray_proxy.recorded("POST", JOBS)) == 1
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_dashboard_down_at_start_is_waited_for_and_the_job_submitted_once(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    ray_proxy.down()
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('late')\n")
    run = Watched(bridge_job.start("--connect-timeout", "120"))
    try:
        run.wait_for("retrying")
    finally:
        ray_proxy.up()
        code, _, stderr = run.finish()
    assert code == 0, stderr
    assert bridge_job.read_status()["status.jobStatus"] == "SUCCEEDED"
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1


def test_503s_and_resets_while_the_job_runs_never_report_it_failed(
    bridge_job: BridgeJob, ray_proxy: Proxy, tmp_path: Path
) -> None:
    run, release = start_waiting_job(bridge_job, ray_proxy, tmp_path)
    try:
        bridge_job.wait_for_status("RUNNING")
        burst = ray_proxy.fail("GET", ONE_JOB, times=6)
        resets = ray_proxy.add(Rule("reset", "GET", ONE_JOB, times=4))
        wait_until(lambda: burst.times == 0 and resets.times == 0, "the faults to be consumed by status polls")
    finally:
        release.touch()
        code, stdout, stderr = run.finish()
    assert code == 0, stderr
    seen = transitions(stdout)
    assert seen[-1] == "SUCCEEDED"
    assert "FAILED" not in seen and "UNKNOWN" not in seen, seen
    assert "keeping the last status" in stderr
    assert "released" in bridge_job.log_text()


def test_no_answer_for_the_status_window_ends_unknown_and_leaves_the_job_alone(
    bridge_job: BridgeJob, ray_proxy: Proxy, tmp_path: Path
) -> None:
    run, release = start_waiting_job(bridge_job, ray_proxy, tmp_path, "--status-timeout", "2")
    submission_id = ""
    try:
        submission_id = bridge_job.wait_for_status("RUNNING")["id"]
        ray_proxy.down()
        code, stdout, stderr = run.finish()
        assert code == 1, stderr
        status = bridge_job.read_status()
        assert status["status.jobStatus"] == "UNKNOWN"
        assert status["status.message"].startswith("No answer from the Ray dashboard for ")
        assert "FAILED" not in transitions(stdout)
        # raypod did not stop the job: it is still running on Ray.
        assert ray_job(bridge_job.services, submission_id)["status"] == "RUNNING"
    finally:
        release.touch()
        if submission_id:
            stop_ray_job(bridge_job.services, submission_id)


def test_sigterm_during_an_outage_exits_143_and_the_next_run_finishes_the_job(
    bridge_job: BridgeJob, ray_proxy: Proxy, tmp_path: Path
) -> None:
    """test_run.py covers a plain SIGTERM; here the dashboard is also unreachable when it comes."""
    run, release = start_waiting_job(bridge_job, ray_proxy, tmp_path)
    try:
        submission_id = bridge_job.wait_for_status("RUNNING")["id"]
        ray_proxy.down()
        run.wait_for("keeping the last status")
        run.process.send_signal(signal.SIGTERM)
    finally:
        # Well inside Kubernetes' 30 s grace period.
        code, stdout, _ = run.finish(timeout=25)
    assert code == 143
    assert bridge_job.read_status()["status.jobStatus"] == "RUNNING"
    assert "keeps running" in stdout
    assert ray_job(bridge_job.services, submission_id)["status"] == "RUNNING"

    ray_proxy.up()
    release.touch()
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert result.status["id"] == submission_id
    assert "attached to existing Ray job" in result.stdout
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1


def test_sigterm_while_a_status_poll_hangs_exits_within_the_grace_period(
    bridge_job: BridgeJob, ray_proxy: Proxy, tmp_path: Path
) -> None:
    run, release = start_waiting_job(bridge_job, ray_proxy, tmp_path)
    submission_id = ""
    try:
        submission_id = bridge_job.wait_for_status("RUNNING")["id"]
        hang = ray_proxy.delay("GET", ONE_JOB, seconds=3600)
        wait_until(lambda: hang.hits > 0, "a status poll to hang")
        run.process.send_signal(signal.SIGTERM)
        # Kubernetes kills the pod 30 s after SIGTERM: the hung poll must not hold raypod that long.
        code, _, _ = run.finish(timeout=30)
        assert code == 143
        assert bridge_job.read_status()["status.jobStatus"] == "RUNNING"
    finally:
        release.touch()
        if submission_id:
            stop_ray_job(bridge_job.services, submission_id)


def test_sigterm_while_the_dashboard_is_down_at_start_exits_promptly(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    ray_proxy.down()
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('x')\n")
    run = Watched(bridge_job.start("--connect-timeout", "300"))
    try:
        run.wait_for("retrying")
        run.process.send_signal(signal.SIGTERM)
    finally:
        code, stdout, _ = run.finish(timeout=25)
    assert code == 143
    assert "terminating" in stdout
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_s3_briefly_failing_during_the_log_upload_is_retried(bridge_job: BridgeJob, s3_proxy: Proxy) -> None:
    refused = s3_proxy.fail("PUT", r"/logs$", times=2, status=503)
    reset = s3_proxy.reset("PUT", r"/logs$", times=1)
    bridge_job.set(
        s3__endpoint=s3_proxy.endpoint, jobdata__scriptLocation="inline", jobdata__jobScript="print('kept')\n"
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert (refused.hits, reset.hits) == (2, 1)
    assert result.status["status.message"].endswith(f"log uploaded to s3://{bridge_job.bucket}/{bridge_job.name}/logs.")
    assert "kept" in bridge_job.log_text()


def test_s3_refusing_the_log_keeps_rays_status_and_says_why(bridge_job: BridgeJob, s3_proxy: Proxy) -> None:
    denied = s3_proxy.fail("PUT", r"/logs$", status=403, body=s3_error("AccessDenied", "Access Denied."))
    bridge_job.set(
        s3__endpoint=s3_proxy.endpoint, jobdata__scriptLocation="inline", jobdata__jobScript="print('lost')\n"
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert denied.hits == 1  # a refusal is not retried
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    message = result.status["status.message"]
    assert "the log could not be uploaded" in message and "AccessDenied" in message, message


def test_unreachable_resource_url_fails_after_a_bounded_wait_naming_it(bridge_job: BridgeJob) -> None:
    bridge_job.set(
        resourceURL=f"http://127.0.0.1:{free_port()}", jobdata__scriptLocation="inline", jobdata__jobScript="print()\n"
    )
    result = bridge_job.run("--connect-timeout", "2")
    assert result.returncode == 2
    assert result.status["status.jobStatus"] == "FAILED"
    assert "resourceURL" in result.status["status.message"]
    assert "cannot reach the Ray dashboard" in result.status["status.message"]
    assert "retrying" in result.stderr


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ('{"runtime_env": {"conda": 5}}', "runtime_env['conda'] must be of type str or dict"),
        ('{"entrypoint_resources": {"CPU": 1}}', "num_cpus"),
    ],
    ids=["bad-runtime-env", "cpu-as-custom-resource"],
)
def test_ray_refusing_the_job_exits_1_with_rays_reason(bridge_job: BridgeJob, properties: str, reason: str) -> None:
    bridge_job.set(jobproperties=properties, jobdata__scriptLocation="inline", jobdata__jobScript="print('no')\n")
    result = bridge_job.run()
    assert result.returncode == 1, result.stderr
    assert result.status["status.jobStatus"] == "FAILED"
    assert reason in result.status["status.message"], result.status["status.message"]
    assert wait_for_ray_status(bridge_job.services, result.status["id"], {"FAILED"}) == "FAILED"


def test_a_known_job_that_ray_answers_404_for_ends_unknown(bridge_job: BridgeJob) -> None:
    """A head restarted without fault tolerance forgets its jobs: say so, submit nothing new."""
    bridge_job.status_file.write_text(json.dumps({"id": "raypod-forgotten-1", "status.jobStatus": "RUNNING"}))
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('never')\n")
    result = bridge_job.run()
    assert result.returncode == 1, result.stderr
    assert result.status["status.jobStatus"] == "UNKNOWN"
    assert "Ray no longer knows job raypod-forgotten-1" in result.status["status.message"]
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_a_persisted_id_ray_never_accepted_is_submitted_with_that_id(bridge_job: BridgeJob) -> None:
    """The pod died between persisting the id and its POST: the next one submits under that id."""
    submission_id = f"raypod-{bridge_job.name}-persisted"
    bridge_job.status_file.write_text(json.dumps({"id": submission_id}))
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('now')\n")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert [job["submission_id"] for job in jobs_of(bridge_job.services, bridge_job.name)] == [submission_id]


def test_ray_forgetting_a_running_job_ends_unknown(bridge_job: BridgeJob, ray_proxy: Proxy, tmp_path: Path) -> None:
    run, release = start_waiting_job(bridge_job, ray_proxy, tmp_path)
    submission_id = ""
    try:
        submission_id = bridge_job.wait_for_status("RUNNING")["id"]
        ray_proxy.fail("GET", ONE_JOB, status=404, body=b"Job does not exist")
        code, stdout, _ = run.finish()
    finally:
        release.touch()
        if submission_id:
            stop_ray_job(bridge_job.services, submission_id)
    assert code == 1
    assert bridge_job.read_status()["status.jobStatus"] == "UNKNOWN"
    assert "FAILED" not in transitions(stdout)


def test_log_stream_reset_during_the_upload_is_reopened(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    cut = ray_proxy.reset("GET", r"^/api/v0/logs/file", times=2)
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('whole log')\n",
        jobproperties='{"followLogs": false}',
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert cut.hits == 2
    assert "log uploaded to" in result.status["status.message"]
    assert "whole log" in bridge_job.log_text()


def test_log_stream_cut_mid_upload_is_uploaded_again_whole_and_once(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    cut = ray_proxy.truncate("GET", r"^/api/v0/logs/file", after=2000)
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript="for i in range(2000):\n    print('line', i)\n",
        jobproperties='{"followLogs": false}',
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert cut.hits == 1
    assert re.search(r"log upload to \S+ failed \(attempt 1\).*retrying", result.stderr), result.stderr
    assert "log uploaded to" in result.status["status.message"]
    lines = [line for line in bridge_job.log_text().splitlines() if line.startswith("line ")]
    assert lines == [f"line {i}" for i in range(2000)]


# -- the retry policy itself (no services needed) ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "calls"), [(None, 3), (500, 3), (503, 3), (429, 3), (400, 1), (401, 1), (403, 1), (404, 1), (409, 1)]
)
def test_retry_policy_retries_no_answer_5xx_and_429_only(status: int | None, calls: int) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001)
    made: list[int] = []

    def call() -> None:
        made.append(1)
        raise RayApiError("GET", "http://ray", status, "injected")

    with pytest.raises(RayApiError):
        policy.call(call, "a call")
    assert len(made) == calls


def test_sigterm_ends_a_wait_between_retries_at_once() -> None:
    event = threading.Event()
    event.set()
    policy = RetryPolicy(attempts=5, initial_wait=600, max_wait=600).interruptible(event)
    made: list[int] = []

    def call() -> None:
        made.append(1)
        raise RayApiError("GET", "http://ray", 503, "injected")

    with pytest.raises(Terminated):
        policy.call(call, "a call")
    assert made == [1]


def test_a_certificate_failure_is_not_retried_although_it_has_no_status() -> None:
    assert not RayApiError("GET", "https://ray", None, "TLS verification failed", retryable=False).transient
    assert RayApiError("GET", "https://ray", None, "Connection reset").transient


@pytest.mark.parametrize(("status", "transient"), [(403, False), (404, False), (429, True), (502, True)])
def test_a_non_xml_s3_answer_is_retried_by_its_status(status: int, transient: bool) -> None:
    from minio.error import InvalidResponseError

    from raypod.s3 import _translate

    error = _translate(InvalidResponseError(status, "text/html", "<html>proxy</html>"), "upload", None)
    assert isinstance(error, S3Error) and error.transient is transient


def test_the_live_log_stops_at_once_behind_a_proxy_that_closes_connections(
    services: Services, ray_proxy: Proxy, tmp_path: Path
) -> None:
    """After "Connection: close" the socket belongs to the response; abort_stream must still find it."""
    from raypod.http import abort_stream
    from raypod.ray import RayJobsClient

    release = tmp_path / "release"
    client = RayJobsClient.connect(ray_proxy.url)
    script = waiting_script(release).replace("'", '"')
    submission_id = client.submit_job({"entrypoint": f"python -c '{script}'"})
    try:
        wait_until(lambda: client.get_job(submission_id).status == "RUNNING", "the job to run")
        job = client.get_job(submission_id)
        response = client.open_log_stream(submission_id, job.driver_node_id, follow=True, read_timeout=None)
        ended = threading.Event()

        def read() -> None:
            try:
                for _ in client.http.iter_chunks(response, None):
                    pass
            except RayApiError:
                pass  # the aborted stream
            ended.set()

        threading.Thread(target=read, daemon=True).start()
        abort_stream(response)
        assert ended.wait(10), "the reader was not woken"
    finally:
        release.touch()
        client.stop_job(submission_id)
        client.close()


def test_re_attaching_while_the_dashboard_is_down_watches_through_the_outage(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    """A new pod finds an id Ray had confirmed and no dashboard: it waits, it does not write FAILED."""
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('first')\n")
    first = bridge_job.run()
    assert first.returncode == 0, first.stderr
    # As if the first pod had died while the job ran: RUNNING recorded, no final status yet.
    recorded = {key: value for key, value in first.status.items() if key in ("id", "status.submitTime")}
    bridge_job.status_file.write_text(json.dumps({**recorded, "status.jobStatus": "RUNNING"}))
    ray_proxy.down()
    run = Watched(bridge_job.start("--connect-timeout", "1"))
    try:
        run.wait_for("cannot re-attach to")
    finally:
        ray_proxy.up()
        code, stdout, stderr = run.finish()
    assert code == 0, stderr
    assert "FAILED" not in transitions(stdout)
    assert bridge_job.read_status()["status.jobStatus"] == "SUCCEEDED"
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1
