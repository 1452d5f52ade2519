"""S3 through minio: read inputs, upload results. Retried by the one retry policy."""

from __future__ import annotations

import copy
import logging
import mmap
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from raypod.call_deadline import MIN_UPLOAD_RATE, CallDeadline, use_deadline_pools
from raypod.config import S3Settings
from raypod.credentials import S3Credentials
from raypod.errors import (
    LOCAL_DISK_ERRNOS,
    ApiError,
    ConfigError,
    LocalFileError,
    RaypodError,
    S3BucketMissing,
    S3Error,
)
from raypod.interrupt import cuttable
from raypod.jobdata import S3Location
from raypod.lean_imports import import_minio
from raypod.proxies import Proxy, proxy_for, refused_for_good, target_of, tunnel_refusal
from raypod.retry import RetryPolicy
from raypod.safetext import Scrubber, bounded_text, secret_forms

if TYPE_CHECKING:
    from minio import Minio
    from minio.error import S3Error as MinioS3Error

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Multipart part size: S3's minimum, so a streamed upload holds little in memory.
PART_SIZE = 5 * 1024 * 1024
#: Metadata and parameters are small JSON; refuse to hold anything much larger in memory.
MAX_TEXT_OBJECT = 4 * 1024 * 1024
#: minio's connect and read timeouts (each read), and the total bound of one call: connect to the
#: answer's last byte, so that a server that trickles cannot hold a call (a download has none).
CONNECT_TIMEOUT, READ_TIMEOUT = 5.0, 60.0
CALL_DEADLINE = CONNECT_TIMEOUT + READ_TIMEOUT
_MISSING_CODES = ("NoSuchKey", "NoSuchBucket", "NoSuchObject")
_BUILD_FAILED = "the request could not be built: a header value is invalid; check the S3 credential files"
#: The region assumed for a bucket whose location raypod may not ask (no s3:GetBucketLocation).
DEFAULT_REGION = "us-east-1"


