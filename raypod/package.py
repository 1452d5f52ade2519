"""The job's working-directory package: a reproducible zip named by its content hash."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: The job's files sit in this folder of the package, not at its top level: Ray puts the top
#: level on every worker's sys.path, where a script named e.g. code.py would shadow the
#: standard library's module and kill the job supervisor before the job starts.
JOB_FOLDER = "raypod_job"
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


def package_name(digest: str) -> str:
    """Ray's own naming scheme for uploaded working dirs."""
    return f"_ray_pkg_{digest[:32]}.zip"


def build_package(files: Mapping[str, Path], output_dir: Path) -> Package:
    """Zip ``{name: file}`` under JOB_FOLDER, in name order, streaming each file."""
    zip_path = output_dir / "package.zip"
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(f"{JOB_FOLDER}/{name}", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with files[name].open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while chunk := source.read(_CHUNK):
                    target.write(chunk)
    digest = hashlib.sha256()
    with zip_path.open("rb") as packed:
        while chunk := packed.read(_CHUNK):
            digest.update(chunk)
    final = zip_path.with_name(package_name(digest.hexdigest()))
    zip_path.replace(final)
    return Package(final.name, final)
