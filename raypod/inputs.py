"""Fetch the job's inputs (script, metadata, parameters, extra files, wheels) into a working directory."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from raypod.config import BridgeConfig, require_s3_for_wheels
from raypod.contract import ADDITIONAL_DATA, JOB_PARAMETERS, JOB_SCRIPT, SCRIPT_METADATA
from raypod.errors import ConfigError
from raypod.jobdata import Metadata, S3Location, parse_metadata, parse_parameters
from raypod.objectstore import ObjectStore
from raypod.package import JOB_FOLDER, JobPackages, build_package, wheel_package
from raypod.terminal import ByteProgress, no_progress
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


@dataclass(frozen=True)
class JobInputs:
    """Everything the submission needs, fetched and checked."""

    script: str
    metadata: Metadata
    parameters: Mapping[str, str]
    #: name in the package -> local file (or empty folder); empty for a remote script with no extra files
    files: dict[str, Path] = field(default_factory=dict)
    #: the package's folder that holds the files, where the job starts; None for a working dir, which
    #: is the package's top level (so that Ray's workers can import its modules)
    folder: str | None = JOB_FOLDER
    #: the key or flag the packaged files come from, named when the package is too large
    files_key: str = ADDITIONAL_DATA
    #: the wheels, as local files, each with the key or flag it comes from
    wheels: tuple[tuple[Path, str], ...] = ()


def _require(s3: ObjectStore | None, key: str) -> ObjectStore:
    if s3 is None:
        raise ConfigError.single(key, "is in S3 but s3.endpoint is not set")
    return s3


def fetch_inputs(
    config: BridgeConfig, s3: ObjectStore | None, workdir: Path, local: LocalInputs = LocalInputs()
) -> JobInputs:
    """Download what lives in S3, write the inline script, parse metadata and parameters from S3,
    and walk the local working dir."""
    metadata = config.metadata
    if isinstance(metadata, S3Location):
        metadata = parse_metadata(_require(s3, SCRIPT_METADATA).read_text(metadata, SCRIPT_METADATA), SCRIPT_METADATA)
    parameters = config.parameters
    if isinstance(parameters, S3Location):
        parameters = parse_parameters(
            _require(s3, JOB_PARAMETERS).read_text(parameters, JOB_PARAMETERS), JOB_PARAMETERS
        )
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
    config: BridgeConfig, metadata: Metadata, s3: ObjectStore | None, workdir: Path
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
    parameters: Mapping[str, str],
    local: LocalInputs,
    wheels: tuple[tuple[Path, str], ...],
) -> JobInputs:
    """The working dir at the package's top level; the script is a path inside it (``submit`` sends it
    as a remote script, relative to the job's working directory), or there is none (``submit -- COMMAND``)."""
    assert local.working_dir is not None
    if config.script_location != "remote" or config.additional_data:
        raise ConfigError.single(WORKING_DIR_FLAG, "only with --script, whose file is in the working dir")
    files = working_dir_files(local.working_dir, local.excludes, use_gitignore=local.use_gitignore)
    if not config.command and config.script_name not in files:
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


def build_packages(inputs: JobInputs, workdir: Path, progress: ByteProgress = no_progress) -> JobPackages:
    """The packages to upload, each checked against Ray's upload limit before anything is sent."""
    working_dir = None
    if inputs.files:
        # A folder of its own: an input file may well be called package.zip.
        output = _new_folder(workdir, "package-")
        working_dir = build_package(inputs.files, output, folder=inputs.folder, key=inputs.files_key, progress=progress)
    return JobPackages(working_dir, tuple(wheel_package(path, key) for path, key in inputs.wheels))


def _new_folder(workdir: Path, prefix: str) -> Path:
    """A folder no input file's name can clash with."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
