"""Faults between raypod and the real Ray dashboard / S3 server, injected by devtools.proxy.

Every job here is a real Ray job. Jobs that must stay running while a fault is injected wait
for a release file the test creates, so no test depends on how fast the machine is.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.proxy import (
    S3_COMPLETE_MULTIPART,
    S3_CREATE_MULTIPART,
    S3_UPLOAD_PART,
    Proxy,
    Rule,
    s3_error,
    s3_target,
)
from devtools.services import free_port
from tests.support.helpers import (
    BridgeJob,
    Services,
    Watched,
    jobs_of,
    put_object,
    ray_job,
    stop_ray_job,
    transitions,
    unique,
    wait_for_ray_status,
    wait_until,
    waiting_script,
)

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
    assert "terminated: nothing was submitted" in stdout
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
    # Ray's own reason (JOB_SUPERVISOR_ACTOR_START_FAILURE), not an application failure.
    assert result.status["status.reason"] == "SupervisorStartFailed"
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


# -- the dashboard at start-up and the POST ------------------------------------------------------------
VERSION = r"^/api/version$"


def test_5xx_from_the_dashboard_at_start_is_waited_for_and_the_job_submitted_once(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    broken = ray_proxy.fail("GET", VERSION, times=3, status=503, body=b"upstream connect error")
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('late')\n")
    result = bridge_job.run("--connect-timeout", "60")
    assert result.returncode == 0, result.stderr
    assert broken.hits == 3
    assert "retrying" in result.stderr
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1


def test_5xx_from_the_dashboard_until_the_connect_timeout_is_bad_input_and_submits_nothing(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    broken = ray_proxy.fail("GET", VERSION, status=502, body=b"Bad Gateway")
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('no')\n")
    result = bridge_job.run("--connect-timeout", "2")
    assert result.returncode == 2, result.stderr
    assert broken.hits >= 2  # retried, not given up at the first 5xx
    assert result.status["status.jobStatus"] == "FAILED"
    message = result.status["status.message"]
    assert message.startswith("Bad input: resourceURL: cannot reach the Ray dashboard: "), message
    assert "HTTP 502" in message
    assert "id" not in result.status
    assert ray_proxy.recorded("POST") == [] and ray_proxy.recorded("PUT") == []


def test_a_post_failing_until_the_connect_timeout_ends_unknown_lost_track(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    """Ray may have taken any of the POSTs whose answer was a 503: neither FAILED nor "not submitted"."""
    refused = ray_proxy.fail("POST", JOBS, status=503, body=b"Service Unavailable")
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('no')\n")
    result = bridge_job.run("--connect-timeout", "3")
    assert result.returncode == 1, result.stderr
    assert refused.hits >= 2, "the POST was not retried"
    # Before each new POST, raypod asked whether the last one had reached Ray.
    assert len(ray_proxy.recorded("GET", ONE_JOB)) >= refused.hits
    status = result.status
    submission_id = status["id"]
    assert status["status.jobStatus"] == "UNKNOWN"
    assert status["status.message"].startswith(f"Lost track of Ray job {submission_id}: "), status["status.message"]
    assert "HTTP 503" in status["status.message"]
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_rays_own_4xx_answer_to_the_post_fails_with_rays_reason_without_a_retry(
    bridge_job: BridgeJob, ray_proxy: Proxy, tmp_path: Path
) -> None:
    """Headers copied from a browser session (for an auth proxy) make Ray's head refuse every POST
    as browser traffic: a 405 with Ray's own text, answered by the real head through the proxy."""
    (bridge_job.credentials_dir / "headers.json").write_text('{"Origin": "https://ray.example.com"}')
    script = tmp_path / "remote_job.py"  # a remote script: no package upload, which Ray refuses alike
    script.write_text("print('never')\n")
    bridge_job.set(resourceURL=ray_proxy.url, jobdata__scriptLocation="remote", jobdata__jobScript=str(script))
    result = bridge_job.run("--connect-timeout", "5")
    assert result.returncode == 1, result.stderr
    posts = ray_proxy.recorded("POST", JOBS)
    assert [post.action for post in posts] == ["forward"]  # one POST, answered by Ray itself
    assert result.status["status.jobStatus"] == "FAILED"
    assert result.status["status.reason"] == "SubmissionRejected"
    assert result.status["status.message"] == "Ray rejected the job: 'POST' method not allowed for browser traffic."
    assert "retrying" not in result.stderr
    assert jobs_of(bridge_job.services, bridge_job.name) == []


#: A label key Ray's job agent refuses (Ray 2.60: job_manager.submit_job -> ValueError -> the agent's
#: 400, which the dashboard's job_head.py wraps: "Request failed with status code 400: ...", HTTP 500).
BAD_LABEL_SELECTOR = {"not a label key!": "x"}


