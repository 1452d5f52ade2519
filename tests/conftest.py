"""Fixtures: one real Ray head and one S3 server for the whole run, on loopback, and what stands in front of them.

The helpers the test modules share are in tests/helpers.py; the services and the proxy in devtools/.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devtools.proxy import Proxy
from devtools.services import LocalRay, LocalS3
from tests.helpers import BridgeJob, Services
from tests.scripted_server import ScriptedServer


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    ray, s3 = LocalRay(), LocalS3()
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(ray.start), pool.submit(s3.start)]
        errors = [f.exception() for f in started]
    try:
        for error in errors:
            if error is not None:
                raise error
        yield Services(ray, s3)
    finally:
        ray.stop()
        s3.stop()


@pytest.fixture
def ray_proxy(services: Services) -> Iterator[Proxy]:
    """A fault-injecting, recording proxy (a connection per request) in front of the real dashboard."""
    with Proxy("127.0.0.1", services.ray.port) as proxy:
        yield proxy


@pytest.fixture
def s3_proxy(services: Services) -> Iterator[Proxy]:
    """The same in front of the S3 server."""
    with Proxy("127.0.0.1", services.s3.port) as proxy:
        yield proxy


@pytest.fixture
def s3_client(services: Services) -> Any:
    return services.s3.client()


@pytest.fixture
def bridge_job(tmp_path: Path, services: Services) -> BridgeJob:
    return BridgeJob(tmp_path, services)


# -- a loopback server that answers whatever a test scripts (tests/scripted_server.py) -------------
@pytest.fixture(scope="module")
def module_scripted_server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture
def server(module_scripted_server: ScriptedServer) -> ScriptedServer:
    """One scripted server per module, emptied for each test (no routes, nothing seen)."""
    module_scripted_server.reset()
    return module_scripted_server


@pytest.fixture
def other_server() -> Iterator[ScriptedServer]:
    """A second host, e.g. the target of a redirect."""
    with ScriptedServer() as scripted:
        yield scripted
