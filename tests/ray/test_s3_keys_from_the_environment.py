"""S3 keys from ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``: the command
line uploads with them (moto's S3 behind a recording proxy shows the key and token sent), never
prints them, and the pod's ``run`` never takes them. The real command line on the real Ray head."""

from __future__ import annotations

import subprocess

from devtools.proxy import Proxy, s3_error
from tests.support.cli import raypod
from tests.support.helpers import BridgeJob, jobs_of

ACCESS_KEY = "AKIAENVMARKER0123456"
SECRET_KEY = "env-secret-MARKER-b7Hc2kQ9vXw4"
SESSION_TOKEN = "env-session-MARKER-FwoGZXIvYXdzEJr"
AWS_ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": SESSION_TOKEN}


def submit_wait(job: BridgeJob) -> subprocess.CompletedProcess[str]:
    """``submit --config --wait -v`` with no ``--s3-credentials`` (and no /s3credentials here)."""
    job.write_config()
    return raypod(
        "submit", "--config", str(job.config_dir), "--job-name", job.name,
        "--credentials", str(job.credentials_dir), "--wait", "-v",
        env=AWS_ENV,
    )  # fmt: skip


def assert_keys_not_shown(completed: subprocess.CompletedProcess[str]) -> None:
    for where, text in (("stdout", completed.stdout), ("stderr", completed.stderr)):
        for secret in (SECRET_KEY, SESSION_TOKEN, "MARKER-b7Hc", "MARKER-FwoG"):
            assert secret not in text, f"a secret leaked into {where}"


def test_submit_uploads_the_log_with_the_keys_of_the_environment(bridge_job: BridgeJob, s3_proxy: Proxy) -> None:
    bridge_job.set(
        s3__endpoint=s3_proxy.endpoint, jobdata__scriptLocation="inline", jobdata__jobScript="print('hello from env')\n"
    )
    completed = submit_wait(bridge_job)
    assert completed.returncode == 0, completed.stderr
    assert "hello from env" in bridge_job.log_text()
    uploads = s3_proxy.recorded("PUT", rf"/{bridge_job.bucket}/{bridge_job.name}/logs")
    assert uploads, [(r.method, r.path) for r in s3_proxy.recorded()]
    for request in uploads:
        assert f"Credential={ACCESS_KEY}/" in request.headers["authorization"]
        assert request.headers["x-amz-security-token"] == SESSION_TOKEN
    assert_keys_not_shown(completed)


def test_no_key_of_the_environment_in_the_messages_when_s3_refuses_the_log(
    bridge_job: BridgeJob, s3_proxy: Proxy
) -> None:
    # Like a hostile or careless server, the refusal echoes what it was given.
    body = s3_error("SignatureDoesNotMatch", f"secret {SECRET_KEY} token {SESSION_TOKEN}")
    s3_proxy.fail("PUT", r"/logs$", status=403, body=body)
    bridge_job.set(s3__endpoint=s3_proxy.endpoint, jobdata__scriptLocation="inline", jobdata__jobScript="print(1)\n")
    completed = submit_wait(bridge_job)
    assert "SignatureDoesNotMatch" in completed.stderr, completed.stderr
    assert "secret *** token ***" in completed.stderr, completed.stderr  # the echo shown, each key masked
    assert s3_proxy.recorded("PUT", r"/logs$")
    assert_keys_not_shown(completed)


def test_run_the_pod_never_takes_s3_keys_from_its_environment(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print(1)\n")
    bridge_job.write_config()
    command = bridge_job.command()
    at = command.index("--s3-credentials")
    del command[at : at + 2]  # the default, /s3credentials: no secret is mounted here
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=bridge_job.env(**AWS_ENV))
    assert completed.returncode == 2, completed.stdout + completed.stderr
    status = bridge_job.read_status()
    assert status["status.jobStatus"] == "FAILED"
    assert "s3.secret" in status["status.message"] and "/s3credentials" in status["status.message"]
    assert jobs_of(bridge_job.services, bridge_job.name) == []
    assert_keys_not_shown(completed)
