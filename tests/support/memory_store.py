"""An in-memory ``raypod.objectstore.ObjectStore``: the inputs, the log upload and the result check
run against it without an S3 server, as the lifecycle runs against ``FakeRay``."""

from __future__ import annotations

from pathlib import Path

from raypod.errors import ConfigError, S3BucketMissing
from raypod.jobdata import S3Location


class MemoryWriter:
    """A ``PartWriter``: the object exists only once ``finish`` is called."""

    def __init__(self, store: MemoryStore, bucket: str, object_name: str, *, create_bucket: bool) -> None:
        self.store, self.bucket, self.object_name = store, bucket, object_name
        self.create_bucket = create_bucket
        self.size = 0
        self._parts: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self._parts.append(bytes(data))
        self.size += len(data)

    def finish(self) -> None:
        if self.bucket not in self.store.buckets:
            if not self.create_bucket:
                raise S3BucketMissing(f"upload to {self.store.url(self.bucket, self.object_name)} failed: NoSuchBucket")
            self.store.buckets.add(self.bucket)
        self.store.objects[(self.bucket, self.object_name)] = b"".join(self._parts)

    def abort(self) -> None:
        self.aborted = True


class MemoryStore:
    def __init__(self, objects: dict[tuple[str, str], bytes] | None = None) -> None:
        self.objects: dict[tuple[str, str], bytes] = dict(objects or {})
        self.buckets: set[str] = {bucket for bucket, _ in self.objects}
        self.writers: list[MemoryWriter] = []

    def _get(self, location: S3Location, key: str) -> bytes:
        try:
            return self.objects[(location.bucket, location.object_name)]
        except KeyError:
            raise ConfigError.single(key, f"S3 object {location} does not exist") from None

    def read_text(self, location: S3Location, key: str) -> str:
        return self._get(location, key).decode("utf-8")

    def download(self, location: S3Location, target: Path, key: str) -> None:
        target.write_bytes(self._get(location, key))

    def open_part_upload(
        self, bucket: str, object_name: str, content_type: str = "text/plain", *, create_bucket: bool = False
    ) -> MemoryWriter:
        writer = MemoryWriter(self, bucket, object_name, create_bucket=create_bucket)
        self.writers.append(writer)
        return writer

    def object_exists(self, bucket: str, object_name: str) -> bool:
        return (bucket, object_name) in self.objects

    def url(self, bucket: str, object_name: str = "") -> str:
        return f"s3://{bucket}/{object_name}"
