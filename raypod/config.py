"""Parse the Bridge ConfigMap's string keys into typed settings. Pure: no I/O.

Every problem is collected, not only the first, so ``validate`` can list them all.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from raypod.errors import ConfigError
from raypod.wheels import wheel_name_problems

RESOURCE_URL = "resourceURL"
UPDATE_INTERVAL = "updateInterval"
JOB_SCRIPT = "jobdata.jobScript"
SCRIPT_LOCATION = "jobdata.scriptLocation"
SCRIPT_METADATA = "jobdata.scriptMetadata"
JOB_PARAMETERS = "jobdata.jobParameters"
SCRIPT_EXTRA_LOCATION = "jobdata.scriptExtraLocation"
ADDITIONAL_DATA = "jobdata.additionalData"
JOB_PROPERTIES = "jobproperties"
S3_ENDPOINT = "s3.endpoint"
S3_SECURE = "s3.secure"
S3_SECRET = "s3.secret"
S3_UPLOAD_BUCKET = "s3upload.bucket"
S3_UPLOAD_FILES = "s3upload.files"
KILL = "kill"
ID = "id"

DEFAULT_UPDATE_INTERVAL = 20.0
DEFAULT_RETRY_DELAY = 10.0
#: The most retries ``jobproperties.retries`` may ask for: enough for any flaky job, and bounded.
MAX_RETRIES = 100
#: The shortest ``updateInterval`` accepted, in seconds: a shorter one only floods the dashboard.
MIN_UPDATE_INTERVAL = 0.5
#: How deeply the JSON values (scriptMetadata, jobParameters, jobproperties with its runtime_env)
#: may nest: ``{}`` is 1 level, ``{"a": []}`` 2. Deeper is bad input, never a RecursionError.
MAX_JSON_DEPTH = 32
#: A parameter name the job's argparse and ParseKwargs both read as one ``name=value`` token.
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
PARAMETER_NAME_RULE = "must start with a letter or '_' and hold only letters, digits, '_', '-' or '.'"
SCRIPT_LOCATIONS = ("inline", "s3", "remote")
EXTRA_LOCATIONS = ("inline", "s3")
INLINE_SCRIPT_NAME = "script.py"


@dataclass(frozen=True)
class S3Location:
    """An S3 object written as ``bucket:object``."""

    bucket: str
    object_name: str

    def __str__(self) -> str:
        return f"{self.bucket}:{self.object_name}"

    @property
    def base_name(self) -> str:
        return posixpath.basename(self.object_name)


@dataclass(frozen=True)
class Metadata:
    pip: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: ``.whl`` files in S3, installed by Ray as ``py_modules`` (no package index needed).
    wheels: tuple[S3Location, ...] = ()


@dataclass(frozen=True)
class JobProperties:
    """The ``jobproperties`` JSON: Ray entrypoint resources and raypod's own knobs."""

    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: Mapping[str, float] = field(default_factory=dict)
    #: Node labels the driver must run on (Ray 2.60's ``entrypoint_label_selector``).
    entrypoint_label_selector: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    runtime_env: Mapping[str, Any] = field(default_factory=dict)
    active_deadline_seconds: float | None = None
    #: A job not RUNNING this long after its submission is stopped and ends FAILED (StartDeadlineExceeded).
    start_deadline_seconds: float | None = None
    submission_id_prefix: str | None = None
    auth: str = "none"
    follow_logs: bool | None = None
    #: How often a job that ends FAILED on its own is submitted again (as ``<id>-r<n>``).
    retries: int = 0
    #: The wait between a failed attempt and the next one.
    retry_delay_seconds: float = DEFAULT_RETRY_DELAY


@dataclass(frozen=True)
class S3Settings:
    endpoint: str
    secure: bool
    secret_name: str


