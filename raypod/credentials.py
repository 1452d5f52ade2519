"""Secrets from mounted directories (and, for the command line, S3 keys from the environment).
Values are never logged or repr'd.

A secret is checked when it is read, so a value that would break (or leak through) the HTTP
request it goes into is bad input naming the file, never a crash deep in ``requests`` or minio.
Errors name the file and what is wrong with it, never any part of its content.

- Every secret file must be UTF-8 text. Surrounding whitespace (the trailing newline that
  ``kubectl create secret --from-file`` leaves) is stripped.
- ``token``, ``username`` and ``password`` become HTTP header values: no control character
  (line break, tab, NUL, DEL, C1) inside, and only Latin-1 characters, the bytes a header can
  carry (so ``é`` is accepted, ``中`` is not). ``username`` also may not hold ``:`` (Basic auth
  separates user and password with it).
- S3 ``accesskey`` and ``secretkey``: no whitespace or control character at all, and the access
  key, which is sent in a header, only Latin-1 characters. The same rules for ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN`` (a header too), whose problems name the variable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from raypod.capped_read import MAX_SECRET_FILE, read_capped
from raypod.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CREDENTIALS_DIR = Path("/credentials")
DEFAULT_S3_CREDENTIALS_DIR = Path("/s3credentials")
#: Where Ray's token is looked for, first found wins (``RayAuthSources``): the one hint every
#: refusal (401, 403) and ``--help`` give, as Ray's own clients name their sources.
RAY_TOKEN_SOURCES = (
    "Ray's token is read from the credentials directory's token file (--credentials), else "
    "$RAY_AUTH_TOKEN, else the file named by $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (command line only)"
)

#: Returns why a (stripped, non-empty) secret cannot be used, or None. Never quote the value.
SecretCheck = Callable[[str], str | None]


def _is_control(char: str) -> bool:
    return char < " " or "\x7f" <= char <= "\x9f"


def header_value_problem(text: str) -> str | None:
    """Why ``text`` cannot be an HTTP header value (or Basic-auth part); None when it can."""
    if any(c in "\r\n" for c in text):
        return "holds a line break inside the value, which would split the HTTP header"
    if any(_is_control(c) for c in text):
        return "holds a control character inside the value, which an HTTP header cannot carry"
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return "holds a character outside Latin-1, which an HTTP header cannot carry"
    return None


def username_problem(text: str) -> str | None:
    if ":" in text:
        return "holds ':', which Basic auth uses to separate the user from the password"
    return header_value_problem(text)


def s3_key_problem(text: str) -> str | None:
    """Why ``text`` cannot be an S3 access or secret key; None when it can."""
    if any(c.isspace() or _is_control(c) for c in text):
        return "holds whitespace or a control character inside the key"
    return None


def s3_access_key_problem(text: str) -> str | None:
    return s3_key_problem(text) or header_value_problem(text)


def read_secret_file(path: Path, check: SecretCheck | None = header_value_problem) -> str | None:
    """The file's text without surrounding whitespace; None when absent or empty. A file larger
    than ``MAX_SECRET_FILE`` (``/dev/zero``...) is bad input naming it.

    ``check`` (by default: usable as an HTTP header value) says why a value is unusable; the
    ConfigError then names the file and the reason, never the content.
    """
    try:
        raw = read_capped(path, MAX_SECRET_FILE, str(path))
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError.single(str(path), f"cannot read: {error.strerror}") from error
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError.single(str(path), "is not UTF-8 text") from None
    if not text:
        return None
    problem = check(text) if check else None
    if problem:
        raise ConfigError.single(str(path), problem)
    return text


def read_secret_files(directory: Path, checks: dict[str, SecretCheck]) -> dict[str, str | None]:
    """Read each named file of ``directory`` with its check; a ConfigError lists every bad file."""
    values: dict[str, str | None] = {}
    problems: list[tuple[str, str]] = []
    for name, check in checks.items():
        try:
            values[name] = read_secret_file(directory / name, check)
        except ConfigError as error:
            problems.extend(error.problems)
    if problems:
        raise ConfigError(problems)
    return values


@dataclass(frozen=True)
class RayCredentials:
    """From the resource secret. username/password are sent only when auth is 'basic'."""

    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    #: The file the token was read from (it may be rotated while the pod runs), or None: no token,
    #: or one given in the environment.
    token_file: Path | None = None
    ca_bundle: Path | None = None
    #: Extra headers for a dashboard behind an auth proxy; their values are secrets too.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dir(cls, directory: Path, *, basic: bool = True) -> RayCredentials:
        """Read the directory; with ``basic=False`` the username and password files are not even opened."""
        checks: dict[str, SecretCheck] = {"token": header_value_problem}
        if basic:
            checks.update(username=username_problem, password=header_value_problem)
        values = read_secret_files(directory, checks)
        ca = directory / "ca.crt"
        return cls(
            username=values.get("username"),
            password=values.get("password"),
            token=values["token"],
            token_file=directory / "token" if values["token"] else None,
            ca_bundle=ca if ca.is_file() else None,
        )


#: In the credentials directory: extra headers, a JSON object of name to value.
HEADERS_FILE = "headers.json"
#: The most extra headers, and the most bytes of their JSON, that raypod takes.
MAX_HEADERS = 32
MAX_HEADERS_TEXT = 16 * 1024
#: RFC 9110 token characters: what a header name may hold.
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_headers(text: str, origin: str) -> dict[str, str]:
    """Extra headers from JSON (``{"Cookie": "..."}``). Problems name ``origin`` and the header's
    name, never a value."""
    if len(text) > MAX_HEADERS_TEXT:
        raise ConfigError.single(origin, f"is larger than {MAX_HEADERS_TEXT} bytes")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise ConfigError.single(
            origin, 'is not JSON; expected an object of header name to value, e.g. {"Cookie": "..."}'
        ) from None
    if not isinstance(value, dict):
        raise ConfigError.single(origin, "is not a JSON object of header name to value")
    if len(value) > MAX_HEADERS:
        raise ConfigError.single(origin, f"holds more than {MAX_HEADERS} headers")
    problems: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for name, header_value in value.items():
        shown = repr(name[:64]) if all(c in _TOKEN_CHARS for c in name[:64]) else "a name"
        if not name or not all(c in _TOKEN_CHARS for c in name):
            problems.append((origin, f"{shown} is not a valid header name"))
        elif not isinstance(header_value, str):
            problems.append((origin, f"the value of {shown} is not a string"))
        elif (problem := header_value_problem(header_value)) is not None:
            problems.append((origin, f"the value of {shown} {problem}"))
        else:
            headers[name] = header_value.strip()
    if problems:
        raise ConfigError(problems)
    return headers


def merge_headers(*layers: Mapping[str, str]) -> dict[str, str]:
    """Later layers win; names compare without case, as HTTP's do."""
    merged: dict[str, str] = {}
    for layer in layers:
        for name, value in layer.items():
            for existing in [key for key in merged if key.lower() == name.lower()]:
                del merged[existing]
            merged[name] = value
    return merged


