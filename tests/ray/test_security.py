"""Secrets stay secret, https is verified, and Ray token / basic auth work against real servers.

Marker secrets are planted in every credential file, and every output is searched for them:
stdout, stderr, the status file, the Ray job as the dashboard reports it, and the uploaded log
(the job prints its own environment and argv into it). Failure paths are covered too, since
error messages are where secrets leak most easily.
"""

from __future__ import annotations

import base64
import io
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from devtools.proxy import Proxy, s3_error
from devtools.services import LocalRay
from tests.support.helpers import RAY_AUTH_TOKEN, BridgeJob, RunResult, Services, jobs_of
from tests.support.ray_auth import PROXY_BASIC, PROXY_PASSWORD, proxy_owning_authorization

RAY_TOKEN = RAY_AUTH_TOKEN
ACCESS_KEY = "AKIAMARKERACCESSKEY7"
SECRET_KEY = "s3-secret-MARKER-wJalrXUtnFEMI-K7MDENG"
USERNAME = "user-MARKER-basic-3d1f"
PASSWORD = "password-MARKER-basic-9e8d"
MARKERS = (RAY_TOKEN, ACCESS_KEY, SECRET_KEY, USERNAME, PASSWORD)

#: The job shows raypod everything it was given, so the log proves what reached it.
PRINT_EVERYTHING = "import os, sys\nprint('ARGV', sys.argv)\nprint('ENV', dict(os.environ))\n"


def plant_markers(job: BridgeJob, *, token: bool = True) -> None:
    """Marker values in every secret file (the S3 server here accepts any keys)."""
    (job.credentials_dir / "username").write_text(USERNAME + "\n")
    (job.credentials_dir / "password").write_text(PASSWORD + "\n")
    if token:
        (job.credentials_dir / "token").write_text(RAY_TOKEN + "\n")
    (job.s3_credentials_dir / "accesskey").write_text(ACCESS_KEY + "\n")
    (job.s3_credentials_dir / "secretkey").write_text(SECRET_KEY + "\n")


def assert_no_secret_in(texts: dict[str, str]) -> None:
    for where, text in texts.items():
        for marker in MARKERS:
            assert marker not in text, f"a secret ({marker[:12]}...) leaked into {where}"


def outputs(job: BridgeJob, result: RunResult) -> dict[str, str]:
    return {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "status file": job.status_file.read_text() if job.status_file.exists() else "",
    }


