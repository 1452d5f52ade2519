"""A small JSON-over-HTTP client: timeouts, the retry policy, and error translation.

This is the one place where ``requests`` exceptions and HTTP error statuses become
raypod errors. Both the Ray dashboard client and the Kubernetes client use it.

Every call has a total deadline (``Timeouts.total``) besides its connect and read timeouts: a
server that trickles its answer never holds a call longer. Every JSON answer is read bounded
and made valid text (``safetext.valid_json``) before anything looks at it.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from raypod.call_deadline import MIN_UPLOAD_RATE, CallDeadline, DeadlineAdapter
from raypod.errors import ApiError, RaypodError
from raypod.interrupt import cuttable
from raypod.proxies import Proxy, proxy_for, refused_for_good, requests_proxies, target_of, tunnel_refusal
from raypod.retry import RetryPolicy
from raypod.safetext import Scrubber, bounded_text, valid_json, valid_text

#: How much of an error body is kept: enough for Ray's traceback tail, bounded for memory.
MAX_ERROR_BODY = 8192
#: The most a JSON answer may hold: a pod limited to 100Mi cannot take a larger one whole.
MAX_JSON_BODY = 4 * 1024 * 1024
#: The most of a quoted answer that an "unexpected answer" message shows.
MAX_PROBLEM = 200
#: Read size while a JSON answer is taken in.
_JSON_READ = 64 * 1024
#: The reason given for a request that could not even be built: never the exception's text,
#: which may quote a header value (a token).
BUILD_FAILED = "the request could not be built: a header value or the URL is invalid; check the credential files"
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    #: None: no read timeout, for a followed stream that may stay quiet for hours.
    read: float | None = 60.0
    #: The whole call, from the connect to the answer's last byte (for a streamed answer: to its
    #: headers; its reader bounds the rest). None: ``connect + read``, what one slow read may take.
    total: float | None = None

    def as_tuple(self) -> tuple[float, float | None]:
        return (self.connect, self.read)

    @property
    def deadline(self) -> float | None:
        """The total bound of one call, or None (a followed stream)."""
        if self.total is not None:
            return self.total
        return None if self.read is None else self.connect + self.read


def redact_url(url: str) -> str:
    """Drop any user:password@ part, so a URL can go into a message."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def summarize_error_body(body: str, scrubber: Scrubber | None = None) -> str:
    """One line that says why a call failed: a JSON message, or a traceback's last line.

    The line it picks is scrubbed before it is cut (JSON's escapes may spell a secret that the
    raw body did not show), and printable."""
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
    # The last line that says something: Ray's wrapped agent error ends with a line holding only ".".
    lines = [line.strip() for line in text.splitlines() if any(char.isalnum() for char in line)]
    if not lines:
        return "empty response"
    return bounded_text((scrubber or Scrubber()).scrub(lines[-1]), 500)


@dataclass(frozen=True)
class JsonAnswer:
    """A parsed JSON answer and where it came from, so that its checker can say what was wrong."""

    value: Any
    method: str
    url: str
    status: int
    client: HttpClient

    def error(self, problem: str) -> ApiError:
        """A permanent error for an answer of the wrong shape: asking again gets the same answer.

        ``problem`` may quote the answer at any length: it is scrubbed, then bounded."""
        shown = bounded_text(self.client.scrubber().scrub(problem), MAX_PROBLEM)
        return self.client.make_error(
            self.method, self.url, self.status, f"unexpected answer: {shown}", retryable=False
        )


@dataclass(frozen=True)
class UpgradeRequest:
    """A WebSocket upgrade to the client's base URL, with what ``requests`` would send a GET."""

    url: str
    #: The headers (auth included) as ``requests`` would send them: secrets, never logged.
    headers: Mapping[str, str] = field(repr=False)
    #: False, or the CA bundle (file or directory) the TLS certificate is checked against.
    verify: bool | str
    timeouts: Timeouts
    #: The proxy the policy of raypod.proxies picks for the URL (the tail tunnels through it), or None.
    proxy: Proxy | None


