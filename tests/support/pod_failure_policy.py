"""A Kubernetes Job's ``podFailurePolicy``, checked and applied the way the Job controller does.

Written from the Kubernetes documentation ("Handling Pod and container failures" / "Pod failure
policy") and its API validation (``pkg/apis/batch/validation``): the rules are tried in order and
the first that matches a failed pod decides; ``onExitCodes`` looks at terminated containers with a
non-zero exit code (``containerName`` narrows it to one), with ``In`` or ``NotIn``;
``onPodConditions`` matches a condition by type and status (``True`` unless given); no rule
matching counts the failure against ``backoffLimit``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Action(enum.Enum):
    FAIL_JOB = "FailJob"
    FAIL_INDEX = "FailIndex"
    IGNORE = "Ignore"
    COUNT = "Count"


@dataclass(frozen=True)
class FailedPod:
    """What the Job controller sees of a pod that ended in phase Failed."""

    #: Each container's name and exit code (init containers first, as in the pod's status).
    exit_codes: Mapping[str, int]
    #: The pod's conditions, type to status ("True", "False", "Unknown").
    conditions: Mapping[str, str] = field(default_factory=dict)


#: Kubernetes' limits (pkg/apis/batch/validation).
MAX_RULES = 20
MAX_EXIT_CODE_VALUES = 255


def problems(job: Mapping[str, Any]) -> list[str]:
    """What the API server would refuse in a Job's ``podFailurePolicy`` (and what goes with it)."""
    spec = job["spec"]
    policy = spec.get("podFailurePolicy")
    if policy is None:
        return []
    template = spec["template"]["spec"]
    found: list[str] = []
    if template.get("restartPolicy") != "Never":
        found.append("podFailurePolicy requires template.spec.restartPolicy Never")
    if spec.get("podReplacementPolicy", "Failed") != "Failed":
        found.append("podFailurePolicy allows only podReplacementPolicy Failed")
    names = {c["name"] for c in [*template.get("initContainers", []), *template["containers"]]}
    rules = policy.get("rules") or []
    if len(rules) > MAX_RULES:
        found.append(f"at most {MAX_RULES} rules")
    for number, rule in enumerate(rules):
        where = f"rules[{number}]"
        action = rule.get("action")
        if action not in {a.value for a in Action}:
            found.append(f"{where}.action: unsupported {action!r}")
        if action == Action.FAIL_INDEX.value and spec.get("backoffLimitPerIndex") is None:
            found.append(f"{where}: FailIndex needs backoffLimitPerIndex")
        on_codes, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
        if (on_codes is None) == (on_conditions is None):
            found.append(f"{where}: exactly one of onExitCodes and onPodConditions")
        if on_codes is not None:
            found += [f"{where}.onExitCodes: {problem}" for problem in _exit_code_problems(on_codes, names)]
        for pattern in on_conditions or []:
            if not pattern.get("type"):
                found.append(f"{where}.onPodConditions: a type is required")
            if pattern.get("status", "True") not in ("True", "False", "Unknown"):
                found.append(f"{where}.onPodConditions: status must be True, False or Unknown")
    return found


def _exit_code_problems(on_codes: Mapping[str, Any], names: set[str]) -> list[str]:
    found: list[str] = []
    operator, values = on_codes.get("operator"), list(on_codes.get("values") or [])
    container = on_codes.get("containerName")
    if container is not None and container not in names:
        found.append(f"containerName {container!r} is no container of the pod")
    if operator not in ("In", "NotIn"):
        found.append(f"operator must be In or NotIn, got {operator!r}")
    if not 1 <= len(values) <= MAX_EXIT_CODE_VALUES:
        found.append(f"1 to {MAX_EXIT_CODE_VALUES} values")
    if any(not isinstance(value, int) or isinstance(value, bool) for value in values):
        found.append("values must be integers")
    elif values != sorted(set(values)):
        found.append("values must be ordered, without duplicates")
    if operator == "In" and 0 in values:
        found.append("0 cannot be used with the In operator")
    return found


def action_for(policy: Mapping[str, Any], pod: FailedPod) -> tuple[Action, int | None]:
    """What the Job controller does with a failed pod, and the index of the rule that decided
    (None: no rule matched, and the failure is counted)."""
    for number, rule in enumerate(policy.get("rules") or []):
        if _matches(rule, pod):
            return Action(rule["action"]), number
    return Action.COUNT, None


def _matches(rule: Mapping[str, Any], pod: FailedPod) -> bool:
    on_codes = rule.get("onExitCodes")
    if on_codes is not None:
        return any(_code_matches(on_codes, name, code) for name, code in pod.exit_codes.items())
    patterns: Sequence[Mapping[str, str]] = rule.get("onPodConditions") or []
    return any(pod.conditions.get(p["type"]) == p.get("status", "True") for p in patterns)


def _code_matches(on_codes: Mapping[str, Any], container: str, code: int) -> bool:
    if code == 0:
        return False  # a container that succeeded never matches, whatever the operator
    if on_codes.get("containerName") not in (None, container):
        return False
    listed = code in on_codes["values"]
    return listed if on_codes["operator"] == "In" else not listed