def wrapped_rejection_control(services: Services) -> str:
    """The real head's answer to such a POST, asked directly: a 500 around the agent's 400."""
    body = {"entrypoint": "true", "submission_id": unique("control"), "entrypoint_label_selector": BAD_LABEL_SELECTOR}
    answer = requests.post(f"{services.ray_address}/api/jobs/", json=body, timeout=60)
    assert answer.status_code == 500, answer.text
    assert "Request failed with status code 400" in answer.text
    return answer.text


def test_rays_job_agent_refusing_the_job_inside_a_500_is_a_rejection_without_a_retry(
    bridge_job: BridgeJob, ray_proxy: Proxy
) -> None:
    wrapped_rejection_control(bridge_job.services)
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('never')\n",
        jobproperties=json.dumps({"entrypoint_label_selector": BAD_LABEL_SELECTOR}),
    )
    result = bridge_job.run("--connect-timeout", "5")
    assert result.returncode == 1, result.stderr
    assert len(ray_proxy.recorded("POST", JOBS)) == 1
    assert ray_proxy.recorded("GET", ONE_JOB) == []  # a refusal: no look-up, as after a lost answer
    assert result.status["status.jobStatus"] == "FAILED"
    assert result.status["status.reason"] == "SubmissionRejected"
    assert result.status["status.message"].startswith("Ray rejected the job: ")
    assert "retrying" not in result.stderr
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_rays_reason_for_a_wrapped_rejection_reaches_the_status(bridge_job: BridgeJob) -> None:
    wrapped_rejection_control(bridge_job.services)
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="print('never')\n",
        jobproperties=json.dumps({"entrypoint_label_selector": BAD_LABEL_SELECTOR}),
    )
    result = bridge_job.run("--connect-timeout", "5")
    assert result.status["status.message"].startswith("Ray rejected the job: ")
    assert "Invalid label key name" in result.status["status.message"], result.status["status.message"]


# -- a pod that re-attaches -----------------------------------------------------------------------------------
def test_a_bad_value_once_the_id_is_recorded_is_set_aside_and_the_job_watched_to_its_end(
    bridge_job: BridgeJob,
) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('watched through a bad kill')\n")
    first = bridge_job.run()
    assert first.returncode == 0, first.stderr
    # As if the first pod had died while the job ran; then the operator's kill value went bad.
    recorded = {key: value for key, value in first.status.items() if key in ("id", "status.submitTime")}
    bridge_job.status_file.write_text(json.dumps({**recorded, "status.jobStatus": "RUNNING"}))
    bridge_job.set(kill="maybe")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert f"attached to existing Ray job {recorded['id']}" in result.stdout
    assert re.search(r"kill: .*\(set aside: Ray job \S+ was submitted already\)", result.stderr), result.stderr
    assert result.status["status.jobStatus"] == "SUCCEEDED"
    assert "watched through a bad kill" in bridge_job.log_text()
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1


