"""S3 through minio: read inputs, upload results. Retried by the one retry policy."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from raypod.config import S3Location, S3Settings
from raypod.credentials import S3Credentials
from raypod.errors import ConfigError, S3Error
from raypod.retry import RetryPolicy

if TYPE_CHECKING:
    from minio import Minio

T = TypeVar("T")

#: Multipart part size: S3's minimum, so a streamed upload holds little in memory.
PART_SIZE = 5 * 1024 * 1024
#: Metadata and parameters are small JSON; refuse to hold anything much larger in memory.
MAX_TEXT_OBJECT = 4 * 1024 * 1024
_MISSING_CODES = ("NoSuchKey", "NoSuchBucket", "NoSuchObject")


class S3Store:
    def __init__(self, settings: S3Settings, credentials: S3Credentials, retry: RetryPolicy = RetryPolicy()) -> None:
        # Imported here: a run without S3 never pays for minio.
        import certifi
        import urllib3
        from minio import Minio

        self.settings = settings
        self.retry = retry
        # Retries disabled in urllib3: the retry policy is raypod's own, applied once.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=60.0),
            retries=False,
            maxsize=2,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        self.client: Minio = Minio(
            settings.endpoint,
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            secure=settings.secure,
            http_client=http,
        )

    def url(self, bucket: str, object_name: str = "") -> str:
        return f"s3://{bucket}/{object_name}"

    def _call(self, fn: Callable[[], T], what: str, key: str | None = None) -> T:
        """Run one minio call under the retry policy, translating its errors to raypod's."""

        def once() -> T:
            try:
                return fn()
            except Exception as error:
                raise _translate(error, what, key) from error

        return self.retry.call(once, what=what)

    def read_text(self, location: S3Location, key: str) -> str:
        def fetch() -> str:
            response = self.client.get_object(location.bucket, location.object_name)
            try:
                data = response.read(MAX_TEXT_OBJECT + 1)
            finally:
                response.close()
                response.release_conn()
            if len(data) > MAX_TEXT_OBJECT:
                raise ConfigError.single(key, f"{location} is larger than {MAX_TEXT_OBJECT} bytes")
            return data.decode("utf-8")

        try:
            return self._call(fetch, f"read of {location}", key)
        except UnicodeDecodeError as error:
            raise ConfigError.single(key, f"{location} is not UTF-8 text") from error

    def download(self, location: S3Location, target: Path, key: str) -> None:
        self._call(
            lambda: self.client.fget_object(location.bucket, location.object_name, str(target)),
            f"download of {location}",
            key,
        )

    def ensure_bucket(self, bucket: str) -> None:
        def make() -> None:
            if not self.client.bucket_exists(bucket):
                self.client.make_bucket(bucket)

        self._call(make, f"creation of bucket {bucket}")

    def object_exists(self, bucket: str, object_name: str) -> bool:
        def stat() -> bool:
            from minio.error import S3Error as MinioS3Error

            try:
                self.client.stat_object(bucket, object_name)
            except MinioS3Error as error:
                if error.code in _MISSING_CODES:
                    return False
                raise
            return True

        return self._call(stat, f"check of {self.url(bucket, object_name)}")

    def upload_stream(self, bucket: str, object_name: str, stream: BinaryIO, content_type: str = "text/plain") -> None:
        """One attempt: a streamed upload cannot be replayed, so the caller re-opens and retries."""
        try:
            self.client.put_object(
                bucket,
                object_name,
                stream,
                length=-1,
                part_size=PART_SIZE,
                num_parallel_uploads=1,
                content_type=content_type,
            )
        except Exception as error:
            raise _translate(error, f"upload to {self.url(bucket, object_name)}", None) from error

    def read_object(self, bucket: str, object_name: str) -> bytes:
        """Whole object in memory: for tests and the demo's read-back, not for logs in the pod."""

        def fetch() -> bytes:
            response = self.client.get_object(bucket, object_name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return self._call(fetch, f"read of {self.url(bucket, object_name)}")


def _translate(error: Exception, what: str, key: str | None) -> Exception:
    from minio.error import InvalidResponseError, ServerError
    from minio.error import S3Error as MinioS3Error
    from urllib3.exceptions import HTTPError

    if isinstance(error, (ConfigError, S3Error)):
        return error
    if isinstance(error, MinioS3Error):
        if key is not None and error.code in _MISSING_CODES:
            return ConfigError.single(key, f"S3 object {error.bucket_name}:{error.object_name} does not exist")
        transient = error.code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")
        return S3Error(f"{what} failed: {error.code}: {error.message}", transient=transient)
    if isinstance(error, ServerError):
        status = error.status_code
        return S3Error(f"{what} failed: HTTP {status}", transient=status == 429 or status >= 500)
    # urllib3 connection errors, timeouts and resets, and minio's garbled answers, are passing faults.
    transient = isinstance(error, (OSError, HTTPError, InvalidResponseError))
    return S3Error(f"{what} failed: {type(error).__name__}: {_short(error)}", transient=transient)


def _short(error: Exception) -> str:
    text = str(error)
    return text if len(text) < 300 else text[:300] + "..."
