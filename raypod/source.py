"""Where the job comes from: the ConfigMap's keys (through the Kubernetes API, a mounted directory or a
manifest file), checked into typed settings, and re-read for ``kill``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from raypod.capped_read import MAX_CONFIG_FILE, read_capped_text
from raypod.config import BridgeConfig, ConfigOverrides, kill_requested
from raypod.entrypoint import job_config
from raypod.errors import ConfigError
from raypod.safetext import valid_json


class ConfigSource(Protocol):
    """Anything that can (re-)read the ConfigMap's data as strings."""

    description: str

    def read(self) -> dict[str, str]: ...

    @property
    def identity(self) -> str | None:
        """Once read, when the source knows it: the uid of the ConfigMap's controller (the
        BridgeJob), else the ConfigMap's own ``metadata.uid``.

        Every pod of one BridgeJob sees the same uid, so a submission id derived from it is the
        same in two overlapping pods, and Ray's duplicate-id answer keeps it to one job. The
        BridgeJob's uid also survives the ConfigMap: the operator re-creates a deleted one
        (without ``id``) under the same owner, and its pod then finds the same Ray job.
        """
        ...


class DirectorySource:
    """A ConfigMap mounted as a volume: one file per key.

    Kubernetes keeps the real files under ``..data``-style hidden entries; those are skipped.
    """

    #: A mounted ConfigMap has no metadata.
    identity: str | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"directory {path}"

    def read(self) -> dict[str, str]:
        try:
            entries = sorted(self.path.iterdir())
        except OSError as error:
            raise ConfigError.single("--config", f"cannot read directory {self.path}: {error.strerror}") from error
        data = {}
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file():
                continue
            try:
                data[entry.name] = read_capped_text(entry, MAX_CONFIG_FILE, entry.name)
            except OSError as error:
                raise ConfigError.single(entry.name, f"cannot read {entry}: {error.strerror}") from error
        return data


class ManifestSource:
    """A ConfigMap manifest in JSON, or YAML when PyYAML is installed (the ``yaml`` extra)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"manifest {path}"
        #: A manifest exported from the cluster carries the object's uid; a written one does not.
        self.identity: str | None = None

    def read(self) -> dict[str, str]:
        try:
            text = read_capped_text(self.path, MAX_CONFIG_FILE, "--config")
        except OSError as error:
            raise ConfigError.single("--config", f"cannot read {self.path}: {error.strerror}") from error
        # JSON's and YAML's escapes can spell a lone surrogate: made valid text here, where it enters.
        document = valid_json(_parse_manifest(text, self.path))
        if not isinstance(document, dict):
            raise ConfigError.single("--config", f"{self.path} must hold one ConfigMap object")
        kind = document.get("kind")
        if kind is not None and kind != "ConfigMap":
            raise ConfigError.single("--config", f"{self.path} holds a {kind}, not a ConfigMap")
        data = document.get("data") or {}
        if not isinstance(data, dict):
            raise ConfigError.single("--config", f"{self.path}: data must be a mapping of key to string")
        self.identity = object_identity(document)
        return {str(key): _as_text(value) for key, value in data.items()}


def _usable(uid: Any) -> str | None:
    return uid if isinstance(uid, str) and uid.strip() else None


def object_uid(document: Any) -> str | None:
    """A Kubernetes object's own ``metadata.uid``, when it has a usable one."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    return _usable(metadata.get("uid")) if isinstance(metadata, dict) else None


def controller_uid(document: Any) -> str | None:
    """The uid of the object's controller (``ownerReferences`` with ``controller: true``): for the
    operator's ConfigMap, the BridgeJob."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    owners = metadata.get("ownerReferences") if isinstance(metadata, dict) else None
    for owner in owners if isinstance(owners, list) else []:
        if isinstance(owner, dict) and owner.get("controller") is True:
            return _usable(owner.get("uid"))
    return None


def object_identity(document: Any) -> str | None:
    """What every pod of one BridgeJob sees alike (see ``ConfigSource.identity``)."""
    return controller_uid(document) or object_uid(document)


def _as_text(value: Any) -> str:
    # YAML turns `updateInterval: 20` into an int; a ConfigMap's values are strings.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value) if isinstance(value, (int, float)) else json.dumps(value)


def _parse_manifest(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise ConfigError.single("--config", f"{path} is not valid JSON ({error})") from error
    try:
        import yaml
    except ImportError as error:
        raise ConfigError.single(
            "--config",
            f"{path} looks like YAML and PyYAML is not installed: `pip install PyYAML` next to raypod, or use JSON",
        ) from error
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise ConfigError.single("--config", f"{path} is not valid YAML ({error})") from error
    configmaps = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind", "ConfigMap") == "ConfigMap"]
    if len(configmaps) != 1:
        raise ConfigError.single("--config", f"{path} must hold exactly one ConfigMap, found {len(configmaps)}")
    return configmaps[0]


def open_source(path: Path) -> ConfigSource:
    if path.is_dir():
        return DirectorySource(path)
    if path.is_file():
        return ManifestSource(path)
    raise ConfigError.single("--config", f"{path} does not exist")


class MappingSource:
    """A ConfigMap's data held in memory (tests, tools)."""

    identity: str | None = None

    def __init__(self, data: Mapping[str, str], description: str = "ConfigMap data in memory") -> None:
        self.data = dict(data)
        self.description = description

    def read(self) -> dict[str, str]:
        return dict(self.data)


class JobSource(Protocol):
    """What a run needs of where its job comes from: the checked settings, ``kill``, and identity."""

    description: str

    @property
    def identity(self) -> str | None:
        """A uid every pod of one BridgeJob sees (see ``ConfigSource.identity``), once loaded."""
        ...

    def load(self, *, submitted: bool) -> BridgeConfig:
        """The job's settings; ConfigError with every problem. ``submitted``: Ray may have the job
        already (an id is recorded), so problems are set aside, not raised (see ``parse_config``)."""
        ...

    def kill_requested(self) -> bool:
        """Whether ``kill`` is set now; a RaypodError when it cannot be read."""
        ...


class ConfigMapJob:
    """A job described by a ConfigMap's keys, with what ``submit --config`` overrides."""

    def __init__(self, source: ConfigSource, overrides: ConfigOverrides = ConfigOverrides()) -> None:
        self.source = source
        self.overrides = overrides
        self.description = source.description

    @property
    def identity(self) -> str | None:
        return self.source.identity

    def load(self, *, submitted: bool) -> BridgeConfig:
        return job_config(self.source.read(), submitted=submitted, overrides=self.overrides)

    def kill_requested(self) -> bool:
        return kill_requested(self.source.read())
