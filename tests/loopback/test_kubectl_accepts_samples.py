"""samples/kubernetes/: ``kubectl apply --dry-run=client`` accepts every manifest (the fake
Kubernetes API answers kubectl's discovery)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.fake_kube import FakeKube
from tests.support.samples import MANIFESTS, documents


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
