"""Fetch the job's inputs (script, metadata, parameters, extra files) into a working directory."""

from __future__ import annotations

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
)
from raypod.errors import ConfigError
from raypod.s3 import S3Store


@dataclass(frozen=True)
class JobInputs:
    """Everything the submission needs, fetched and checked."""

    script: str
    metadata: Metadata
    parameters: dict[str, str]
    #: name in the working dir -> local file; empty for a remote script with no extra files
    files: dict[str, Path] = field(default_factory=dict)


def _text(ref: str | S3Location | None, key: str, s3: S3Store | None) -> str:
    if ref is None:
        return ""
    if isinstance(ref, S3Location):
        if s3 is None:
            raise ConfigError.single(key, "is in S3 but s3.endpoint is not set")
        return s3.read_text(ref, key)
    return ref


def fetch_inputs(config: BridgeConfig, s3: S3Store | None, workdir: Path) -> JobInputs:
    """Download what lives in S3, write the inline script, and parse metadata and parameters."""
    metadata = parse_metadata(_text(config.metadata, SCRIPT_METADATA, s3), SCRIPT_METADATA)
    parameters = parse_parameters(_text(config.parameters, JOB_PARAMETERS, s3), JOB_PARAMETERS)

    files: dict[str, Path] = {}
    if config.script_location == "inline":
        assert isinstance(config.script, str)
        path = workdir / config.script_name
        path.write_text(config.script, encoding="utf-8")
        files[config.script_name] = path
    elif isinstance(config.script, S3Location):
        if s3 is None:
            raise ConfigError.single(JOB_SCRIPT, "is in S3 but s3.endpoint is not set")
        path = workdir / config.script_name
        s3.download(config.script, path, JOB_SCRIPT)
        files[config.script_name] = path

    for location in config.additional_data:
        if s3 is None:
            raise ConfigError.single(ADDITIONAL_DATA, "is in S3 but s3.endpoint is not set")
        path = workdir / location.base_name
        s3.download(location, path, ADDITIONAL_DATA)
        files[location.base_name] = path

    return JobInputs(script=config.script_name, metadata=metadata, parameters=parameters, files=files)
