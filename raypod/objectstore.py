"""What raypod needs of an object store: read the job's inputs, stream its log and check its results.

``raypod.s3.S3Store`` implements it over minio; the tests have an in-memory one. The inputs, the
log upload and the result check are written against this protocol only; the runner picks the
implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from raypod.jobdata import S3Location


class PartWriter(Protocol):
    """An object written in pieces, with memory that stays flat whatever its size."""

    #: Bytes written so far.
    size: int

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None:
        """Complete the object: only now does it exist."""
        ...

    def abort(self) -> None:
        """Best effort: drop what was sent of an unfinished object."""
        ...


class ObjectStore(Protocol):
    def read_text(self, location: S3Location, key: str) -> str:
        """A small UTF-8 object (metadata, parameters); ``key`` is the ConfigMap key it was named in."""
        ...

    def download(self, location: S3Location, target: Path, key: str) -> None: ...

    def open_part_upload(
        self, bucket: str, object_name: str, content_type: str = "text/plain", *, create_bucket: bool = False
    ) -> PartWriter:
        """A writer of a new object; with ``create_bucket``, a missing bucket is made on the first write."""
        ...

    def object_exists(self, bucket: str, object_name: str) -> bool: ...

    def url(self, bucket: str, object_name: str = "") -> str:
        """How the object is named in messages and ``--result`` (``s3://bucket/object``)."""
        ...
