"""The one hierarchy of raypod errors.

HTTP failures are translated into these in exactly one place (``raypod.http``);
everything above that layer sees only these types.
"""

from __future__ import annotations

from collections.abc import Iterable


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


class ApiError(RaypodError):
    """An HTTP call failed: no connection, a timeout, or an error status."""

    service = "HTTP"

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


class RayApiError(ApiError):
    service = "Ray dashboard"


class KubeApiError(ApiError):
    service = "Kubernetes API"


class SubmissionRejected(RaypodError):
    """Ray refused the job (e.g. a bad runtime_env): retrying cannot help."""

    def __init__(self, error: RayApiError) -> None:
        self.error = error
        super().__init__(f"Ray rejected the job: {error.reason}")


class Terminated(RaypodError):
    """SIGTERM arrived while raypod was waiting to retry: leave now, the Ray job keeps running."""


class S3Error(RaypodError):
    """An S3 call failed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class S3BucketMissing(S3Error):
    """A write answered ``NoSuchBucket``: the bucket may be created, then the write tried again."""


def secret_forms(secret: str) -> list[str]:
    """The ways a secret can appear in an error's text: as it is, and as a str or bytes repr
    quotes it (``\\r``, ``\\xe4``...), e.g. in ``Invalid header value b'...'``. Longest first."""
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "backslashreplace"))[2:-1]}
    return sorted(forms, key=len, reverse=True)
