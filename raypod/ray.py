"""The Ray dashboard's job REST API, over plain HTTP (no Ray SDK)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import requests

from raypod.contract import BridgeStatus, TextEnum, assert_never, submission_id_problem
from raypod.credentials import RayCredentials
from raypod.errors import ConfigError, RayApiError
from raypod.http import (
    MAX_PROBLEM,
    NOT_HTTP,
    NOT_JSON,
    HttpClient,
    JsonAnswer,
    Timeouts,
    redact_url,
    summarize_error_body,
)
from raypod.ray_auth import RayTokenAuth
from raypod.ray_failures import RayFailure, error_type_of, ray_failure
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.safetext import bounded_text
from raypod.terminal import ByteCounter, ByteProgress, no_progress
from raypod.websocket import (
    NO_STATUS,
    NORMAL_CLOSURE,
    WebSocket,
    WebSocketError,
    WebSocketRefused,
)

log = logging.getLogger(__name__)


def segment(text: str) -> str:
    """One path segment, every reserved character encoded: ``/`` too, so an id never walks the path
    (urllib3 would turn ``/api/jobs/a/../b`` into ``/api/jobs/b``)."""
    return quote(text, safe="")


class RayStatus(TextEnum):
    """Every status Ray's job API gives; anything else is an answer raypod cannot trust."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"

    @property
    def terminal(self) -> bool:
        match self:
            case RayStatus.SUCCEEDED | RayStatus.FAILED | RayStatus.STOPPED:
                return True
            case RayStatus.PENDING | RayStatus.RUNNING:
                return False
            case _:
                assert_never(self)

    @property
    def bridge(self) -> BridgeStatus:
        """The Bridge status that says the same."""
        match self:
            case RayStatus.PENDING:
                return BridgeStatus.PENDING
            case RayStatus.RUNNING:
                return BridgeStatus.RUNNING
            case RayStatus.SUCCEEDED:
                return BridgeStatus.SUCCEEDED
            case RayStatus.FAILED:
                return BridgeStatus.FAILED
            case RayStatus.STOPPED:
                return BridgeStatus.KILL
            case _:
                assert_never(self)


RAY_STOPPED = RayStatus.STOPPED
RAY_STATUSES = tuple(status.value for status in RayStatus)
RAY_TERMINAL_STATUSES = tuple(status.value for status in RayStatus if status.terminal)
#: Ray's answer to a POST whose submission_id exists already (an HTTP 500 with a traceback).
DUPLICATE_ID_MARKERS = ("Please use a different submission_id", "already exists")
#: How much of Ray's message is kept (it may carry the log's tail; status.message is one sentence).
MAX_MESSAGE = 4096
#: Ray's times are ms since the epoch; beyond this (year 5138) a time is junk, not a date.
MAX_TIME_MS = 10**14
#: Identifiers that go into URLs and messages: longer ones are junk.
MAX_ID = 512
#: ``GET /api/jobs/`` lists every job the cluster remembers: only the CLI asks, so it may be larger.
MAX_LIST_BODY = 64 * 1024 * 1024
#: Ray answers a package check with an empty body; a few bytes more show that it did not.
MAX_PACKAGE_ANSWER = 1024
#: Read size of the log streams: bounds what one read holds.
LOG_CHUNK = 256 * 1024
#: The driver's log file on its node, as Ray names it (``JOB_LOGS_PATH_TEMPLATE``, unchanged since
#: Ray 1.9). Asked for by name on the driver's node, the state API reads it at once; asked for by
#: ``submission_id`` it first looks the job up among every job the cluster has (its whole job table
#: and all their infos), which costs the head about 20 ms more a read with 100 jobs, and more with more.
DRIVER_LOG_FILE = "job-driver-{}.log"
#: How long the log tail lets small frames gather between reads (Ray itself batches for 1 s).
TAIL_LINGER = 0.05
#: The tail's read size: what the follower thread holds at once is a few times this.
TAIL_READ_SIZE = 64 * 1024
#: Ray answers the tail's upgrade at once. Behind a proxy that drops the upgrade headers, Ray 2.60
#: answers (500) only when the job has ended: after this long, the tail is taken as refused.
TAIL_HANDSHAKE_TIMEOUT = 10.0