class S3Store:
    """The ``ObjectStore`` of raypod: an S3 endpoint through minio."""

    def __init__(self, settings: S3Settings, credentials: S3Credentials, retry: RetryPolicy = RetryPolicy()) -> None:
        self.settings = settings
        self.retry = retry
        self._credentials = credentials
        #: The total bound of one call (one request of an upload: plus a part's worth at MIN_UPLOAD_RATE).
        self.call_deadline = CALL_DEADLINE
        self._client: Minio | None = None
        # An S3 server may echo the access key in an error; messages must never carry either key,
        # nor the password of the proxy in between.
        try:
            proxy_secrets = self.proxy.secrets() if self.proxy is not None else []
        except RaypodError:
            proxy_secrets = []  # a proxy variable that does not parse is reported at the first call
        self._scrubber = Scrubber(
            [
                *(
                    form
                    for key in (credentials.access_key, credentials.secret_key, credentials.session_token)
                    if key
                    for form in secret_forms(key)
                ),
                *proxy_secrets,
            ]
        )

    @property
    def client(self) -> Minio:
        """The minio client, made on first use: a job whose inputs are not in S3 submits before
        minio is even imported (a faster cold start), and a run without S3 never pays for it.
        Every S3 call goes through ``_call``/``_do``, so an error here becomes an S3Error."""
        if self._client is None:
            import certifi
            import urllib3

            minio_class = import_minio()
            # Retries disabled in urllib3: the retry policy is raypod's own, applied once.
            settings: dict[str, Any] = {
                "timeout": urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
                "retries": False,
                "maxsize": 2,
                "cert_reqs": "CERT_REQUIRED",
                "ca_certs": os.environ.get("SSL_CERT_FILE") or certifi.where(),
            }
            # The same proxy policy as the dashboard's and the Kubernetes API's (raypod.proxies).
            proxy = self.proxy
            http: urllib3.PoolManager = (
                urllib3.ProxyManager(
                    urllib3.util.parse_url(proxy.url)._replace(auth=None).url,
                    proxy_headers=proxy.headers(),
                    **settings,
                )
                if proxy is not None
                else urllib3.PoolManager(**settings)
            )
            use_deadline_pools(http)  # so that every call's total deadline can cut it, proxied or not
            self._client = minio_class(
                self.settings.endpoint,
                access_key=self._credentials.access_key,
                secret_key=self._credentials.secret_key,
                session_token=self._credentials.session_token,
                secure=self.settings.secure,
                http_client=http,
            )
        return self._client

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.settings.secure else 'http'}://{self.settings.endpoint}"

    @property
    def proxy(self) -> Proxy | None:
        """The proxy the endpoint is reached through, by raypod's one policy (raypod.proxies)."""
        return proxy_for(self.endpoint_url)

    def _scrub(self, error: Exception) -> Exception:
        """The same error without either key in it, whatever its type (problems and bodies included)."""
        if not self._scrubber:
            return error
        clean = self._scrubber.scrub

        if isinstance(error, ConfigError):
            problems = [(clean(key), clean(problem)) for key, problem in error.problems]
            return error if problems == error.problems else ConfigError(problems)
        if isinstance(error, ApiError):
            fields = (error.url, error.reason, error.body)
            if not any(self._scrubber.holds_secret(text) for text in fields):
                return error
            return type(error)(
                error.method,
                clean(error.url),
                error.status,
                clean(error.reason),
                clean(error.body),
                retryable=error.retryable,
            )
        text = str(error)
        if not self._scrubber.holds_secret(text):
            return error
        if isinstance(error, S3Error):
            return type(error)(clean(text), transient=error.transient)
        if isinstance(error, RaypodError):
            scrubbed = copy.copy(error)
            scrubbed.args = (clean(text),)
            return scrubbed
        return S3Error(clean(text))

    def _translated(self, error: Exception, what: str, key: str | None) -> Exception:
        """raypod's error for a minio (or other) exception, without either key in it."""
        refusal = tunnel_refusal(error, self._proxy_or_none(), target_of(self.endpoint_url))
        if refusal is not None:
            # The proxy would not connect to the endpoint: a 4xx answer to CONNECT stays so.
            return self._scrub(S3Error(f"{what} failed: {refusal}", transient=not refused_for_good(error)))
        return self._scrub(_translate(error, what, key, self._scrubber))

    def _proxy_or_none(self) -> Proxy | None:
        try:
            return self.proxy
        except RaypodError:
            return None

    def _holds_secret(self, error: Exception) -> bool:
        return self._scrubber.holds_secret(str(error))

    def url(self, bucket: str, object_name: str = "") -> str:
        return f"s3://{bucket}/{object_name}"

    def _call(self, fn: Callable[[], T], what: str, key: str | None = None, *, unbounded: bool = False) -> T:
        """Run one minio call under the retry policy and its total deadline, translating its errors
        to raypod's."""

        deadline = None if unbounded else self.call_deadline
        return self.retry.call(lambda: self._once(fn, what, key, deadline), what=what)

    def _once(self, fn: Callable[[], T], what: str, key: str | None, deadline: float | None) -> T:
        """One try of a minio call: cut by SIGTERM and by its total deadline, its errors translated."""
        try:
            with cuttable(what), CallDeadline(deadline) as bound:
                try:
                    return fn()
                except Exception as error:
                    if bound.expired:
                        raise _past_deadline(what, bound) from error
                    raise
        except Exception as error:
            translated = self._translated(error, what, key)
            if self._holds_secret(error):
                raise translated from None  # a traceback would show the original's text
            raise translated from error

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
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as error:
                # Raised here: past _call, every other exception has become an S3Error.
                raise ConfigError.single(key, f"{location} is not UTF-8 text") from error

        return self._call(fetch, f"read of {location}", key)

    def download(self, location: S3Location, target: Path, key: str) -> None:
        self._call(
            lambda: self.client.fget_object(location.bucket, location.object_name, str(target)),
            f"download of {location}",
            key,
            unbounded=True,  # of any size: each read has its timeout
        )

    def create_bucket(self, bucket: str) -> None:
        """Make the bucket; one made meanwhile (by another pod, say) is as good."""

        def make() -> None:
            MinioS3Error = _minio_s3_error()

            try:
                self.client.make_bucket(bucket)
            except MinioS3Error as error:
                if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

        self._call(make, f"creation of bucket {bucket}")

    def learn_region(self, bucket: str) -> None:
        """Ask the bucket's region as minio would before a write, but take a refusal as the default region.

        minio asks ``GET /<bucket>?location`` before its first request to a bucket: a policy that
        grants only ``s3:PutObject`` refuses it, and minio would then fail the write itself. Any
        other answer (``NoSuchBucket`` included) is raised as minio raised it.
        """
        MinioS3Error = _minio_s3_error()
        client = self.client
        try:
            client._get_region(bucket)
        except MinioS3Error as error:
            if error.code != "AccessDenied":
                raise
            log.debug("may not ask where bucket %s is; assuming %s", bucket, DEFAULT_REGION)
            client._region_map[bucket] = DEFAULT_REGION

    def object_exists(self, bucket: str, object_name: str) -> bool:
        def stat() -> bool:
            MinioS3Error = _minio_s3_error()

            try:
                self.client.stat_object(bucket, object_name)
            except MinioS3Error as error:
                if error.code in _MISSING_CODES:
                    return False
                raise
            return True

        return self._call(stat, f"check of {self.url(bucket, object_name)}")

    def open_part_upload(
        self, bucket: str, object_name: str, content_type: str = "text/plain", *, create_bucket: bool = False
    ) -> PartUpload:
        """A writer that sends S3 multipart parts from one fixed buffer: memory stays flat at any size.

        It writes without asking first whether the bucket exists (a write-only policy refuses
        that); with ``create_bucket``, a first write answered ``NoSuchBucket`` makes the bucket
        and is sent once more.
        """
        return PartUpload(self, bucket, object_name, content_type, create_bucket=create_bucket)


