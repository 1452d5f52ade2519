"""samples/kubernetes/: every manifest parses, the objects name each other consistently, kubectl
accepts them, and the two sample ConfigMaps run end to end through the (fake) API on the real Ray and S3."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.fake_kube import FakeKube
from tests.support.helpers import REPO, Services

SAMPLES = REPO / "samples" / "kubernetes"
RAY_SAMPLES = REPO / "samples" / "ray"
MANIFESTS = sorted(SAMPLES.glob("*.yaml"))

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


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def objects(kind: str) -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in documents(path) if doc["kind"] == kind]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for doc in objects(kind) if name is None or doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def names(kind: str) -> set[str]:
    return {doc["metadata"]["name"] for doc in objects(kind)}


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


def test_role_grants_only_get_and_patch_on_configmaps_to_the_pods_account() -> None:
    role = one("Role")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"]}]
    binding = one("RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": one("ServiceAccount")["metadata"]["name"]}]


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


def test_kubectl_client_dry_run_accepts_every_manifest(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None and os.environ.get("CI") == "true":
        pytest.fail("CI=true and kubectl is not installed (Debian: apt-get install kubernetes-client)", pytrace=False)
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests were only checked with PyYAML")
    # Client dry-run still asks a server for API discovery and the live object: the fake API answers.
    with FakeKube(tmp_path / "kube") as fake:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "fake", "cluster": {"server": fake.url, "certificate-authority": str(fake.ca_path)}}
                    ],
                    "users": [{"name": "fake", "user": {"token": fake.token}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "demo"}}],
                    "current-context": "fake",
                }
            )
        )
        client = [kubectl, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
        for path in MANIFESTS:
            completed = subprocess.run(
                [*client, "apply", "--dry-run=client", "--validate=false", "-f", str(path)],
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            assert completed.returncode == 0, f"{path.name}: {completed.stderr}"
            created = [line for line in completed.stdout.splitlines() if line.endswith("created (dry run)")]
            assert len(created) == len(documents(path)), completed.stdout


def sample_on_local_services(case: str, services: Services) -> tuple[dict[str, Any], dict[str, str]]:
    """A sample ConfigMap ("inline" or "s3") and its data pointed at this machine's Ray and S3, with
    the Ray samples it reads uploaded to its bucket and no log left by an earlier run."""
    configmap = documents(SAMPLES / f"configmap-{case}.yaml")[0]
    data = dict(configmap["data"])
    # The in-cluster addresses become this machine's Ray and S3; nothing else changes.
    data["resourceURL"] = services.ray_address
    data["s3.endpoint"] = services.s3.endpoint
    client = services.s3.client()
    bucket = data["s3upload.bucket"]
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    for path in sorted(RAY_SAMPLES.iterdir()):
        raw = path.read_bytes()
        client.put_object(bucket, f"ray/{path.name}", io.BytesIO(raw), len(raw))
    job_name = configmap["metadata"]["name"].removesuffix("-bridge-cm")
    client.remove_object(bucket, f"{job_name}/logs")
    return configmap, data


@pytest.mark.integration
@pytest.mark.parametrize("case", ["inline", "s3"])
def test_sample_configmap_runs_end_to_end_through_the_api(case: str, services: Services, tmp_path: Path) -> None:
    configmap, data = sample_on_local_services(case, services)
    job_name, bucket = configmap["metadata"]["name"].removesuffix("-bridge-cm"), data["s3upload.bucket"]
    client = services.s3.client()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for key, value in one("Secret", "ray-resource-secret")["stringData"].items():
        (credentials / key).write_text(value)
    s3_credentials = services.s3.write_credentials(tmp_path / "s3credentials")
    with FakeKube(tmp_path / "kube") as fake:
        fake.create_configmap(configmap["metadata"]["name"], data)
        env = {k: v for k, v in os.environ.items() if k != "NAMESPACE"}
        env.update(fake.env(), JOBNAME=job_name, PYTHONUNBUFFERED="1")
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "raypod",
                "--credentials",
                str(credentials),
                "--s3-credentials",
                str(s3_credentials),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        status = fake.data(configmap["metadata"]["name"])
    assert completed.returncode == 0, f"{status}\n{completed.stdout}\n{completed.stderr}"
    assert status["status.jobStatus"] == "SUCCEEDED"
    assert status["status.message"] == f"Job succeeded; log uploaded to s3://{bucket}/{job_name}/logs."
    response = client.get_object(bucket, f"{job_name}/logs")
    try:
        log = response.read().decode()
    finally:
        response.close()
        response.release_conn()
    assert "sum of squares below 20: 2470" in log
    assert "greeting file says: Hello from an additionalData file in S3" in log
