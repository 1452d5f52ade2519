"""The one hierarchy of raypod errors.

HTTP failures are translated into these in exactly one place (``raypod.http``);
everything above that layer sees only these types.
"""

from __future__ import annotations

import errno
import traceback
from collections.abc import Iterable
from pathlib import Path


class RaypodError(Exception):
    """Base of every error raypod raises on purpose."""

    #: Whether the same call may succeed if tried again (drives the retry policy).
    transient: bool = False


class ConfigError(RaypodError):
    """One or more bad inputs. Nothing was submitted because of it."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__("; ".join(f"{key}: {problem}" for key, problem in self.problems))

    @classmethod
    def single(cls, key: str, problem: str) -> ConfigError:
        return cls([(key, problem)])

    @property
    def lines(self) -> list[str]:
        return [f"{key}: {problem}" for key, problem in self.problems]


class Problems:
    """Collects bad-input problems, so that all of them are reported, not only the first."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, problem: str) -> None:
        self.items.append((key, problem))

    def take(self, error: ConfigError) -> None:
        self.items.extend(error.problems)

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


class ApiError(RaypodError):
    """An HTTP call failed: no connection, a timeout, or an error status."""

    service = "HTTP"
    #: Seconds the server asked to wait before the next try (``Retry-After`` on a 429 or 503).
    retry_after: float | None = None

    def __init__(
        self, method: str, url: str, status: int | None, reason: str, body: str = "", *, retryable: bool | None = None
    ) -> None:
        self.method = method
        #: Overrides the status-based rule, e.g. a TLS certificate failure has no status but never heals.
        self.retryable = retryable
        self.body = body
        self.url = url
        self.status = status
        self.reason = reason
        where = f"{method} {url}"
        what = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{self.service} {where}: {what}: {reason}")

    @property
    def transient(self) -> bool:  # type: ignore[override]
        if self.retryable is not None:
            return self.retryable
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def unauthorized(self) -> bool:
        return self.status in (401, 403)


#: How Ray's log agent begins its answer for a log file that is not there (``log_agent.py``).
RAYS_MISSING_FILE = "A file is not found at"


class RayApiError(ApiError):
    service = "Ray dashboard"

    @property
    def job_unknown(self) -> bool:
        """Ray itself says it has no such job: a 404 whose text is Ray's own (``Job <id> does not
        exist``). Any other 404 (an ingress's page, a route an old Ray lacks) proves nothing about
        the job: only this answer may conclude that Ray lost it."""
        return self.status == 404 and is_rays_missing_text(self.body, "Job")

    @property
    def package_unknown(self) -> bool:
        """Ray's own answer that it has no such package (``Package <uri> does not exist``)."""
        return self.status == 404 and is_rays_missing_text(self.body, "Package")

    @property
    def log_file_missing(self) -> bool:
        """Ray's state API says the log file asked for is not on the node (its agent's
        ``A file is not found at: <path>``, which the API answers with a 500)."""
        return self.status == 500 and self.body.lstrip().startswith(RAYS_MISSING_FILE)

    @property
    def transient(self) -> bool:  # type: ignore[override]
        # A file Ray says is not there is not there on the next try either: the one 500 not retried.
        if self.retryable is None and self.log_file_missing:
            return False
        return super().transient


def looks_like_a_page(body: str) -> bool:
    """An HTML page: what an ingress, a proxy or a sign-in service answers. Ray's dashboard answers
    its API calls with JSON or one plain line, never HTML."""
    head = body.lstrip()[:512].lower()
    return head.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in head


def is_rays_missing_text(body: str, kind: str) -> bool:
    """Ray's dashboard answers a missing job or package with one plain line:
    ``<kind> <name> does not exist`` (ray.dashboard.modules.job.job_head)."""
    text = body.strip()
    return "\n" not in text and text.startswith(f"{kind} ") and text.endswith(" does not exist")


class KubeApiError(ApiError):
    service = "Kubernetes API"

    @property
    def from_the_api_server(self) -> bool:
        """The answer is the API server's own: its errors are a JSON ``Status`` object. A page from a
        proxy in between (an HTML 404 or 403) says nothing about the ConfigMap or the rights."""
        return '"Status"' in self.body and not looks_like_a_page(self.body)


class SubmissionRejected(RaypodError):
    """Ray refused the job (e.g. a bad runtime_env): retrying cannot help."""

    def __init__(self, error: RayApiError) -> None:
        self.error = error
        super().__init__(f"Ray rejected the job: {error.reason}")


class DeploymentError(RaypodError):
    """The pod's surroundings are wrong, not its job: the ConfigMap is missing, or the service
    account may not read or write it. Nothing was submitted because of it at start-up."""

    def __init__(self, what: str, problem: str) -> None:
        #: What is wrong, as a ConfigError's key would name it ("ConfigMap").
        self.what = what
        self.problem = problem
        super().__init__(f"{what}: {problem}")


#: What a write to a local file says when the pod's disk, its quota or a file-size limit is reached.
LOCAL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS})


class LocalFileError(RaypodError):
    """A file of the pod's own could not be written or read: a full disk (ENOSPC), a file-size limit
    (EFBIG), a read-only mount, an I/O error. Not the job's fault, and no retry mends it."""

    def __init__(self, what: str, error: OSError) -> None:
        self.errno = error.errno
        super().__init__(f"{what}: {os_error_text(error)}")


def os_error_text(error: OSError) -> str:
    """``No space left on device (ENOSPC): /tmp/x``: the system's words, its code and the file, if
    any. Never the exception's own text, which may quote more than a file name."""
    words = error.strerror or type(error).__name__
    code = errno.errorcode.get(error.errno) if isinstance(error.errno, int) else None
    text = f"{words} ({code})" if code else words
    return f"{text}: {error.filename}" if error.filename else text


class InternalError(RaypodError):
    """An exception raypod did not expect (a bug), told by its type and the place it came from: its
    text may quote anything, a secret included."""

    def __init__(self, error: BaseException) -> None:
        frames = traceback.extract_tb(error.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        super().__init__(f"internal error {type(error).__name__}{where} (a bug in raypod: please report it)")


def reportable(error: Exception) -> RaypodError:
    """Any exception as one of raypod's errors, whose text can go to a status, a log and a file."""
    if isinstance(error, RaypodError):
        return error
    if isinstance(error, OSError):
        return LocalFileError("raypod could not go on", error)
    return InternalError(error)


class NeverRead(DeploymentError):
    """A write to a ConfigMap this pod could not read at start-up: the object under its name is
    unknown (another BridgeJob's, or one holding the id of a job that still runs), so nothing is
    written to it."""


class Terminated(BaseException):
    """SIGTERM (or SIGINT) arrived: leave now; the Ray job keeps running.

    Control flow, not an error: like ``KeyboardInterrupt`` it is no ``Exception``, so no
    ``except RaypodError`` or ``except Exception`` can swallow it on its way out."""


class S3Error(RaypodError):
    """An S3 call failed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class S3BucketMissing(S3Error):
    """A write answered ``NoSuchBucket``: the bucket may be created, then the write tried again."""