def _minio_s3_error() -> type[MinioS3Error]:
    """minio's S3Error. Any ``from minio... import`` loads minio's package first, so it goes
    through ``import_minio``, or minio's ``__init__`` would load its admin client after all."""
    import_minio()
    from minio.error import S3Error

    return S3Error


def _translate(error: Exception, what: str, key: str | None, scrubber: Scrubber) -> Exception:
    import_minio()
    from minio.error import InvalidResponseError, ServerError
    from minio.error import S3Error as MinioS3Error
    from urllib3.exceptions import HTTPError

    if isinstance(error, RaypodError):
        # Already raypod's, e.g. the Ray log stream broke under an upload: keep whether it is transient.
        return error
    if isinstance(error, UnicodeEncodeError) or (isinstance(error, ValueError) and "header" in str(error).lower()):
        # http.client refused a header, which quotes the signature's Credential=<access key>:
        # a key file with a control character or non-latin-1 text. Its text is of no use here.
        return S3Error(f"{what} failed: {type(error).__name__}: {_BUILD_FAILED}")
    if isinstance(error, ValueError) and not isinstance(error, UnicodeError) and key is not None:
        # minio checks names before any request: e.g. inline JSON where bucket:object was expected.
        return ConfigError.single(key, f"is not a valid S3 bucket:object ({_short(error, scrubber)})")
    if isinstance(error, MinioS3Error):
        if key is not None and error.code in _MISSING_CODES:
            return ConfigError.single(key, f"S3 object {error.bucket_name}:{error.object_name} does not exist")
        if error.code == "NoSuchBucket":
            return S3BucketMissing(f"{what} failed: {error.code}: {error.message}")
        transient = error.code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")
        return S3Error(f"{what} failed: {error.code}: {error.message}", transient=transient)
    if isinstance(error, ServerError):
        status = error.status_code
        return S3Error(f"{what} failed: HTTP {status}", transient=status == 429 or status >= 500)
    if isinstance(error, InvalidResponseError):
        # A non-XML answer, e.g. from a proxy or ingress: its status decides, as for any HTTP call.
        code = getattr(error, "_code", None)
        status = code if isinstance(code, int) else 500
        return S3Error(f"{what} failed: HTTP {status} (not an S3 answer)", transient=status == 429 or status >= 500)
    if isinstance(error, OSError) and error.errno in LOCAL_DISK_ERRNOS:
        # A download that fills the pod's disk: no retry makes room (a socket never says these).
        return LocalFileError(f"{what} failed", error)
    # urllib3 connection errors, timeouts and resets, and minio's garbled answers, are passing faults.
    transient = isinstance(error, (OSError, HTTPError))
    return S3Error(f"{what} failed: {type(error).__name__}: {_short(error, scrubber)}", transient=transient)


