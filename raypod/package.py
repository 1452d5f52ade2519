"""The job's working-directory package: a reproducible zip named by its content hash."""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from raypod.contract import ADDITIONAL_DATA
from raypod.errors import ConfigError
from raypod.terminal import ByteProgress, no_progress
from raypod.wheels import content_addressed_name

#: The job's files sit in this folder of the package, not at its top level: Ray puts the top
#: level on every worker's sys.path, where a script named e.g. code.py would shadow the
#: standard library's module and kill the job supervisor before the job starts.
JOB_FOLDER = "raypod_job"
#: The largest body Ray's dashboard takes in one ``PUT /api/packages/``: its aiohttp server's
#: ``client_max_size``, ``DASHBOARD_CLIENT_MAX_SIZE`` in ray/_private/ray_constants.py (Ray 2.60),
#: set in ray/dashboard/http_server_head.py; one byte more is answered 413. It is below the GCS's
#: own limit for a package (``GCS_STORAGE_MAX_SIZE``, 512 MiB, ray/_private/runtime_env/packaging.py).
UPLOAD_LIMIT = 100 * 1024 * 1024
#: How many of the largest files a too-large package's message names.
LARGEST_SHOWN = 5
#: A fixed timestamp, so the same files always give the same bytes and the same name.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Package:
    name: str
    path: Path

    @property
    def uri(self) -> str:
        return f"gcs://{self.name}"


@dataclass(frozen=True)
class JobPackages:
    """What a job uploads: its working dir (the script and its files) and its wheels."""

    working_dir: Package | None = None
    wheels: tuple[Package, ...] = ()

    @property
    def all(self) -> tuple[Package, ...]:
        return (self.working_dir, *self.wheels) if self.working_dir else self.wheels


def package_name(digest: str) -> str:
    """Ray's own naming scheme for uploaded working dirs."""
    return f"_ray_pkg_{digest[:32]}.zip"


def mib(size: float) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def size_text(size: int) -> str:
    """A file's size for a person: bytes, KiB, MiB or GiB."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KiB"
    return mib(size) if size < 1024**3 else f"{size / 1024**3:.1f} GiB"


def build_package(
    files: Mapping[str, Path],
    output_dir: Path,
    *,
    folder: str | None = JOB_FOLDER,
    key: str = ADDITIONAL_DATA,
    limit: int = UPLOAD_LIMIT,
    progress: ByteProgress = no_progress,
) -> Package:
    """Zip ``{name: file or empty folder}`` under ``folder`` (None: at the top level), in name order,
    streaming each file. A package over ``limit`` is bad input naming ``key``, found while zipping.
    ``progress`` hears the files' bytes as they are read, out of their total size."""
    zip_path = output_dir / "package.zip"
    stats = {name: _stat(path, name, key) for name, path in files.items() if not path.is_dir()}
    total = sum(stat_result.st_size for stat_result in stats.values())
    with (
        zip_path.open("wb") as out,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        progress(f"zipping {key}", total) as zipped,
    ):
        for name in sorted(files):
            source = files[name]
            entry = f"{folder}/{name}" if folder else name
            if name not in stats:
                archive.writestr(_info(entry + "/", 0o40755), b"")
                continue
            info = _info(entry, 0o755 if stats[name].st_mode & stat.S_IXUSR else 0o644)
            with archive.open(info, "w", force_zip64=True) as target:
                for chunk in read_chunks(source, name, key):
                    target.write(chunk)
                    zipped(len(chunk))
                    if out.tell() > limit:
                        # Stopped here: zipping gigabytes only to refuse them helps nobody.
                        raise too_large(files, out.tell(), key, limit, complete=False)
    size = zip_path.stat().st_size
    if size > limit:
        raise too_large(files, size, key, limit, complete=True)
    digest = hashlib.sha256()
    with zip_path.open("rb") as packed:
        while chunk := packed.read(_CHUNK):
            digest.update(chunk)
    final = zip_path.with_name(package_name(digest.hexdigest()))
    zip_path.replace(final)
    return Package(final.name, final)


def read_chunks(path: Path, name: str, key: str) -> Iterator[bytes]:
    """The bytes of one of the job's files. A file that cannot be read (no permission, an I/O error)
    is bad input naming it; only reading is caught here, so a full disk while zipping is not."""
    try:
        with path.open("rb") as reader:
            while chunk := reader.read(_CHUNK):
                yield chunk
    except OSError as error:
        raise unreadable(path, name, key, error) from None


def _stat(path: Path, name: str, key: str) -> os.stat_result:
    try:
        return path.stat()
    except OSError as error:
        raise unreadable(path, name, key, error) from None


def unreadable(path: Path, name: str, key: str, error: OSError) -> ConfigError:
    return ConfigError.single(key, f"cannot read {name} ({path}): {error.strerror or type(error).__name__}")


def _info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    # The executable bit is kept, as Ray's own packaging keeps it (a run.sh stays runnable).
    info.external_attr = mode << 16
    return info


def upload_limit_text(limit: int) -> str:
    return f"the {mib(limit)} Ray's dashboard takes in one upload"


def too_large(files: Mapping[str, Path], size: int, key: str, limit: int, *, complete: bool) -> ConfigError:
    """Bad input: the package's size and its largest files, which are what to leave out."""
    sizes = {name: _stat(path, name, key).st_size for name, path in files.items() if not path.is_dir()}
    largest = sorted(sizes, key=lambda name: (-sizes[name], name))[:LARGEST_SHOWN]
    shown = ", ".join(f"{name} ({size_text(sizes[name])})" for name in largest)
    most = upload_limit_text(limit)
    what = (
        f"the package is {mib(size)}, more than {most}"
        if complete
        else f"the package is over {most} (zipping stopped there; its files add up to {size_text(sum(sizes.values()))})"
    )
    return ConfigError.single(key, f"{what}; the largest files: {shown}")


def wheel_package(path: Path, key: str) -> Package:
    """A wheel named by its content (``raypod.wheels``), to upload; one over the upload limit is bad
    input naming ``key``."""
    size = _stat(path, path.name, key).st_size
    if size > UPLOAD_LIMIT:
        raise ConfigError.single(
            key, f"the wheel {path.name} is {mib(size)}, more than {upload_limit_text(UPLOAD_LIMIT)}"
        )
    digest = hashlib.sha256()
    for chunk in read_chunks(path, path.name, key):
        digest.update(chunk)
    return Package(content_addressed_name(path.name, digest.hexdigest()), path)
