"""``requests`` and ``minio`` imported without the parts of them raypod never calls.

A pod's memory limit is small (the peak goal is 40 MiB at a 1 GB log, ``docs/benchmark.md``), and
both packages load large modules at import time for features raypod does not use:

- ``requests`` imports ``charset_normalizer`` (about 2.8 MiB resident: its compiled modules) to guess
  the encoding of an answer that names none. raypod reads bytes and decodes them itself.
- ``minio``'s ``__init__`` imports its admin client, which loads pycryptodome, argon2 and cffi
  (about 2 MiB and 60 ms at start-up) for an API raypod never calls.

While the package is first imported, a placeholder module stands in for the part it would load, and
is taken out of ``sys.modules`` again afterwards, so a later import anywhere gets the real module.
The placeholder forwards to the real module if it is ever used after all.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minio import Minio


@contextmanager
def _standing_in(name: str, placeholder: types.ModuleType) -> Iterator[None]:
    sys.modules[name] = placeholder
    try:
        yield
    finally:
        if sys.modules.get(name) is placeholder:
            del sys.modules[name]


def _detect_encoding(data: bytes) -> Any:
    """requests' ``Response.apparent_encoding``: the real charset_normalizer, loaded on first use."""
    return importlib.import_module("charset_normalizer").detect(data)


def import_requests() -> None:
    """Import ``requests`` with charset_normalizer loaded only if an encoding is ever guessed.

    The placeholder carries the installed version, which requests checks, and ``detect``, the one
    function it calls. Where chardet or no charset_normalizer is installed, this is a plain import;
    where requests or charset_normalizer is already imported, there is nothing to leave out.
    """
    if "requests" in sys.modules or "charset_normalizer" in sys.modules:
        return
    import importlib.metadata
    import importlib.util

    try:
        version = importlib.metadata.version("charset-normalizer")
    except (ValueError, importlib.metadata.PackageNotFoundError):
        version = None
    if version is None or importlib.util.find_spec("chardet") is not None:
        # Nothing to leave out: no charset_normalizer, or chardet, which requests prefers.
        importlib.import_module("requests")
        return
    placeholder = types.ModuleType("charset_normalizer")
    placeholder.__version__ = version  # type: ignore[attr-defined]
    placeholder.detect = _detect_encoding  # type: ignore[attr-defined]
    with _standing_in("charset_normalizer", placeholder):
        importlib.import_module("requests")


class _AdminNotLoaded:
    """Stands in for ``minio.MinioAdmin``, which raypod never uses."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        raise ImportError("minio.MinioAdmin was not loaded by raypod; import minio.minioadmin directly")


def import_minio() -> type[Minio]:
    """``minio.Minio``, its package imported without ``minio.MinioAdmin`` (the real
    ``minio.minioadmin`` can still be imported afterwards). Any ``from minio... import`` loads
    minio's package first, so raypod's go through here."""
    if "minio" not in sys.modules and "minio.minioadmin" not in sys.modules:
        placeholder = types.ModuleType("minio.minioadmin")
        placeholder.MinioAdmin = _AdminNotLoaded  # type: ignore[attr-defined]
        with _standing_in("minio.minioadmin", placeholder):
            import minio
        return minio.Minio
    from minio import Minio

    return Minio
