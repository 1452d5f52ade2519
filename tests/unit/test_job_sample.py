"""samples/kubernetes/job.yaml: raypod as a plain Kubernetes Job (docs/kubernetes.md, "Running raypod as a
Kubernetes Job").

Each way ``run`` ends under ``--exit-codes job`` (its code taken from raypod.exits) goes through the
Job's podFailurePolicy as the Job controller applies it (tests/support/pod_failure_policy.py), and
the pod template is held to the restricted Pod Security Standard (tests/support/pod_security.py),
and the Job's next pod re-attaches to a job recorded UNKNOWN.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from raypod import exits
from raypod.contract import END_TIME, FINAL_STATUSES, ID, JOB_STATUS, BridgeStatus
from raypod.exits import ExitCodes
from raypod.outcome import Ending
from raypod.package import UPLOAD_LIMIT
from raypod.pod_identity import NODE_NAME_VARIABLE, POD_NAME_VARIABLE, POD_UID_VARIABLE
from tests.support.fakes import Harness
from tests.support.pod_failure_policy import Action, FailedPod, action_for, problems
from tests.support.pod_security import violations
from tests.support.samples import SAMPLES, documents, names, one

JOB = ExitCodes.JOB
CONTAINER = "raypod"
#: SIGKILL: the grace period ran out, or the OOM killer.
EXIT_KILLED = 137


def job() -> dict[str, Any]:
    return one("Job", "raypod-inline-job")


def template() -> dict[str, Any]:
    spec: dict[str, Any] = job()["spec"]["template"]["spec"]
    return spec


def policy() -> dict[str, Any]:
    found: dict[str, Any] = job()["spec"]["podFailurePolicy"]
    return found


def container() -> dict[str, Any]:
    [only] = template()["containers"]
    return dict(only)


def env() -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container()["env"]}


def failed(code: int, *, disrupted: bool = False) -> FailedPod:
    return FailedPod({CONTAINER: code}, {"DisruptionTarget": "True"} if disrupted else {})


#: Every way ``run`` ends in the job convention, its exit code from raypod.exits, and what the Job
#: must do with the pod (None: the pod Succeeded, no policy applies).
OUTCOMES: list[tuple[str, int, bool, Action | None]] = [
    *(
        (f"{status} written", exits.for_status(status, JOB), False, expected)
        for status, expected in [
            (BridgeStatus.SUCCEEDED, None),
            # The job ended on Ray: a new pod would read the same end.
            (BridgeStatus.FAILED, Action.FAIL_JOB),
            (BridgeStatus.KILL, Action.FAIL_JOB),
            # The dashboard was lost: a new pod re-attaches, counted so it cannot go on for ever.
            (BridgeStatus.UNKNOWN, Action.COUNT),
        ]
    ),
    ("bad input, nothing submitted", exits.EXIT_BAD_INPUT, False, Action.FAIL_JOB),
    ("the final status write failed", exits.for_unrecorded(JOB), False, Action.COUNT),
    # Drained, evicted, preempted: the kubelet sends SIGTERM and the pod carries DisruptionTarget.
    ("SIGTERM with a disruption", exits.for_termination(JOB), True, Action.IGNORE),
    # Deleted by hand: SIGTERM and no DisruptionTarget.
    ("SIGTERM without a disruption", exits.for_termination(JOB), False, Action.COUNT),
    ("SIGKILL past the grace period, with a disruption", EXIT_KILLED, True, Action.IGNORE),
    ("SIGKILL, the OOM killer", EXIT_KILLED, False, Action.COUNT),
]


def test_the_outcomes_cover_every_final_status_and_every_code_of_the_convention() -> None:
    written = {name.removesuffix(" written") for name, *_ in OUTCOMES if name.endswith(" written")}
    assert written == {str(status) for status in FINAL_STATUSES}
    codes = {code for _, code, _, _ in OUTCOMES}
    assert {exits.for_unrecorded(JOB), exits.for_termination(JOB), exits.EXIT_BAD_INPUT} <= codes


@pytest.mark.parametrize(("outcome", "code", "disrupted", "expected"), OUTCOMES, ids=[o[0] for o in OUTCOMES])
def test_each_way_run_ends_as_a_jobs_pod_gets_its_documented_action(
    outcome: str, code: int, disrupted: bool, expected: Action | None
) -> None:
    if expected is None:
        assert code == exits.EXIT_OK  # phase Succeeded: the Job completes, no rule is consulted
        return
    assert code != exits.EXIT_OK, outcome
    action, _ = action_for(policy(), failed(code, disrupted=disrupted))
    assert action is expected, f"{outcome} (exit {code}): {action}"


def test_an_end_on_ray_and_a_lost_job_exit_with_different_codes_in_the_job_convention() -> None:
    """The reason for the convention: under posix, exit 1 is FAILED, KILL and UNKNOWN alike."""
    ended = {exits.for_status(BridgeStatus.FAILED, JOB), exits.for_status(BridgeStatus.KILL, JOB)}
    settles = {exits.for_status(BridgeStatus.UNKNOWN, JOB), exits.for_unrecorded(JOB)}
    assert ended.isdisjoint(settles) and exits.EXIT_BAD_INPUT not in settles
    assert exits.for_status(BridgeStatus.UNKNOWN, ExitCodes.POSIX) in {
        exits.for_status(BridgeStatus.FAILED, ExitCodes.POSIX)
    }
    # A Job's next pod re-attaches to a lost job; elsewhere UNKNOWN stays the end.
    assert [exits.lost_is_final(codes) for codes in ExitCodes] == [codes is not JOB for codes in ExitCodes]


def test_the_policy_names_exactly_the_non_zero_codes_raypod_chooses_in_the_job_convention() -> None:
    """A code added to, or renumbered in, raypod.exits cannot fall silently to the default Count."""
    named = {value for rule in policy()["rules"] for value in (rule.get("onExitCodes") or {}).get("values", [])}
    chosen = {code for _, code, _, _ in OUTCOMES if code not in (exits.EXIT_OK, EXIT_KILLED)}
    assert named == chosen


def test_the_job_spec_is_one_the_api_server_accepts_with_the_pods_own_settings() -> None:
    spec = job()["spec"]
    assert problems(job()) == []
    assert spec["podReplacementPolicy"] == "Failed"
    assert template()["restartPolicy"] == "Never"
    assert 1 <= spec["backoffLimit"] <= 6
    assert container()["name"] == CONTAINER
    assert container()["args"] == ["run"]
    assert env()[exits.EXIT_CODES_VARIABLE]["value"] == JOB.value
    # The same job, account, secrets, image and limits as the operator's pod in pod.yaml.
    pod = one("Pod")["spec"]
    [pod_container] = pod["containers"]
    assert f"{env()['JOBNAME']['value']}-bridge-cm" in names("ConfigMap")
    assert env()["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert template()["serviceAccountName"] == pod["serviceAccountName"] in names("ServiceAccount")
    assert template()["volumes"] == pod["volumes"]
    for key in ("image", "resources", "volumeMounts"):
        assert container()[key] == pod_container[key], key


def test_the_job_gives_the_pod_its_name_uid_and_node_from_the_downward_api() -> None:
    fields = {
        name: env()[name]["valueFrom"]["fieldRef"]["fieldPath"]
        for name in (POD_NAME_VARIABLE, POD_UID_VARIABLE, NODE_NAME_VARIABLE)
    }
    assert fields == {
        POD_NAME_VARIABLE: "metadata.name",
        POD_UID_VARIABLE: "metadata.uid",
        NODE_NAME_VARIABLE: "spec.nodeName",
    }


@pytest.mark.parametrize("sample", ["job", "pod"])
def test_the_pod_spec_meets_the_restricted_pod_security_standard(sample: str) -> None:
    spec = template() if sample == "job" else one("Pod")["spec"]
    assert violations(spec) == []
    # The image's user (Dockerfile's USER), which runAsNonRoot can verify only as a number.
    user = re.search(r"^USER (\d+):(\d+)$", (SAMPLES.parents[1] / "Dockerfile").read_text(), re.MULTILINE)
    assert user is not None
    assert spec["securityContext"]["runAsUser"] == int(user[1]) != 0


#: One breach per control of the restricted profile, each on its own copy of the Job's pod spec.
BREACHES: list[tuple[str, str]] = [
    ("hostNetwork", "Host Namespaces"),
    ("privileged", "Privileged Containers"),
    # hostPath is also no volume type the restricted profile allows.
    ("hostPath", "HostPath Volumes, Volume Types"),
    ("hostPort", "Host Ports"),
    ("seccomp unconfined", "Seccomp"),
    ("no seccomp", "Seccomp"),
    ("escalation", "Privilege Escalation"),
    ("root allowed", "Running as Non-root"),
    ("uid 0", "Running as Non-root user"),
    ("a capability", "Capabilities"),
    ("nfs volume", "Volume Types"),
    ("unsafe sysctl", "Sysctls"),
    ("selinux user", "SELinux"),
    ("unmasked proc", "/proc Mount Type"),
    ("apparmor unconfined", "AppArmor"),
]


def breach(spec: dict[str, Any], kind: str) -> None:
    pod, box = spec["securityContext"], spec["containers"][0]["securityContext"]
    if kind == "hostNetwork":
        spec["hostNetwork"] = True
    elif kind == "privileged":
        box["privileged"] = True
    elif kind == "hostPath":
        spec["volumes"][0] = {"name": "credentials", "hostPath": {"path": "/etc"}}
    elif kind == "hostPort":
        spec["containers"][0]["ports"] = [{"containerPort": 8080, "hostPort": 8080}]
    elif kind == "seccomp unconfined":
        box["seccompProfile"] = {"type": "Unconfined"}
    elif kind == "no seccomp":
        del pod["seccompProfile"]
    elif kind == "escalation":
        del box["allowPrivilegeEscalation"]
    elif kind == "root allowed":
        del pod["runAsNonRoot"]
        box.pop("runAsNonRoot", None)
    elif kind == "uid 0":
        box["runAsUser"] = 0
    elif kind == "a capability":
        box["capabilities"]["add"] = ["NET_ADMIN"]
    elif kind == "nfs volume":
        spec["volumes"].append({"name": "shared", "nfs": {"server": "nfs", "path": "/"}})
    elif kind == "unsafe sysctl":
        pod["sysctls"] = [{"name": "kernel.msgmax", "value": "1"}]
    elif kind == "selinux user":
        box["seLinuxOptions"] = {"user": "system_u"}
    elif kind == "unmasked proc":
        box["procMount"] = "Unmasked"
    elif kind == "apparmor unconfined":
        pod["appArmorProfile"] = {"type": "Unconfined"}
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "control"), BREACHES, ids=[b[0] for b in BREACHES])
def test_each_restricted_control_is_checked_not_assumed(kind: str, control: str) -> None:
    spec = copy.deepcopy(template())
    breach(spec, kind)
    assert violations(spec) == control.split(", ")


def mebibytes(quantity: str) -> float:
    """A Kubernetes quantity (binary or decimal suffix) in MiB."""
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|k|M|G)?", quantity)
    assert match, quantity
    scale = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9, None: 1}[match[2]]
    return int(match[1]) * scale / 2**20


@pytest.mark.parametrize("sample", ["job", "pod"])
def test_tmp_holds_the_largest_inputs_and_package_on_disk_with_room(sample: str) -> None:
    spec = template() if sample == "job" else one("Pod")["spec"]
    [box] = spec["containers"]
    [mount] = [m for m in box["volumeMounts"] if m["mountPath"] == "/tmp"]
    [volume] = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    # Not medium Memory: that would count against the container's 100Mi memory limit.
    assert volume["emptyDir"].get("medium", "") == ""
    # The inputs as fetched, and their zipped package, may each reach the dashboard's upload limit.
    assert mebibytes(volume["emptyDir"]["sizeLimit"]) >= 2 * UPLOAD_LIMIT / 2**20 + 32


# -- the evaluator itself, on the Kubernetes documentation's own cases --------------------------------
DOCS_EXAMPLE = {
    "rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]
}


def test_the_evaluator_applies_the_first_matching_rule_and_counts_what_none_matches() -> None:
    assert action_for(DOCS_EXAMPLE, FailedPod({"main": 42}, {"DisruptionTarget": "True"})) == (Action.FAIL_JOB, 0)
    assert action_for(DOCS_EXAMPLE, FailedPod({"main": 1}, {"DisruptionTarget": "True"})) == (Action.IGNORE, 1)
    assert action_for(DOCS_EXAMPLE, FailedPod({"main": 1}, {"DisruptionTarget": "False"})) == (Action.COUNT, None)
    # containerName narrows the match: another container's 42 is no match.
    assert action_for(DOCS_EXAMPLE, FailedPod({"sidecar": 42, "main": 1})) == (Action.COUNT, None)
    not_in = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [3]}}]}
    assert action_for(not_in, FailedPod({"main": 5})) == (Action.FAIL_JOB, 0)
    assert action_for(not_in, FailedPod({"main": 3})) == (Action.COUNT, None)
    # A container that exited 0 never matches, not even NotIn.
    assert action_for(not_in, FailedPod({"init": 0, "main": 3})) == (Action.COUNT, None)


def refused(kind: str) -> dict[str, Any]:
    """A copy of the sample Job with one thing the API server refuses."""
    changed = copy.deepcopy(job())
    spec = changed["spec"]
    rules = spec["podFailurePolicy"]["rules"]
    changes = {
        "restartPolicy OnFailure": lambda: spec["template"]["spec"].update(restartPolicy="OnFailure"),
        "replacement while terminating": lambda: spec.update(podReplacementPolicy="TerminatingOrFailed"),
        "values out of order": lambda: rules[1]["onExitCodes"].update(values=[2, 1]),
        "0 with In": lambda: rules[1]["onExitCodes"].update(values=[0, 1]),
        "another container": lambda: rules[1]["onExitCodes"].update(containerName="main"),
        "FailIndex without per-index limit": lambda: rules[0].update(action="FailIndex"),
        "codes and conditions in one rule": lambda: rules[0].update(onExitCodes={"operator": "In", "values": [1]}),
    }
    changes[kind]()
    return changed


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("restartPolicy OnFailure", "restartPolicy Never"),
        ("replacement while terminating", "podReplacementPolicy Failed"),
        ("values out of order", "ordered"),
        ("0 with In", "0 cannot"),
        ("another container", "no container"),
        ("FailIndex without per-index limit", "backoffLimitPerIndex"),
        ("codes and conditions in one rule", "exactly one"),
    ],
)
def test_the_evaluator_refuses_what_the_api_server_refuses(kind: str, expected: str) -> None:
    found = problems(refused(kind))
    assert any(expected in problem for problem in found), found


def test_job_yaml_holds_one_job_and_nothing_else() -> None:
    assert [doc["kind"] for doc in documents(SAMPLES / "job.yaml")] == ["Job"]


# -- the convention's next pod: a lost job is re-attached to, not kept as its end -----------------------
RECORDED_LOST = {ID: "raypod-train-abc", JOB_STATUS: BridgeStatus.UNKNOWN, END_TIME: "2026-01-02T03:04:05Z"}


def test_a_jobs_next_pod_reattaches_to_a_job_recorded_unknown_and_watches_it_to_its_end() -> None:
    h = Harness(recorded=RECORDED_LOST, life=("RUNNING", "SUCCEEDED"), lost_is_final=exits.lost_is_final(JOB))
    h.ray.add_job("raypod-train-abc")
    outcome = h.run()

    assert (outcome.ending, outcome.status, outcome.submission_id) == (
        Ending.FINAL,
        BridgeStatus.SUCCEEDED,
        "raypod-train-abc",
    )
    assert h.ray.posts == [] and len(h.attached) == 1
    assert h.finish(outcome) == exits.EXIT_OK and h.sink.data[JOB_STATUS] == BridgeStatus.SUCCEEDED


def test_a_jobs_next_pod_submits_under_the_recorded_id_what_ray_never_had() -> None:
    """UNKNOWN says nothing of what Ray had: a lost POST (or a head that forgot the job) is posted."""
    h = Harness(recorded=RECORDED_LOST, lost_is_final=exits.lost_is_final(JOB))
    outcome = h.run()

    assert (outcome.status, outcome.submission_id) == (BridgeStatus.SUCCEEDED, "raypod-train-abc")
    assert h.ray.posts == ["raypod-train-abc"]


@pytest.mark.parametrize("codes", [codes for codes in ExitCodes if codes is not JOB])
def test_elsewhere_a_recorded_unknown_stays_the_end_and_ray_is_not_asked(codes: ExitCodes) -> None:
    h = Harness(recorded=RECORDED_LOST, lost_is_final=exits.lost_is_final(codes))
    outcome = h.run()

    assert (outcome.ending, outcome.status) == (Ending.ALREADY_FINAL, BridgeStatus.UNKNOWN)
    assert h.ray.calls == []
