"""``submit``'s flags as typed settings, each checked once where it is read, and the dashboard
address from the flags and the environment.

``submit --script`` becomes a ``BridgeConfig`` here directly (no ConfigMap text in between);
``submit --config`` reads the ConfigMap and takes ``--address``, ``--interval`` and KubeRay's
``RAY_JOB_SUBMISSION_ID`` as typed overrides. Every problem names the flag or variable it came from.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from raypod.config import BridgeConfig, ConfigOverrides, checked_submission_id, parse_resource_url
from raypod.contract import JOB_PARAMETERS, JOB_PROPERTIES, JOB_SCRIPT, RESOURCE_URL, SCRIPT_METADATA
from raypod.entrypoint import submission_problems
from raypod.errors import ConfigError, Problems
from raypod.http import redact_url
from raypod.inputs import WHEEL_FLAG, LocalInputs
from raypod.jobdata import (
    INLINE_SCRIPT_NAME,
    Metadata,
    checked_parameters,
    inline_script_name,
    parse_env,
    parse_json_object,
    parse_pip,
)
from raypod.properties import ROWS, JobProperties, parse_job_properties
from raypod.source import ConfigMapJob, JobSource, open_source
from raypod.wheels import wheel_name_problems
from raypod.workdir import EXCLUDE_FLAG, WORKING_DIR_FLAG, require_directory, script_in_working_dir

#: Like the Ray CLI: the flag, then these variables, in this order; last, the one KubeRay's
#: submitter pod sets (``host:port`` of the dashboard).
ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "RAY_DASHBOARD_ADDRESS")
#: Set by KubeRay in its submitter pod: the id the job must have.
KUBERAY_SUBMISSION_ID = "RAY_JOB_SUBMISSION_ID"
#: ``ray job submit --runtime-env FILE``: a YAML (or JSON) file.
RUNTIME_ENV_FILE_FLAG = "--runtime-env"
#: How often ``submit --script --wait`` polls unless ``--interval`` says otherwise.
SUBMIT_INTERVAL = 2.0
#: Where a problem found at submission time (with the ConfigMap's key) comes from on the command line.
_FLAG_OF_KEY = {
    JOB_SCRIPT: "--script",
    JOB_PARAMETERS: "--param",
    SCRIPT_METADATA: "--env/--pip",
}
#: ``submit`` given neither a script, a command nor a ConfigMap.
NOTHING_TO_RUN = (
    "missing: give --script FILE, a command after -- (as with `ray job submit -- python train.py`), "
    "or --config PATH for a ConfigMap"
)
#: ``--param`` is the Bridge convention (``--kwargs key=value``), which only a script parses.
PARAM_WITHOUT_SCRIPT = (
    "only with --script (the Bridge convention's --kwargs); a command's own arguments go after --, as typed"
)
#: The flags that set ``jobproperties`` keys a late problem may be about (the first is the default).
_PROPERTIES_FLAGS = ("--properties", "--runtime-env-json", RUNTIME_ENV_FILE_FLAG, "--metadata-json")


# -- the address --------------------------------------------------------------------------
#: Ray's GCS port: Ray sets ``RAY_ADDRESS`` to it inside every job, and it speaks no HTTP.
GCS_PORT = 6379


class Address(NamedTuple):
    """The dashboard URL, and the flag or variable it came from (named in every problem with it)."""

    url: str
    origin: str


def find_address(flag: str | None, environ: Mapping[str, str]) -> Address | None:
    """``--address``, else the first of ``ADDRESS_VARIABLES`` set; None if none."""
    for origin, value in (("--address", flag), *((name, environ.get(name)) for name in ADDRESS_VARIABLES)):
        if value and value.strip():
            return Address(dashboard_url(value.strip(), origin), origin)
    return None


def resolve_address(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The dashboard URL from ``--address``, else the first of ``ADDRESS_VARIABLES`` set; None if none."""
    found = find_address(flag, environ)
    return found.url if found else None


