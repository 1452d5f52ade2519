"""The two sample ConfigMaps of samples/kubernetes/ run end to end through the (fake) API on the
real Ray and S3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.fake_kube import FakeKube
from tests.support.helpers import Services
from tests.support.samples import one, sample_on_local_services


@pytest.mark.parametrize("case", ["inline", "s3"])
def test_sample_configmap_runs_end_to_end_through_the_api(case: str, services: Services, tmp_path: Path) -> None:
    configmap, data = sample_on_local_services(case, services)
    job_name, bucket = configmap["metadata"]["name"].removesuffix("-bridge-cm"), data["s3upload.bucket"]
    client = services.s3.client()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for key, value in one("Secret", "ray-resource-secret")["stringData"].items():
        (credentials / key).write_text(value)
    s3_credentials = services.s3.write_credentials(tmp_path / "s3credentials")
    with FakeKube(tmp_path / "kube") as fake:
        fake.create_configmap(configmap["metadata"]["name"], data)
        env = {k: v for k, v in os.environ.items() if k != "NAMESPACE"}
        env.update(fake.env(), JOBNAME=job_name, PYTHONUNBUFFERED="1")
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "raypod",
                "--credentials",
                str(credentials),
                "--s3-credentials",
                str(s3_credentials),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        status = fake.data(configmap["metadata"]["name"])
    assert completed.returncode == 0, f"{status}\n{completed.stdout}\n{completed.stderr}"
    assert status["status.jobStatus"] == "SUCCEEDED"
    assert status["status.message"] == f"Job succeeded; log uploaded to s3://{bucket}/{job_name}/logs."
    response = client.get_object(bucket, f"{job_name}/logs")
    try:
        log = response.read().decode()
    finally:
        response.close()
        response.release_conn()
    assert "sum of squares below 20: 2470" in log
    assert "greeting file says: Hello from an additionalData file in S3" in log
