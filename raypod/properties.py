"""``jobproperties``: Ray's entrypoint options and raypod's own knobs, as one table.

Each field of ``JobProperties`` is one row: its JSON key, its check (which also gives its type
and range), its default and one line of documentation. The parser, the list of known keys and
``validate`` all read that table, so a new property is one row plus its use. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from raypod.contract import JOB_PROPERTIES, submission_id_problem
from raypod.errors import Problems
from raypod.jobdata import finite_number, holds_non_finite, parse_json_object

#: The most retries ``jobproperties.retries`` may ask for: enough for any flaky job, and bounded.
MAX_RETRIES = 100
DEFAULT_RETRY_DELAY = 10.0
#: A BridgeJob written for the first ray-pod may carry keys it ignored: raypod reads them.
UNKNOWN_KEY_HINT = (
    "the first ray-pod ignored jobproperties, raypod checks them: remove the key or rename it, "
    "see docs/configmap.md#job-properties-jobproperties"
)

#: Turns a key's JSON value into its typed value; raises ``Invalid`` with each problem.
Check = Callable[[str, Any], Any]


class Invalid(Exception):
    """One property's problems (each a sentence that names the property)."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def row(key: str, check: Check, default: Any = None, *, doc: str) -> Any:
    """A field of ``JobProperties``. A key whose default is None may be null in the JSON (as if
    absent); for the others null is checked like any value, and refused."""
    meta = {"key": key, "check": check, "doc": doc, "optional": default is None}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# -- the checks ------------------------------------------------------------------------------
def non_negative_number(key: str, value: Any) -> float | int:
    if not finite_number(value) or value < 0:
        raise Invalid(f"{key} must be a finite, non-negative number, got {value!r}")
    return value  # type: ignore[no-any-return]


def non_negative_seconds(key: str, value: Any) -> float:
    return float(non_negative_number(key, value))


def whole_bytes(key: str, value: Any) -> int:
    number = non_negative_number(key, value)
    if number != int(number):
        raise Invalid(f"{key} must be a whole number of bytes, got {value!r}")
    return int(number)


def positive_seconds(key: str, value: Any) -> float:
    if not finite_number(value) or value <= 0:
        raise Invalid(f"{key} must be a finite, positive number, got {value!r}")
    return value  # type: ignore[no-any-return]


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false, got {value!r}")
    return value


def one_of(*choices: str) -> Check:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            shown = " or ".join(repr(choice) for choice in choices)
            raise Invalid(f"{key} must be {shown}, got {value!r}")
        return str(value)

    return check


def whole_number(low: int, high: int) -> Check:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"{key} must be a whole number from {low} to {high}, got {value!r}")
        return value

    return check


def id_prefix(key: str, value: Any) -> str:
    """The ids made from it (``<prefix>-<12 hex>``, then ``-r1``... for retries) must be Ray submission ids."""
    if not isinstance(value, str) or not value:
        raise Invalid(f"{key} must be a non-empty string")
    problem = submission_id_problem(f"{value}-{'0' * 12}-r{MAX_RETRIES}")
    if problem is not None:
        raise Invalid(f"{key} {value[:60]!r} makes ids like {value[:60]}-<12 hex>-r{MAX_RETRIES}, and {problem}")
    return value


def mapping_of(what: str, value_ok: Callable[[Any], bool] = lambda _: True) -> Check:
    def check(key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) and value_ok(v) for k, v in value.items()):
            raise Invalid(f"{key} must be an object of {what}")
        return dict(value)

    return check


def resources(key: str, value: Any) -> dict[str, float]:
    amounts = mapping_of("resource name to amount")(key, value)
    bad = [
        f"{key} amount of {name!r} must be a finite, non-negative number, got {amount!r}"
        for name, amount in amounts.items()
        if not finite_number(amount) or amount < 0
    ]
    if bad:
        raise Invalid(*bad)
    return {name: float(amount) for name, amount in amounts.items()}


def runtime_env(key: str, value: Any) -> dict[str, Any]:
    env = mapping_of("runtime_env fields")(key, value)
    if holds_non_finite(env):
        raise Invalid(f"{key} holds NaN or an infinity; only finite numbers can be sent to Ray")
    return dict(env)


def _strings(value: Any) -> bool:
    return isinstance(value, str)