def ray_job_json(address: str, submission_id: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{address}/api/jobs/{submission_id}", headers=headers, timeout=30)
    response.raise_for_status()
    return response.text


# -- no secret in any output ---------------------------------------------------------------


def test_no_secret_reaches_any_output_of_a_successful_run(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    plant_markers(bridge_job)
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=PRINT_EVERYTHING,
        jobdata__jobParameters='{"p": "v"}',
        jobdata__scriptMetadata='{"env": {"MODE": "test"}}',
    )
    result = bridge_job.run("-v")
    assert result.returncode == 0, result.stderr
    log = bridge_job.log_text()
    assert "ARGV" in log and "MODE" in log
    assert_no_secret_in(
        {
            **outputs(bridge_job, result),
            "Ray job (entrypoint, metadata, runtime_env)": ray_job_json(
                bridge_job.services.ray_address, result.status["id"]
            ),
            "uploaded log (the job's argv and environment)": log,
        }
    )
    # The resource secret's username/password are placeholders by default: never sent.
    assert ray_proxy.recorded()
    assert not [r for r in ray_proxy.recorded() if r.headers.get("authorization", "").startswith("Basic")]


def test_no_secret_in_the_messages_when_s3_refuses_the_inputs(
    bridge_job: BridgeJob, s3_proxy: Proxy, s3_client: Any
) -> None:
    plant_markers(bridge_job)
    inputs = f"inputs-{bridge_job.name}"
    s3_client.make_bucket(inputs)
    s3_client.put_object(inputs, "code.py", io.BytesIO(b"print()\n"), 8)
    # Like AWS, the refusal echoes the access key it was given.
    s3_proxy.fail("GET", r"/code\.py", status=403, body=s3_error("InvalidAccessKeyId", f"Unknown key {ACCESS_KEY}"))
    bridge_job.set(s3__endpoint=s3_proxy.endpoint, jobdata__scriptLocation="s3", jobdata__jobScript=f"{inputs}:code.py")
    result = bridge_job.run("-v")
    assert result.returncode == 1, result.stderr
    assert result.status["status.jobStatus"] == "FAILED"
    assert "InvalidAccessKeyId" in result.status["status.message"]
    assert_no_secret_in(outputs(bridge_job, result))
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_no_secret_in_the_messages_when_s3_refuses_the_log(bridge_job: BridgeJob, s3_proxy: Proxy) -> None:
    plant_markers(bridge_job)
    s3_proxy.fail("PUT", r"/logs$", status=403, body=s3_error("SignatureDoesNotMatch", f"secret {SECRET_KEY}"))
    bridge_job.set(s3__endpoint=s3_proxy.endpoint, jobdata__scriptLocation="inline", jobdata__jobScript="print(1)\n")
    result = bridge_job.run("-v")
    assert result.returncode == 0, result.stderr
    assert "the log could not be uploaded" in result.status["status.message"]
    assert_no_secret_in(outputs(bridge_job, result))


def test_no_secret_in_the_messages_when_basic_auth_is_refused(bridge_job: BridgeJob, ray_proxy: Proxy) -> None:
    plant_markers(bridge_job, token=False)
    ray_proxy.require_basic("someone-else", "other-password")
    bridge_job.set(resourceURL=ray_proxy.url, jobproperties='{"auth": "basic"}', jobdata__jobScript="/x.py")
    result = bridge_job.run("-v")
    assert result.returncode == 2, result.stderr
    assert "HTTP 401" in result.status["status.message"]
    assert_no_secret_in(outputs(bridge_job, result))


# -- Ray token auth (a real head with RAY_AUTH_MODE=token) ---------------------------------


def test_token_auth_succeeds_with_the_token_file(bridge_job: BridgeJob, token_ray: LocalRay) -> None:
    with Proxy("127.0.0.1", token_ray.port) as proxy:
        plant_markers(bridge_job)
        # Not PRINT_EVERYTHING: this head's own environment holds RAY_AUTH_TOKEN, which its jobs inherit.
        bridge_job.set(resourceURL=proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('argv')\n")
        result = bridge_job.run()
        assert result.returncode == 0, result.stderr
        assert {r.headers.get("authorization") for r in proxy.recorded()} == {f"Bearer {RAY_TOKEN}"}
    assert_no_secret_in(
        {
            **outputs(bridge_job, result),
            "Ray job": ray_job_json(token_ray.address, result.status["id"], RAY_TOKEN),
            "uploaded log": bridge_job.log_text(),
        }
    )


@pytest.mark.parametrize(("token", "status"), [(None, 401), ("wrong-token-MARKER", 403)], ids=["no-token", "wrong"])
def test_token_auth_without_the_right_token_exits_2_saying_to_check_it(
    bridge_job: BridgeJob, token_ray: LocalRay, token: str | None, status: int
) -> None:
    plant_markers(bridge_job, token=False)
    if token:
        (bridge_job.credentials_dir / "token").write_text(token)
    bridge_job.set(resourceURL=token_ray.address, jobdata__scriptLocation="inline", jobdata__jobScript="print()\n")
    result = bridge_job.run()
    assert result.returncode == 2, result.stderr
    message = result.status["status.message"]
    assert result.status["status.jobStatus"] == "FAILED"
    assert "resourceURL" in message and f"HTTP {status}" in message and "RAY_AUTH_TOKEN_PATH" in message, message
    assert "retrying" not in result.stderr  # a refusal is not retried
    assert_no_secret_in(outputs(bridge_job, result))
    assert not token or all(token not in text for text in outputs(bridge_job, result).values())


def test_basic_auth_behind_an_ingress_sends_username_password_and_the_token_separately(
    bridge_job: BridgeJob, token_ray: LocalRay
) -> None:
    with Proxy("127.0.0.1", token_ray.port) as proxy:
        # Ray reads Authorization before X-Ray-Authorization, so the ingress must not pass it on.
        proxy.require_basic(USERNAME, PASSWORD, strip=True)
        plant_markers(bridge_job)
        bridge_job.set(
            resourceURL=proxy.url,
            jobproperties='{"auth": "basic"}',
            jobdata__scriptLocation="inline",
            jobdata__jobScript="print('through the ingress')\n",
        )
        result = bridge_job.run()
        assert result.returncode == 0, result.stderr
        recorded = proxy.recorded()
        basic = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        assert {r.headers.get("authorization") for r in recorded} == {basic}
        # The ingress takes Authorization; Ray reads the token from X-Ray-Authorization.
        assert {r.headers.get("x-ray-authorization") for r in recorded} == {f"Bearer {RAY_TOKEN}"}
    assert "through the ingress" in bridge_job.log_text()
    assert_no_secret_in(outputs(bridge_job, result))


def test_behind_a_proxy_owning_authorization_the_pods_token_goes_in_x_ray_authorization_and_nowhere_else(
    bridge_job: BridgeJob, token_ray: LocalRay
) -> None:
    with proxy_owning_authorization(token_ray.port) as proxy:
        plant_markers(bridge_job)
        (bridge_job.credentials_dir / "headers.json").write_text(json.dumps({"Authorization": PROXY_BASIC}))
        bridge_job.set(
            resourceURL=proxy.url,
            jobdata__scriptLocation="inline",
            jobdata__jobScript="print('through the auth proxy')\n",
        )
        result = bridge_job.run()
        recorded = proxy.recorded()
    assert result.returncode == 0, result.stderr
    assert {r.headers.get("authorization") for r in recorded} == {PROXY_BASIC}
    assert {r.headers.get("x-ray-authorization") for r in recorded} == {f"Bearer {RAY_TOKEN}"}
    # The job's line was shown (by Ray's tail, or by the final read when the job ended before the
    # first look), and no call was refused.
    assert "through the auth proxy" in result.job_lines
    assert [r.path.split("?")[0] for r in recorded].count("/api/v0/logs/stream") == 0
    assert "is not usable" not in result.stderr
    assert_no_secret_in(
        {
            **outputs(bridge_job, result),
            "Ray job": ray_job_json(token_ray.address, result.status["id"], RAY_TOKEN),
            "uploaded log": bridge_job.log_text(),
        }
    )
    assert all(PROXY_PASSWORD not in text and PROXY_BASIC not in text for text in outputs(bridge_job, result).values())


def test_basic_auth_without_username_password_is_bad_input(bridge_job: BridgeJob) -> None:
    for name in ("username", "password"):
        (bridge_job.credentials_dir / name).unlink()
    bridge_job.set(jobproperties='{"auth": "basic"}', jobdata__jobScript="/x.py")
    result = bridge_job.run()
    assert result.returncode == 2
    assert "jobproperties" in result.status["status.message"] and "username" in result.status["status.message"]


# -- https --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_proxy(services: Services, tls_authority: trustme.CA) -> Iterator[Proxy]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_authority.issue_cert("127.0.0.1").configure_cert(context)
    with Proxy("127.0.0.1", services.ray.port, tls=context) as proxy:
        yield proxy


def test_https_dashboard_with_an_unknown_ca_is_refused_clearly_and_not_retried(
    bridge_job: BridgeJob, tls_proxy: Proxy
) -> None:
    bridge_job.set(resourceURL=tls_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print()\n")
    result = bridge_job.run("--connect-timeout", "60")
    assert result.returncode == 2
    message = result.status["status.message"]
    assert "resourceURL" in message and "certificate did not verify" in message and "RAYPOD_RAY_CA_BUNDLE" in message
    assert "retrying" not in result.stderr
    assert tls_proxy.recorded() == []  # the handshake failed: nothing was sent
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_https_dashboard_verified_with_ray_ca_bundle_env(
    bridge_job: BridgeJob, tls_proxy: Proxy, tls_authority: trustme.CA, tmp_path: Path
) -> None:
    bundle = tmp_path / "ray-ca.pem"
    tls_authority.cert_pem.write_to_path(str(bundle))
    bridge_job.set(resourceURL=tls_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('tls')\n")
    result = bridge_job.run(env={"RAYPOD_RAY_CA_BUNDLE": str(bundle)})
    assert result.returncode == 0, result.stderr
    assert "tls" in bridge_job.log_text()


def test_https_dashboard_verified_with_ca_crt_in_the_credentials(
    bridge_job: BridgeJob, tls_proxy: Proxy, tls_authority: trustme.CA
) -> None:
    tls_authority.cert_pem.write_to_path(str(bridge_job.credentials_dir / "ca.crt"))
    bridge_job.set(resourceURL=tls_proxy.url, jobdata__scriptLocation="inline", jobdata__jobScript="print('tls')\n")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert result.status["status.jobStatus"] == "SUCCEEDED"
