"""Secrets read from mounted files: checked when read, and never quoted in an error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raypod.credentials import RayCredentials, S3Credentials, S3CredentialSources, read_secret_file
from raypod.errors import ConfigError

#: Put inside every secret; no error text may hold it, nor any piece of it.
MARKER = "SeKrEt-MaRkEr-93f1"
MARKER_PIECES = ("SeKrEt", "MaRkEr", "93f1")


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def assert_content_not_shown(error: ConfigError) -> None:
    shown = f"{error} {error.problems!r} {error.__cause__!r} {error.__context__!r}"
    for piece in MARKER_PIECES:
        assert piece not in shown


def error_of(call: Callable[[], object]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        call()
    assert_content_not_shown(caught.value)
    return caught.value


#: content -> what the error says is wrong
BAD_HEADER_VALUES = {
    "newline inside": (f"{MARKER}\n{MARKER}", "line break"),
    "carriage return inside": (f"{MARKER}\r{MARKER}", "line break"),
    "NUL inside": (f"{MARKER}\x00{MARKER}", "control character"),
    "tab inside": (f"{MARKER}\t{MARKER}", "control character"),
    "DEL inside": (f"{MARKER}\x7f", "control character"),
    "C1 control inside": (f"{MARKER}\x85{MARKER}", "control character"),
    "beyond Latin-1": (f"{MARKER}\u4e2d", "outside Latin-1"),
}


@pytest.mark.parametrize("name", ["token", "username", "password"])
@pytest.mark.parametrize("case", sorted(BAD_HEADER_VALUES))
def test_ray_secret_that_would_break_a_header_names_the_file_and_the_fault_not_the_content(
    tmp_path: Path, name: str, case: str
) -> None:
    content, fault = BAD_HEADER_VALUES[case]
    path = write(tmp_path, name, content + "\n")
    error = error_of(lambda: RayCredentials.from_dir(tmp_path))
    assert len(error.problems) == 1
    key, problem = error.problems[0]
    assert key == str(path)
    assert fault in problem


@pytest.mark.parametrize("name", ["token", "username", "password", "accesskey", "secretkey"])
def test_a_secret_file_that_is_not_utf8_names_the_file_not_the_bytes(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, MARKER.encode() + b"\xff\xfe" + MARKER.encode())
    other = "secretkey" if name == "accesskey" else "accesskey"
    write(tmp_path, other, "fine")
    read = S3Credentials.from_dir if name in ("accesskey", "secretkey") else RayCredentials.from_dir
    error = error_of(lambda: read(tmp_path))
    assert error.problems == [(str(path), "is not UTF-8 text")]


@pytest.mark.parametrize("name", ["token", "password"])
def test_latin1_secrets_are_accepted_as_valid_header_bytes(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "caf\u00e9-\u00ff\n")
    credentials = RayCredentials.from_dir(tmp_path)
    assert getattr(credentials, name) == "caf\u00e9-\u00ff"


def test_surrounding_whitespace_is_stripped_as_kubectl_from_file_leaves_it(tmp_path: Path) -> None:
    write(tmp_path, "token", "  tok-123\n")
    write(tmp_path, "username", "user\r\n")
    write(tmp_path, "password", "\tpass word\n\n")  # a space inside is a valid header byte
    credentials = RayCredentials.from_dir(tmp_path)
    assert (credentials.token, credentials.username, credentials.password) == ("tok-123", "user", "pass word")


def test_a_username_with_a_colon_cannot_be_sent_with_basic_auth(tmp_path: Path) -> None:
    path = write(tmp_path, "username", f"{MARKER}:x")
    error = error_of(lambda: RayCredentials.from_dir(tmp_path))
    assert error.problems[0][0] == str(path)
    assert "':'" in error.problems[0][1]


def test_every_bad_ray_secret_is_listed(tmp_path: Path) -> None:
    for name in ("token", "username", "password"):
        write(tmp_path, name, f"{MARKER}\n{MARKER}")
    error = error_of(lambda: RayCredentials.from_dir(tmp_path))
    assert [key for key, _ in error.problems] == [str(tmp_path / n) for n in ("token", "username", "password")]


def test_without_basic_auth_username_and_password_are_not_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "token", "tok\n")
    (tmp_path / "password").mkdir()  # unreadable as a file: reading it would be an error
    write(tmp_path, "username", f"{MARKER}\n{MARKER}")  # bad: reading it would be an error
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    opened: list[str] = []
    real_open = Path.open

    def recording_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", recording_open)
    credentials = RayCredentials.from_dir(tmp_path, basic=False)
    assert opened == ["token"]
    assert (credentials.token, credentials.username, credentials.password) == ("tok", None, None)
    assert credentials.ca_bundle == tmp_path / "ca.crt"


def test_with_basic_auth_by_default_an_unreadable_password_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "password").mkdir()
    with pytest.raises(ConfigError) as caught:
        RayCredentials.from_dir(tmp_path)
    assert caught.value.problems[0][0] == str(tmp_path / "password")
    assert caught.value.problems[0][1].startswith("cannot read")


def test_an_empty_directory_gives_no_credentials(tmp_path: Path) -> None:
    assert RayCredentials.from_dir(tmp_path) == RayCredentials()


# -- S3 keys -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["accesskey", "secretkey"])
@pytest.mark.parametrize("inside", [" ", "\t", "\n", "\x00", "\x1b", "\u00a0", "\u2003"])
def test_s3_key_with_whitespace_or_control_inside_names_the_file_not_the_key(
    tmp_path: Path, name: str, inside: str
) -> None:
    write(tmp_path, "accesskey", "AKIAFINE\n")
    write(tmp_path, "secretkey", "fine-secret\n")
    path = write(tmp_path, name, f"{MARKER}{inside}{MARKER}\n")
    error = error_of(lambda: S3Credentials.from_dir(tmp_path))
    assert error.problems == [(str(path), "holds whitespace or a control character inside the key")]


def test_s3_access_key_beyond_latin1_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "accesskey", f"{MARKER}\u4e2d")
    write(tmp_path, "secretkey", "fine")
    error = error_of(lambda: S3Credentials.from_dir(tmp_path))
    assert error.problems[0][0] == str(path)
    assert "outside Latin-1" in error.problems[0][1]


def test_s3_keys_with_a_trailing_newline_are_accepted(tmp_path: Path) -> None:
    write(tmp_path, "accesskey", "AKIA123\n")
    write(tmp_path, "secretkey", "abc/def+ghi\n")
    credentials = S3Credentials.from_dir(tmp_path)
    assert (credentials.access_key, credentials.secret_key) == ("AKIA123", "abc/def+ghi")


def test_missing_s3_keys_still_name_the_s3_secret(tmp_path: Path) -> None:
    write(tmp_path, "accesskey", "AKIA123\n")
    with pytest.raises(ConfigError) as caught:
        S3Credentials.from_dir(tmp_path)
    assert caught.value.problems[0][0] == "s3.secret"
    assert "secretkey" in caught.value.problems[0][1]


# -- read_secret_file (also the service-account token) --------------------------------------
def test_read_secret_file_checks_header_safety_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, "token", f"{MARKER}\n{MARKER}")
    error = error_of(lambda: read_secret_file(path))
    assert error.problems[0][0] == str(path)
    assert read_secret_file(path, check=None) == f"{MARKER}\n{MARKER}"


def test_read_secret_file_of_an_absent_or_blank_file_is_none(tmp_path: Path) -> None:
    assert read_secret_file(tmp_path / "nope") is None
    assert read_secret_file(write(tmp_path, "blank", " \n")) is None


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(inner=st.text(max_size=12), name=st.sampled_from(["token", "username", "password"]))
def test_any_ray_secret_is_read_or_rejected_without_showing_it(tmp_path: Path, inner: str, name: str) -> None:
    directory = tmp_path / "d"
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    write(directory, name, f"{MARKER}{inner}{MARKER}\n")
    try:
        credentials = RayCredentials.from_dir(directory)
    except ConfigError as error:
        assert_content_not_shown(error)
        assert [key for key, _ in error.problems] == [str(directory / name)]
        return
    value = getattr(credentials, name)
    assert value == f"{MARKER}{inner}{MARKER}"
    value.encode("latin-1")  # what requests does with a header value and Basic auth
    assert not any(c in value for c in "\r\n\x00")


# -- S3 keys from the environment (the command line only) ----------------------------------------
ENV_KEYS = {
    "AWS_ACCESS_KEY_ID": "AKIAFROMENV",
    "AWS_SECRET_ACCESS_KEY": f"{MARKER}-env-secret",
    "AWS_SESSION_TOKEN": f"{MARKER}-env-token",
}


def s3_dir(directory: Path, access: str = "AKIAFROMFILE", secret: str = "file-secret") -> Path:
    directory.mkdir(exist_ok=True)
    write(directory, "accesskey", access + "\n")
    write(directory, "secretkey", secret + "\n")
    return directory


def test_a_directory_given_on_purpose_wins_over_the_environment(tmp_path: Path) -> None:
    given = s3_dir(tmp_path / "given")
    keys = S3CredentialSources(given, ENV_KEYS, default_directory=s3_dir(tmp_path / "default")).read()
    assert (keys.access_key, keys.secret_key, keys.session_token) == ("AKIAFROMFILE", "file-secret", None)


def test_the_environment_wins_over_the_default_directory_on_the_command_line(tmp_path: Path) -> None:
    default = s3_dir(tmp_path / "default")
    keys = S3CredentialSources(None, ENV_KEYS, default_directory=default).read()
    assert (keys.access_key, keys.secret_key, keys.session_token) == (
        "AKIAFROMENV",
        f"{MARKER}-env-secret",
        f"{MARKER}-env-token",
    )
    assert MARKER not in repr(keys)


def test_the_default_directory_serves_when_the_environment_has_no_keys(tmp_path: Path) -> None:
    default = s3_dir(tmp_path / "default")
    token_only = {"AWS_SESSION_TOKEN": "a-token-with-no-keys"}
    keys = S3CredentialSources(None, token_only, default_directory=default).read()
    assert (keys.access_key, keys.session_token) == ("AKIAFROMFILE", None)


def test_with_no_source_at_all_the_command_line_names_every_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        S3CredentialSources(None, {}, default_directory=tmp_path / "absent").read()
    key, problem = caught.value.problems[0]
    assert key == "s3.secret"
    assert "--s3-credentials" in problem and "AWS_ACCESS_KEY_ID" in problem and "AWS_SECRET_ACCESS_KEY" in problem


def test_the_pod_reads_its_mounted_secret_and_never_keys_of_its_environment(tmp_path: Path) -> None:
    mounted = s3_dir(tmp_path / "mounted")
    keys = S3CredentialSources(None, None, default_directory=mounted).read()
    assert keys.access_key == "AKIAFROMFILE"
    with pytest.raises(ConfigError) as caught:
        # The environment is not a source in the pod: no keys mounted stays bad input.
        S3CredentialSources(None, None, default_directory=tmp_path / "absent").read()
    assert "AWS_" not in str(caught.value)


@pytest.mark.parametrize(
    ("present", "missing"),
    [("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"), ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")],
)
def test_one_key_of_the_pair_in_the_environment_is_bad_input_naming_the_other(
    tmp_path: Path, present: str, missing: str
) -> None:
    error = error_of(
        lambda: S3CredentialSources(None, {present: ENV_KEYS[present]}, default_directory=s3_dir(tmp_path / "d")).read()
    )
    assert [key for key, _ in error.problems] == [missing]


#: Unusable in every key; beyond Latin-1 only in those sent in a header (not the secret key, which signs).
UNUSABLE_IN_ENV = [
    *((name, inside) for name in sorted(ENV_KEYS) for inside in (" ", "\n", "\x00")),
    ("AWS_ACCESS_KEY_ID", "\u4e2d"),
    ("AWS_SESSION_TOKEN", "\u4e2d"),
]


@pytest.mark.parametrize(("name", "inside"), UNUSABLE_IN_ENV)
def test_an_unusable_key_in_the_environment_names_the_variable_not_the_value(name: str, inside: str) -> None:
    environ = {**ENV_KEYS, name: f"{MARKER}{inside}{MARKER}"}
    error = error_of(lambda: S3Credentials.from_environment(environ))
    assert [key for key, _ in error.problems] == [name]


@settings(max_examples=200)
@given(
    access=st.text(max_size=8),
    secret=st.text(max_size=8),
    token=st.text(max_size=8) | st.none(),
)
def test_any_s3_keys_of_the_environment_are_read_or_rejected_without_showing_them(
    access: str, secret: str, token: str | None
) -> None:
    environ = {"AWS_ACCESS_KEY_ID": f"{MARKER}{access}", "AWS_SECRET_ACCESS_KEY": f"{MARKER}{secret}{MARKER}"}
    if token is not None:
        environ["AWS_SESSION_TOKEN"] = f"{MARKER}{token}"
    try:
        keys = S3Credentials.from_environment(environ)
    except ConfigError as error:
        assert_content_not_shown(error)
        assert {key for key, _ in error.problems} <= set(environ)
        return
    assert keys is not None
    assert keys.secret_key == environ["AWS_SECRET_ACCESS_KEY"].strip()
    for header_value in (keys.access_key, keys.session_token or ""):
        header_value.encode("latin-1")  # what the S3 request's headers must be
        assert not any(c.isspace() for c in header_value)
    assert MARKER not in repr(keys)