def dashboard_url(text: str, origin: str) -> str:
    """An http(s) dashboard URL; a bare ``host:port`` means http, as with ``ray job``."""
    if text in ("auto", "local"):
        raise ConfigError.single(
            origin, f"{text!r} needs the Ray SDK to find a cluster; give the dashboard's address, e.g. http://HOST:8265"
        )
    if text.startswith("ray://"):
        raise ConfigError.single(
            origin,
            f"{text!r} is a Ray Client address; raypod talks to the dashboard's REST API: "
            "give its address, e.g. http://HOST:8265",
        )
    if "://" not in text:
        text = f"http://{text}"
    url = parse_resource_url(text, origin)
    if _port(url) == GCS_PORT:
        shown = f"{origin}={redact_url(url)}" if origin.isupper() else f"{origin} {redact_url(url)}"
        # ``ray job`` asks the GCS for the dashboard with the Ray SDK; raypod has none.
        raise ConfigError.single(
            origin,
            f"{shown} is Ray's GCS port (Ray sets RAY_ADDRESS to it inside every job); the dashboard is "
            "usually on :8265 (set RAY_API_SERVER_ADDRESS, which comes first, or pass --address)",
        )
    return url


def _port(url: str) -> int | None:
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def require_address(flag: str | None) -> Address:
    address = find_address(flag, os.environ)
    if address is None:
        raise ConfigError.single(
            "--address",
            "missing: pass --address http://HOST:8265, or set RAY_API_SERVER_ADDRESS, RAY_ADDRESS "
            "or RAY_DASHBOARD_ADDRESS",
        )
    return address


# -- the job ---------------------------------------------------------------------------------
class FlagsJob:
    """A job given by ``submit --script``'s flags: its settings are fixed, and nobody sets ``kill``
    (Ctrl-C, with ``--stop-on-interrupt``, is how a person stops it)."""

    description = "command-line flags"
    identity: str | None = None

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config

    def load(self, *, submitted: bool) -> BridgeConfig:
        return self.config

    def kill_requested(self) -> bool:
        return False


class SubmitInputs(NamedTuple):
    job: JobSource
    local: LocalInputs
    #: Where the dashboard's address came from: a flag, a variable, or the ConfigMap's resourceURL.
    address_origin: str


def submit_job(args: argparse.Namespace) -> SubmitInputs:
    """What ``submit`` runs: a ConfigMap (``--config``) or a script and its flags (``--script``)."""
    if args.config is not None and args.script is not None:
        raise ConfigError.single("--config", "give either --config or --script, not both")
    kuberay_id = os.environ.get(KUBERAY_SUBMISSION_ID, "").strip() or None
    if kuberay_id is not None:
        checked_submission_id(kuberay_id, KUBERAY_SUBMISSION_ID)
    if args.script is not None or (args.config is None and args.script_args):
        config, local = job_from_flags(args, kuberay_id)
        found = find_address(args.address, os.environ)
        return SubmitInputs(FlagsJob(config), local, found.origin if found else "--address")
    if args.config is None:
        raise ConfigError.single("--script", NOTHING_TO_RUN)
    loose = [
        flag
        for flag, value in (
            ("--param", args.param),
            ("--env", args.env),
            ("--pip", args.pip),
            (WORKING_DIR_FLAG, args.working_dir),
            (EXCLUDE_FLAG, args.exclude),
            (WHEEL_FLAG, args.wheel),
            ("--properties", args.properties),
            ("-- ARGS", args.script_args),
            ("--submission-id", args.new_submission_id),
            *((flag, given_flag(args, flag)) for flag in RAY_FLAGS),
        )
        if value
    ]
    if loose:
        raise ConfigError.single(", ".join(loose), "only with --script; with --config they belong in the ConfigMap")
    source = open_source(args.config)
    # An explicit --address wins; then the ConfigMap's resourceURL; then the environment.
    found = find_address(args.address, {}) if args.address else None
    if found is None and not source.read().get(RESOURCE_URL, "").strip():
        found = find_address(None, os.environ)
    overrides = ConfigOverrides(
        resource_url=found.url if found else None, update_interval=args.interval, submission_id=kuberay_id
    )
    return SubmitInputs(ConfigMapJob(source, overrides), LocalInputs(), found.origin if found else RESOURCE_URL)


