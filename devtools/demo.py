"""`make demo` (``python -m devtools.demo``): run the sample job end to end on a local Ray head and S3 server.

Starts both on 127.0.0.1 with free ports, puts samples/ray/ in S3, runs the pod as the
operator would (ConfigMap keys, mounted secrets), shows the status changes and the log
read back from S3, then stops only what it started.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from devtools.services import LocalRay, LocalS3, write_pod_secrets

REPO = Path(__file__).resolve().parent.parent
JOBNAME = "demo-job"
BUCKET = "demo"


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def main() -> int:
    banner("starting a local Ray head and a local S3 server (loopback only)")
    ray, s3 = LocalRay(), LocalS3()
    try:
        ray.start()
        s3.start()
        print(f"Ray dashboard: {ray.address}\nS3 endpoint:   http://{s3.endpoint}", flush=True)
        return run_demo(ray, s3)
    finally:
        banner("stopping the Ray head and the S3 server started above")
        ray.stop()
        s3.stop()


def run_demo(ray: LocalRay, s3: LocalS3) -> int:
    client = s3.client()
    client.make_bucket(BUCKET)
    for path in sorted((REPO / "samples" / "ray").iterdir()):
        data = path.read_bytes()
        client.put_object(BUCKET, f"ray/{path.name}", io.BytesIO(data), len(data))
        print(f"uploaded samples/ray/{path.name} to s3://{BUCKET}/ray/{path.name}")

    work = Path(tempfile.mkdtemp(prefix="raypod-demo-"))
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{JOBNAME}-bridge-cm"},
        "data": {
            "resourceURL": ray.address,
            "updateInterval": "2",
            "jobdata.scriptLocation": "s3",
            "jobdata.jobScript": f"{BUCKET}:ray/code.py",
            "jobdata.scriptExtraLocation": "s3",
            "jobdata.jobParameters": f"{BUCKET}:ray/parameters.json",
            "jobdata.scriptMetadata": f"{BUCKET}:ray/metadata.json",
            "jobdata.additionalData": f"{BUCKET}:ray/greeting.txt",
            "jobproperties": json.dumps({"entrypoint_num_cpus": 0.5, "metadata": {"source": "make demo"}}),
            "s3.endpoint": s3.endpoint,
            "s3.secure": "false",
            "s3.secret": "demo-s3-secret",
            "s3upload.bucket": BUCKET,
        },
    }
    config = work / "configmap.json"
    config.write_text(json.dumps(configmap, indent=2))
    credentials, s3_credentials = write_pod_secrets(work, s3)
    status_file = work / "status.json"

    banner(f"running the pod: python -m raypod run --config {config}")
    command = [
        sys.executable,
        "-m",
        "raypod",
        "run",
        "--config",
        str(config),
        "--job-name",
        JOBNAME,
        "--namespace",
        "demo",
        "--credentials",
        str(credentials),
        "--s3-credentials",
        str(s3_credentials),
        "--status-file",
        str(status_file),
    ]
    code = subprocess.run(command, timeout=600).returncode

    banner(f"status file {status_file} (exit code {code})")
    print(status_file.read_text())

    banner(f"job log read back from s3://{BUCKET}/{JOBNAME}/logs")
    response = client.get_object(BUCKET, f"{JOBNAME}/logs")
    try:
        print(response.read().decode("utf-8", "replace"))
    finally:
        response.close()
        response.release_conn()
    print("demo " + ("succeeded" if code == 0 else f"FAILED (exit code {code})"), flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
