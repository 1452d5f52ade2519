"""The Bridge Operator's rules, as the pod must honour them (docs/kubernetes.md#the-operators-rules):
exit codes that never make a pod error of a job that is running or lost, a status timeout that
does not end a BridgeJob while Ray may still run its job, an id that survives a re-created
ConfigMap, a submit time even for a job attached to, and updateInterval values the operator writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.clock import format_ray_time
from raypod.config import parse_config
from raypod.contract import END_TIME, JOB_STATUS, SUBMIT_TIME, BridgeStatus
from raypod.entrypoint import new_submission_id
from raypod.errors import ConfigError, Terminated
from raypod.exits import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, ExitCodes, for_status, for_termination
from raypod.outcome import Ending, Outcome
from raypod.runner import DEFAULT_STATUS_TIMEOUT, RunOptions, finish, with_notes
from raypod.source import ManifestSource
from tests.support.fakes import Harness, no_answer

BRIDGE, POSIX = ExitCodes.BRIDGE, ExitCodes.POSIX


@pytest.mark.parametrize(
    ("status", "bridge", "posix"),
    [
        (BridgeStatus.SUCCEEDED, EXIT_OK, EXIT_OK),
        # Phase Failed with FAILED or KILL recorded is what the operator tolerates.
        (BridgeStatus.FAILED, EXIT_FAILED, EXIT_FAILED),
        (BridgeStatus.KILL, EXIT_FAILED, EXIT_FAILED),
        # UNKNOWN and phase Failed would make the BridgeJob FAILED, without its times and message.
        (BridgeStatus.UNKNOWN, EXIT_OK, EXIT_FAILED),
    ],
)
def test_a_written_final_status_exits_with_the_code_of_its_convention(
    status: BridgeStatus, bridge: int, posix: int
) -> None:
    assert (for_status(status, BRIDGE), for_status(status, POSIX)) == (bridge, posix)


def test_sigterm_leaves_the_pod_succeeded_under_the_operator_and_143_elsewhere() -> None:
    # A Failed pod is never replaced, and its BridgeJob is failed: nobody would re-attach.
    assert (for_termination(BRIDGE), for_termination(POSIX)) == (0, 143)


@pytest.mark.parametrize("codes", [BRIDGE, POSIX])
def test_the_pods_finish_writes_the_status_before_it_chooses_the_code(codes: ExitCodes) -> None:
    h = Harness()
    h.reporter.load()
    lost = Outcome.lost("raypod-train-1", "Ray no longer knows job raypod-train-1.")
    code = finish(lost, h.reporter, h.clock, h.said.append, codes)
    assert h.sink.data[JOB_STATUS] == "UNKNOWN" and h.sink.data[END_TIME]
    assert code == (EXIT_OK if codes is BRIDGE else EXIT_FAILED)
    bad = Outcome.bad_input(ConfigError.single("jobdata.jobScript", "missing"))
    assert finish(bad, h.reporter, h.clock, h.said.append, codes) == EXIT_BAD_INPUT
    assert finish(Outcome.terminated("raypod-train-1"), h.reporter, h.clock, h.said.append, codes) == (
        EXIT_OK if codes is BRIDGE else 143
    )


def test_the_status_timeout_is_the_flag_else_the_property_else_the_conventions_default() -> None:
    plain = parse_config({"resourceURL": "http://ray:8265", "jobdata.jobScript": "/x.py"})
    with_property = parse_config(
        {
            "resourceURL": "http://ray:8265",
            "jobdata.jobScript": "/x.py",
            "jobproperties": '{"statusTimeoutSeconds": 90}',
        }
    )
    pod, cli = RunOptions("job", "ns", exit_codes=BRIDGE), RunOptions("job", "ns", exit_codes=POSIX)
    assert (pod.status_timeout_for(plain), cli.status_timeout_for(plain)) == (None, DEFAULT_STATUS_TIMEOUT)
    assert (pod.status_timeout_for(with_property), cli.status_timeout_for(with_property)) == (90, 90)
    flagged = RunOptions("job", "ns", exit_codes=BRIDGE, status_timeout=5)
    assert flagged.status_timeout_for(with_property) == 5


def test_without_a_status_timeout_a_long_outage_never_ends_the_job_as_unknown() -> None:
    h = Harness({"updateInterval": "600"}, status_timeout=None, life=("RUNNING",) * 5 + ("SUCCEEDED",))
    # A day without a status answer (144 polls), then the dashboard is back.
    h.ray.fail("get_job", no_answer(), None, until=24 * 3600.0)
    outcome = h.run()
    assert (outcome.ending, outcome.status) == (Ending.FINAL, BridgeStatus.SUCCEEDED)
    assert "UNKNOWN" not in h.sink.written(JOB_STATUS)


def test_a_job_attached_to_without_a_submit_time_takes_rays_own() -> None:
    h = Harness({"id": "raypod-train-byhand"}, life=("RUNNING", "SUCCEEDED"))
    job = h.ray.add_job("raypod-train-byhand", ("RUNNING", "SUCCEEDED"))
    outcome = h.run()
    assert outcome.status is BridgeStatus.SUCCEEDED
    assert h.sink.data[SUBMIT_TIME] == format_ray_time(job.start_time_ms)


def test_a_recorded_submit_time_is_kept_when_the_job_is_attached_to() -> None:
    recorded = {"id": "raypod-train-1", JOB_STATUS: "RUNNING", SUBMIT_TIME: "2026-01-02T03:04:05Z"}
    h = Harness(recorded=recorded, life=("RUNNING", "SUCCEEDED"))
    h.ray.add_job("raypod-train-1", ("RUNNING", "SUCCEEDED"))
    h.run()
    assert h.sink.written(SUBMIT_TIME) == []


def test_a_note_about_what_was_taken_otherwise_reaches_the_final_message() -> None:
    config = parse_config({"resourceURL": "http://ray:8265", "jobdata.jobScript": "/x.py", "updateInterval": "0"})
    assert with_notes("Job succeeded; log uploaded to s3://b/j/logs.", config) == (
        "Job succeeded; log uploaded to s3://b/j/logs (updateInterval '0' is below the 0.5 s floor: 0.5 s is used)."
    )
    h = Harness({"updateInterval": "-5"})
    assert h.run().status is BridgeStatus.SUCCEEDED
    assert h.clock.waits and set(h.clock.waits) == {0.5}  # polled at the floor


def write_manifest(path: Path, uid: str, owner: str | None) -> ManifestSource:
    metadata: dict[str, object] = {"name": "train-bridge-cm", "uid": uid}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "bridgejob.ibm.com/v1alpha1",
                "kind": "BridgeJob",
                "name": "train",
                "uid": owner,
                "controller": True,
            }
        ]
    path.write_text(json.dumps({"kind": "ConfigMap", "metadata": metadata, "data": {"jobdata.jobScript": "/x.py"}}))
    source = ManifestSource(path)
    source.read()
    return source


def test_a_re_created_configmap_of_the_same_bridgejob_gives_the_same_submission_id(tmp_path: Path) -> None:
    first = write_manifest(tmp_path / "first.json", "cm-uid-1", "bridgejob-uid")
    # The operator re-creates a deleted ConfigMap under the same BridgeJob: a new uid, the same owner.
    again = write_manifest(tmp_path / "again.json", "cm-uid-2", "bridgejob-uid")
    assert first.identity == again.identity == "bridgejob-uid"
    assert new_submission_id("train", None, first.identity) == new_submission_id("train", None, again.identity)


def test_a_configmap_without_an_owner_is_identified_by_its_own_uid(tmp_path: Path) -> None:
    # A Kubeflow pipeline creates the ConfigMap itself, without an owner.
    assert write_manifest(tmp_path / "cm.json", "cm-uid-1", None).identity == "cm-uid-1"


@pytest.mark.parametrize("ending", ["bad input", "final", "terminated"])
def test_sigterm_during_the_last_write_never_escapes_finish(ending: str) -> None:
    # The retried write's wait is cut by SIGTERM: finish still returns an exit code of its convention.
    h = Harness()
    h.reporter.load()
    h.sink.fail_writes(Terminated("terminated while waiting to retry"), times=None)
    outcome = {
        "bad input": Outcome.bad_input(ConfigError.single("jobdata.jobScript", "missing")),
        "final": Outcome.final("raypod-train-1", BridgeStatus.SUCCEEDED, "Job succeeded."),
        "terminated": Outcome.terminated("raypod-train-1"),
    }[ending]
    expected = {"bad input": EXIT_BAD_INPUT, "final": EXIT_OK, "terminated": EXIT_OK}[ending]
    assert finish(outcome, h.reporter, h.clock, h.said.append, BRIDGE) == expected
