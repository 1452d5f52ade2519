"""A small JSON-over-HTTP client: timeouts, the retry policy, and error translation.

This is the one place where ``requests`` exceptions and HTTP error statuses become
raypod errors. Both the Ray dashboard client and the Kubernetes client use it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from raypod.errors import ApiError
from raypod.retry import RetryPolicy

#: How much of an error body is kept: enough for Ray's traceback tail, bounded for memory.
MAX_ERROR_BODY = 8192


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    #: None: no read timeout, for a followed stream that may stay quiet for hours.
    read: float | None = 60.0

    def as_tuple(self) -> tuple[float, float | None]:
        return (self.connect, self.read)


def redact_url(url: str) -> str:
    """Drop any user:password@ part, so a URL can go into a message."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def summarize_error_body(body: str) -> str:
    """One line that says why a call failed: a JSON message, or a traceback's last line."""
    text = body.strip()
    if not text:
        return "empty response"
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for field in ("message", "msg", "error", "detail", "reason"):
            if isinstance(parsed.get(field), str) and parsed[field].strip():
                text = parsed[field].strip()
                break
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else "empty response"


class HttpClient:
    """Calls one base URL with fixed headers, TLS settings, timeouts and retry policy."""

    def __init__(
        self,
        base_url: str,
        *,
        error_class: type[ApiError] = ApiError,
        verify: bool | str = True,
        auth: tuple[str, str] | None = None,
        headers: Callable[[], Mapping[str, str]] | None = None,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        trust_env: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.error_class = error_class
        self.retry = retry
        self.timeouts = timeouts
        # Passed on every request: a per-request verify is not overridden by REQUESTS_CA_BUNDLE.
        self._verify = verify
        self._headers = headers
        self.session = requests.Session()
        self.session.trust_env = trust_env
        self.session.auth = auth
        self.request_count = 0

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> requests.Response:
        """Send one request, retried by the policy; return a 2xx response or raise ApiError."""
        policy = retry or self.retry
        return policy.call(
            lambda: self._send_once(method, path, params, json_body, data, headers, stream, timeouts),
            what=f"{method} {redact_url(self.url(path))}",
        )

    def iter_chunks(self, response: requests.Response, chunk_size: int | None) -> Iterator[bytes]:
        """A streamed body's chunks; a broken stream becomes a (transient) ApiError."""
        try:
            yield from response.iter_content(chunk_size=chunk_size)
        except requests.RequestException as error:
            raise self.error_class("GET", redact_url(response.url), None, _root_cause(error)) from error
        finally:
            response.close()

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as error:
            raise self.error_class(
                method, redact_url(self.url(path)), response.status_code, "answer is not JSON"
            ) from error

    def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        stream: bool,
        timeouts: Timeouts | None,
    ) -> requests.Response:
        url = self.url(path)
        shown_url = redact_url(url)
        all_headers = dict(self._headers() if self._headers else {})
        all_headers.update(headers or {})
        self.request_count += 1
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                data=data,
                headers=all_headers,
                stream=stream,
                verify=self._verify,
                timeout=(timeouts or self.timeouts).as_tuple(),
            )
        except requests.exceptions.SSLError as error:
            reason = _root_cause(error)
            # A certificate that does not verify stays so: retrying only delays the clear error.
            bad_certificate = "CERTIFICATE_VERIFY_FAILED" in reason or "hostname" in reason.lower()
            raise self.error_class(
                method,
                shown_url,
                None,
                f"TLS verification failed ({reason})",
                retryable=False if bad_certificate else None,
            ) from error
        except requests.RequestException as error:
            raise self.error_class(method, shown_url, None, _root_cause(error)) from error
        if response.status_code >= 400:
            body = _read_bounded(response)
            raise self.error_class(method, shown_url, response.status_code, summarize_error_body(body), body)
        return response


def abort_stream(response: requests.Response) -> None:
    """Wake a thread blocked reading this streamed response.

    ``response.close()`` from another thread blocks on the reader's buffer lock; shutting
    the socket down does not, and the reader then sees the end of the stream.
    """
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is None:
        # After "Connection: close" (a proxy, an ingress) http.client hands the socket over to
        # the response itself: reach it through the response's file object.
        file = getattr(getattr(response.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(file, "raw", None), "_sock", None)
    if not isinstance(sock, socket.socket):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


def _read_bounded(response: requests.Response) -> str:
    try:
        raw = next(response.iter_content(MAX_ERROR_BODY), b"")
    except requests.RequestException:
        raw = b""
    finally:
        response.close()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _root_cause(error: BaseException) -> str:
    """The innermost reason, e.g. 'Connection refused', without the URL noise."""
    cause: BaseException = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    text = str(cause) or type(cause).__name__
    # urllib3 packs the real reason after the last colon of a long repr.
    if "Errno" in text:
        text = text[text.index("[Errno") :].rstrip(")'\"")
    return f"{type(error).__name__}: {text}"[:300]