class UnexpectedAnswer(Exception):
    """An answer of the wrong shape; the client turns it into a permanent RayApiError."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _show(value: object) -> str:
    """A printable repr of a value from an answer, for a message. Not cut short here: the
    message is scrubbed of secrets first and bounded after (a token cut in two is not found)."""
    text = repr(value) if isinstance(value, str) else json_type(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _time_ms(value: object) -> int | None:
    """A finite time in a plausible ms range, else absent."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not 0 < value < MAX_TIME_MS:
        return None
    ms = int(value)
    return ms if ms > 0 else None  # 0.5 ms is Ray's "not yet" too


def _exit_code(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**32:
        return None
    return value


def _text(value: object, limit: int | None = None) -> str:
    if not isinstance(value, str):
        return ""
    return value if limit is None or len(value) <= limit else value[:limit]


def _identifier(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID else None


def _metadata(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return {}
    return dict(value)


@dataclass(frozen=True)
class JobInfo:
    submission_id: str
    status: RayStatus
    message: str = ""
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None
    #: Ray's own reason for a FAILED job (``RayErrorType``'s shape), checked; None when absent or junk.
    error_type: str | None = None
    entrypoint: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # Ray's status as its type, whoever built the JobInfo (an unknown one raises ValueError).
        object.__setattr__(self, "status", RayStatus(self.status))

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @property
    def failure(self) -> RayFailure:
        """Ray's reason for the job's failure as ``status.reason``, and whether a retry can help
        (meaningful for a FAILED job only)."""
        return ray_failure(self.error_type, self.driver_exit_code)

    @classmethod
    def from_api(cls, data: object, answer: JsonAnswer | None = None) -> JobInfo:
        """A job from Ray's answer, every field checked.

        Not an object, or a status that is not one of ``RAY_STATUSES``: a permanent RayApiError
        (from ``answer``, which says where the answer came from, when given). An optional field of
        the wrong type or out of range counts as absent.
        """
        try:
            job = cls.parse(data)
        except UnexpectedAnswer as error:
            if answer is not None:
                raise answer.error(error.problem) from None
            problem = bounded_text(error.problem, MAX_PROBLEM)
            raise RayApiError("GET", "", 200, f"unexpected answer: {problem}", retryable=False) from None
        # Ray's message goes into the status: a dashboard that echoes a credential must not put it there.
        return replace(job, message=answer.client.scrubber().scrub(job.message)) if answer is not None else job

    @classmethod
    def parse(cls, data: object) -> JobInfo:
        """``from_api`` without the error translation: raises UnexpectedAnswer."""
        if not isinstance(data, dict):
            raise UnexpectedAnswer(f"not a job object but {json_type(data)}")
        status = data.get("status")
        if status is None:
            said = next((data[k] for k in ("error", "message", "detail") if isinstance(data.get(k), str)), None)
            raise UnexpectedAnswer("no job status" + (f" (the answer says {_show(said)})" if said else ""))
        if status not in RAY_STATUSES:
            raise UnexpectedAnswer(f"unknown job status {_show(status)}")
        return cls(
            submission_id=_identifier(data.get("submission_id")) or _identifier(data.get("job_id")) or "",
            status=RayStatus(status),
            message=_text(data.get("message"), MAX_MESSAGE),
            start_time_ms=_time_ms(data.get("start_time")),
            end_time_ms=_time_ms(data.get("end_time")),
            driver_node_id=_identifier(data.get("driver_node_id")),
            driver_exit_code=_exit_code(data.get("driver_exit_code")),
            error_type=error_type_of(data.get("error_type")),
            entrypoint=_text(data.get("entrypoint")),
            metadata=_metadata(data.get("metadata")),
            raw=dict(data),
        )


def is_duplicate_submission(error: RayApiError) -> bool:
    return error.status in (400, 409, 500) and any(marker in error.body for marker in DUPLICATE_ID_MARKERS)


def is_wrapped_rejection(error: RayApiError) -> bool:
    """The dashboard's 500 around its job agent's 4xx: Ray refused the request; retrying cannot help."""
    return error.status == 500 and "Request failed with status code 4" in error.body


def ray_tls_verify(credentials: RayCredentials) -> bool | str:
    """A CA bundle from RAYPOD_RAY_CA_BUNDLE or the credentials' ca.crt; else the system's."""
    bundle = os.environ.get("RAYPOD_RAY_CA_BUNDLE") or (str(credentials.ca_bundle) if credentials.ca_bundle else "")
    return bundle or True


#: One try of ``GET /api/version`` (a tiny answer): short, so that one slow or trickled answer
#: leaves the connect phase (``--connect-timeout``) time to ask again.
VERSION_TIMEOUTS = Timeouts(connect=5.0, read=10.0, total=10.0)


#: How much of a stranger's answer a "not a Ray dashboard" message quotes.
MAX_ANSWER_SHOWN = 120
#: Answers to ``/api/version`` that a Ray dashboard may give on its way (auth, a proxy's auth, throttling).
_RAY_MAY_SAY = frozenset({401, 403, 407, 429})


#: How ``version`` names a JSON answer that is not an object.
NOT_A_VERSION = "not a version object"


def stranger_at(address: str, origin: str, error: RayApiError) -> ConfigError | None:
    """``GET /api/version``'s failure as bad input, when no Ray dashboard answers so (``not_a_dashboard``)."""
    what = not_a_dashboard(error)
    if what is None:
        return None
    return ConfigError.single(origin, f"{redact_url(address)} is not a Ray dashboard ({what})")


def not_a_dashboard(error: RayApiError) -> str | None:
    """What answered ``GET /api/version``, when no Ray dashboard answers so: bytes that are not HTTP,
    a 2xx that is not a JSON object, a 4xx (Ray has this route in every 2.x). None for what may heal or
    has its own message (no answer, a redirect, 5xx, 401/403/407/429, an answer too large). Scrubbed
    already (``make_error``), cut here."""
    if error.status is None:
        if NOT_HTTP not in error.reason:
            return None
        return shown_answer(error.reason[error.reason.index(NOT_HTTP) :])
    if 200 <= error.status < 300 and NOT_A_VERSION in error.reason:
        return f"HTTP {error.status}: {shown_answer(error.reason)}"
    if 200 <= error.status < 300 and NOT_JSON in error.reason:
        return f"HTTP {error.status}: {shown_answer(error.body)}"
    if 400 <= error.status < 500 and error.status not in _RAY_MAY_SAY:
        return f"HTTP {error.status}: {shown_answer(error.reason)}"
    return None


def shown_answer(text: str) -> str:
    """A stranger's answer (scrubbed already) as a short part of one line: its whitespace folded,
    so an XML or HTML page shows more than its first line."""
    return bounded_text(" ".join(text.split()), MAX_ANSWER_SHOWN) or "an empty answer"


class RayJobsClient:
    """One method per dashboard call raypod makes."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        #: Ray's first version answer: one run asks once (``submit``'s check and each attempt's reuse it).
        self._version: dict[str, Any] | None = None

    @classmethod
    def connect(
        cls,
        address: str,
        credentials: RayCredentials = RayCredentials(),
        *,
        basic_auth: bool = False,
        retry: RetryPolicy = RetryPolicy(),
        timeouts: Timeouts = Timeouts(),
    ) -> RayJobsClient:
        auth = None
        if basic_auth:
            if not (credentials.username and credentials.password):
                raise ConfigError.single(
                    "jobproperties", "auth is 'basic' but the credentials directory has no username and password"
                )
            auth = (credentials.username, credentials.password)
        # The token and an auth proxy's own headers (a cookie, a proxy token) go on every call, and
        # are scrubbed alike; which header carries the token is raypod.ray_auth's decision.
        token_auth = RayTokenAuth(credentials, basic=auth is not None)
        http = HttpClient(
            address,
            error_class=RayApiError,
            verify=ray_tls_verify(credentials),
            auth=auth,
            headers=token_auth.headers,
            retry=retry,
            timeouts=timeouts,
            reread_credentials=token_auth.reread,
        )
        return cls(http)

    def close(self) -> None:
        self.http.close()

    @property
    def address(self) -> str:
        return self.http.base_url

    # -- cluster ---------------------------------------------------------------
    def version(self, retry: RetryPolicy | None = None) -> dict[str, Any]:
        """``/api/version``, asked once per client: the dashboard at this address was shown to be Ray's,
        and asking again for every attempt costs the dashboard a request and says nothing new."""
        if self._version is None:
            answer = self.http.json_answer("GET", "/api/version", retry=retry, timeouts=VERSION_TIMEOUTS)
            if not isinstance(answer.value, dict):
                raise answer.error(f"{NOT_A_VERSION} but {json_type(answer.value)}")
            self._version = answer.value
        return dict(self._version)

    # -- working-dir packages ------------------------------------------------------
    def package_exists(self, name: str) -> bool:
        """Ray answers 200 with an empty body when it has the package, 404 when not. Anything else
        with a 200 (an ingress's sign-in page) is not Ray's answer, and must not skip the upload."""
        path = f"/api/packages/gcs/{segment(name)}"
        try:
            response = self.http.request("GET", path, stream=True)
        except RayApiError as error:
            if error.package_unknown:
                return False
            raise
        try:
            body = next(response.iter_content(MAX_PACKAGE_ANSWER + 1), b"")
            content_type = response.headers.get("Content-Type") or ""
        except requests.RequestException as error:
            raise self.http.make_error("GET", self.http.url(path), None, type(error).__name__) from error
        finally:
            response.close()
        if body.strip() or "html" in content_type.lower():
            raise self.http.make_error(
                "GET",
                self.http.url(path),
                response.status_code,
                f"unexpected answer: not Ray's answer to a package check (content type {content_type or 'none'}, "
                f"{len(body)}{'+' if len(body) > MAX_PACKAGE_ANSWER else ''} bytes); is an ingress or a "
                "sign-in page in front of the dashboard?",
                retryable=False,
            )
        return True

    def upload_package(self, name: str, path: Path, progress: ByteProgress = no_progress) -> None:
        """Streamed from the file (memory stays flat whatever its size); ``progress`` hears each piece
        the HTTP client reads to send."""

        def put_once() -> None:
            size = path.stat().st_size
            with path.open("rb") as file, progress(f"uploading {name}", size) as sent:
                self.http.request(
                    "PUT",
                    f"/api/packages/gcs/{segment(name)}",
                    data=CountedReader(file, size, sent),
                    headers={"Content-Type": "application/octet-stream"},
                    retry=NO_RETRY,
                ).close()

        self.http.retry.call(put_once, what=f"upload of package {name}")

    # -- jobs --------------------------------------------------------------------------
    def submit_job(self, payload: Mapping[str, Any], retry: RetryPolicy | None = None) -> str:
        answer = self.http.json_answer("POST", "/api/jobs/", json_body=dict(payload), retry=retry)
        data = answer.value
        if not isinstance(data, dict):
            raise answer.error(f"not a submission object but {json_type(data)}")
        submission_id = data.get("submission_id")
        if not isinstance(submission_id, str) or not submission_id:
            # Ray always names the job it took: an answer without the id is garbled, not an acceptance.
            raise answer.error(f"submission_id is {json_type(submission_id)}, not the job's id")
        asked = payload.get("submission_id")
        if asked and submission_id != asked:
            raise answer.error(f"submission_id {_show(submission_id)} is not the id asked for")
        return submission_id

    def get_job(
        self, submission_id: str, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None
    ) -> JobInfo:
        answer = self.http.json_answer("GET", f"/api/jobs/{segment(submission_id)}", retry=retry, timeouts=timeouts)
        return JobInfo.from_api(answer.value, answer)

    def list_jobs(self) -> list[JobInfo]:
        """Every job Ray lists; items of the wrong shape are left out (and counted in a warning)."""
        answer = self.http.json_answer("GET", "/api/jobs/", max_bytes=MAX_LIST_BODY)
        if not isinstance(answer.value, list):
            raise answer.error(f"not a list of jobs but {json_type(answer.value)}")
        jobs: list[JobInfo] = []
        skipped: list[str] = []
        for item in answer.value:
            try:
                jobs.append(JobInfo.parse(item))
            except UnexpectedAnswer as error:
                skipped.append(error.problem)
        if skipped:
            log.warning("left out %d malformed job(s) of Ray's list, e.g.: %s", len(skipped), skipped[0])
        return jobs

    def stop_job(self, submission_id: str, timeouts: Timeouts | None = None, retry: RetryPolicy | None = None) -> bool:
        answer = self.http.json_answer(
            "POST", f"/api/jobs/{segment(submission_id)}/stop", timeouts=timeouts, retry=retry
        )
        stopped = answer.value.get("stopped") if isinstance(answer.value, dict) else None
        if not isinstance(stopped, bool):
            raise answer.error('not {"stopped": true|false}')
        return stopped

    def delete_job(self, submission_id: str) -> bool:
        """Ray forgets a job that has ended (its info and log); it refuses one that has not."""
        answer = self.http.json_answer("DELETE", f"/api/jobs/{segment(submission_id)}", retry=NO_RETRY)
        deleted = answer.value.get("deleted") if isinstance(answer.value, dict) else None
        if not isinstance(deleted, bool):
            raise answer.error('not {"deleted": true|false}')
        return deleted

    def job_logs(self, submission_id: str) -> str:
        """The whole log in one JSON string: only a fallback, it costs memory (and is capped)."""
        answer = self.http.json_answer("GET", f"/api/jobs/{segment(submission_id)}/logs")
        logs = answer.value.get("logs") if isinstance(answer.value, dict) else None
        if not isinstance(logs, str):
            raise answer.error('not {"logs": "<text>"}')
        return logs

    def open_log_stream(
        self,
        submission_id: str,
        node_id: str,
        *,
        by_name: bool = True,
        read_timeout: float | None = 60.0,
        retry: RetryPolicy | None = None,
    ) -> requests.Response:
        """The driver's whole log as a plain-text stream (``/api/v0/logs/file``): it ends at the file's
        end. (Never ``/api/v0/logs/stream``, which follows: ``raypod.logs.LogFollower`` says why.)

        The file is asked for by its name on the driver's node (``DRIVER_LOG_FILE`` says why), or
        with ``by_name=False`` by the job's id, for a Ray that names it otherwise."""
        params = {"node_id": node_id, "lines": "-1"}
        if by_name:
            params["filename"] = DRIVER_LOG_FILE.format(submission_id)
        else:
            params["submission_id"] = submission_id
        return self.http.request(
            "GET",
            "/api/v0/logs/file",
            params=params,
            stream=True,
            retry=retry,
            timeouts=Timeouts(self.http.timeouts.connect, read_timeout),
        )

    def log_chunks(self, job: JobInfo) -> Generator[bytes, None, None]:
        """The driver's whole log as a stream, in pieces of at most ``LOG_CHUNK`` bytes; Ray's
        one-string answer when no driver ran, or when this Ray has no log stream endpoint."""
        if job.driver_node_id is None:
            # The driver never started (e.g. the runtime_env failed): nothing to stream from a node.
            yield from _pieces(self.job_logs(job.submission_id).encode("utf-8"))
            return
        try:
            response = self._open_driver_log(job.submission_id, job.driver_node_id)
        except RayApiError as error:
            if error.status not in (404, 405):
                raise
            log.warning(
                "this Ray has no log stream endpoint (%s); falling back to /api/jobs/%s/logs "
                "(the log is held in memory)",
                error.reason,
                job.submission_id,
            )
            yield from _pieces(self.job_logs(job.submission_id).encode("utf-8"))
            return
        yield from self.stream_chunks(response)

    def _open_driver_log(self, submission_id: str, node_id: str) -> requests.Response:
        """The driver's log by its file name; by the job's id when Ray says no file has that name,
        or when the id (Ray's answer, which any client may have set) would make the name a path."""
        if submission_id_problem(submission_id) is not None:
            return self.open_log_stream(submission_id, node_id, by_name=False)
        try:
            return self.open_log_stream(submission_id, node_id)
        except RayApiError as error:
            if not error.log_file_missing:
                raise
            log.info(
                "Ray has no %s on the driver's node: the job's log is asked for by its id",
                DRIVER_LOG_FILE.format(submission_id),
            )
            return self.open_log_stream(submission_id, node_id, by_name=False)

    def stream_chunks(self, response: requests.Response) -> Iterator[bytes]:
        """A streamed answer's bytes as they come, at most ``LOG_CHUNK`` at a time; a broken stream
        is a (transient) RayApiError."""
        return self.http.iter_chunks(response, LOG_CHUNK)

    def open_log_tail(self, submission_id: str, on_socket: Callable[[WebSocket], None] | None = None) -> WebSocket:
        """Ray's WebSocket tail of the job's log (``/api/jobs/<id>/logs/tail``), open.

        Ray sends the log from its first line as text, the file read with universal newlines
        (``\r\n`` and ``\r`` arrive as ``\n``), and closes it (code 1000) once the job has
        ended. ``on_socket`` is given the socket before it connects, so that ``abort()`` can end
        the handshake too. Any answer but 101 (an ingress without WebSocket support, a 404), or
        none within ``TAIL_HANDSHAKE_TIMEOUT``, is a permanent RayApiError; a connection that
        fails, a transient one. A refusal (401, 403) is tried once more if the token file changed.
        """
        return self.http.renewing(lambda: self._open_log_tail_once(submission_id, on_socket))

    def _open_log_tail_once(self, submission_id: str, on_socket: Callable[[WebSocket], None] | None) -> WebSocket:
        upgrade = self.http.upgrade_request(f"/api/jobs/{segment(submission_id)}/logs/tail")
        shown = redact_url(upgrade.url)
        try:
            tail = WebSocket(
                upgrade.url,
                upgrade.headers,
                verify=upgrade.verify,
                connect_timeout=upgrade.timeouts.connect,
                handshake_timeout=min(TAIL_HANDSHAKE_TIMEOUT, upgrade.timeouts.read or TAIL_HANDSHAKE_TIMEOUT),
                # A quiet job may print nothing for hours: only abort() ends the wait.
                idle_timeout=None,
                # Ray sends a frame per 10 lines: read them in batches, a little later, for far less CPU.
                read_size=TAIL_READ_SIZE,
                linger=TAIL_LINGER,
                what=f"GET {shown} (WebSocket)",
                proxy=upgrade.proxy,
            )
            if on_socket is not None:
                on_socket(tail)
            return tail.open()
        except WebSocketRefused as error:
            body = self.http.scrubber().scrub(error.body)
            reason = summarize_error_body(body) if body.strip() else error.reason or "no reason given"
            raise self.http.make_error(
                "GET", shown, error.status, f"{reason} (WebSocket upgrade refused)", error.body, retryable=False
            ) from None
        except WebSocketError as error:
            raise self._tail_error(shown, error) from None

    def tail_chunks(self, tail: WebSocket) -> Iterator[bytes]:
        """The tail's bytes as they come. Returns when Ray closed it normally; a tail that broke,
        or closed with another code, is a transient RayApiError, a server that broke the protocol
        a permanent one."""
        shown = redact_url(tail.url)
        try:
            yield from tail.chunks()
        except WebSocketError as error:
            raise self._tail_error(shown, error) from None
        if tail.close_code not in (NORMAL_CLOSURE, NO_STATUS):
            reason = f": {bounded_text(tail.close_reason, 200)}" if tail.close_reason else ""
            raise self.http.make_error("GET", shown, None, f"the log tail closed with code {tail.close_code}{reason}")

    def _tail_error(self, shown_url: str, error: WebSocketError) -> RayApiError:
        made = self.http.make_error("GET", shown_url, None, str(error), retryable=False if error.lasting else None)
        assert isinstance(made, RayApiError)
        return made


class CountedReader:
    """A file as a request body, each read counted: requests sends its ``__len__`` as the
    Content-Length and reads it in blocks, never whole. ``tell`` and ``seek`` let a call refused for
    rotated credentials send it again from the start (``raypod.http``), counted back."""

    def __init__(self, file: BinaryIO, size: int, counted: ByteCounter) -> None:
        self.file = file
        self.size = size
        self.counted = counted

    def __len__(self) -> int:
        return self.size

    def read(self, size: int = -1) -> bytes:
        piece = self.file.read(size)
        self.counted(len(piece))
        return piece

    def tell(self) -> int:
        return self.file.tell()

    def seek(self, offset: int) -> int:
        before = self.file.tell()
        after = self.file.seek(offset)
        self.counted(after - before)
        return after


def _pieces(data: bytes) -> Iterator[bytes]:
    """A log held whole (the fallback) in LOG_CHUNK-sized pieces, so the echo works on bounded blocks."""
    for start in range(0, len(data), LOG_CHUNK):
        yield data[start : start + LOG_CHUNK]
