"""The Ray dashboard's job REST API, over plain HTTP (no Ray SDK)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from raypod.credentials import RayCredentials
from raypod.errors import ConfigError, RayApiError
from raypod.http import HttpClient, Timeouts
from raypod.retry import NO_RETRY, RetryPolicy

RAY_STOPPED = "STOPPED"
RAY_TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", RAY_STOPPED)
#: Ray's answer to a POST whose submission_id exists already (an HTTP 500 with a traceback).
DUPLICATE_ID_MARKERS = ("Please use a different submission_id", "already exists")


@dataclass(frozen=True)
class JobInfo:
    submission_id: str
    status: str
    message: str = ""
    start_time_ms: int | None = None
    end_time_ms: int | None = None
    driver_node_id: str | None = None
    driver_exit_code: int | None = None
    entrypoint: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in RAY_TERMINAL_STATUSES

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> JobInfo:
        def ms(name: str) -> int | None:
            value = data.get(name)
            return int(value) if isinstance(value, (int, float)) and value > 0 else None

        return cls(
            submission_id=str(data.get("submission_id") or data.get("job_id") or ""),
            status=str(data.get("status") or "UNKNOWN"),
            message=str(data.get("message") or ""),
            start_time_ms=ms("start_time"),
            end_time_ms=ms("end_time"),
            driver_node_id=data.get("driver_node_id") or None,
            driver_exit_code=data.get("driver_exit_code"),
            entrypoint=str(data.get("entrypoint") or ""),
            metadata=dict(data.get("metadata") or {}),
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


class RayJobsClient:
    """One method per dashboard call raypod makes."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http

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
        headers: dict[str, str] = {}
        auth = None
        if basic_auth:
            if not (credentials.username and credentials.password):
                raise ConfigError.single(
                    "jobproperties", "auth is 'basic' but the credentials directory has no username and password"
                )
            auth = (credentials.username, credentials.password)
        if credentials.token:
            # Basic auth takes the Authorization header (for the ingress); Ray also reads this one.
            headers["X-Ray-Authorization" if auth else "Authorization"] = f"Bearer {credentials.token}"
        http = HttpClient(
            address,
            error_class=RayApiError,
            verify=ray_tls_verify(credentials),
            auth=auth,
            headers=lambda: headers,
            retry=retry,
            timeouts=timeouts,
        )
        return cls(http)

    def close(self) -> None:
        self.http.close()

    @property
    def address(self) -> str:
        return self.http.base_url

    # -- cluster ---------------------------------------------------------------
    def version(self, retry: RetryPolicy | None = None) -> dict[str, Any]:
        data = self.http.json("GET", "/api/version", retry=retry)
        return data if isinstance(data, dict) else {}

    # -- working-dir packages ------------------------------------------------------
    def package_exists(self, name: str) -> bool:
        try:
            self.http.request("GET", f"/api/packages/gcs/{quote(name)}").close()
        except RayApiError as error:
            if error.not_found:
                return False
            raise
        return True

    def upload_package(self, name: str, path: Path) -> None:
        def put_once() -> None:
            with path.open("rb") as body:
                self.http.request(
                    "PUT",
                    f"/api/packages/gcs/{quote(name)}",
                    data=body,
                    headers={"Content-Type": "application/octet-stream"},
                    retry=NO_RETRY,
                ).close()

        self.http.retry.call(put_once, what=f"upload of package {name}")

    # -- jobs --------------------------------------------------------------------------
    def submit_job(self, payload: Mapping[str, Any], retry: RetryPolicy | None = None) -> str:
        data = self.http.json("POST", "/api/jobs/", json_body=dict(payload), retry=retry)
        return str(data.get("submission_id") or payload.get("submission_id"))

    def get_job(
        self, submission_id: str, retry: RetryPolicy | None = None, timeouts: Timeouts | None = None
    ) -> JobInfo:
        return JobInfo.from_api(
            self.http.json("GET", f"/api/jobs/{quote(submission_id)}", retry=retry, timeouts=timeouts)
        )

    def list_jobs(self) -> list[JobInfo]:
        data = self.http.json("GET", "/api/jobs/")
        return [JobInfo.from_api(item) for item in data] if isinstance(data, list) else []

    def stop_job(self, submission_id: str) -> bool:
        data = self.http.json("POST", f"/api/jobs/{quote(submission_id)}/stop")
        return bool(data.get("stopped")) if isinstance(data, dict) else False

    def job_logs(self, submission_id: str) -> str:
        """The whole log in one JSON string: only a fallback, it costs memory."""
        data = self.http.json("GET", f"/api/jobs/{quote(submission_id)}/logs")
        return str(data.get("logs") or "") if isinstance(data, dict) else ""

    def open_log_stream(
        self,
        submission_id: str,
        node_id: str | None = None,
        *,
        follow: bool = False,
        read_timeout: float | None = 60.0,
        retry: RetryPolicy | None = None,
    ) -> requests.Response:
        """The driver log as a plain-text stream (``/api/v0/logs/file``, or ``stream`` to follow)."""
        params: dict[str, str] = {"submission_id": submission_id, "lines": "-1"}
        if node_id:
            params["node_id"] = node_id
        if follow:
            params["interval"] = "0.5"
        media = "stream" if follow else "file"
        return self.http.request(
            "GET",
            f"/api/v0/logs/{media}",
            params=params,
            stream=True,
            retry=retry,
            timeouts=Timeouts(self.http.timeouts.connect, read_timeout),
        )