def _past_deadline(what: str, bound: CallDeadline) -> S3Error:
    """The (transient) error of a call cut by its total deadline."""
    within = f"within {bound.seconds:g} s" if bound.seconds is not None else "in time"
    return S3Error(f"{what} failed: no complete answer {within} (the call's total deadline)", transient=True)


def _short(error: Exception, scrubber: Scrubber) -> str:
    """The error's text, scrubbed before it is cut."""
    return bounded_text(scrubber.scrub(str(error)), 300)


class PartUpload:
    """An S3 object written in multipart parts from one reused ``PART_SIZE`` buffer.

    minio's ``put_object(length=-1)`` copies each part three times and keeps the previous
    one alive (about 25 MiB for 5 MiB parts); this writer holds exactly one part. It uses
    minio's per-request methods, so signing, regions and errors stay minio's. One attempt:
    on failure the caller aborts and starts again from the source.
    """

    def __init__(
        self, store: S3Store, bucket: str, object_name: str, content_type: str, *, create_bucket: bool = False
    ) -> None:
        self._store = store
        self.bucket = bucket
        self.object_name = object_name
        self._content_type = content_type
        self._create_bucket = create_bucket
        # Anonymous memory, not a bytearray (which is zero-filled at once): pages become resident
        # only as they are written, so a small log costs its own size, a large one PART_SIZE.
        self._view = memoryview(mmap.mmap(-1, PART_SIZE))
        self._fill = 0
        self._upload_id: str | None = None
        self._parts: list[tuple[int, str]] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._fill == PART_SIZE:
                # Sent only once more data arrives: the last part may be short, the others may not.
                self._send_part()
            take = min(PART_SIZE - self._fill, len(view))
            self._view[self._fill : self._fill + take] = view[:take]
            self._fill += take
            self.size += take
            view = view[take:]

    def finish(self) -> None:
        """Send what is buffered and complete the object."""
        # A view of the buffer, not a copy: minio only hashes and sends the body, which any buffer allows.
        body = cast(bytes, self._view[: self._fill])
        if self._upload_id is None:
            # Smaller than one part: one plain PUT.
            self._first_write(
                lambda: self._store.client._put_object(self.bucket, self.object_name, body, self._headers())
            )
            return
        if self._fill:
            self._send_part()
        from minio.datatypes import Part

        parts = [Part(number, etag) for number, etag in self._parts]
        upload_id = self._upload_id
        self._do(lambda: self._store.client._complete_multipart_upload(self.bucket, self.object_name, upload_id, parts))
        self._upload_id = None

    def abort(self) -> None:
        """Best effort: drop the parts of an unfinished upload (S3 lifecycle rules catch the rest)."""
        upload_id, self._upload_id = self._upload_id, None
        if upload_id is None:
            return
        try:
            self._store.client._abort_multipart_upload(self.bucket, self.object_name, upload_id)
        except Exception as error:  # noqa: BLE001 - already failing; the first error is the one to report
            log.debug("could not abort multipart upload %s: %s", upload_id, type(error).__name__)

    def _headers(self) -> dict[str, Any]:
        return {"Content-Type": self._content_type}

    def _send_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = self._first_write(
                lambda: self._store.client._create_multipart_upload(self.bucket, self.object_name, self._headers())
            )
        number = len(self._parts) + 1
        body = cast(bytes, self._view[: self._fill])
        upload_id = self._upload_id
        etag = self._do(
            lambda: self._store.client._upload_part(self.bucket, self.object_name, body, None, upload_id, number)
        )
        self._parts.append((number, str(etag)))
        self._fill = 0

    def _first_write(self, fn: Callable[[], T]) -> T:
        """The upload's first request (a PUT, or the start of a multipart upload): what it learns
        about the bucket decides. A missing bucket is made, with ``create_bucket``, and the write
        sent once more."""
        try:
            # minio asks where the bucket is first: a missing bucket may be reported there.
            self._do(lambda: self._store.learn_region(self.bucket))
            return self._do(fn)
        except S3BucketMissing:
            if not self._create_bucket:
                raise
        log.info("bucket %s does not exist; creating it", self.bucket)
        self._store.create_bucket(self.bucket)
        return self._do(fn)

    def _do(self, fn: Callable[[], T]) -> T:
        what = f"upload to {self._store.url(self.bucket, self.object_name)}"
        return self._store._once(fn, what, None, self._store.call_deadline + PART_SIZE / MIN_UPLOAD_RATE)
