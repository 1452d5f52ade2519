"""Ray's auth conventions, read in-process: where the token comes from (as Ray's own clients look
for it), and extra headers for a dashboard behind an auth proxy. Header values are secrets: never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raypod.credentials import RayAuthSources
from raypod.errors import ConfigError
from tests.support.ray_auth import COOKIE_SECRET, TOKEN, credentials_dir


def problems(sources: RayAuthSources) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        sources.read(basic=False)
    return caught.value.problems


# -- the token, first found wins ----------------------------------------------------------------------
def test_the_token_file_in_the_credentials_directory_comes_first(tmp_path: Path) -> None:
    (tmp_path / "env-token").write_text("from-path\n")
    sources = RayAuthSources(
        credentials_dir(tmp_path, token="from-dir\n"),
        {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "env-token")},
    )

    assert sources.read(basic=False).token == "from-dir"


def test_then_ray_auth_token_then_the_file_ray_auth_token_path_names(tmp_path: Path) -> None:
    (tmp_path / "env-token").write_text("from-path\n")
    empty = credentials_dir(tmp_path)
    path_env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "env-token")}

    assert RayAuthSources(empty, {"RAY_AUTH_TOKEN": "from-env", **path_env}).read(basic=False).token == "from-env"
    assert RayAuthSources(empty, path_env).read(basic=False).token == "from-path"


def test_the_users_ray_token_file_counts_only_where_it_is_given(tmp_path: Path) -> None:
    user_file = tmp_path / "home" / ".ray" / "auth_token"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("from-home\n")
    empty = credentials_dir(tmp_path)

    assert RayAuthSources(empty, {}, user_file).read(basic=False).token == "from-home"
    assert RayAuthSources(empty, {}).read(basic=False).token is None  # the pod: never ~/.ray


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"RAY_AUTH_TOKEN": f"{TOKEN}\ninjected: x"}, "RAY_AUTH_TOKEN"),
        ({"RAY_AUTH_TOKEN_PATH": "/nonexistent/raypod-token"}, "RAY_AUTH_TOKEN_PATH"),
    ],
)
def test_a_token_from_the_environment_that_cannot_be_used_is_bad_input_without_its_text(
    tmp_path: Path, environ: dict[str, str], key: str
) -> None:
    found = problems(RayAuthSources(credentials_dir(tmp_path), environ))

    assert [k for k, _ in found] == [key]
    assert TOKEN not in str(found)


# -- extra headers: headers.json, then RAY_JOB_HEADERS, then --headers ------------------------------
def test_extra_headers_merge_later_sources_winning_without_regard_to_case(tmp_path: Path) -> None:
    directory = credentials_dir(tmp_path, headers_json='{"Cookie": "a=1", "X-Team": "ml"}')
    sources = RayAuthSources(
        directory, {"RAY_JOB_HEADERS": '{"cookie": "a=2", "X-Env": "yes"}'}, headers_flag='{"X-Team": "infra"}'
    )

    assert sources.read(basic=False).headers == {"cookie": "a=2", "X-Env": "yes", "X-Team": "infra"}


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '["Cookie", "a=1"]',
        '{"Bad Name": "x"}',
        '{"Cookie": 5}',
        '{"Cookie": "a=' + COOKIE_SECRET + '\\r\\nX-Injected: 1"}',
        json.dumps({f"X-{i}": "v" for i in range(40)}),
    ],
    ids=["not-json", "not-object", "bad-name", "not-string", "line-break", "too-many"],
)
def test_extra_headers_that_cannot_be_sent_are_bad_input_naming_the_source_not_the_value(
    tmp_path: Path, text: str
) -> None:
    found = problems(RayAuthSources(credentials_dir(tmp_path), {"RAY_JOB_HEADERS": text}))

    assert {key for key, _ in found} == {"RAY_JOB_HEADERS"}
    assert COOKIE_SECRET not in str(found)


# -- which file the token came from (a rotated Secret is read again from it) --------------------------
def test_the_token_remembers_the_file_it_came_from_and_none_from_ray_auth_token(tmp_path: Path) -> None:
    (tmp_path / "env-token").write_text("from-path\n")
    user_file = tmp_path / "auth_token"
    user_file.write_text("from-home\n")
    empty = credentials_dir(tmp_path / "other")
    directory = credentials_dir(tmp_path, token="from-dir\n")
    path_env = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "env-token")}

    assert RayAuthSources(directory, {}).read(basic=False).token_file == directory / "token"
    assert RayAuthSources(empty, path_env).read(basic=False).token_file == tmp_path / "env-token"
    assert RayAuthSources(empty, {}, user_file).read(basic=False).token_file == user_file
    assert RayAuthSources(empty, {"RAY_AUTH_TOKEN": "from-env", **path_env}).read(basic=False).token_file is None
    assert RayAuthSources(empty, {}).read(basic=False).token_file is None