@dataclass(frozen=True)
class BridgeConfig:
    """Everything raypod needs from the ConfigMap, checked."""

    resource_url: str
    update_interval: float
    script_location: str
    #: inline text, ``bucket:object`` (as S3Location) or a path on the Ray nodes
    script: str | S3Location
    extra_location: str
    #: raw inline JSON, or the S3 object holding it; None when the key is empty
    metadata: str | S3Location | None
    parameters: str | S3Location | None
    additional_data: tuple[S3Location, ...]
    properties: JobProperties
    s3: S3Settings | None
    upload_bucket: str | None
    upload_files: tuple[str, ...]
    kill: bool
    submission_id: str | None
    #: Problems set aside because a job was submitted already (see ``parse_config``): such a
    #: config can watch that job, never submit one.
    set_aside: tuple[tuple[str, str], ...] = ()

    @property
    def script_name(self) -> str:
        """The script's file name in the job's working directory (or its remote path)."""
        return packaged_script_name(self.script_location, self.script) or str(self.script)


def packaged_script_name(script_location: str, script: str | S3Location) -> str | None:
    """The name the script has in the job's package, as it will be on Ray; None when it is not packaged."""
    if isinstance(script, S3Location):
        return runnable_name(script.base_name)
    if script_location == "inline":
        return INLINE_SCRIPT_NAME
    return None


def runnable_name(name: str) -> str:
    """The file name a script from S3 runs under in the job's folder.

    Python puts the script's own folder first on ``sys.path``, so a script named like a module
    that Ray's driver imports (the classic ``code.py``: ray -> pdb -> code) imports itself and
    fails. Such a script runs as ``job_<name>``.
    """
    stem = name.removesuffix(".py")
    if stem in sys.stdlib_module_names or stem == "ray":
        return f"job_{name}"
    return name


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, key: str, problem: str) -> None:
        self.items.append((key, problem))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


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


def parse_location(text: str, key: str) -> S3Location:
    """Parse ``bucket:object``."""
    bucket, sep, object_name = text.strip().partition(":")
    if not sep:
        raise ConfigError.single(key, f"expected bucket:object, got {text!r} (no ':')")
    bucket, object_name = bucket.strip(), object_name.strip().lstrip("/")
    if not bucket or not object_name:
        raise ConfigError.single(key, f"expected bucket:object with both parts, got {text!r}")
    return S3Location(bucket, object_name)


def parse_resource_url(text: str) -> str:
    if not text:
        raise ConfigError.single(
            RESOURCE_URL, "missing: set it to the Ray dashboard address, e.g. http://ray-head:8265"
        )
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError.single(RESOURCE_URL, f"expected an http:// or https:// address, got {text!r}")
    if parts.username or parts.password:
        raise ConfigError.single(RESOURCE_URL, "must not hold a user or password; use the credentials directory")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as error:
        raise ConfigError.single(RESOURCE_URL, f"bad port in {text!r}") from error
    return text.rstrip("/")


#: Like the Ray CLI: the flag, then these variables, in this order; last, the one KubeRay's
#: submitter pod sets (``host:port`` of the dashboard).
ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "RAY_DASHBOARD_ADDRESS")


