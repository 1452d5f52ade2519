"""Files from outside read with a size cap: a secret, a header file, a mounted ConfigMap, a status file.

A path may name anything: ``/dev/zero`` or a log file where a token was expected would otherwise
be read until the pod is killed for its memory. Reading stops one byte past the cap, and a file
that is larger is bad input that names it. Whether a missing file matters is the caller's to say:
``OSError`` (``FileNotFoundError`` too) goes up as it is.
"""

from __future__ import annotations

from pathlib import Path

from raypod.errors import ConfigError

#: A secret (a token, a password, a key) or a file of extra headers: a few kilobytes at most.
MAX_SECRET_FILE = 64 * 1024
#: One key of a mounted ConfigMap, a ConfigMap manifest, a status file: Kubernetes keeps at most
#: 1 MiB in a ConfigMap; a manifest adds its YAML around that.
MAX_CONFIG_FILE = 2 * 1024 * 1024


def read_capped(path: Path, limit: int, key: str) -> bytes:
    """At most ``limit`` bytes of ``path``; a larger file is a ConfigError of ``key`` naming it."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigError.single(key, f"{path} is larger than {limit} bytes; is it the right file?")
    return data


def read_capped_text(path: Path, limit: int, key: str) -> str:
    """``read_capped`` as UTF-8 text (so valid text, without lone surrogates)."""
    try:
        return read_capped(path, limit, key).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError.single(key, f"{path} is not UTF-8 text") from None
