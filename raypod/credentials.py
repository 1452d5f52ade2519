"""Secrets from mounted directories. Values are never logged or repr'd."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from raypod.errors import ConfigError

DEFAULT_CREDENTIALS_DIR = Path("/credentials")
DEFAULT_S3_CREDENTIALS_DIR = Path("/s3credentials")


def read_secret_file(path: Path) -> str | None:
    """The file's text without surrounding whitespace; None when absent or empty."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError.single(str(path), f"cannot read: {error.strerror}") from error
    return text or None


@dataclass(frozen=True)
class RayCredentials:
    """From the resource secret. username/password are sent only when auth is 'basic'."""

    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None

    @classmethod
    def from_dir(cls, directory: Path) -> RayCredentials:
        ca = directory / "ca.crt"
        return cls(
            username=read_secret_file(directory / "username"),
            password=read_secret_file(directory / "password"),
            token=read_secret_file(directory / "token"),
            ca_bundle=ca if ca.is_file() else None,
        )


@dataclass(frozen=True)
class S3Credentials:
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)

    @classmethod
    def from_dir(cls, directory: Path) -> S3Credentials:
        access = read_secret_file(directory / "accesskey")
        secret = read_secret_file(directory / "secretkey")
        missing = [name for name, value in (("accesskey", access), ("secretkey", secret)) if not value]
        if missing or access is None or secret is None:
            raise ConfigError.single(
                "s3.secret",
                f"S3 is used but {', '.join(missing)} is missing or empty in {directory} "
                "(mount the S3 secret there, or pass --s3-credentials)",
            )
        return cls(access, secret)
