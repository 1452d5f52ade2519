"""Text that may hold a secret, made safe to print and store: scrubbed first, then cut to size.

The one scrubber of raypod. The HTTP client (header values, the basic-auth password) and the S3
store (its keys) build a ``Scrubber`` of what they send, and every message, error body and status
text passes through it before it is shortened: a token cut in two can no longer be found.
Standard library only.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

#: What a secret is replaced with.
MASK = "***"
#: Secrets shorter than this are not scrubbed: replacing one or two characters everywhere would
#: garble every message and hides nothing.
MIN_SECRET = 4
#: A ``name=value`` part of a header (a cookie) is scrubbed on its own from this length.
MIN_COOKIE_SECRET = 8
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

    @classmethod
    def of_headers(cls, values: Iterable[str], *, basic_auth: tuple[str, str] | None = None) -> Scrubber:
        found: list[str] = []
        for value in values:
            if isinstance(value, str):
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
        return any(secret in text for secret in self.secrets)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def cut(self, text: str, limit: int) -> str:
        """Scrubbed, then at most ``limit`` characters: never the other way round."""
        return self.scrub(text)[:limit]


def printable(text: str) -> str:
    """Control characters (and anything else that is not printable) as ``?``."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def bounded_text(text: str, limit: int) -> str:
    """``text`` bounded and without control characters, for a message. Scrub it first."""
    return printable(text[:limit]) + ("..." if len(text) > limit else "")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """The first non-empty line, bounded: status.message is one human sentence. Scrub it first."""
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""
