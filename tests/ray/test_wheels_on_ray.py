"""Wheels for clusters without a package index: metadata ``wheels`` and ``submit --wheel``.

The end-to-end proof runs on a Ray head of its own whose only package index is a loopback server
that records every request: the job imports a module found only in the wheel, the index hears
nothing, and a control wheel with a dependency shows that pip on that head does ask this index.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.proxy import Proxy
from devtools.services import LocalRay
from tests.support.cli import raypod
from tests.support.helpers import BridgeJob, put_object, ray_job, unique
from tests.support.wheels import make_wheel, uploaded_name

# -- the ConfigMap's wheels, from S3, on the shared head -----------------------------------------------
IMPORT_SCRIPT = "import bridge_wheel_mod\nprint('WHEEL ' + bridge_wheel_mod.VALUE)\n"


def test_a_configmap_wheel_from_s3_is_uploaded_once_by_content_and_the_job_imports_it(
    bridge_job: BridgeJob, s3_client: Any, ray_proxy: Proxy, tmp_path: Path
) -> None:
    wheel = make_wheel(tmp_path, "bridge_wheel_mod", "1.0", "from the S3 wheel")
    location = put_object(s3_client, unique("wheels"), f"dist/{wheel.name}", wheel.read_bytes())
    bridge_job.set(
        resourceURL=ray_proxy.url,
        jobdata__scriptLocation="inline",
        jobdata__jobScript=IMPORT_SCRIPT,
        jobdata__scriptMetadata=json.dumps({"wheels": [location]}),
    )
    first = bridge_job.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert "WHEEL from the S3 wheel" in bridge_job.log_text()
    name = uploaded_name(wheel)
    assert ray_job(bridge_job.services, first.status["id"])["runtime_env"]["py_modules"] == [f"gcs://{name}"]
    assert len(ray_proxy.recorded("PUT", f"/api/packages/gcs/{name}")) == 1
    # A second job with the same wheel finds it on Ray by its name: it is not sent again.
    bridge_job.status_file.unlink()
    second = bridge_job.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.status["id"] != first.status["id"]
    assert len(ray_proxy.recorded("PUT", f"/api/packages/gcs/{name}")) == 1


# -- submit --wheel on a head whose only index records every request ----------------------------------
class RecordingIndex:
    """A package index on loopback that has nothing and records what pip asks it."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        recorded = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the name http.server calls
                recorded.append(self.path)
                self.send_error(404)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingIndex:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def airgapped() -> Iterator[tuple[LocalRay, RecordingIndex]]:
    """A Ray head whose pip has one index, the recorder: no config file, no find-links, no other index."""
    with RecordingIndex() as index:
        env = {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_INDEX_URL": index.url,
            "PIP_EXTRA_INDEX_URL": "",
            "PIP_FIND_LINKS": "",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_RETRIES": "0",
        }
        ray = LocalRay(env=env, num_cpus=1)
        ray.start()
        try:
            yield ray, index
        finally:
            ray.stop()


def test_a_local_wheel_is_imported_on_a_head_whose_package_index_never_hears_from_pip(
    airgapped: tuple[LocalRay, RecordingIndex], tmp_path: Path
) -> None:
    ray, index = airgapped
    script = tmp_path / "use_wheel.py"
    script.write_text("import airgapped_only_mod\nprint('WHEEL ' + airgapped_only_mod.VALUE)\n")
    cli = ["submit", "--address", ray.address, "--credentials", str(tmp_path), "--script", str(script), "--wait"]

    wheel = make_wheel(tmp_path, "airgapped_only_mod", "1.0", "installed without an index")
    completed = raypod(*cli, "--wheel", str(wheel))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "[job] WHEEL installed without an index" in completed.stdout
    submission_id = completed.stdout.splitlines()[0]
    assert ray_job_on(ray, submission_id)["runtime_env"]["py_modules"] == [f"gcs://{uploaded_name(wheel)}"]
    assert index.paths == []

    # The control: a wheel that needs a package makes pip on this head ask the recorder, and only it.
    needy = tmp_path / "needy"
    needy.mkdir()
    control = make_wheel(needy, "airgapped_needy_mod", "1.0", "x", requires=["raypod-absent-dependency"])
    failed = raypod(*cli, "--wheel", str(control))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "/simple/raypod-absent-dependency/" in index.paths


def ray_job_on(ray: LocalRay, submission_id: str) -> dict[str, Any]:
    response = requests.get(f"{ray.address}/api/jobs/{submission_id}", timeout=30)
    response.raise_for_status()
    return dict(response.json())
