"""samples/kubernetes/ read as objects, and a sample ConfigMap pointed at this machine's Ray and S3."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml

from tests.support.helpers import REPO, Services

SAMPLES = REPO / "samples" / "kubernetes"
RAY_SAMPLES = REPO / "samples" / "ray"
MANIFESTS = sorted(SAMPLES.glob("*.yaml"))


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