def job_from_flags(args: argparse.Namespace, submission_id: str | None = None) -> tuple[BridgeConfig, LocalInputs]:
    """``submit --script``'s (or ``submit -- COMMAND``'s) settings, every flag checked once; a ConfigError
    names each bad flag."""
    problems = Problems()
    local = LocalInputs()
    try:
        local = local_inputs(args)
    except ConfigError as error:
        problems.take(error)
    script_location, script, inline_name = "inline", "", INLINE_SCRIPT_NAME
    path: Path | None = args.script
    # Without --script, the words after -- are the command Ray runs, as with `ray job submit -- COMMAND`.
    command: tuple[str, ...] = () if path is not None else tuple(args.script_args)
    try:
        if path is None:
            # Nothing to package but the working dir; a remote script of no name is never run.
            script_location = "remote"
            if args.working_dir is not None:
                require_directory(args.working_dir)
        elif args.working_dir is not None:
            # One of the working dir's files: sent as a path, which the job runs from its working directory.
            script_location, script = "remote", script_in_working_dir(path, args.working_dir)
        else:
            script = path.read_text(encoding="utf-8")
            inline_name = inline_script_name(path.name)
            if not script.strip():
                problems.add("--script", f"{path} is empty")
    except (OSError, UnicodeDecodeError) as error:
        problems.add("--script", f"cannot read {path}: {error}")
    except ConfigError as error:
        problems.take(error)
    metadata, parameters, properties = Metadata(), {}, JobProperties()
    try:
        metadata = Metadata(pip=parse_pip(list(args.pip), "--pip"), env=parse_env(_pairs(args.env, "--env"), "--env"))
    except ConfigError as error:
        problems.take(error)
    try:
        parameters = checked_parameters(_pairs(args.param, "--param"), "--param")
    except ConfigError as error:
        problems.take(error)
    if command and args.param:
        problems.add("--param", PARAM_WITHOUT_SCRIPT)
    try:
        properties = with_ray_flags(parse_job_properties(args.properties or "", "--properties"), args)
    except ConfigError as error:
        problems.take(error)
    try:
        submission_id = chosen_submission_id(args, submission_id, properties)
    except ConfigError as error:
        problems.take(error)
    resource_url = ""
    try:
        resource_url = require_address(args.address).url
    except ConfigError as error:
        problems.take(error)
    problems.raise_if_any()
    config = BridgeConfig(
        resource_url=resource_url,
        update_interval=args.interval or SUBMIT_INTERVAL,
        script_location=script_location,
        script=script,
        metadata=metadata,
        parameters=parameters,
        properties=properties,
        submission_id=submission_id,
        # An ordinary argparse script would fail on a bare --kwargs.
        always_kwargs=False,
        script_args=() if command else tuple(args.script_args),
        command=command,
        inline_name=inline_name,
    )
    # What only the whole job shows (a runtime_env field raypod sets itself, say), named by its flag.
    late = submission_problems(config, local)
    if late:
        flag_of = {**_FLAG_OF_KEY, JOB_PROPERTIES: _properties_flags_given(args)}
        raise ConfigError([(flag_of.get(key, key), problem) for key, problem in late])
    return config, local


def given_flag(args: argparse.Namespace, flag: str) -> Any:
    """The value argparse holds for ``--some-flag`` (its ``some_flag``); None when it has none."""
    return getattr(args, flag.lstrip("-").replace("-", "_"), None)


def _properties_flags_given(args: argparse.Namespace) -> str:
    """The flags among ``_PROPERTIES_FLAGS`` the user gave: the name a problem in jobproperties goes by."""
    given = [flag for flag in _PROPERTIES_FLAGS if given_flag(args, flag)]
    return "/".join(given) or _PROPERTIES_FLAGS[0]


# -- Ray's own flags ----------------------------------------------------------------------------
#: ``ray job submit``'s flags, each the ``jobproperties`` key it sets: one table, one check per key.
RAY_FLAGS = {
    "--runtime-env-json": "runtime_env",
    RUNTIME_ENV_FILE_FLAG: "runtime_env",
    "--metadata-json": "metadata",
    "--entrypoint-num-cpus": "entrypoint_num_cpus",
    "--entrypoint-num-gpus": "entrypoint_num_gpus",
    "--entrypoint-memory": "entrypoint_memory",
    "--entrypoint-resources": "entrypoint_resources",
    "--entrypoint-label-selector": "entrypoint_label_selector",
}


def ray_flag_values(args: argparse.Namespace) -> dict[str, tuple[str, Any]]:
    """Each Ray flag given: its jobproperties key -> (the flag, its value as JSON would hold it)."""
    values: dict[str, tuple[str, Any]] = {}
    problems = Problems()
    for flag, key in RAY_FLAGS.items():
        text = given_flag(args, flag)
        if text is None:
            continue
        if key in values:
            problems.add(f"{values[key][0]}, {flag}", f"both set {key}; give one")
            continue
        try:
            values[key] = (flag, _flag_value(flag, text))
        except ConfigError as error:
            problems.take(error)
    problems.raise_if_any()
    return values


