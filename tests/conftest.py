"""Fixtures: one real Ray head and one S3 server for the whole run, on loopback, and what stands in front of them.

The suite runs in lanes, one folder each, and a test's lane is its folder (a marker set below):
unit (in-process, on fakes), loopback (scripted servers on 127.0.0.1 and raypod as a child process),
ray (the real Ray head and/or the S3 server) and image (the container image). ``make test-unit`` and
its siblings run one lane; ``-m unit`` and the like select by the marker. The helpers the test
modules share are in tests/support/; the services, the proxy and the fake Kubernetes API in devtools/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_kube import FakeKube
from devtools.proxy import Proxy
from devtools.services import LocalRay, LocalS3
from tests.support.helpers import RAY_AUTH_TOKEN, BridgeJob, Services
from tests.support.scripted_server import ScriptedServer

#: Ray sets up a failing runtime env three times, 1 s apart, each time in a new virtualenv, before it
#: gives up (RUNTIME_ENV_RETRY_TIMES): what raypod is tested on is Ray's answer, which the first try gives.
TEST_HEAD_ENV = {"RUNTIME_ENV_RETRY_TIMES": "1"}


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    ray, s3 = LocalRay(env=TEST_HEAD_ENV), LocalS3()
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


# -- a second Ray head that requires a token (Ray token auth), shared by the modules that need it ----
@pytest.fixture(scope="session")
def token_ray() -> Iterator[LocalRay]:
    ray = LocalRay(env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": RAY_AUTH_TOKEN}, num_cpus=1)
    ray.start()
    try:
        yield ray
    finally:
        ray.stop()


# -- the fake Kubernetes API over HTTPS (devtools/fake_kube.py), one per test ---------------------
@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(tmp_path / "kube") as fake:
        yield fake


# -- a loopback server that answers whatever a test scripts (tests/support/scripted_server.py) -------------
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


# -- the lane of a test is the folder it is in --------------------------------------------------------
LANES = ("unit", "loopback", "ray", "image")
TESTS = Path(__file__).resolve().parent


def lane_of(path: Path) -> str | None:
    """``unit``, ``loopback``, ``ray`` or ``image`` for a file in that folder under tests/, else None."""
    try:
        parts = path.resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    return parts[0] if len(parts) > 1 and parts[0] in LANES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        lane = lane_of(item.path)
        if lane is not None:
            item.add_marker(lane)


# -- under CI=true a skip is a failure: a missing tool must not pass unnoticed -----------------------
def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_instead_of_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.outcome = "failed"
    report.longrepr = f"CI=true: no test may skip ({_skip_reason(report)})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    # An expected failure (xfail) is reported as skipped too: it is not a skip.
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail_instead_of_skip(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()  # type: ignore[attr-defined]
    if in_ci() and report.skipped:  # a whole module skipped, e.g. pytest.skip(allow_module_level=True)
        _fail_instead_of_skip(report)
