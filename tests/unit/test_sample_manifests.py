"""samples/kubernetes/: every manifest parses, and the objects name each other consistently."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from raypod import __version__
from tests.support.bridge_operator import pod_type
from tests.support.helpers import REPO
from tests.support.samples import MANIFESTS, RAY_SAMPLES, SAMPLES, documents, names, one

#: spec fields of the operator's CRD (bridgejobs.bridgejob.ibm.com/v1alpha1).
CRD_SPEC_FIELDS = {
    "image",
    "imagepullpolicy",
    "resourceURL",
    "resourcesecret",
    "updateinterval",
    "kill",
    "jobdata",
    "jobproperties",
    "s3storage",
    "s3upload",
}
CRD_JOBDATA_FIELDS = {
    "jobscript",
    "scriptmetadata",
    "jobparameters",
    "scriptlocation",
    "scriptextralocation",
    "additionaldata",
}


def configmap_from_bridgejob(spec: dict[str, Any]) -> dict[str, str]:
    """The ConfigMap data the operator writes for a BridgeJob spec (its newConfigMapDefinition)."""
    jobdata = spec["jobdata"]
    data = {
        "updateInterval": str(spec.get("updateinterval", 20)),
        "resourceURL": spec["resourceURL"],
        "jobproperties": spec.get("jobproperties", ""),
        "jobdata.jobScript": jobdata["jobscript"],
        "jobdata.scriptLocation": jobdata.get("scriptlocation", "remote"),
        "jobdata.scriptMetadata": jobdata.get("scriptmetadata", ""),
        "jobdata.jobParameters": jobdata.get("jobparameters", ""),
        "jobdata.scriptExtraLocation": jobdata.get("scriptextralocation", "inline"),
        "jobdata.additionalData": jobdata.get("additionaldata", ""),
    }
    storage = spec.get("s3storage") or {}
    if storage.get("s3secret"):
        data["s3.secret"] = storage["s3secret"]
        data["s3.endpoint"] = storage["endpoint"]
        data["s3.secure"] = "true" if storage.get("secure", True) else "false"
    upload = spec.get("s3upload") or {}
    if upload.get("bucket"):
        data["s3upload.bucket"] = upload["bucket"]
        data["s3upload.files"] = upload.get("files", "")
    return data


def test_every_manifest_parses_into_named_objects() -> None:
    assert len(MANIFESTS) >= 7
    for path in MANIFESTS:
        docs = documents(path)
        assert docs, path
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind"), path
            assert doc["metadata"]["name"], path
            assert "namespace" not in doc["metadata"], f"{path}: the namespace comes from kubectl -n"


def test_configmaps_are_named_for_their_jobs_and_the_pod_reads_one() -> None:
    configmaps = names("ConfigMap")
    assert configmaps == {"raypod-inline-bridge-cm", "raypod-s3-bridge-cm"}
    pod = one("Pod")
    env = {item["name"]: item for item in pod["spec"]["containers"][0]["env"]}
    assert f"{env['JOBNAME']['value']}-bridge-cm" in configmaps
    assert env["NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert pod["metadata"]["name"] == f"{env['JOBNAME']['value']}-bridge-pod"


def test_pod_is_the_operators_pod_running_as_non_root() -> None:
    pod = one("Pod")
    spec = pod["spec"]
    container = spec["containers"][0]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] in names("ServiceAccount")
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "100Mi"},
        "limits": {"cpu": "500m", "memory": "100Mi"},
    }
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 65532
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/credentials", "/s3credentials"):
        assert mounts[path]["readOnly"] is True
        assert volumes[mounts[path]["name"]]["secret"]["secretName"] in names("Secret")


def test_secrets_hold_the_keys_the_operator_checks() -> None:
    resource = one("Secret", "ray-resource-secret")["stringData"]
    assert resource["username"] and resource["password"]
    s3 = one("Secret", "s3-secret")["stringData"]
    assert s3["accesskey"] and s3["secretkey"]


def test_role_grants_only_get_and_patch_on_configmaps_and_create_and_patch_on_events_to_the_pods_account() -> None:
    role = one("Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]},
        # raypod.events: POST an Event, PATCH its series on a repeat; never get, list, watch or delete.
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ]
    binding = one("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": one("ServiceAccount")["metadata"]["name"]}]


def test_the_sample_rbac_adds_raypods_rule_without_replacing_the_operators_own() -> None:
    # The operator creates bridge-cm-role (get, watch, list, update, patch) and bridge-cm-binding only
    # when they are missing, and its other pods need `update`: a sample under those names would narrow it.
    assert one("Role")["metadata"]["name"] not in ("bridge-cm-role",)
    assert one("RoleBinding")["metadata"]["name"] not in ("bridge-cm-binding",)
    # ... while the pods the operator starts run as its service account, which the binding names.
    assert one("ServiceAccount")["metadata"]["name"] == "bridge-cm-viewer"


@pytest.mark.parametrize("case", ["inline", "s3"])
def test_bridgejob_yields_the_sample_configmap_and_names_existing_secrets(case: str) -> None:
    job = documents(SAMPLES / f"bridgejob-{case}.yaml")[0]
    assert job["apiVersion"] == "bridgejob.ibm.com/v1alpha1" and job["kind"] == "BridgeJob"
    spec = job["spec"]
    assert set(spec) <= CRD_SPEC_FIELDS and set(spec["jobdata"]) <= CRD_JOBDATA_FIELDS
    assert spec["resourcesecret"] in names("Secret")
    assert spec["s3storage"]["s3secret"] in names("Secret")
    configmap = documents(SAMPLES / f"configmap-{case}.yaml")[0]
    assert configmap_from_bridgejob(spec) == configmap["data"]


def test_inline_samples_hold_the_files_of_samples_ray() -> None:
    data = one("ConfigMap", "raypod-inline-bridge-cm")["data"]
    assert data["jobdata.jobScript"] == (RAY_SAMPLES / "code.py").read_text()
    assert json.loads(data["jobdata.scriptMetadata"]) == json.loads((RAY_SAMPLES / "metadata.json").read_text())
    assert json.loads(data["jobdata.jobParameters"]) == json.loads((RAY_SAMPLES / "parameters.json").read_text())


def sample_images() -> Iterator[str]:
    """Every image a sample names: the BridgeJobs' spec.image, the Pod's and the Job's containers'."""
    for path in MANIFESTS:
        for doc in documents(path):
            if doc["kind"] == "BridgeJob":
                yield doc["spec"]["image"]
            pod = doc["spec"]["template"]["spec"] if doc["kind"] == "Job" else doc.get("spec", {})
            if doc["kind"] in ("Pod", "Job"):
                yield from (container["image"] for container in pod["containers"])


def makefile_default_image() -> str:
    """``$(IMAGE_TAG_BASE):$(VERSION)`` with the Makefile's defaults: what `make docker-build` tags."""
    found = re.search(r"^IMAGE_TAG_BASE \?= (\S+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found is not None
    return f"{found.group(1)}:{__version__}"


def test_the_samples_run_the_image_make_builds_and_the_operator_counts_it_as_a_ray_pod() -> None:
    images = set(sample_images())
    assert images == {makefile_default_image()}
    assert pod_type(makefile_default_image()) == "ray"
    # The rule itself: the first of lsf, slurm, ray, quantum the reference contains.
    assert [pod_type(i) for i in ("quay.io/me/ray-pod:1", "slurm-ray:1", "quay.io/x/lsf/raypod", "busybox")] == [
        "ray",
        "slurm",
        "lsf",
        "unknown",
    ]