@dataclass(frozen=True)
class RayAuthSources:
    """Where the dashboard's token and extra headers come from, as Ray's own clients look for them.

    The token, first found wins: the credentials directory's ``token``; ``RAY_AUTH_TOKEN``; the file
    named by ``RAY_AUTH_TOKEN_PATH``; ``~/.ray/auth_token`` (``user_token_file``, given for the CLI
    only). Extra headers, later wins: the directory's ``headers.json``, ``RAY_JOB_HEADERS``, ``--headers``.
    """

    directory: Path = DEFAULT_CREDENTIALS_DIR
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    user_token_file: Path | None = None
    headers_flag: str | None = field(default=None, repr=False)

    def read(self, *, basic: bool) -> RayCredentials:
        credentials = RayCredentials.from_dir(self.directory, basic=basic)
        token, token_file = (
            (credentials.token, credentials.token_file) if credentials.token else self._token_from_environment()
        )
        layers = [
            self._headers_file(),
            self._headers_text(self.environ.get("RAY_JOB_HEADERS"), "RAY_JOB_HEADERS"),
            self._headers_text(self.headers_flag, "--headers"),
        ]
        return replace(credentials, token=token, token_file=token_file, headers=merge_headers(*layers))

    def _token_from_environment(self) -> tuple[str | None, Path | None]:
        """The token and the file it came from (None for ``RAY_AUTH_TOKEN``, which cannot rotate)."""
        text = (self.environ.get("RAY_AUTH_TOKEN") or "").strip()
        if text:
            problem = header_value_problem(text)
            if problem:
                raise ConfigError.single("RAY_AUTH_TOKEN", problem)
            return text, None
        path = self.environ.get("RAY_AUTH_TOKEN_PATH")
        if path:
            token = read_secret_file(Path(path))
            if token is None:
                raise ConfigError.single("RAY_AUTH_TOKEN_PATH", f"{path} is missing or empty")
            return token, Path(path)
        if self.user_token_file is not None:
            token = read_secret_file(self.user_token_file)
            return token, self.user_token_file if token else None
        return None, None

    def _headers_file(self) -> dict[str, str]:
        path = self.directory / HEADERS_FILE
        text = read_secret_file(path, check=None)
        return parse_headers(text, str(path)) if text else {}

    @staticmethod
    def _headers_text(text: str | None, origin: str) -> dict[str, str]:
        return parse_headers(text, origin) if text and text.strip() else {}


