"""Traceability: the pod that submitted a job and the caller's trace context go into the Ray job's
metadata (each key only with a valid value), and every JSON log line names the ConfigMap, the
submission id and the attempt it is about (docs/kubernetes.md#from-a-ray-job-to-its-pod)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.entrypoint import (
    POD_METADATA_MAX_BYTES,
    RAYPOD_METADATA_KEYS,
    build_submission,
    job_metadata,
    submitted_by,
)
from raypod.errors import ConfigError
from raypod.log_context import json_line, log_context, set_log_configmap, set_log_submission
from raypod.pod_identity import NODE_NAME_VARIABLE, POD_NAME_VARIABLE, POD_UID_VARIABLE, PodIdentity
from raypod.properties import JobProperties
from raypod.runner import log_attempt_of
from raypod.submission import RaySubmitter, SubmissionSettings
from tests.support.fakes import JOB_NAME, NAMESPACE, Harness
from tests.support.samples import one

UID = "0b6c9a52-3d0e-4a53-9a57-2f3c1d6e9b10"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
POD = PodIdentity("train-ray-pod", UID, "node-1.example", TRACEPARENT)
LONGEST = PodIdentity("a" * 253, UID, "b" * 253, TRACEPARENT)


# Any text, lone surrogates too: what undecodable bytes of the environment become in Python.
ANY_TEXT = st.lists(st.characters() | st.sampled_from(["\udcff", "\ud800", "\x00", "\n", '"', "\\"])).map("".join)


@pytest.fixture(autouse=True)
def fresh_log_context() -> Iterator[None]:
    yield
    set_log_configmap("", "")
    set_log_submission(None)


# -- the Ray job's metadata ---------------------------------------------------------------------
def test_the_pod_and_the_trace_context_join_the_bridge_jobs_keys() -> None:
    metadata = job_metadata(JobProperties(metadata={"team": "x"}), "train", "bridge", POD)

    assert metadata == {
        "team": "x",
        "bridge-job": "train",
        "bridge-namespace": "bridge",
        "bridge-pod": "train-ray-pod",
        "bridge-pod-uid": UID,
        "bridge-pod-node": "node-1.example",
        "traceparent": TRACEPARENT,
    }


def test_without_a_pod_only_the_bridge_jobs_keys_are_set() -> None:
    assert job_metadata(JobProperties(), "train", "bridge") == {"bridge-job": "train", "bridge-namespace": "bridge"}
    # Only the known ones: a trace context from CI, no pod.
    only_trace = job_metadata(JobProperties(), "train", "", PodIdentity(traceparent=TRACEPARENT))
    assert only_trace == {"bridge-job": "train", "traceparent": TRACEPARENT}


def test_malformed_values_from_the_environment_never_reach_the_metadata() -> None:
    pod = PodIdentity.from_environ(
        {
            "POD_NAME": "train ray pod",
            "POD_UID": UID + "x",
            "NODE_NAME": "node\n1",
            "TRACEPARENT": "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }
    )

    assert job_metadata(JobProperties(), "train", "bridge", pod) == {
        "bridge-job": "train",
        "bridge-namespace": "bridge",
    }


@pytest.mark.parametrize("key", RAYPOD_METADATA_KEYS)
def test_a_users_metadata_may_not_use_raypods_keys_known_or_not(key: str) -> None:
    # The same answer with and without a pod: validate and run judge one ConfigMap alike.
    for pod in (PodIdentity(), POD):
        with pytest.raises(ConfigError, match=f"metadata key\\(s\\) {key} are set by raypod"):
            job_metadata(JobProperties(metadata={key: "mine"}), "train", "bridge", pod)


def test_the_pods_keys_add_at_most_their_bound_to_the_metadata() -> None:
    bare = job_metadata(JobProperties(), "train", "bridge")
    longest = job_metadata(JobProperties(), "train", "bridge", LONGEST)

    added = len(json.dumps(longest)) - len(json.dumps(bare))
    assert 0 < added <= POD_METADATA_MAX_BYTES < 1024


def test_the_submitter_sends_the_pods_identity_in_the_post_body() -> None:
    h = Harness()
    h.reporter.load()
    config = h.job.load(submitted=False)
    settings = SubmissionSettings(JOB_NAME, NAMESPACE, pod=POD)

    prepared = RaySubmitter(config, h.ray, None, h.clock, settings).prepare(None)

    assert prepared.payload["metadata"]["bridge-pod"] == "train-ray-pod"
    assert prepared.payload["metadata"]["traceparent"] == TRACEPARENT


@given(
    st.dictionaries(
        st.sampled_from(["POD_NAME", "POD_UID", "NODE_NAME", "TRACEPARENT", "HOSTNAME", "KUBERNETES_SERVICE_HOST"]),
        ANY_TEXT,
    )
)
def test_no_value_from_the_environment_breaks_the_post_body(environ: dict[str, str]) -> None:
    pod = PodIdentity.from_environ(environ)
    body = build_submission(
        submission_id="s1",
        entrypoint="python x.py",
        runtime_env={},
        metadata=job_metadata(JobProperties(), "train", "bridge", pod),
        properties=JobProperties(),
    )

    # Sent as UTF-8 JSON: every value is printable ASCII, and the pod's keys stay within their bound.
    assert json.loads(json.dumps(body, ensure_ascii=False).encode("utf-8")) == body
    assert all(value.isascii() and value.isprintable() for value in body["metadata"].values())
    bare = job_metadata(JobProperties(), "train", "bridge")
    assert len(json.dumps(body["metadata"])) - len(json.dumps(bare)) <= POD_METADATA_MAX_BYTES


# -- a re-attaching pod says which pod submitted the job ----------------------------------------
def test_the_submitting_pod_is_named_from_the_jobs_metadata() -> None:
    assert (
        submitted_by({"bridge-pod": "train-ray-pod", "bridge-pod-node": "node-1"}) == "pod train-ray-pod on node node-1"
    )
    assert submitted_by({"bridge-pod": "train-ray-pod"}) == "pod train-ray-pod"
    assert submitted_by({"bridge-job": "train"}) == ""
    # Another client's metadata is data: nothing but a valid pod name is repeated.
    assert submitted_by({"bridge-pod": "x\x1b[2J; rm -rf /"}) == ""


# -- the JSON line's fields ---------------------------------------------------------------------
def test_a_json_line_names_the_configmap_the_submission_and_its_attempt() -> None:
    before = json.loads(json_line("starting", "INFO"))
    set_log_configmap("bridge", "train-bridge-cm")
    set_log_submission("raypod-train-0123456789ab-r1", 2)
    after = json.loads(json_line("watching", "INFO", error="ValueError"))

    assert (before["configmap"], before["submission_id"], before["attempt"]) == (None, None, None)
    assert after["configmap"] == "bridge/train-bridge-cm"
    assert (after["submission_id"], after["attempt"]) == ("raypod-train-0123456789ab-r1", 2)
    assert after["error"] == "ValueError"
    # Ray's job_id is the driver's hex id, another thing: raypod's lines never carry one.
    assert "job_id" not in after


def test_the_attempt_follows_the_record_as_the_next_pod_reads_it() -> None:
    log_attempt_of({"id": "raypod-train-0123456789ab-r1", "status.attempt": "2"})
    assert (log_context().submission_id, log_context().attempt) == ("raypod-train-0123456789ab-r1", 2)
    # An attempt the id does not carry, or no number at all, is attempt 1 of that id.
    for recorded in ("3", "", "x", "9" * 5000, "0"):
        log_attempt_of({"id": "raysubmit_given", "status.attempt": recorded})
        assert log_context().attempt == 1, recorded
    log_attempt_of({})
    assert (log_context().submission_id, log_context().attempt) == (None, None)


@given(ANY_TEXT, ANY_TEXT, ANY_TEXT, ANY_TEXT)
def test_no_value_from_the_environment_breaks_a_json_line(namespace: str, job: str, submission: str, msg: str) -> None:
    set_log_configmap(namespace, f"{job}-bridge-cm")
    set_log_submission(submission, 1)

    text = json_line(msg, "INFO")

    assert "\n" not in text
    line = json.loads(text.encode("utf-8"))  # written as UTF-8, read back whole
    # Each value as JSON carries it (a lone surrogate as its escape, a pair as the one character).
    assert line["msg"] == as_json_reads(msg)
    assert line["submission_id"] == (as_json_reads(submission) or None)
    assert line["configmap"] == (as_json_reads(f"{namespace}/{job}-bridge-cm") if namespace else None)


def as_json_reads(text: str) -> str:
    return str(json.loads(json.dumps(text)))


# -- the sample pod ------------------------------------------------------------------------------
def test_the_sample_pod_sets_the_variables_raypod_reads_from_the_downward_api() -> None:
    (container,) = one("Pod")["spec"]["containers"]
    from_fields = {
        entry["name"]: entry["valueFrom"]["fieldRef"]["fieldPath"]
        for entry in container["env"]
        if "fieldRef" in entry.get("valueFrom", {})
    }

    assert from_fields[POD_NAME_VARIABLE] == "metadata.name"
    assert from_fields[POD_UID_VARIABLE] == "metadata.uid"
    assert from_fields[NODE_NAME_VARIABLE] == "spec.nodeName"
