"""Where a pod finds the Kubernetes API (``KUBERNETES_SERVICE_HOST``/``PORT``), and that without a
service account ``--config`` is required. Nothing is contacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from raypod.errors import ConfigError
from raypod.kube import api_base_url
from raypod.process import open_run_target


def test_api_url_from_service_env_brackets_ipv6_and_yields_to_override() -> None:
    assert api_base_url({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}) == (
        "https://10.0.0.1:443"
    )
    assert api_base_url({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}) == (
        "https://[fd00::1]:6443"
    )
    assert api_base_url({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "RAYPOD_KUBE_API": "https://127.0.0.1:1/"}) == (
        "https://127.0.0.1:1"
    )
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST"):
        api_base_url({})


def test_without_a_service_account_config_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--config"):
        open_run_target("j", None, None, None, environ={"RAYPOD_SERVICE_ACCOUNT_DIR": str(tmp_path / "none")})