#: The S3 keys as AWS's own tools read them from the environment (the command line only, never
#: the pod): the access key, the secret key, and the session token of temporary credentials.
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_SESSION_TOKEN = "AWS_SESSION_TOKEN"
#: Where the S3 keys are looked for, first found wins (``S3CredentialSources``), as ``submit --help`` says it.
S3_KEY_SOURCES = (
    "S3 keys are read from --s3-credentials DIR when given, else from $AWS_ACCESS_KEY_ID and "
    "$AWS_SECRET_ACCESS_KEY (and $AWS_SESSION_TOKEN; command line only), else from "
    f"{DEFAULT_S3_CREDENTIALS_DIR}"
)


@dataclass(frozen=True)
class S3Credentials:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    #: Temporary credentials' token (``x-amz-security-token``), from the environment only.
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_dir(
        cls, directory: Path, hint: str = "mount the S3 secret there, or pass --s3-credentials"
    ) -> S3Credentials:
        values = read_secret_files(directory, {"accesskey": s3_access_key_problem, "secretkey": s3_key_problem})
        access, secret = values["accesskey"], values["secretkey"]
        missing = [name for name, value in values.items() if not value]
        if missing or access is None or secret is None:
            raise ConfigError.single(
                "s3.secret", f"S3 is used but {', '.join(missing)} is missing or empty in {directory} ({hint})"
            )
        return cls(access, secret)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> S3Credentials | None:
        """The keys of ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` (with ``AWS_SESSION_TOKEN``
        when set); None when neither key is set. Problems name the variable, never its value."""
        checks = {
            AWS_ACCESS_KEY_ID: s3_access_key_problem,
            AWS_SECRET_ACCESS_KEY: s3_key_problem,
            # Sent as the x-amz-security-token header.
            AWS_SESSION_TOKEN: s3_access_key_problem,
        }
        values = {name: environ.get(name, "").strip() or None for name in checks}
        access, secret, token = values[AWS_ACCESS_KEY_ID], values[AWS_SECRET_ACCESS_KEY], values[AWS_SESSION_TOKEN]
        if access is None and secret is None:
            return None
        problems: list[tuple[str, str]] = []
        for name, other in ((AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), (AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID)):
            if values[name] is None:
                problems.append((name, f"missing or empty, while {other} is set: S3 needs both keys"))
        for name, check in checks.items():
            value = values[name]
            if value is not None and (problem := check(value)) is not None:
                problems.append((name, problem))
        if problems or access is None or secret is None:
            raise ConfigError(problems)
        return cls(access, secret, token)


@dataclass(frozen=True)
class S3CredentialSources:
    """Where the S3 keys come from, first found wins, as AWS's own tools look for them: a directory
    given on purpose (``--s3-credentials``); the ``AWS_*`` variables of ``environ`` (given for the
    command line only: the pod reads the secret its BridgeJob names, never keys that happen to be in
    its environment); the default directory, where the operator mounts the S3 secret."""

    #: ``--s3-credentials``, when given: then it is the only source.
    directory: Path | None = None
    #: The command line's environment; None in the pod.
    environ: Mapping[str, str] | None = field(default=None, repr=False)
    default_directory: Path = DEFAULT_S3_CREDENTIALS_DIR

    def read(self) -> S3Credentials:
        if self.directory is not None:
            return S3Credentials.from_dir(self.directory)
        if self.environ is None:
            return S3Credentials.from_dir(self.default_directory)
        from_environment = S3Credentials.from_environment(self.environ)
        if from_environment is not None:
            log.debug("S3 keys from %s and %s", AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
            return from_environment
        return S3Credentials.from_dir(
            self.default_directory,
            f"pass --s3-credentials DIR, or set {AWS_ACCESS_KEY_ID} and {AWS_SECRET_ACCESS_KEY}",
        )