# -- S3 while reading the inputs ---------------------------------------------------------------------------
def test_s3_briefly_failing_while_reading_inputs_is_retried(
    bridge_job: BridgeJob, s3_proxy: Proxy, s3_client: Any
) -> None:
    inputs = f"inputs-{bridge_job.name}"
    script = put_object(s3_client, inputs, "ray/code.py", "print('read through the faults')\n")
    parameters = put_object(s3_client, inputs, "ray/params.json", '{"alpha": "1"}')
    broken = s3_proxy.fail("GET", rf"^/{inputs}/ray/code\.py", times=2, status=503)
    reset = s3_proxy.reset("GET", rf"^/{inputs}/ray/params\.json", times=1)
    bridge_job.set(
        s3__endpoint=s3_proxy.endpoint,
        jobdata__scriptLocation="s3",
        jobdata__jobScript=script,
        jobdata__scriptExtraLocation="s3",
        jobdata__jobParameters=parameters,
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert (broken.hits, reset.hits) == (2, 1)
    assert re.search(rf"download of {inputs}:ray/code\.py failed \(attempt 2\).*retrying", result.stderr)
    assert re.search(rf"read of {inputs}:ray/params\.json failed \(attempt 1\).*retrying", result.stderr)
    assert "read through the faults" in bridge_job.log_text()
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1


def test_s3_refusing_an_input_fails_not_submitted_without_a_retry(
    bridge_job: BridgeJob, s3_proxy: Proxy, s3_client: Any
) -> None:
    inputs = f"inputs-{bridge_job.name}"
    script = put_object(s3_client, inputs, "ray/code.py", "print('never')\n")
    denied = s3_proxy.fail(
        "GET|HEAD", rf"^/{inputs}/ray/code\.py", status=403, body=s3_error("AccessDenied", "Access Denied.")
    )
    bridge_job.set(s3__endpoint=s3_proxy.endpoint, jobdata__scriptLocation="s3", jobdata__jobScript=script)
    result = bridge_job.run()
    assert result.returncode == 1, result.stderr
    assert denied.hits == 1
    status = result.status
    assert status["status.jobStatus"] == "FAILED"
    assert status["status.reason"] == "NotSubmitted"
    assert status["status.message"].startswith(f"Not submitted: download of {inputs}:ray/code.py failed: ")
    assert "AccessDenied" in status["status.message"]
    assert "id" not in status
    assert jobs_of(bridge_job.services, bridge_job.name) == []


# -- the log's multipart upload under faults ---------------------------------------------------------------
MULTIPART_LINES = 120_000  # 100 bytes each: 12 MB, so three parts of S3's 5 MiB (the last one short)
MULTIPART_JOB = f"""\
import sys
for start in range(0, {MULTIPART_LINES}, 10000):
    sys.stdout.write("".join(f"line {{i:010d}} " + "x" * 83 + "\\n" for i in range(start, start + 10000)))
sys.stdout.flush()
"""


def rays_own_log(services: Services, submission_id: str) -> bytes:
    """The driver log as the head serves it, read straight from it (not through a proxy)."""
    node_id = ray_job(services, submission_id)["driver_node_id"]
    answer = requests.get(
        f"{services.ray_address}/api/v0/logs/file",
        params={"submission_id": submission_id, "node_id": node_id, "lines": "-1"},
        timeout=60,
    )
    answer.raise_for_status()
    return answer.content


def test_a_multipart_log_upload_failing_at_each_step_is_retried_whole_and_lands_intact(
    bridge_job: BridgeJob, ray_proxy: Proxy, s3_proxy: Proxy, s3_client: Any
) -> None:
    key = f"{bridge_job.name}/logs"
    opening = s3_proxy.fail("POST", s3_target(S3_CREATE_MULTIPART, key), times=1, status=503)
    second_part = s3_proxy.reset("PUT", s3_target(S3_UPLOAD_PART, key, part=2), times=1)
    completing = s3_proxy.fail(
        "POST", s3_target(S3_COMPLETE_MULTIPART, key), times=1, status=500, body=s3_error("InternalError", "injected")
    )
    bridge_job.set(
        resourceURL=ray_proxy.url,
        s3__endpoint=s3_proxy.endpoint,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=MULTIPART_JOB,
        jobproperties='{"followLogs": false}',
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert (opening.hits, second_part.hits, completing.hits) == (1, 1, 1)
    assert result.status["status.message"].endswith(f"log uploaded to s3://{bridge_job.bucket}/{key}.")
    # Each attempt read the log from Ray anew: the three failed ones and the last.
    assert len(ray_proxy.recorded("GET", r"^/api/v0/logs/file")) == 4
    assert len(s3_proxy.recorded("PUT", s3_target(S3_UPLOAD_PART, key))) == 2 + 3 + 3
    # The two attempts that had opened an upload aborted it; none is left open.
    assert len(s3_proxy.recorded("DELETE", rf"/{re.escape(key)}\?uploadId=")) == 2
    assert list(s3_client._list_multipart_uploads(bridge_job.bucket, prefix=key).uploads) == []

    response = s3_client.get_object(bridge_job.bucket, key)
    try:
        uploaded = bytes(response.read())
    finally:
        response.close()
        response.release_conn()
    assert len(uploaded) > 10 * 1024 * 1024
    own = rays_own_log(bridge_job.services, result.status["id"])
    assert hashlib.sha256(uploaded).hexdigest() == hashlib.sha256(own).hexdigest()
    first = uploaded.find(b"line 0000000000 ")
    assert 0 <= first < 4096, "only Ray's few start-up lines may come before the job's output"
    expected = b"".join(f"line {i:010d} ".encode() + b"x" * 83 + b"\n" for i in range(MULTIPART_LINES))
    assert hashlib.sha256(uploaded[first:]).hexdigest() == hashlib.sha256(expected).hexdigest()


# -- SIGINT -------------------------------------------------------------------------------------------------
def test_sigint_while_the_job_runs_exits_130_and_leaves_the_job_running(bridge_job: BridgeJob, tmp_path: Path) -> None:
    release = tmp_path / "release"
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript=waiting_script(release))
    run = Watched(bridge_job.start())
    submission_id = ""
    try:
        submission_id = bridge_job.wait_for_status("RUNNING")["id"]
        run.process.send_signal(signal.SIGINT)
        code, stdout, stderr = run.finish(timeout=25)
        assert code == 130, stderr  # Ctrl-C, as shells and CI read it (SIGTERM keeps 143)
        assert "received SIGINT" in stderr
        assert "Traceback" not in stderr
        assert "keeps running" in stdout
        assert bridge_job.read_status()["status.jobStatus"] == "RUNNING"
        assert ray_job(bridge_job.services, submission_id)["status"] == "RUNNING"
    finally:
        release.touch()
        if submission_id:
            stop_ray_job(bridge_job.services, submission_id)
