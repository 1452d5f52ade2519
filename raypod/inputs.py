"""Fetch the job's inputs (script, metadata, parameters, extra files, wheels) into a working directory."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from raypod.config import (
    ADDITIONAL_DATA,
    JOB_PARAMETERS,
    JOB_SCRIPT,
    SCRIPT_METADATA,
    BridgeConfig,
    Metadata,
    S3Location,
    parse_metadata,
    parse_parameters,
    require_s3_for_wheels,
)
from raypod.errors import ConfigError
from raypod.package import JOB_FOLDER, JobPackages, build_package, wheel_package
from raypod.s3 import S3Store
from raypod.source import ConfigSource
from raypod.workdir import WORKING_DIR_FLAG, warn_of_shadowing, working_dir_files

WHEEL_FLAG = "--wheel"


@dataclass(frozen=True)
class LocalInputs:
    """What ``submit`` takes from the submitting machine, which no ConfigMap key can hold."""

    #: ``--working-dir``: packed whole (less what is excluded), at the package's top level.
    working_dir: Path | None = None
    #: ``--exclude`` patterns, relative to the working dir.
    excludes: tuple[str, ...] = ()
    #: False with ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``, as for Ray's own clients.
    use_gitignore: bool = True
    #: ``--wheel`` files.
    wheels: tuple[Path, ...] = ()


class WithLocalInputs:
    """A ConfigSource that also carries the job's local inputs (``submit``'s ``--working-dir`` and
    ``--wheel``), so the session packs them without knowing the command line."""

    def __init__(self, base: ConfigSource, local: LocalInputs) -> None:
        self.base = base
        self.local = local
        self.description = base.description

    def read(self) -> dict[str, str]:
        return self.base.read()

    @property
    def identity(self) -> str | None:
        return self.base.identity


def local_inputs_of(source: ConfigSource) -> LocalInputs:
    return source.local if isinstance(source, WithLocalInputs) else LocalInputs()


@dataclass(frozen=True)
class JobInputs:
    """Everything the submission needs, fetched and checked."""

    script: str
    metadata: Metadata
    parameters: dict[str, str]
    #: name in the package -> local file (or empty folder); empty for a remote script with no extra files
    files: dict[str, Path] = field(default_factory=dict)
    #: the package's folder that holds the files, where the job starts; None for a working dir, which
    #: is the package's top level (so that Ray's workers can import its modules)
    folder: str | None = JOB_FOLDER
    #: the key or flag the packaged files come from, named when the package is too large
    files_key: str = ADDITIONAL_DATA
    #: the wheels, as local files, each with the key or flag it comes from
    wheels: tuple[tuple[Path, str], ...] = ()


def _text(ref: str | S3Location | None, key: str, s3: S3Store | None) -> str:
    if ref is None:
        return ""
    if isinstance(ref, S3Location):
        return _require(s3, key).read_text(ref, key)
    return ref


def _require(s3: S3Store | None, key: str) -> S3Store:
    if s3 is None:
        raise ConfigError.single(key, "is in S3 but s3.endpoint is not set")
    return s3


def fetch_inputs(
    config: BridgeConfig, s3: S3Store | None, workdir: Path, local: LocalInputs = LocalInputs()
) -> JobInputs:
    """Download what lives in S3, write the inline script, parse metadata and parameters, and walk
    the local working dir."""
    metadata = parse_metadata(_text(config.metadata, SCRIPT_METADATA, s3), SCRIPT_METADATA)
    parameters = parse_parameters(_text(config.parameters, JOB_PARAMETERS, s3), JOB_PARAMETERS)
    wheels = [*_fetch_wheels(config, metadata, s3, workdir), *((path, WHEEL_FLAG) for path in local.wheels)]
    if local.working_dir is not None:
        return _working_dir_inputs(config, metadata, parameters, local, tuple(wheels))

    files: dict[str, Path] = {}
    if config.script_location == "inline":
        assert isinstance(config.script, str)
        path = workdir / config.script_name
        path.write_text(config.script, encoding="utf-8")
        files[config.script_name] = path
    elif isinstance(config.script, S3Location):
        path = workdir / config.script_name
        _require(s3, JOB_SCRIPT).download(config.script, path, JOB_SCRIPT)
        files[config.script_name] = path

    for location in config.additional_data:
        path = workdir / location.base_name
        _require(s3, ADDITIONAL_DATA).download(location, path, ADDITIONAL_DATA)
        files[location.base_name] = path

    return JobInputs(
        script=config.script_name,
        metadata=metadata,
        parameters=parameters,
        files=files,
        files_key=ADDITIONAL_DATA if config.additional_data else JOB_SCRIPT,
        wheels=tuple(wheels),
    )


def _fetch_wheels(
    config: BridgeConfig, metadata: Metadata, s3: S3Store | None, workdir: Path
) -> list[tuple[Path, str]]:
    """The metadata's wheels from S3, each in a folder of its own (two buckets may hold the same name)."""
    require_s3_for_wheels(metadata, config)
    fetched = []
    for location in metadata.wheels:
        path = _new_folder(workdir, "wheel-") / location.base_name
        _require(s3, SCRIPT_METADATA).download(location, path, SCRIPT_METADATA)
        fetched.append((path, SCRIPT_METADATA))
    return fetched


def _working_dir_inputs(
    config: BridgeConfig,
    metadata: Metadata,
    parameters: dict[str, str],
    local: LocalInputs,
    wheels: tuple[tuple[Path, str], ...],
) -> JobInputs:
    """The working dir at the package's top level; the script is a path inside it (``submit`` sends it
    as a remote script, relative to the job's working directory)."""
    assert local.working_dir is not None
    if config.script_location != "remote" or config.additional_data:
        raise ConfigError.single(WORKING_DIR_FLAG, "only with --script, whose file is in the working dir")
    files = working_dir_files(local.working_dir, local.excludes, use_gitignore=local.use_gitignore)
    if config.script_name not in files:
        left_out = f"{config.script_name} is left out of {local.working_dir} by --exclude, .gitignore or .rayignore"
        raise ConfigError.single("--script", left_out)
    warn_of_shadowing(files)
    return JobInputs(
        script=config.script_name,
        metadata=metadata,
        parameters=parameters,
        files=files,
        folder=None,
        files_key=WORKING_DIR_FLAG,
        wheels=wheels,
    )


def build_packages(inputs: JobInputs, workdir: Path) -> JobPackages:
    """The packages to upload, each checked against Ray's upload limit before anything is sent."""
    working_dir = None
    if inputs.files:
        # A folder of its own: an input file may well be called package.zip.
        output = _new_folder(workdir, "package-")
        working_dir = build_package(inputs.files, output, folder=inputs.folder, key=inputs.files_key)
    return JobPackages(working_dir, tuple(wheel_package(path, key) for path, key in inputs.wheels))


def _new_folder(workdir: Path, prefix: str) -> Path:
    """A folder no input file's name can clash with."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
