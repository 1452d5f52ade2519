"""The secrets and credential directories of the Ray auth tests, and a proxy in front of the
token-auth head that owns ``Authorization``. Header values are secrets: never printed."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

from devtools.proxy import Proxy, Request
from tests.support.helpers import RAY_AUTH_TOKEN

TOKEN = RAY_AUTH_TOKEN
COOKIE_SECRET = "oauth-proxy-SESSION-4b8e2f6a1c"
#: A token the head does not take (Ray answers 403), as a Secret holds it before its rotation.
STALE_TOKEN = "stale-ray-token-MARKER-9d04b7e1"
#: The auth proxy's own credentials, which it demands in ``Authorization``.
PROXY_USER = "proxy-user"
PROXY_PASSWORD = "proxy-password-MARKER-c81f"
PROXY_BASIC = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()


def credentials_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", ".")).write_text(text)
    return directory


def proxy_owning_authorization(ray_port: int) -> Proxy:
    """A proxy (not started) that demands its own ``Authorization: Basic`` and strips it before Ray:
    Ray reads ``Authorization`` first, so nothing but ``X-Ray-Authorization`` can carry its token."""
    proxy = Proxy("127.0.0.1", ray_port)
    proxy.require_basic(PROXY_USER, PROXY_PASSWORD, strip=True)
    return proxy


def rotate(token_file: Path, token: str) -> None:
    """As the kubelet swaps a mounted Secret: the new file replaces the old one at once."""
    fresh = token_file.with_name(".rotating")
    fresh.write_text(token + "\n")
    fresh.replace(token_file)


def rotate_on_first_request(proxy: Proxy, token_file: Path, token: str) -> None:
    """The token file is rotated when the first request reaches the proxy: that request carries the
    old token on to Ray, and its refusal comes back after the file has changed."""
    done = threading.Event()

    def on_request(_request: Request) -> None:
        if not done.is_set():
            done.set()
            rotate(token_file, token)

    proxy.on_request = on_request