class HttpClient:
    """Calls one base URL with fixed headers, TLS settings, timeouts and retry policy.

    Redirects are never followed (an auth header must not reach another host): a 3xx is an
    error that names the new address. Every error it raises has its header values and its
    basic-auth password replaced with ``***``.
    """

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
        reread_credentials: Callable[[], None] | None = None,
    ) -> None:
        """``reread_credentials``: called after a 401 or 403 to read rotated credentials (a token
        file) again; see ``renewing``."""
        self.base_url = base_url.rstrip("/")
        self.error_class = error_class
        self.retry = retry
        self.timeouts = timeouts
        # Passed on every request: a per-request verify is not overridden by REQUESTS_CA_BUNDLE.
        self._verify = verify
        self._headers = headers
        self._reread_credentials = reread_credentials
        #: Secrets of credentials replaced by a rotation: still secrets, if an answer quotes them.
        self._former_secrets: list[str] = []
        self.session = requests.Session()
        # Connections that a call's total deadline can cut (see raypod.call_deadline).
        adapter = DeadlineAdapter()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.trust_env = trust_env
        #: Where proxy variables are read (raypod.proxies): none at all without trust_env.
        self._proxy_environ: dict[str, str] | None = None if trust_env else {}
        self.session.auth = auth
        self.request_count = 0

    def close(self) -> None:
        self.session.close()

    def scrubber(self) -> Scrubber:
        """What must never appear in a message: the value of every header but the harmless ones (and
        a bearer token alone), the password. Made afresh for each use: a token file may be rotated
        while the pod runs."""
        try:
            headers = self._current_headers()
        except Exception:  # noqa: BLE001 - a header source that fails now failed before, where it was reported
            headers = {}
        auth = self.session.auth
        basic = (str(auth[0]), str(auth[1])) if isinstance(auth, tuple) and len(auth) == 2 else None
        scrubber = Scrubber.of_headers(headers, basic_auth=basic)
        proxy = self._proxy()
        return Scrubber([*scrubber.secrets, *self._former_secrets, *(proxy.secrets() if proxy is not None else [])])

    def renewing(self, call: Callable[[], T], rewind: Callable[[], bool] = lambda: True) -> T:
        """``call``, made once more when the server refused the credentials (401, 403) and reading
        them again changed the headers: a token file rotated while the pod runs. At most once per
        call (no loop of re-reads); otherwise the refusal stands as it was. ``rewind`` makes the
        request's body ready to be sent again, or says it cannot be."""
        if self._reread_credentials is None:
            return call()
        sent_with = self._current_headers()
        try:
            return call()
        except ApiError as error:
            if not error.unauthorized:
                raise
            self._reread_credentials()
            if self._current_headers() == sent_with or not rewind():
                raise
            self._former_secrets.extend(Scrubber.of_headers(sent_with).secrets)
            log.info(
                "%s %s: HTTP %s, and the credentials changed: sending it again", error.method, error.url, error.status
            )
        return call()

    def _current_headers(self) -> dict[str, str]:
        return dict(self._headers() if self._headers else {})

    def _proxy(self) -> Proxy | None:
        """The proxy this client's base URL goes through (raypod.proxies), or None; a proxy
        variable that does not parse is reported where the request is sent."""
        try:
            return proxy_for(self.base_url, self._proxy_environ)
        except RaypodError:
            return None

    def _cause(self, error: BaseException) -> str:
        """The exception's innermost reason, scrubbed before it is cut (it may quote a URL or a header)."""
        return bounded_text(self.scrubber().scrub(_root_cause(error)), 300)

    def make_error(
        self,
        method: str,
        url: str,
        status: int | None,
        reason: str,
        body: str = "",
        *,
        retryable: bool | None = None,
    ) -> ApiError:
        """This client's error class, with every secret it knows scrubbed from the reason, body and URL."""
        scrubber = self.scrubber()
        return self.error_class(
            method,
            scrubber.scrub(url),
            status,
            scrubber.scrub(reason),
            scrubber.scrub(body),
            retryable=retryable,
        )

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
        what = f"{method} {redact_url(self.url(path))}"
        seconds = self._deadline(timeouts, data)

        def once() -> requests.Response:
            with cuttable(what), CallDeadline(seconds) as deadline:
                try:
                    return self._send_once(method, path, params, json_body, data, headers, stream, timeouts)
                except ApiError as error:
                    past = self._past_deadline(deadline, method, path)
                    if past is None:
                        raise
                    raise past from error

        return self.renewing(lambda: policy.call(once, what=what), _rewinder(data))

    def _deadline(self, timeouts: Timeouts | None, data: Any) -> float | None:
        """The call's total bound; an upload from a file gets its size's worth more."""
        seconds = (timeouts or self.timeouts).deadline
        if seconds is None or not hasattr(data, "fileno"):
            return seconds
        try:
            size = os.fstat(data.fileno()).st_size
        except (OSError, ValueError):
            return None  # a body of unknown length: only the read timeout bounds it
        return seconds + size / MIN_UPLOAD_RATE

    def _past_deadline(self, deadline: CallDeadline, method: str, path: str) -> ApiError | None:
        """The (transient) error of a call cut by its total deadline, if that is what ended it."""
        if not deadline.expired:
            return None
        return self.make_error(
            method,
            redact_url(self.url(path)),
            None,
            f"no complete answer within {deadline.seconds:g} s (the call's total deadline)",
            retryable=True,
        )

    def iter_chunks(self, response: requests.Response, chunk_size: int | None) -> Iterator[bytes]:
        """A streamed body's chunks; a broken stream becomes a (transient) ApiError."""
        try:
            yield from response.iter_content(chunk_size=chunk_size)
        except requests.RequestException as error:
            raise self.make_error("GET", redact_url(response.url), None, self._cause(error)) from error
        finally:
            response.close()

    def upgrade_request(self, path: str) -> UpgradeRequest:
        """What a WebSocket upgrade of ``path`` must send: this client's headers, auth, TLS
        settings, timeouts and proxy, taken from ``requests`` itself so they cannot drift apart."""
        url = self.url(path)
        try:
            prepared = self.session.prepare_request(requests.Request("GET", url, headers=self._current_headers()))
        except (ValueError, TypeError) as error:
            # Never the exception's text: it may quote a header value.
            raise self.make_error(
                "GET", redact_url(url), None, f"{type(error).__name__}: {BUILD_FAILED}", retryable=False
            ) from None
        settings = self.session.merge_environment_settings(url, {}, None, self._verify, None)
        verify = settings["verify"]
        proxy = proxy_for(url, self._proxy_environ)
        # As requests does with verify=True: its CA bundle (certifi's), unless the environment named one.
        ca: bool | str = verify if isinstance(verify, str) or verify is False else requests.utils.DEFAULT_CA_BUNDLE_PATH
        hop_by_hop = ("connection", "accept-encoding", "content-length", "transfer-encoding")
        headers = {name: value for name, value in prepared.headers.items() if name.lower() not in hop_by_hop}
        self.request_count += 1
        return UpgradeRequest(
            url,
            headers,
            ca,
            self.timeouts,
            proxy,
        )

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The parsed JSON answer; see ``json_answer``."""
        return self.json_answer(method, path, **kwargs).value

    def json_answer(
        self,
        method: str,
        path: str,
        *,
        max_bytes: int = MAX_JSON_BODY,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
    ) -> JsonAnswer:
        """Send one request and parse its JSON answer, read in pieces and at most ``max_bytes`` of it.

        A larger answer, or one that is not JSON, is a permanent ApiError; a connection that
        breaks while the answer is read is a transient one, retried like any other.
        """
        policy = retry or self.retry
        what = f"{method} {redact_url(self.url(path))}"
        seconds = self._deadline(timeouts, data)

        def once() -> JsonAnswer:
            with cuttable(what), CallDeadline(seconds) as deadline:
                try:
                    response = self._send_once(method, path, params, json_body, data, headers, True, timeouts)
                    return self._read_json(response, method, path, max_bytes, deadline)
                except ApiError as error:
                    past = self._past_deadline(deadline, method, path)
                    if past is None:
                        raise
                    raise past from error

        return self.renewing(lambda: policy.call(once, what=what), _rewinder(data))

    def _read_json(
        self, response: requests.Response, method: str, path: str, max_bytes: int, deadline: CallDeadline
    ) -> JsonAnswer:
        shown_url = redact_url(self.url(path))
        status = response.status_code
        try:
            declared = response.headers.get("Content-Length", "")
            if declared.strip().isdigit() and int(declared) > max_bytes:
                raise self.make_error(
                    method, shown_url, status, f"answer larger than {max_bytes} bytes", retryable=False
                )
            buffer = bytearray()
            try:
                for chunk in response.iter_content(chunk_size=_JSON_READ):
                    if len(buffer) + len(chunk) > max_bytes:
                        raise self.make_error(
                            method, shown_url, status, f"answer larger than {max_bytes} bytes", retryable=False
                        )
                    buffer += chunk
            except requests.RequestException as error:
                raise self.make_error(method, shown_url, None, self._cause(error)) from error
        finally:
            response.close()
        past = self._past_deadline(deadline, method, path)
        if past is not None:
            raise past  # what was read before the cut is not the whole answer
        try:
            value = json.loads(bytes(buffer))
        except (ValueError, RecursionError):
            content_type = bounded_text(valid_text(response.headers.get("Content-Type") or "none"), 80)
            # The answer's start is kept as the error's body (scrubbed there): it says what answered.
            start = bytes(buffer[:MAX_ERROR_BODY]).decode("utf-8", "replace")
            raise self.make_error(
                method, shown_url, status, f"{NOT_JSON} (content type {content_type})", start, retryable=False
            ) from None
        # Only JSON's \u escapes make a lone surrogate: look for them before walking the whole answer.
        if b"\\u" in buffer:
            value = valid_json(value)
        return JsonAnswer(value, method, shown_url, status, self)

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
        all_headers = self._current_headers()
        all_headers.update(headers or {})
        self.request_count += 1
        response: requests.Response | None = None
        unbuildable = ""
        # raypod's proxy policy, not requests' own reading of the environment (see raypod.proxies).
        proxies = requests_proxies(url, self._proxy_environ)
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
                # Never followed: requests strips only Authorization on a new host, not X-Ray-Authorization.
                allow_redirects=False,
                proxies=proxies,  # type: ignore[arg-type]  # None removes a key (requests' merge_setting)
            )
        except requests.exceptions.ProxyError as error:
            raise self._proxy_error(method, shown_url, error) from error
        except requests.exceptions.SSLError as error:
            reason = self._cause(error)
            # A certificate that does not verify stays so: retrying only delays the clear error.
            bad_certificate = "CERTIFICATE_VERIFY_FAILED" in reason or "hostname" in reason.lower()
            raise self.make_error(
                method,
                shown_url,
                None,
                f"TLS verification failed ({reason})",
                retryable=False if bad_certificate else None,
            ) from error
        except (ValueError, TypeError) as error:
            # The request could not be built (InvalidHeader, InvalidURL, a header value that is
            # not latin-1...): no retry can mend it, and the exception's text may quote a token.
            unbuildable = type(error).__name__
        except requests.RequestException as error:
            if not_http(error):
                # Something answered, in bytes that are not HTTP (a gRPC port): asking again gets the same.
                raise self.make_error(
                    method, shown_url, None, NOT_HTTP + self._cause(error), retryable=False
                ) from error
            raise self.make_error(method, shown_url, None, self._cause(error)) from error
        if response is None:
            # Raised outside the handler: the exception is not even kept as this one's context.
            raise self.make_error(method, shown_url, None, f"{unbuildable}: {BUILD_FAILED}", retryable=False)
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location") or ""
            response.close()
            try:
                target = redact_url(urljoin(url, location)) if location else "an unnamed address"
            except ValueError:
                target = "an address that does not parse"
            target = bounded_text(target, 300)
            raise self.make_error(
                method,
                shown_url,
                response.status_code,
                f"the address redirects to {target}, and redirects are not followed; "
                "give the final address in resourceURL",
                retryable=False,
            )
        if response.status_code >= 400:
            # Scrubbed before it is summarized and cut: a token cut in two could not be found.
            scrubber = self.scrubber()
            body = scrubber.cut(_read_bounded(response, MAX_ERROR_BODY + scrubber.longest), MAX_ERROR_BODY)
            reason = summarize_error_body(body, scrubber)
            proxy = self._proxy()
            if proxy is not None and url.lower().startswith("http://"):
                # A plain-HTTP request is answered by the proxy itself when it refuses (403, 407).
                reason = f"{reason} (through the proxy {proxy.shown} from {proxy.variable})"
            refused = self.make_error(method, shown_url, response.status_code, reason, body)
            if response.status_code in (429, 503):
                refused.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            raise refused
        return response

    def _proxy_error(self, method: str, shown_url: str, error: requests.exceptions.ProxyError) -> ApiError:
        """The proxy did not connect to the target: a clear error naming both. A proxy that
        answers its CONNECT with a 4xx (403: it may not reach that host) answers so again."""
        proxy = self._proxy()
        reason = tunnel_refusal(error, proxy, target_of(self.base_url)) or self._cause(error)
        return self.make_error(method, shown_url, None, reason, retryable=False if refused_for_good(error) else None)


def _rewinder(data: Any) -> Callable[[], bool]:
    """What makes ``data`` ready to be sent again: a file body goes back to where it started; any
    other stream cannot be sent twice."""
    if data is None or isinstance(data, (bytes, str, dict, list, tuple)):
        return lambda: True
    try:
        start = data.tell()
    except (AttributeError, OSError, ValueError):
        return lambda: False

    def rewind() -> bool:
        try:
            data.seek(start)
        except (AttributeError, OSError, ValueError):
            return False
        return True

    return rewind


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP-date (RFC 9110 10.2.3); None
    when absent or unreadable (the retry policy's own backoff then applies)."""
    text = (value or "").strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text[:9]))  # nine digits are years: the policy caps the wait anyway
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None  # an HTTP-date is always GMT; a date without a zone is not one
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _read_bounded(response: requests.Response, limit: int) -> str:
    try:
        raw = next(response.iter_content(limit), b"")
    except requests.RequestException:
        raw = b""
    finally:
        response.close()
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


#: How an answer that is not JSON, or not HTTP at all, is named in an error's reason.
NOT_JSON = "answer is not JSON"
NOT_HTTP = "not an HTTP answer: "


def not_http(error: BaseException) -> bool:
    """The server answered with bytes that are no HTTP status line. A connection closed before any
    answer (``RemoteDisconnected``, a restarting server) is not one: that may heal."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, http.client.BadStatusLine) and not isinstance(cause, http.client.RemoteDisconnected):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _root_cause(error: BaseException) -> str:
    """The innermost reason, e.g. 'Connection refused', without the URL noise; not cut (see ``_cause``)."""
    cause: BaseException = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    text = str(cause) or type(cause).__name__
    # urllib3 packs the real reason after the last colon of a long repr.
    if "Errno" in text:
        text = text[text.index("[Errno") :].rstrip(")'\"")
    return f"{type(error).__name__}: {text}"