# -- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobProperties:
    """The ``jobproperties`` JSON, checked. One field a key: see ``row``."""

    entrypoint_num_cpus: float | None = row(
        "entrypoint_num_cpus", non_negative_number, doc="CPUs reserved for the job's driver (Ray's own option)"
    )
    entrypoint_num_gpus: float | None = row(
        "entrypoint_num_gpus", non_negative_number, doc="GPUs reserved for the job's driver (Ray's own option)"
    )
    entrypoint_memory: int | None = row(
        "entrypoint_memory", whole_bytes, doc="memory in bytes reserved for the driver (Ray's own option)"
    )
    entrypoint_resources: Mapping[str, float] = row(
        "entrypoint_resources", resources, {}, doc="custom resources reserved for the driver, name to amount"
    )
    #: Node labels the driver must run on (Ray 2.60's ``entrypoint_label_selector``).
    entrypoint_label_selector: Mapping[str, str] = row(
        "entrypoint_label_selector",
        mapping_of("label name to value (strings)", _strings),
        {},
        doc="node labels the driver must run on, name to value",
    )
    metadata: Mapping[str, str] = row(
        "metadata", mapping_of("string to string", _strings), {}, doc="the Ray job's metadata, beside raypod's own"
    )
    runtime_env: Mapping[str, Any] = row(
        "runtime_env", runtime_env, {}, doc="more runtime_env fields (pip options, conda, py_modules...)"
    )
    active_deadline_seconds: float | None = row(
        "activeDeadlineSeconds",
        positive_seconds,
        doc="the job is stopped and FAILED (DeadlineExceeded) this long after its first submission",
    )
    #: A job not RUNNING this long after its submission is stopped and ends FAILED (StartDeadlineExceeded).
    start_deadline_seconds: float | None = row(
        "startDeadlineSeconds",
        positive_seconds,
        doc="an attempt not RUNNING this long after its submission is stopped and FAILED (StartDeadlineExceeded)",
    )
    #: How long the dashboard may stay silent about a watched job before it is reported UNKNOWN.
    status_timeout_seconds: float | None = row(
        "statusTimeoutSeconds",
        positive_seconds,
        doc="how long the dashboard may stay silent before the job is UNKNOWN (as the operator's pod: never)",
    )
    submission_id_prefix: str | None = row(
        "submissionIdPrefix", id_prefix, doc="the submission id's prefix instead of raypod-<JOBNAME>"
    )
    auth: str = row(
        "auth",
        one_of("none", "basic"),
        "none",
        doc="'basic': send the resource secret's username and password (an ingress with basic auth)",
    )
    follow_logs: bool | None = row("followLogs", boolean, doc="copy the job's output to the pod's log while it runs")
    #: How often a job that ends FAILED on its own is submitted again (as ``<id>-r<n>``).
    retries: int = row(
        "retries",
        whole_number(0, MAX_RETRIES),
        0,
        doc="how often a job that fails on its own is submitted again",
    )
    #: The wait between a failed attempt and the next one.
    retry_delay_seconds: float = row(
        "retryDelaySeconds",
        non_negative_seconds,
        DEFAULT_RETRY_DELAY,
        doc="the wait between a failed attempt and the next",
    )


ROWS = {f.metadata["key"]: f for f in dataclasses.fields(JobProperties)}
KNOWN_PROPERTIES = tuple(sorted(ROWS))


def parse_job_properties(text: str, key: str = JOB_PROPERTIES) -> JobProperties:
    """Check every key against its row; a ConfigError lists every problem, each naming ``key``."""
    if not text.strip():
        return JobProperties()
    obj = parse_json_object(text, key)
    problems = Problems()
    unknown = sorted(set(obj) - set(ROWS))
    if unknown:
        problems.add(
            key,
            f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(KNOWN_PROPERTIES)} ({UNKNOWN_KEY_HINT})",
        )
    values: dict[str, Any] = {}
    for name, value in obj.items():
        field = ROWS.get(name)
        if field is None or (value is None and field.metadata["optional"]):
            continue
        try:
            values[field.name] = field.metadata["check"](name, value)
        except Invalid as invalid:
            problems.items.extend((key, problem) for problem in invalid.problems)
    problems.raise_if_any()
    return JobProperties(**values)


def property_docs() -> list[tuple[str, str]]:
    """Each key with its line of documentation, in the table's order."""
    return [(f.metadata["key"], f.metadata["doc"]) for f in dataclasses.fields(JobProperties)]
