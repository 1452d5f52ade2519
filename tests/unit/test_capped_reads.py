"""Every file raypod reads from outside is read with a size cap: too large is bad input that names
the file, never a read that grows until the pod is killed. (An endless one, /dev/zero, is read by a
child process under a memory limit: tests/loopback/test_capped_reads_of_endless_files.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.capped_read import MAX_CONFIG_FILE, MAX_SECRET_FILE
from raypod.credentials import HEADERS_FILE, RayAuthSources, RayCredentials, read_secret_file
from raypod.errors import ConfigError
from raypod.kube import ServiceAccount
from raypod.source import DirectorySource, ManifestSource
from raypod.status_store import StatusFile


def oversized(path: Path, limit: int) -> Path:
    path.write_bytes(b"t" * (limit + 1))
    return path


def problem_text(error: pytest.ExceptionInfo[ConfigError]) -> str:
    return "; ".join(error.value.lines)


def test_a_token_file_too_large_is_bad_input_naming_it(tmp_path: Path) -> None:
    token = oversized(tmp_path / "big-token", MAX_SECRET_FILE)
    with pytest.raises(ConfigError) as raised:
        RayAuthSources(tmp_path / "none", {"RAY_AUTH_TOKEN_PATH": str(token)}).read(basic=False)
    assert str(token) in problem_text(raised) and f"larger than {MAX_SECRET_FILE} bytes" in problem_text(raised)


def test_a_secret_file_one_byte_over_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path: Path) -> None:
    at_cap, over = tmp_path / "at-cap", tmp_path / "over"
    at_cap.write_text("t" * MAX_SECRET_FILE)
    over.write_text("t" * (MAX_SECRET_FILE + 1))
    assert read_secret_file(at_cap) == "t" * MAX_SECRET_FILE
    with pytest.raises(ConfigError) as raised:
        read_secret_file(over)
    assert str(over) in problem_text(raised)
    assert "t" * 16 not in problem_text(raised)  # never the content


def test_credential_files_and_headers_json_are_capped(tmp_path: Path) -> None:
    oversized(tmp_path / "token", MAX_SECRET_FILE)
    with pytest.raises(ConfigError) as raised:
        RayCredentials.from_dir(tmp_path, basic=False)
    assert str(tmp_path / "token") in problem_text(raised)
    (tmp_path / "token").unlink()
    (tmp_path / HEADERS_FILE).write_text(json.dumps({"Cookie": "c" * (2 * MAX_SECRET_FILE)}))
    with pytest.raises(ConfigError) as raised:
        RayAuthSources(tmp_path, {}).read(basic=False)
    assert str(tmp_path / HEADERS_FILE) in problem_text(raised)


def test_the_service_account_token_is_capped(tmp_path: Path) -> None:
    oversized(tmp_path / "token", MAX_SECRET_FILE)
    with pytest.raises(ConfigError) as raised:
        ServiceAccount(tmp_path).token()
    assert str(tmp_path / "token") in problem_text(raised)


def test_a_mounted_configmap_key_too_large_is_bad_input_naming_the_key(tmp_path: Path) -> None:
    (tmp_path / "resourceURL").write_text("http://ray:8265")
    (tmp_path / "jobdata.jobScript").write_text("#" * (MAX_CONFIG_FILE + 1))
    with pytest.raises(ConfigError) as raised:
        DirectorySource(tmp_path).read()
    assert raised.value.problems[0][0] == "jobdata.jobScript"
    assert f"larger than {MAX_CONFIG_FILE} bytes" in problem_text(raised)


def test_a_manifest_and_a_status_file_are_capped(tmp_path: Path) -> None:
    large = tmp_path / "large.json"
    large.write_text(json.dumps({"data": {"x": "y" * MAX_CONFIG_FILE}}))
    with pytest.raises(ConfigError) as raised:
        ManifestSource(large).read()
    assert str(large) in problem_text(raised)
    with pytest.raises(ConfigError) as raised:
        StatusFile(large).load()
    assert raised.value.problems[0][0] == "--status-file" and str(large) in problem_text(raised)


def test_a_recorded_status_with_a_lone_surrogate_loads_as_valid_text(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text('{"status.message": "Ray said \\ud800"}')
    loaded = StatusFile(status).load()
    assert loaded == {"status.message": "Ray said ?"}
