"""Which header carries Ray's token, and the token file read again after a refusal (rotation).

Ray's dashboard (2.60, ``http_token_authentication.py``) takes ``Authorization: Bearer <token>``
and, when that header is absent or empty, ``X-Ray-Authorization`` with the same value. An auth
proxy in front of it may own ``Authorization`` (basic auth, or the user's own headers carrying
it): Ray's token then goes in ``X-Ray-Authorization``, and the proxy must not pass its own
``Authorization`` on (Ray would read that one first). Header values are secrets: never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path

from raypod.credentials import RayCredentials, read_secret_file
from raypod.errors import ConfigError

log = logging.getLogger(__name__)

AUTHORIZATION = "Authorization"
RAY_AUTHORIZATION = "X-Ray-Authorization"


def ray_auth_headers(token: str | None, extra: Mapping[str, str], *, basic: bool) -> dict[str, str]:
    """Every dashboard call's headers: the extra ones as given, and Ray's token (``Bearer``) in the
    first of ``Authorization`` and ``X-Ray-Authorization`` that basic auth and the extra headers
    leave free. When they carry both, they carry Ray's credential themselves: no token is added."""
    headers = dict(extra)
    if token is None:
        return headers
    taken = {name.lower() for name in extra} | ({AUTHORIZATION.lower()} if basic else set())
    free = [name for name in (AUTHORIZATION, RAY_AUTHORIZATION) if name.lower() not in taken]
    if free:
        headers[free[0]] = f"Bearer {token}"
    return headers


class RayTokenAuth:
    """The headers of the dashboard calls, and the token's file read again after a refusal.

    A token read from a file (a mounted Secret, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``)
    can be replaced while the pod runs; one given in ``RAY_AUTH_TOKEN`` cannot, and is never re-read.
    """

    def __init__(self, credentials: RayCredentials, *, basic: bool) -> None:
        self._token = credentials.token
        self._file: Path | None = credentials.token_file if credentials.token else None
        self._extra = dict(credentials.headers)
        self._basic = basic
        self._lock = threading.Lock()
        names = {name.lower() for name in self._extra}
        if self._token and {AUTHORIZATION.lower(), RAY_AUTHORIZATION.lower()} <= names:
            log.warning(
                "the extra headers carry both %s and %s: Ray's token is not sent",
                AUTHORIZATION,
                RAY_AUTHORIZATION,
            )

    def headers(self) -> dict[str, str]:
        return ray_auth_headers(self._token, self._extra, basic=self._basic)

    def reread(self) -> None:
        """Read the token's file again (the dashboard refused it): a changed token is used from the
        next call on. A file that is now missing, empty or unusable keeps the token as it was."""
        if self._file is None:
            return
        try:
            token = read_secret_file(self._file)
        except ConfigError as error:
            log.warning("the rotated token file cannot be used, keeping the token read before: %s", error)
            return
        with self._lock:
            if token and token != self._token:
                log.info("the token file %s holds a new token", self._file)
                self._token = token
