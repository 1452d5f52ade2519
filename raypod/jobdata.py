"""The job's data in the ConfigMap (``jobdata.*``): S3 locations, the script's name on Ray, the
metadata (pip, env, wheels), the parameters and the extra input files. Pure: no I/O.

Every problem is reported with the key it belongs to, so ``validate`` can list them all.
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

from raypod.contract import ADDITIONAL_DATA, JOB_PARAMETERS, SCRIPT_METADATA
from raypod.errors import ConfigError, Problems
from raypod.safetext import valid_json
from raypod.wheels import wheel_name_problems

#: How deeply the JSON values (scriptMetadata, jobParameters, jobproperties with its runtime_env)
#: may nest: ``{}`` is 1 level, ``{"a": []}`` 2. Deeper is bad input, never a RecursionError.
MAX_JSON_DEPTH = 32
#: A parameter name the job's argparse and ParseKwargs both read as one ``name=value`` token.
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
PARAMETER_NAME_RULE = "must start with a letter or '_' and hold only letters, digits, '_', '-' or '.'"
SCRIPT_LOCATIONS = ("inline", "s3", "remote")
EXTRA_LOCATIONS = ("inline", "s3")
INLINE_SCRIPT_NAME = "script.py"
#: A script's own file name that is kept on Ray: no shell, option (``-x``), path or hidden-file reading applies.
PLAIN_SCRIPT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}\.py")
BUCKET_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


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


def packaged_script_name(
    script_location: str, script: str | S3Location, inline_name: str = INLINE_SCRIPT_NAME
) -> str | None:
    """The name the script has in the job's package, as it will be on Ray; None when it is not packaged."""
    if isinstance(script, S3Location):
        return runnable_name(script.base_name)
    if script_location == "inline":
        return inline_name
    return None


def inline_script_name(file_name: str) -> str:
    """The name a local script (``submit --script``) runs under on Ray: its own, so Ray's log and
    tracebacks show the name the user wrote, when it is plain; ``script.py`` otherwise. It is alone
    in the package's folder, so it clashes with no other file."""
    if PLAIN_SCRIPT_NAME.fullmatch(file_name):
        return runnable_name(file_name)
    return INLINE_SCRIPT_NAME


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


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an S3 bucket's name, as one sentence; None when it can.

    S3's naming rules (AWS's general purpose buckets): a name that breaks them would only fail
    later, at the first S3 call, or reach another bucket than meant through virtual-host addressing."""
    if not 3 <= len(name) <= 63:
        why = f"it has {len(name)} characters, not 3 to 63"
    elif bad := sorted({c for c in name if c not in BUCKET_CHARACTERS}):
        why = f"it holds {', '.join(repr(c) for c in bad[:5])}: only lowercase letters, digits, '.' and '-' are allowed"
    elif not (name[0].isalnum() and name[-1].isalnum()):
        why = "it must start and end with a letter or digit"
    elif ".." in name:
        why = "it holds '..'"
    elif IP_ADDRESS.fullmatch(name):
        why = "it is an IP address"
    elif name.startswith(BUCKET_RESERVED_PREFIXES) or name.endswith(BUCKET_RESERVED_SUFFIXES):
        why = "S3 reserves its prefix or suffix"
    else:
        return None
    shown = repr(name) if len(name) <= 70 else f"{name[:70]!r}..."
    return f"bucket {shown} is not an S3 bucket name: {why}"


def parse_location(text: str, key: str) -> S3Location:
    """Parse ``bucket:object``."""
    bucket, sep, object_name = text.strip().partition(":")
    if not sep:
        raise ConfigError.single(key, f"expected bucket:object, got {text!r} (no ':')")
    bucket, object_name = bucket.strip(), object_name.strip().lstrip("/")
    if not bucket or not object_name:
        raise ConfigError.single(key, f"expected bucket:object with both parts, got {text!r}")
    problem = bucket_name_problem(bucket)
    if problem is not None:
        raise ConfigError.single(key, problem)
    return S3Location(bucket, object_name)


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
    # JSON's escapes can spell a lone surrogate, which no later print or request could encode.
    return valid_json(parsed)  # type: ignore[no-any-return]


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


def parse_metadata(text: str, key: str = SCRIPT_METADATA) -> Metadata:
    """Parse ``{"pip": {...} | [...], "env": {...}, "wheels": ["bucket:object.whl", ...]}``."""
    if not text.strip():
        return Metadata()
    obj = parse_json_object(text, key)
    unknown = sorted(set(obj) - {"pip", "env", "wheels"})
    if unknown:
        raise ConfigError.single(key, f"unknown field(s) {', '.join(unknown)}; known: pip, env, wheels")
    return Metadata(
        pip=parse_pip(obj.get("pip"), key),
        env=parse_env(obj.get("env"), key),
        wheels=_parse_wheels(obj.get("wheels"), key),
    )


def _parse_wheels(wheels: Any, key: str) -> tuple[S3Location, ...]:
    if wheels is None:
        return ()
    if not isinstance(wheels, list) or not all(isinstance(item, str) for item in wheels):
        raise ConfigError.single(key, "wheels must be a list of bucket:object .whl files")
    problems = Problems()
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


def parse_pip(pip: Any, key: str) -> tuple[str, ...]:
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


def parse_env(env: Any, key: str) -> dict[str, str]:
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
    return checked_parameters(parse_json_object(text, key), key)


def checked_parameters(obj: Mapping[str, Any], key: str) -> dict[str, str]:
    """Each parameter as the text the job sees; a ConfigError lists every one it could not read."""
    problems = Problems()
    params: dict[str, str] = {}
    for name, value in obj.items():
        name_problem = parameter_name_problem(name)
        if name_problem:
            problems.add(key, name_problem)
            continue
        try:
            text_value = scalar_text(value, key, f"parameter {name!r}")
        except ConfigError as error:
            problems.take(error)
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
    problems = Problems()
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
