"""The Bridge ConfigMap's string keys, checked and turned into typed settings. Pure: no I/O.

The keys are named in ``raypod.contract``; the job's data is parsed by ``raypod.jobdata`` and
``jobproperties`` by ``raypod.properties``. Every problem is collected, not only the first, so
``validate`` can list them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from raypod.config_keys import unknown_key_problems
from raypod.contract import (
    ADDITIONAL_DATA,
    DEFAULT_EXTRA_LOCATION,
    DEFAULT_SCRIPT_LOCATION,
    DEFAULT_UPDATE_INTERVAL,
    ID,
    JOB_PARAMETERS,
    JOB_PROPERTIES,
    JOB_SCRIPT,
    KILL,
    MIN_UPDATE_INTERVAL,
    RESOURCE_URL,
    S3_ENDPOINT,
    S3_SECRET,
    S3_SECURE,
    S3_UPLOAD_BUCKET,
    S3_UPLOAD_FILES,
    SCRIPT_EXTRA_LOCATION,
    SCRIPT_LOCATION,
    SCRIPT_METADATA,
    UPDATE_INTERVAL,
    submission_id_problem,
)
from raypod.errors import ConfigError, Problems
from raypod.jobdata import (
    EXTRA_LOCATIONS,
    INLINE_SCRIPT_NAME,
    SCRIPT_LOCATIONS,
    Metadata,
    S3Location,
    bucket_name_problem,
    packaged_script_name,
    parse_additional_data,
    parse_location,
    parse_metadata,
    parse_parameters,
)
from raypod.properties import JobProperties, parse_job_properties


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    secure: bool
    secret_name: str


@dataclass(frozen=True)
class BridgeConfig:
    """Everything raypod needs from the ConfigMap (or from ``submit``'s flags), checked."""

    resource_url: str
    update_interval: float
    script_location: str
    #: inline text, ``bucket:object`` (as S3Location) or a path on the Ray nodes
    script: str | S3Location
    #: parsed when inline; the S3 object that holds it when ``scriptExtraLocation`` is s3
    metadata: Metadata | S3Location = Metadata()
    parameters: Mapping[str, str] | S3Location = field(default_factory=dict)
    additional_data: tuple[S3Location, ...] = ()
    properties: JobProperties = JobProperties()
    s3: S3Settings | None = None
    upload_bucket: str | None = None
    upload_files: tuple[str, ...] = ()
    kill: bool = False
    submission_id: str | None = None
    #: The Bridge convention (docs/configmap.md#parameters): the script gets ``--kwargs`` even with no
    #: parameters, as the operator's scripts parse it. ``submit --script`` sends it only with parameters.
    always_kwargs: bool = True
    #: ``submit --script FILE -- ARGS``: the script's own arguments, passed unchanged before ``--kwargs``.
    script_args: tuple[str, ...] = ()
    #: ``submit -- COMMAND`` (no ``--script``): Ray's entrypoint itself, as ``ray job submit -- COMMAND``;
    #: the script fields are then unused (a remote script of no name, nothing packaged but a working dir).
    command: tuple[str, ...] = ()
    #: What an inline script is called in the job's package: ``submit --script`` keeps the file's name
    #: (``inline_script_name``); a ConfigMap's script has none.
    inline_name: str = INLINE_SCRIPT_NAME
    #: Problems set aside because a job was submitted already (see ``parse_config``): such a
    #: config can watch that job, never submit one.
    set_aside: tuple[tuple[str, str], ...] = ()
    #: What was taken otherwise than written, and why (one sentence each): logged, and added to the
    #: final status message, where the BridgeJob shows it.
    notes: tuple[str, ...] = ()

    @property
    def script_name(self) -> str:
        """The script's file name in the job's working directory (or its remote path)."""
        return packaged_script_name(self.script_location, self.script, self.inline_name) or str(self.script)


@dataclass(frozen=True)
class ConfigOverrides:
    """What ``submit --config`` takes from its flags and the environment instead of the ConfigMap."""

    #: ``--address`` (or the environment's address when the ConfigMap has no resourceURL).
    resource_url: str | None = None
    #: ``--interval``.
    update_interval: float | None = None
    #: KubeRay's ``RAY_JOB_SUBMISSION_ID``: the id to attach to when the ConfigMap records none.
    submission_id: str | None = None


def value_of(data: Mapping[str, str], key: str) -> str:
    """A key's value with surrounding whitespace removed; '' when absent."""
    value = data.get(key)
    return value.strip() if isinstance(value, str) else ""


def parse_bool(text: str, key: str, default: bool) -> bool:
    lowered = text.strip().lower()
    if not lowered:
        return default
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ConfigError.single(key, f"expected true or false, got {text!r}")


def kill_requested(data: Mapping[str, str]) -> bool:
    """Whether the operator has set ``kill``: read at start-up and on every poll."""
    return parse_bool(value_of(data, KILL), KILL, False)


def parse_resource_url(text: str, key: str = RESOURCE_URL) -> str:
    if not text:
        raise ConfigError.single(key, "missing: set it to the Ray dashboard address, e.g. http://ray-head:8265")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError.single(key, f"expected an http:// or https:// address, got {text!r}")
    if parts.username or parts.password:
        raise ConfigError.single(key, "must not hold a user or password; use the credentials directory")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        raise ConfigError.single(key, f"bad port in {text!r}") from error
    return text.rstrip("/")


def parse_update_interval(text: str) -> tuple[float, str | None]:
    """``updateInterval``: a finite number of seconds, and a note when it was raised to the floor.

    The operator writes any Go int (``"0"``, ``"-5"``): a number below MIN_UPDATE_INTERVAL is
    raised to it, not refused, so that such a BridgeJob still runs."""
    try:
        number = float(text)
    except ValueError:
        raise ConfigError.single(UPDATE_INTERVAL, f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(number):
        raise ConfigError.single(UPDATE_INTERVAL, f"expected a finite number of seconds, got {text!r}")
    if number < MIN_UPDATE_INTERVAL:
        floor = f"{MIN_UPDATE_INTERVAL:g} s"
        return MIN_UPDATE_INTERVAL, f"{UPDATE_INTERVAL} {text!r} is below the {floor} floor: {floor} is used"
    return number, None


def parse_s3_endpoint(text: str) -> tuple[str, bool | None]:
    """``host:port``, tolerating a scheme, which then decides https."""
    secure: bool | None = None
    endpoint = text
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError.single(S3_ENDPOINT, f"expected host:port, got {text!r}")
        secure = parts.scheme == "https"
        endpoint = parts.netloc
    if not endpoint or "/" in endpoint or " " in endpoint:
        raise ConfigError.single(S3_ENDPOINT, f"expected host:port, got {text!r}")
    return endpoint, secure


def require_s3_for_wheels(metadata: Metadata, config: BridgeConfig) -> None:
    """The metadata's wheels are in S3: without ``s3.endpoint`` they cannot be fetched."""
    if metadata.wheels and config.s3 is None:
        raise ConfigError.single(S3_ENDPOINT, f"missing, but the wheels of {SCRIPT_METADATA} are in S3")


#: Keys without which a submitted job cannot be found: their problems are never set aside.
UNSETTABLE = (RESOURCE_URL, ID)


def checked_submission_id(text: str, origin: str) -> str:
    """``text`` when it is a Ray submission id; else a ConfigError naming where it came from."""
    problem = submission_id_problem(text)
    if problem is not None:
        raise ConfigError.single(origin, problem)
    return text


def parse_config(
    data: Mapping[str, str], *, submitted: bool = False, overrides: ConfigOverrides = ConfigOverrides()
) -> BridgeConfig:
    """Check every key and build the settings; raise ConfigError listing every problem (see ``settle``)."""
    config, problems = read_config(data, overrides)
    return settle(config, problems, submitted=submitted)


def settle(config: BridgeConfig, problems: Sequence[tuple[str, str]], *, submitted: bool) -> BridgeConfig:
    """The settings, or ConfigError with every problem.

    ``submitted`` (or an id in the config): Ray may run the job already, and "bad input" (nothing
    was submitted) would be false. A bad key then keeps its default and its problem goes to
    ``set_aside`` (the job is watched, killed and its log uploaded as far as the good keys allow);
    only a bad ``resourceURL`` or ``id``, without which the job cannot be found, is still raised.
    """
    if not problems:
        return config
    if (submitted or config.submission_id) and not any(key in UNSETTABLE for key, _ in problems):
        return replace(config, set_aside=tuple(problems))
    raise ConfigError(problems)


def read_config(
    data: Mapping[str, str], overrides: ConfigOverrides = ConfigOverrides()
) -> tuple[BridgeConfig, list[tuple[str, str]]]:
    """Every key checked: the settings, each bad key at its default, and every problem found."""
    problems = Problems()
    # First: a misspelled key is often why a key below is missing.
    for key, problem in unknown_key_problems(data):
        problems.add(key, problem)
    written_id = value_of(data, ID)
    id_problem = submission_id_problem(written_id) if written_id else None
    if id_problem is not None:
        problems.add(ID, id_problem)
    submission_id = (written_id if id_problem is None else "") or overrides.submission_id

    def attempt(fn: Callable[..., Any], *args: Any, default: Any) -> Any:
        try:
            return fn(*args)
        except ConfigError as error:
            problems.take(error)
            return default

    resource_url = overrides.resource_url or attempt(parse_resource_url, value_of(data, RESOURCE_URL), default="")
    interval_text = value_of(data, UPDATE_INTERVAL)
    interval, interval_note = DEFAULT_UPDATE_INTERVAL, None
    if overrides.update_interval:
        interval = overrides.update_interval
    elif interval_text:
        interval, interval_note = attempt(parse_update_interval, interval_text, default=(DEFAULT_UPDATE_INTERVAL, None))

    script_location = value_of(data, SCRIPT_LOCATION).lower() or DEFAULT_SCRIPT_LOCATION
    if script_location not in SCRIPT_LOCATIONS:
        problems.add(
            SCRIPT_LOCATION, f"unknown location {script_location!r}; expected one of {', '.join(SCRIPT_LOCATIONS)}"
        )
    script_text = data.get(JOB_SCRIPT) or ""
    script: str | S3Location = ""
    if not script_text.strip():
        problems.add(JOB_SCRIPT, "missing: give the script text, its bucket:object, or its path on the Ray nodes")
    elif script_location == "s3":
        script = attempt(parse_location, script_text, JOB_SCRIPT, default="")
    elif script_location == "remote":
        script = script_text.strip()
    else:
        script = script_text

    extra_location = value_of(data, SCRIPT_EXTRA_LOCATION).lower() or DEFAULT_EXTRA_LOCATION
    if extra_location not in EXTRA_LOCATIONS:
        problems.add(
            SCRIPT_EXTRA_LOCATION, f"unknown location {extra_location!r}; expected one of {', '.join(EXTRA_LOCATIONS)}"
        )
        extra_location = DEFAULT_EXTRA_LOCATION
    metadata_text, parameters_text = value_of(data, SCRIPT_METADATA), value_of(data, JOB_PARAMETERS)
    # Inline JSON is parsed now, once, so bad input fails before anything is contacted.
    metadata: Metadata | S3Location
    parameters: Mapping[str, str] | S3Location
    if extra_location == "s3":
        metadata = (
            attempt(parse_location, metadata_text, SCRIPT_METADATA, default=Metadata()) if metadata_text else Metadata()
        )
        parameters = attempt(parse_location, parameters_text, JOB_PARAMETERS, default={}) if parameters_text else {}
    else:
        metadata = attempt(parse_metadata, metadata_text, SCRIPT_METADATA, default=Metadata())
        parameters = attempt(parse_parameters, parameters_text, JOB_PARAMETERS, default={})

    # The script's name as it will be on Ray (``code.py`` runs as ``job_code.py``), and as the user wrote it.
    packaged = packaged_script_name(script_location, script)
    written = script.base_name if isinstance(script, S3Location) else packaged
    reserved = tuple(name for name in {packaged, written} if name)
    additional = attempt(parse_additional_data, value_of(data, ADDITIONAL_DATA), reserved, default=())
    properties = attempt(parse_job_properties, value_of(data, JOB_PROPERTIES), JOB_PROPERTIES, default=JobProperties())

    s3: S3Settings | None = None
    endpoint_text = value_of(data, S3_ENDPOINT)
    secure_flag = attempt(parse_bool, value_of(data, S3_SECURE), S3_SECURE, False, default=False)
    if endpoint_text:
        parsed_endpoint = attempt(parse_s3_endpoint, endpoint_text, default=None)
        if parsed_endpoint:
            endpoint, scheme_secure = parsed_endpoint
            s3 = S3Settings(
                endpoint, secure_flag if scheme_secure is None else scheme_secure, value_of(data, S3_SECRET)
            )
    in_s3 = isinstance(metadata, S3Location) or isinstance(parameters, S3Location)
    uses_s3 = script_location == "s3" or in_s3 or bool(additional)
    if uses_s3 and not endpoint_text:
        problems.add(S3_ENDPOINT, "missing, but the job's inputs are in S3")

    upload_bucket = value_of(data, S3_UPLOAD_BUCKET) or None
    bucket_problem = bucket_name_problem(upload_bucket) if upload_bucket else None
    if bucket_problem is not None:
        problems.add(S3_UPLOAD_BUCKET, bucket_problem)
    upload_files = tuple(f.strip() for f in value_of(data, S3_UPLOAD_FILES).split(",") if f.strip())
    for name in upload_files:
        if name.startswith("/") or ".." in name.split("/"):
            problems.add(S3_UPLOAD_FILES, f"{name!r} must be a path relative to the job's S3 prefix")
    if upload_files and not (endpoint_text and upload_bucket):
        problems.add(S3_UPLOAD_FILES, f"needs {S3_ENDPOINT} and {S3_UPLOAD_BUCKET}")

    kill = attempt(kill_requested, data, default=False)

    config = BridgeConfig(
        resource_url=resource_url,
        update_interval=interval,
        script_location=script_location,
        script=script,
        metadata=metadata,
        parameters=parameters,
        additional_data=additional,
        properties=properties,
        s3=s3,
        upload_bucket=upload_bucket,
        upload_files=upload_files,
        kill=kill,
        submission_id=submission_id,
        notes=(interval_note,) if interval_note else (),
    )
    return config, problems.items
