"""The log upload with least privilege, a missing bucket, bad credentials and SIGTERM, against moto's S3.

The Ray side is a stand-in that yields log chunks (``upload_log`` only streams them); S3 is moto's
server, behind a fault-injecting ``Proxy`` where a test needs to refuse or watch calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any, cast

import pytest

from devtools.proxy import Proxy, s3_error
from devtools.services import LocalS3
from raypod.config import S3Settings
from raypod.credentials import S3Credentials
from raypod.errors import ConfigError, RaypodError, S3BucketMissing, S3Error, Terminated
from raypod.jobdata import S3Location
from raypod.logs import upload_log
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.s3 import PART_SIZE, S3Store

MiB = 1024 * 1024
JOB = JobInfo(submission_id="s1", status="SUCCEEDED", driver_node_id="node-1")
_names = count()


class FakeLogRay:
    """What ``upload_log`` uses of RayJobsClient: the driver log as a stream of chunks."""

    def __init__(self, chunks: Callable[[], Iterator[bytes]]) -> None:
        self._chunks = chunks
        self.opened = 0

    def log_chunks(self, job: JobInfo) -> Iterator[bytes]:
        self.opened += 1
        yield from self._chunks()


def fake_ray(chunks: Callable[[], Iterator[bytes]]) -> RayJobsClient:
    return cast(RayJobsClient, FakeLogRay(chunks))


def log_of(size: int, chunk: int = MiB) -> Callable[[], Iterator[bytes]]:
    line = b"0123456789abcdef" * 63 + b"line\n"

    def chunks() -> Iterator[bytes]:
        block = (line * (chunk // len(line) + 1))[:chunk]
        left = size
        while left > 0:
            yield block[: min(chunk, left)]
            left -= chunk

    return chunks


@pytest.fixture(scope="module")
def s3_server() -> Iterator[LocalS3]:
    server = LocalS3().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket() -> str:
    return f"logs-{next(_names)}"


def store(endpoint: str, access_key: str = LocalS3.ACCESS_KEY, retry: RetryPolicy = NO_RETRY) -> S3Store:
    return S3Store(S3Settings(endpoint, False, "s3-secret"), S3Credentials(access_key, LocalS3.SECRET_KEY), retry)


def read_object(s3_server: LocalS3, bucket: str, name: str) -> bytes:
    response = s3_server.client().get_object(bucket, name)
    try:
        return bytes(response.read())
    finally:
        response.close()
        response.release_conn()


def open_uploads(s3_server: LocalS3, bucket: str, name: str) -> list[Any]:
    result = s3_server.client()._list_multipart_uploads(bucket, prefix=name)
    return list(result.uploads)


# -- least privilege ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [200_000, PART_SIZE + MiB], ids=["one-put", "multipart"])
def test_the_log_lands_when_the_policy_allows_only_writes(s3_server: LocalS3, bucket: str, size: int) -> None:
    s3_server.client().make_bucket(bucket)
    with Proxy("127.0.0.1", s3_server.port) as proxy:
        denied = s3_error("AccessDenied", "Access Denied")
        head = proxy.fail("HEAD", rf"^/{bucket}/?(\?|$)", status=403)
        location = proxy.fail("GET", rf"^/{bucket}/?\?location", status=403, body=denied)
        listing = proxy.fail("GET", rf"^/{bucket}/?(\?|$)", status=403, body=denied)

        written = upload_log(fake_ray(log_of(size)), store(proxy.endpoint), JOB, bucket, "job/logs", None, NO_RETRY)

    assert written == size
    assert read_object(s3_server, bucket, "job/logs") == b"".join(log_of(size)())
    assert head.hits == 0 and listing.hits == 0  # never asked whether the bucket exists
    assert location.hits == 1  # minio's region lookup, refused and done without
    assert not proxy.recorded("PUT", rf"^/{bucket}/?$")  # no bucket creation either


@pytest.mark.parametrize("size", [1000, PART_SIZE + MiB], ids=["one-put", "multipart"])
@pytest.mark.parametrize("may_locate", [True, False], ids=["location-allowed", "location-denied"])
def test_a_missing_bucket_is_created_after_the_write_says_so_and_the_log_written(
    s3_server: LocalS3, bucket: str, size: int, may_locate: bool
) -> None:
    with Proxy("127.0.0.1", s3_server.port) as proxy:
        if not may_locate:
            proxy.fail("GET", rf"^/{bucket}/?\?location", status=403, body=s3_error("AccessDenied", "Access Denied"))
        written = upload_log(fake_ray(log_of(size)), store(proxy.endpoint), JOB, bucket, "job/logs", None, NO_RETRY)

    assert written == size
    assert read_object(s3_server, bucket, "job/logs") == b"".join(log_of(size)())
    assert not proxy.recorded("HEAD")
    creations = proxy.recorded("PUT", rf"^/{bucket}/?$")
    assert len(creations) == 1
    before = [r for r in proxy.recorded() if r.at < creations[0].at]
    if may_locate:
        # minio's region lookup is the first request to the bucket, and the one that says it is missing.
        assert [(r.method, r.path.split("=")[0]) for r in before] == [("GET", f"/{bucket}?location")]
    else:
        # The write itself answered NoSuchBucket: then the bucket was made and the write sent once more.
        first_write = ("PUT", f"/{bucket}/job/logs") if size < PART_SIZE else ("POST", f"/{bucket}/job/logs?uploads")
        assert [(r.method, r.path.split("=")[0]) for r in before][1:] == [first_write]
        after = [r for r in proxy.recorded() if r.at > creations[0].at]
        assert (after[0].method, after[0].path.split("=")[0]) == first_write


def test_a_missing_bucket_is_not_created_unless_asked(s3_server: LocalS3, bucket: str) -> None:
    upload = store(s3_server.endpoint).open_part_upload(bucket, "job/logs")
    upload.write(b"hello\n")

    with pytest.raises(S3BucketMissing):
        upload.finish()

    assert not s3_server.client().bucket_exists(bucket)


# -- credentials in messages ----------------------------------------------------------------------------
MARKER = "AKIAMARKER7F3A9C"


def test_an_access_key_that_cannot_be_sent_is_a_permanent_error_without_its_text(s3_server: LocalS3) -> None:
    s3 = store(s3_server.endpoint, access_key=f"{MARKER}\r{MARKER}")

    with pytest.raises(S3Error) as caught:
        s3.read_text(S3Location("inputs", "meta.json"), "jobdata.scriptMetadata")

    assert not caught.value.transient
    assert "credential" in str(caught.value)
    assert MARKER not in str(caught.value)
    assert caught.value.__cause__ is None


class ValueErrorClient:
    """A minio client whose every call fails with a ValueError that quotes the access key."""

    def __getattr__(self, _name: str) -> Callable[..., Any]:
        def fail(*_args: object, **_kwargs: object) -> Any:
            raise ValueError(f"invalid request: Credential={MARKER}/20250101/us-east-1/s3/aws4_request")

        return fail


@pytest.mark.parametrize("call", ["read_text", "download", "upload"])
def test_an_access_key_in_any_error_is_scrubbed(tmp_path: Any, call: str) -> None:
    s3 = store("127.0.0.1:9", access_key=MARKER)
    s3._client = cast(Any, ValueErrorClient())
    location = S3Location("inputs", "meta.json")

    with pytest.raises(RaypodError) as caught:
        if call == "read_text":
            s3.read_text(location, "jobdata.scriptMetadata")
        elif call == "download":
            s3.download(location, tmp_path / "meta.json", "jobdata.additionalData")
        else:
            upload_log(fake_ray(log_of(10)), s3, JOB, "logs", "job/logs", None, NO_RETRY)

    error = caught.value
    texts = [str(error), *(problem for _key, problem in getattr(error, "problems", []))]
    assert all(MARKER not in text for text in texts)
    assert "***" in str(error)
    assert isinstance(error, ConfigError) == (call != "upload")
    assert error.__cause__ is None


# -- SIGTERM ------------------------------------------------------------------------------------------
def test_sigterm_mid_upload_aborts_the_multipart_upload_and_raises_terminated(s3_server: LocalS3, bucket: str) -> None:
    s3_server.client().make_bucket(bucket)
    sigterm = threading.Event()
    size, set_at = 20 * MiB, 12 * MiB

    def chunks() -> Iterator[bytes]:
        sent = 0
        for chunk in log_of(size)():
            yield chunk
            sent += len(chunk)
            if sent == set_at:
                sigterm.set()

    retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.001).interruptible(sigterm)
    with Proxy("127.0.0.1", s3_server.port) as proxy, pytest.raises(Terminated):
        upload_log(fake_ray(chunks), store(proxy.endpoint), JOB, bucket, "job/logs", None, retry)

    assert len(proxy.recorded("POST", r"\?uploads")) == 1  # a multipart upload was under way
    assert len(proxy.recorded("PUT", r"partNumber=")) == 2  # two parts of 5 MiB had gone out
    assert len(proxy.recorded("DELETE", r"uploadId=")) == 1  # and it was aborted
    assert not proxy.recorded("POST", r"uploadId=")  # never completed
    assert open_uploads(s3_server, bucket, "job/logs") == []
    assert "job/logs" not in [o.object_name for o in s3_server.client().list_objects(bucket, recursive=True)]


def test_sigterm_before_a_small_log_is_written_sends_nothing(s3_server: LocalS3, bucket: str) -> None:
    s3_server.client().make_bucket(bucket)
    sigterm = threading.Event()

    def chunks() -> Iterator[bytes]:
        yield b"first line\n"
        sigterm.set()
        yield b"second line\n"

    with Proxy("127.0.0.1", s3_server.port) as proxy, pytest.raises(Terminated):
        upload_log(
            fake_ray(chunks), store(proxy.endpoint), JOB, bucket, "job/logs", None, NO_RETRY.interruptible(sigterm)
        )

    assert not proxy.recorded("PUT") and not proxy.recorded("POST")