def _flag_value(flag: str, text: str | Path) -> Any:
    if isinstance(text, Path):
        return read_json_or_yaml_object(text, flag)
    if flag.endswith("-json") or flag in ("--entrypoint-resources", "--entrypoint-label-selector"):
        return parse_json_object(text, flag)
    try:
        return json.loads(text)
    except ValueError:
        raise ConfigError.single(flag, f"expected a number, got {text!r}") from None


def read_json_or_yaml_object(path: Path, flag: str) -> dict[str, Any]:
    """A file holding one JSON object, or one YAML mapping when PyYAML is installed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError.single(flag, f"cannot read {path}: {error}") from error
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return parse_json_object(text, flag)
    try:
        import yaml
    except ImportError:
        raise ConfigError.single(flag, f"{path} looks like YAML: `pip install PyYAML`, or give JSON") from None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError.single(flag, f"{path} is not valid YAML ({error})") from error
    # Through JSON, so the value is checked as --runtime-env-json's would be (depth, NaN...).
    return parse_json_object(json.dumps(value if value is not None else {}, default=str), flag)


def with_ray_flags(properties: JobProperties, args: argparse.Namespace) -> JobProperties:
    """``properties`` with each Ray flag's setting, checked by the jobproperties row of its key; a
    flag that sets what ``--properties`` sets too is bad input."""
    values = ray_flag_values(args)
    given = set(parse_json_object(args.properties, "--properties")) if args.properties else set()
    problems = Problems()
    changes: dict[str, Any] = {}
    for key, (flag, value) in values.items():
        if key in given:
            problems.add(f"{flag}, --properties", f"both set {key}; give it once")
            continue
        try:
            checked = parse_job_properties(json.dumps({key: value}), flag)
        except ConfigError as error:
            problems.take(error)
            continue
        name = ROWS[key].name
        changes[name] = getattr(checked, name)
    problems.raise_if_any()
    return replace(properties, **changes)


def chosen_submission_id(args: argparse.Namespace, kuberay_id: str | None, properties: JobProperties) -> str | None:
    """``--submission-id``, else KubeRay's id: the id the job gets (a job Ray has under it is attached to)."""
    if args.new_submission_id is None:
        return kuberay_id
    chosen = checked_submission_id(args.new_submission_id, "--submission-id")
    if kuberay_id is not None and kuberay_id != chosen:
        raise ConfigError.single("--submission-id", f"differs from {KUBERAY_SUBMISSION_ID}={kuberay_id}; give one")
    if properties.submission_id_prefix is not None:
        raise ConfigError.single("--submission-id, --properties", "both choose the id (submissionIdPrefix); give one")
    return chosen


def local_inputs(args: argparse.Namespace) -> LocalInputs:
    """``submit``'s files from this machine: the working dir, its excludes, and the wheels."""
    if args.exclude and args.working_dir is None:
        raise ConfigError.single(EXCLUDE_FLAG, f"only with {WORKING_DIR_FLAG}")
    wheels: tuple[Path, ...] = tuple(args.wheel)
    problems = [(WHEEL_FLAG, f"{path} is not a file") for path in wheels if not path.is_file()]
    named = wheel_name_problems([path.name for path in wheels], [str(path) for path in wheels])
    problems += [(WHEEL_FLAG, problem) for problem in named]
    if problems:
        raise ConfigError(problems)
    return LocalInputs(
        working_dir=args.working_dir,
        excludes=tuple(args.exclude),
        # Ray's own clients skip .gitignore files when this is 1.
        use_gitignore=os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1",
        wheels=wheels,
    )


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError.single(flag, f"expected KEY=VALUE, got {item!r}")
        result[key.strip()] = value
    return result


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40]


def default_job_name(args: argparse.Namespace) -> str:
    """--job-name, $JOBNAME, else the script's or ConfigMap's name (``x-bridge-cm.json`` -> ``x``); for
    ``-- COMMAND``, its first ``.py`` word's name, else its program's (``python train.py`` -> ``train``)."""
    if args.job_name:
        return str(args.job_name)
    if args.script is not None:
        return _slug(Path(args.script).stem) or "raypod"
    if args.config is None and args.script_args:
        words = list(args.script_args)
        named = next((word for word in words if word.endswith(".py")), words[0])
        return _slug(Path(named).stem) or "raypod"
    stem = Path(args.config).name.split(".")[0]
    return _slug(stem.removesuffix("-bridge-cm")) or "raypod"
