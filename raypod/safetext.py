"""Text from outside made safe to print and store: valid, scrubbed of secrets, then cut to size.

The one scrubber of raypod. The HTTP client (the values of its secret headers, the basic-auth
password) and the S3 store (its keys) build a ``Scrubber`` of what they send, and every message,
error body and status text passes through it before it is shortened. A secret is masked whole,
and so is every run of ``FRAGMENT`` or more of its characters: a token that someone else cut (a
proxy's error page, Ray's 4096-character message) is masked too, and no later cut can leave a
piece of it.

Which header values are secrets: every one except ``HARMLESS_HEADERS`` (``Accept``,
``Content-Type``, ``User-Agent``...), whose values say nothing about who calls. So a user's
``--headers``/``headers.json`` value is a secret whatever its name.

Standard library only.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

#: What a secret is replaced with.
MASK = "***"
#: Secrets shorter than this are not scrubbed: replacing one or two characters everywhere would
#: garble every message and hides nothing.
MIN_SECRET = 4
#: A ``name=value`` part of a header (a cookie) is scrubbed on its own from this length.
MIN_COOKIE_SECRET = 8
#: A run of this many characters of a (longer) secret is masked wherever it appears.
FRAGMENT = 8
#: Headers whose values are never secrets, so messages may show them (names compared in lower case).
HARMLESS_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "content-length",
        "content-type",
        "user-agent",
    }
)
#: Header schemes whose credential, after the scheme's name, is a secret on its own.
_CREDENTIAL_SCHEMES = ("bearer", "basic", "token")
#: ``status.message`` is one human sentence, bounded.
MAX_MESSAGE = 300


def secret_forms(secret: str) -> list[str]:
    """The ways a secret can appear in an error's text: as it is, and as a str or bytes repr
    quotes it (``\\r``, ``\\xe4``...), e.g. in ``Invalid header value b'...'``. Longest first."""
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "backslashreplace"))[2:-1]}
    return sorted(forms, key=len, reverse=True)


def header_secrets(value: str) -> list[str]:
    """What of one header value must never be shown: the value, the credential after its scheme
    (``Bearer <token>``), and each long ``name=value`` part (a cookie's parts may be echoed alone)."""
    found = secret_forms(value)
    scheme, _, credential = value.partition(" ")
    if credential and scheme.lower() in _CREDENTIAL_SCHEMES:
        found.extend(secret_forms(credential))
    for part in value.split(";"):
        _, equals, piece = part.partition("=")
        if equals and len(piece.strip()) >= MIN_COOKIE_SECRET:
            found.extend(secret_forms(piece.strip()))
    return found


def basic_auth_secrets(username: str, password: str) -> list[str]:
    """The password, and the ``Basic`` header value it is sent in."""
    found = header_secrets(password)
    try:
        found.extend(header_secrets("Basic " + base64.b64encode(f"{username}:{password}".encode("latin-1")).decode()))
    except UnicodeEncodeError:
        pass  # such a header cannot be sent either
    return found


class Scrubber:
    """Replaces every known secret (in each of its forms) with ``***``; longest first, so a whole
    header value goes before the token inside it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: tuple[str, ...] = tuple(
            sorted({secret for secret in secrets if len(secret) >= MIN_SECRET}, key=len, reverse=True)
        )
        #: Every run of FRAGMENT characters of each secret longer than that.
        self._fragments = frozenset(
            secret[start : start + FRAGMENT]
            for secret in self.secrets
            if len(secret) > FRAGMENT
            for start in range(len(secret) - FRAGMENT + 1)
        )

    @classmethod
    def of_headers(cls, headers: Mapping[str, str], *, basic_auth: tuple[str, str] | None = None) -> Scrubber:
        """The secrets among ``headers``: every value but those of ``HARMLESS_HEADERS``."""
        found: list[str] = []
        for name, value in headers.items():
            if isinstance(value, str) and str(name).lower() not in HARMLESS_HEADERS:
                found.extend(header_secrets(value))
        if basic_auth is not None:
            found.extend(basic_auth_secrets(*basic_auth))
        return cls(found)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    @property
    def longest(self) -> int:
        """The length of the longest form: read this much past a cut, and no secret straddles it."""
        return len(self.secrets[0]) if self.secrets else 0

    def holds_secret(self, text: str) -> bool:
        return self.scrub(text) != text

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return self._mask_fragments(text) if self._fragments else text

    def _mask_fragments(self, text: str) -> str:
        """Each run of characters covered by pieces of a secret, as one ``***``."""
        pieces: list[str] = []
        kept = 0  # text[:kept] is already in pieces
        run: tuple[int, int] | None = None  # the run being masked: [start, end)
        for index in range(len(text) - FRAGMENT + 1):
            if text[index : index + FRAGMENT] not in self._fragments:
                continue
            if run is not None and index <= run[1]:
                run = (run[0], index + FRAGMENT)
                continue
            if run is not None:
                pieces += [text[kept : run[0]], MASK]
                kept = run[1]
            run = (index, index + FRAGMENT)
        if run is None:
            return text
        return "".join([*pieces, text[kept : run[0]], MASK, text[run[1] :]])

    def cut(self, text: str, limit: int) -> str:
        """Scrubbed, then at most ``limit`` characters: never the other way round."""
        return self.scrub(text)[:limit]


def valid_text(text: str) -> str:
    """``text`` that can be encoded: a lone surrogate (from JSON's ``\\ud800``, or bytes that
    were not UTF-8) becomes ``?``, so no later ``print`` or write fails on it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def valid_json(value: Any) -> Any:
    """A parsed JSON value with every string in it (keys too) made ``valid_text``."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [valid_json(item) for item in value]
    if isinstance(value, dict):
        return {valid_text(key): valid_json(item) for key, item in value.items()}
    return value


def printable(text: str) -> str:
    """Control characters (and anything else that is not printable) as ``?``; valid UTF-8."""
    return "".join(ch if ch.isprintable() else "?" for ch in valid_text(text))


def bounded_text(text: str, limit: int) -> str:
    """``text`` bounded and without control characters, for a message. Scrub it first."""
    return printable(text[:limit]) + ("..." if len(text) > limit else "")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line, bounded and printable: status.message is one human sentence.
    Scrub it first."""
    for line in text.splitlines():
        if line.strip():
            line = printable(line.strip())
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""
