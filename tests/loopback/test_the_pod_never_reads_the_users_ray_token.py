"""``~/.ray/auth_token`` is a person's token: the CLI sends it, as Ray's own CLI does, but the pod
(``run``) never reads it (docs/kubernetes.md: the pod's token comes from its credentials or its
environment only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from raypod.cli import main
from tests.support.hostile import Pod, capture_logs, pod_environment
from tests.support.scripted_server import ScriptedServer

#: The person's token in their home directory; never the pod's.
USERS_TOKEN = "users-own-ray-token-7c2e"


def authorizations(server: ScriptedServer) -> list[str]:
    return [seen.headers.get("authorization", "") for seen in server.seen]


def test_the_pod_never_sends_the_token_in_the_users_home_and_the_cli_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(USERS_TOKEN + "\n")
    monkeypatch.setenv("HOME", str(home))
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    capture_logs(caplog)
    with ScriptedServer() as server:
        pod = Pod(tmp_path / "pod", server, {"jobdata.scriptLocation": "inline", "jobdata.jobScript": "print(1)\n"})
        (pod.credentials_dir / "token").unlink()  # the pod has no token of its own

        result = pod.run(capsys, caplog)

        assert result.code == 0, result.err
        assert server.seen, "the pod talked to the dashboard"
        assert not any(USERS_TOKEN in value for value in authorizations(server)), authorizations(server)

        # The same home, the same dashboard: the CLI does send it (so the check above can see it).
        server.seen.clear()
        with pod_environment():
            main(["status", "any-job", "--address", server.url, "--credentials", str(pod.credentials_dir)])
        assert f"Bearer {USERS_TOKEN}" in authorizations(server)