def resolve_address(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """The dashboard URL from ``--address``, else the first of ``ADDRESS_VARIABLES`` set; None if none."""
    for origin, value in (("--address", flag), *((name, environ.get(name)) for name in ADDRESS_VARIABLES)):
        if value and value.strip():
            return dashboard_url(value.strip(), origin)
    return None


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
    try:
        return parse_resource_url(text)
    except ConfigError as error:
        raise ConfigError([(origin, problem) for _, problem in error.problems]) from None


def parse_positive_number(text: str, key: str) -> float:
    try:
        number = float(text)
    except ValueError as error:
        raise ConfigError.single(key, f"expected a number of seconds, got {text!r}") from error
    if not math.isfinite(number) or number <= 0:
        raise ConfigError.single(key, f"expected a positive number of seconds, got {text!r}")
    return number


def parse_update_interval(text: str) -> float:
    """``updateInterval``: a finite number of seconds, at least MIN_UPDATE_INTERVAL."""
    number = parse_positive_number(text, UPDATE_INTERVAL)
    if number < MIN_UPDATE_INTERVAL:
        raise ConfigError.single(
            UPDATE_INTERVAL, f"must be at least {MIN_UPDATE_INTERVAL:g} seconds (the polling floor), got {text!r}"
        )
    return number


def json_depth(value: Any) -> int:
    """How deeply a parsed JSON value nests: 0 for a scalar, 1 for ``{}`` or ``[]``. No recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_JSON_DEPTH:
            break  # deep enough to refuse; no need to walk the rest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json_object(text: str, key: str) -> dict[str, Any]:
    too_deep = f"nests deeper than {MAX_JSON_DEPTH} levels of objects and lists"
    try:
        parsed = json.loads(text)
    except RecursionError:
        raise ConfigError.single(key, too_deep) from None
    except ValueError as error:
        raise ConfigError.single(key, f"is not valid JSON ({error})") from error
    if json_depth(parsed) > MAX_JSON_DEPTH:
        raise ConfigError.single(key, too_deep)
    if not isinstance(parsed, dict):
        raise ConfigError.single(key, f"must be a JSON object, got {type(parsed).__name__}")
    return parsed


def parse_metadata(text: str, key: str = SCRIPT_METADATA) -> Metadata:
    """Parse ``{"pip": {...} | [...], "env": {...}, "wheels": ["bucket:object.whl", ...]}``."""
    if not text.strip():
        return Metadata()
    obj = parse_json_object(text, key)
    unknown = sorted(set(obj) - {"pip", "env", "wheels"})
    if unknown:
        raise ConfigError.single(key, f"unknown field(s) {', '.join(unknown)}; known: pip, env, wheels")
    return Metadata(
        pip=_parse_pip(obj.get("pip"), key),
        env=_parse_env(obj.get("env"), key),
        wheels=_parse_wheels(obj.get("wheels"), key),
    )


def _parse_wheels(wheels: Any, key: str) -> tuple[S3Location, ...]:
    if wheels is None:
        return ()
    if not isinstance(wheels, list) or not all(isinstance(item, str) for item in wheels):
        raise ConfigError.single(key, "wheels must be a list of bucket:object .whl files")
    problems = _Problems()
    locations: list[S3Location] = []
    for item in wheels:
        try:
            locations.append(parse_location(item, key))
        except ConfigError as error:
            problems.items.extend((key, f"wheels: {problem}") for _, problem in error.problems)
    names = [location.base_name for location in locations]
    for problem in wheel_name_problems(names, [f"wheel {str(location)!r}" for location in locations]):
        problems.add(key, f"wheels: {problem}")
    problems.raise_if_any()
    return tuple(locations)


def require_s3_for_wheels(metadata: Metadata, config: BridgeConfig) -> None:
    """The metadata's wheels are in S3: without ``s3.endpoint`` they cannot be fetched."""
    if metadata.wheels and config.s3 is None:
        raise ConfigError.single(S3_ENDPOINT, f"missing, but the wheels of {SCRIPT_METADATA} are in S3")


def _parse_pip(pip: Any, key: str) -> tuple[str, ...]:
    if pip is None:
        return ()
    if isinstance(pip, dict):
        return tuple(_requirement(name, version, key) for name, version in pip.items())
    if isinstance(pip, list) and all(isinstance(item, str) and item.strip() for item in pip):
        return tuple(item.strip() for item in pip)
    raise ConfigError.single(key, "pip must be an object of name to version, or a list of requirement strings")


def _requirement(name: str, version: Any, key: str) -> str:
    if not isinstance(version, (str, int, float)) or isinstance(version, bool):
        raise ConfigError.single(key, f"pip version of {name!r} must be a string")
    spec = str(version).strip()
    if spec in ("", "*", "latest"):
        return name
    if spec[0] in "<>=!~":
        return f"{name}{spec}"
    return f"{name}=={spec}"


def _parse_env(env: Any, key: str) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise ConfigError.single(key, "env must be an object of variable name to value")
    result = {}
    for name, value in env.items():
        if not name or "=" in name:
            raise ConfigError.single(key, f"env variable name {name!r} is not valid")
        result[name] = scalar_text(value, key, f"env {name}")
    return result


def scalar_text(value: Any, key: str, what: str) -> str:
    """A JSON value as the text the job sees: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        raise ConfigError.single(key, f"{what} is null")
    return json.dumps(value, separators=(",", ":"))


def parse_parameters(text: str, key: str = JOB_PARAMETERS) -> dict[str, str]:
    """Parse the parameters object. Keys and values must survive ``token.split('=')``."""
    if not text.strip():
        return {}
    obj = parse_json_object(text, key)
    problems = _Problems()
    params: dict[str, str] = {}
    for name, value in obj.items():
        name_problem = parameter_name_problem(name)
        if name_problem:
            problems.add(key, name_problem)
            continue
        try:
            text_value = scalar_text(value, key, f"parameter {name!r}")
        except ConfigError as error:
            problems.items.extend(error.problems)
            continue
        if "=" in text_value:
            problems.add(
                key,
                f"parameter {name!r} has '=' in its value; the job's ParseKwargs splits each "
                "token on '=' and cannot read it",
            )
            continue
        params[name] = text_value
    problems.raise_if_any()
    return params


def parameter_name_problem(name: str) -> str | None:
    """Why the job could not read ``name=value`` after ``--kwargs``; None when it can."""
    if PARAMETER_NAME.fullmatch(name):
        return None
    if not name:
        why = "it is empty"
    elif name.startswith("-"):
        why = "the job's argparse would read it as an option, not as a --kwargs value"
    elif "=" in name:
        why = "the job's ParseKwargs splits each token on '=' and cannot read it"
    elif any(c.isspace() for c in name):
        why = "it holds whitespace"
    else:
        why = "it is not an identifier-like name"
    return f"parameter name {name!r} {PARAMETER_NAME_RULE}: {why}"


def parse_additional_data(text: str, reserved_names: tuple[str, ...] = ()) -> tuple[S3Location, ...]:
    """Comma-separated ``bucket:object`` list; each lands in the working dir under its base name."""
    problems = _Problems()
    locations: list[S3Location] = []
    seen: dict[str, S3Location] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            location = parse_location(item, ADDITIONAL_DATA)
        except ConfigError as error:
            problems.items.extend(error.problems)
            continue
        name = location.base_name
        parts = location.object_name.split("/")
        # parse_location drops a leading '/', so an absolute name is checked on the raw text.
        absolute = item.partition(":")[2].strip().startswith("/")
        if not name or name in (".", "..") or ".." in parts or absolute:
            problems.add(ADDITIONAL_DATA, f"{item!r} would land outside the job's working directory")
            continue
        if name in seen:
            problems.add(ADDITIONAL_DATA, f"{item!r} and {str(seen[name])!r} have the same file name {name!r}")
            continue
        if name in reserved_names:
            problems.add(ADDITIONAL_DATA, f"{item!r} has the same file name as the script ({name!r})")
            continue
        seen[name] = location
        locations.append(location)
    problems.raise_if_any()
    return tuple(locations)


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


_PROPERTY_KEYS = {
    "entrypoint_num_cpus",
    "entrypoint_num_gpus",
    "entrypoint_memory",
    "entrypoint_resources",
    "entrypoint_label_selector",
    "metadata",
    "runtime_env",
    "activeDeadlineSeconds",
    "startDeadlineSeconds",
    "submissionIdPrefix",
    "auth",
    "followLogs",
    "retries",
    "retryDelaySeconds",
}
KNOWN_PROPERTIES = tuple(sorted(_PROPERTY_KEYS))


def finite_number(value: Any) -> bool:
    """A JSON number (not a bool) that is a finite float: no NaN, no infinity, no int too big for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def holds_non_finite(value: Any) -> bool:
    """Whether a parsed JSON value holds NaN or an infinity anywhere (Ray's POST body cannot carry them)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_job_properties(text: str) -> JobProperties:
    if not text.strip():
        return JobProperties()
    obj = parse_json_object(text, JOB_PROPERTIES)
    problems = _Problems()
    unknown = sorted(set(obj) - _PROPERTY_KEYS)
    if unknown:
        problems.add(JOB_PROPERTIES, f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(KNOWN_PROPERTIES)}")

    def number(name: str, integer: bool = False) -> Any:
        value = obj.get(name)
        if value is None:
            return None
        if not finite_number(value) or value < 0:
            problems.add(JOB_PROPERTIES, f"{name} must be a finite, non-negative number, got {value!r}")
            return None
        if integer and value != int(value):
            problems.add(JOB_PROPERTIES, f"{name} must be a whole number of bytes, got {value!r}")
            return None
        return int(value) if integer else value

    def mapping(name: str, check: Any, what: str) -> dict[str, Any]:
        value = obj.get(name, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and check(v) for k, v in value.items()):
            problems.add(JOB_PROPERTIES, f"{name} must be an object of {what}")
            return {}
        return value

    cpus = number("entrypoint_num_cpus")
    gpus = number("entrypoint_num_gpus")
    memory = number("entrypoint_memory", integer=True)
    resources = mapping("entrypoint_resources", lambda v: True, "resource name to amount")
    for resource, amount in list(resources.items()):
        if not finite_number(amount) or amount < 0:
            problems.add(
                JOB_PROPERTIES,
                f"entrypoint_resources amount of {resource!r} must be a finite, non-negative number, got {amount!r}",
            )
            del resources[resource]
    labels = mapping("entrypoint_label_selector", lambda v: isinstance(v, str), "label name to value (strings)")
    metadata = mapping("metadata", lambda v: isinstance(v, str), "string to string")
    runtime_env = mapping("runtime_env", lambda v: True, "runtime_env fields")
    if holds_non_finite(runtime_env):
        problems.add(JOB_PROPERTIES, "runtime_env holds NaN or an infinity; only finite numbers can be sent to Ray")
        runtime_env = {}

    def positive_seconds(name: str) -> float | None:
        value = obj.get(name)
        if value is not None and (not finite_number(value) or value <= 0):
            problems.add(JOB_PROPERTIES, f"{name} must be a finite, positive number, got {value!r}")
            return None
        return value

    deadline = positive_seconds("activeDeadlineSeconds")
    start_deadline = positive_seconds("startDeadlineSeconds")

    prefix = obj.get("submissionIdPrefix")
    if prefix is not None and (
        not isinstance(prefix, str) or not prefix or not all(c.isalnum() or c in "-_." for c in prefix)
    ):
        problems.add(JOB_PROPERTIES, "submissionIdPrefix must be letters, digits, '-', '_' or '.'")
        prefix = None

    auth = obj.get("auth", "none")
    if auth not in ("none", "basic"):
        problems.add(JOB_PROPERTIES, f"auth must be 'none' or 'basic', got {auth!r}")
        auth = "none"

    follow = obj.get("followLogs")
    if follow is not None and not isinstance(follow, bool):
        problems.add(JOB_PROPERTIES, f"followLogs must be true or false, got {follow!r}")
        follow = None

    retries = obj.get("retries", 0)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        problems.add(JOB_PROPERTIES, f"retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
        retries = 0
    retry_delay = obj.get("retryDelaySeconds", DEFAULT_RETRY_DELAY)
    if not finite_number(retry_delay) or retry_delay < 0:
        problems.add(JOB_PROPERTIES, f"retryDelaySeconds must be a finite, non-negative number, got {retry_delay!r}")
        retry_delay = DEFAULT_RETRY_DELAY

    problems.raise_if_any()
    return JobProperties(
        entrypoint_num_cpus=cpus,
        entrypoint_num_gpus=gpus,
        entrypoint_memory=memory,
        entrypoint_resources={k: float(v) for k, v in resources.items()},
        entrypoint_label_selector=dict(labels),
        metadata=dict(metadata),
        runtime_env=dict(runtime_env),
        active_deadline_seconds=deadline,
        start_deadline_seconds=start_deadline,
        submission_id_prefix=prefix,
        auth=auth,
        follow_logs=follow,
        retries=retries,
        retry_delay_seconds=float(retry_delay),
    )


def _inline_or_location(text: str, extra_location: str, key: str) -> str | S3Location | None:
    if not text:
        return None
    if extra_location == "s3":
        return parse_location(text, key)
    return text


def parse_config(data: Mapping[str, str], *, submitted: bool = False) -> BridgeConfig:
    """Check every key and build the settings; raise ConfigError listing every problem.

    ``submitted``: an id is recorded, so Ray may run the job already, and "bad input" (nothing
    was submitted) would be false. A bad key then takes its default and is kept in ``set_aside``
    (the job is watched, killed and its log uploaded as far as the good keys allow); only a bad
    ``resourceURL``, without which the job cannot be found, is still raised.
    """
    problems = _Problems()
    submitted = submitted or bool(value_of(data, ID))

    def attempt(fn: Any, *args: Any, default: Any = None) -> Any:
        try:
            return fn(*args)
        except ConfigError as error:
            problems.items.extend(error.problems)
            return default

    resource_url = attempt(parse_resource_url, value_of(data, RESOURCE_URL), default="")
    interval_text = value_of(data, UPDATE_INTERVAL)
    interval = (
        attempt(parse_update_interval, interval_text, default=DEFAULT_UPDATE_INTERVAL)
        if interval_text
        else DEFAULT_UPDATE_INTERVAL
    )

    script_location = value_of(data, SCRIPT_LOCATION).lower() or "remote"
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

    extra_location = value_of(data, SCRIPT_EXTRA_LOCATION).lower() or "inline"
    if extra_location not in EXTRA_LOCATIONS:
        problems.add(
            SCRIPT_EXTRA_LOCATION, f"unknown location {extra_location!r}; expected one of {', '.join(EXTRA_LOCATIONS)}"
        )
        extra_location = "inline"
    metadata = attempt(_inline_or_location, value_of(data, SCRIPT_METADATA), extra_location, SCRIPT_METADATA)
    parameters = attempt(_inline_or_location, value_of(data, JOB_PARAMETERS), extra_location, JOB_PARAMETERS)
    # Inline JSON is checked now, so bad input fails before anything is contacted.
    if isinstance(metadata, str):
        attempt(parse_metadata, metadata, SCRIPT_METADATA)
    if isinstance(parameters, str):
        attempt(parse_parameters, parameters, JOB_PARAMETERS)

    # The script's name as it will be on Ray (``code.py`` runs as ``job_code.py``), and as the user wrote it.
    packaged = packaged_script_name(script_location, script)
    written = script.base_name if isinstance(script, S3Location) else packaged
    reserved = tuple(name for name in {packaged, written} if name)
    additional = attempt(parse_additional_data, value_of(data, ADDITIONAL_DATA), reserved, default=())
    properties = attempt(parse_job_properties, value_of(data, JOB_PROPERTIES), default=JobProperties())

    s3: S3Settings | None = None
    endpoint_text = value_of(data, S3_ENDPOINT)
    secure_flag = attempt(parse_bool, value_of(data, S3_SECURE), S3_SECURE, False, default=False)
    if endpoint_text:
        parsed_endpoint = attempt(parse_s3_endpoint, endpoint_text)
        if parsed_endpoint:
            endpoint, scheme_secure = parsed_endpoint
            s3 = S3Settings(
                endpoint, secure_flag if scheme_secure is None else scheme_secure, value_of(data, S3_SECRET)
            )
    uses_s3 = script_location == "s3" or (extra_location == "s3" and (metadata or parameters)) or bool(additional)
    if uses_s3 and not endpoint_text:
        problems.add(S3_ENDPOINT, "missing, but the job's inputs are in S3")

    upload_bucket = value_of(data, S3_UPLOAD_BUCKET) or None
    upload_files = tuple(f.strip() for f in value_of(data, S3_UPLOAD_FILES).split(",") if f.strip())
    for name in upload_files:
        if name.startswith("/") or ".." in name.split("/"):
            problems.add(S3_UPLOAD_FILES, f"{name!r} must be a path relative to the job's S3 prefix")
    if upload_files and not (endpoint_text and upload_bucket):
        problems.add(S3_UPLOAD_FILES, f"needs {S3_ENDPOINT} and {S3_UPLOAD_BUCKET}")

    kill = attempt(kill_requested, data, default=False)

    set_aside: tuple[tuple[str, str], ...] = ()
    if submitted and not any(key == RESOURCE_URL for key, _ in problems.items):
        set_aside, problems.items = tuple(problems.items), []
    problems.raise_if_any()
    return BridgeConfig(
        resource_url=resource_url,
        update_interval=interval,
        script_location=script_location,
        script=script,
        extra_location=extra_location,
        metadata=metadata,
        parameters=parameters,
        additional_data=additional,
        properties=properties,
        s3=s3,
        upload_bucket=upload_bucket,
        upload_files=upload_files,
        kill=kill,
        submission_id=value_of(data, ID) or None,
        set_aside=set_aside,
    )
