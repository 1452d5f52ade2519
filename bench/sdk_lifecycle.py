"""The first baseline: the Ray SDK + minio as the first ray-pod used them, same lifecycle.

Submit the job, poll its status every second until it ends, fetch its log with ``get_job_logs``
(the whole log in one string), upload it with one ``put_object``. Run by bench/run.py in the
baseline's virtualenv (``ray[default]``, ``minio``); bench/sdk_streaming.py is the second baseline.
"""

from __future__ import annotations

import io
import time

from minio import Minio
from ray.job_submission import JobStatus, JobSubmissionClient
from sdk_arguments import baseline_arguments


def main() -> int:
    args = baseline_arguments()

    client = JobSubmissionClient(args.address)
    submission_id = client.submit_job(entrypoint=args.entrypoint, submission_id=args.submission_id)
    limit = time.monotonic() + args.timeout
    status = client.get_job_status(submission_id)
    while status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        if time.monotonic() > limit:
            raise SystemExit(f"job {submission_id} did not end within {args.timeout:.0f} s")
        time.sleep(args.interval)
        status = client.get_job_status(submission_id)

    logs = client.get_job_logs(submission_id).encode("utf-8")
    s3 = Minio(args.s3_endpoint, access_key=args.access_key, secret_key=args.secret_key, secure=False)
    if not s3.bucket_exists(args.bucket):
        s3.make_bucket(args.bucket)
    s3.put_object(args.bucket, args.object, io.BytesIO(logs), len(logs), content_type="text/plain")
    return 0 if status == JobStatus.SUCCEEDED else 1


if __name__ == "__main__":
    raise SystemExit(main())
