"""Wheels for clusters without a package index: metadata ``wheels`` and ``submit --wheel``.

The end-to-end proof runs on a Ray head of its own whose only package index is a loopback server
that records every request: the job imports a module found only in the wheel, the index hears
nothing, and a control wheel with a dependency shows that pip on that head does ask this index.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import zipfile
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.utils import parse_wheel_filename

from devtools.proxy import Proxy
from devtools.services import LocalRay
from raypod.config import Metadata, parse_metadata
from raypod.entrypoint import build_runtime_env
from raypod.errors import ConfigError
from raypod.package import UPLOAD_LIMIT, wheel_package
from raypod.wheels import content_addressed_name
from tests.support.helpers import BridgeJob, put_object, ray_job, unique
from tests.test_cli import raypod


def make_wheel(directory: Path, name: str, version: str, value: str, *, requires: Sequence[str] = ()) -> Path:
    """A pure-Python wheel made with zipfile: the module, and METADATA, WHEEL and RECORD in its dist-info."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires),
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: raypod-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},sha256={_record_hash(text)},{len(text.encode())}" for path, text in files.items()]
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
    return path


def _record_hash(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def uploaded_name(wheel: Path) -> str:
    return content_addressed_name(wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest())


# -- naming, parsing, merging ------------------------------------------------------------------------
def test_a_wheel_is_uploaded_under_a_name_of_its_content_that_pip_still_reads_as_a_wheel(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    one = wheel_package(make_wheel(first, "mylib", "1.0", "one"), "--wheel")
    other = wheel_package(make_wheel(second, "mylib", "1.0", "two"), "--wheel")  # same file name, other content
    again = wheel_package(make_wheel(second, "mylib", "1.0", "one"), "--wheel")
    assert one.name != other.name and one.name == again.name
    digest = hashlib.sha256((first / "mylib-1.0-py3-none-any.whl").read_bytes()).hexdigest()
    assert one.name == f"mylib-1.0-0{digest[:32]}-py3-none-any.whl"
    assert one.uri == f"gcs://{one.name}"
    name, version, build, tags = parse_wheel_filename(one.name)
    assert (name, str(version), sorted(str(tag) for tag in tags)) == ("mylib", "1.0", ["py3-none-any"])
    assert isinstance(build[0], int) and digest[:32].endswith(build[1])  # a build tag: a number, then the rest
    # A build tag of the wheel's own is replaced: the hash must be the one tie-breaker.
    assert content_addressed_name("my_lib-2.0.post1-7-cp311-cp311-manylinux_2_17_x86_64.whl", "ab" * 32) == (
        f"my_lib-2.0.post1-0{'ab' * 16}-cp311-cp311-manylinux_2_17_x86_64.whl"
    )


def test_wheels_in_the_metadata_are_checked_naming_the_key_and_each_wheel() -> None:
    good = parse_metadata(json.dumps({"wheels": ["bkt:wheels/mylib-1.0-py3-none-any.whl"]}))
    assert [str(location) for location in good.wheels] == ["bkt:wheels/mylib-1.0-py3-none-any.whl"]
    with pytest.raises(ConfigError) as caught:
        parse_metadata(
            json.dumps(
                {
                    "wheels": [
                        "no-colon.whl",
                        "bkt:lib.tar.gz",
                        "bkt:not-a-wheel.whl",
                        "bkt:a/mylib-1.0-py3-none-any.whl",
                        "bkt:b/MyLib-2.0-py3-none-any.whl",
                    ]
                }
            )
        )
    assert caught.value.lines == [
        "jobdata.scriptMetadata: wheels: expected bucket:object, got 'no-colon.whl' (no ':')",
        "jobdata.scriptMetadata: wheels: wheel 'bkt:lib.tar.gz' is not a .whl file",
        "jobdata.scriptMetadata: wheels: wheel 'bkt:not-a-wheel.whl': 'not-a-wheel.whl' is not a wheel file name "
        "(name-version[-build]-python-abi-platform.whl, e.g. mylib-1.0-py3-none-any.whl)",
        "jobdata.scriptMetadata: wheels: wheel 'bkt:b/MyLib-2.0-py3-none-any.whl' and wheel "
        "'bkt:a/mylib-1.0-py3-none-any.whl' are both wheels of MyLib",
    ]
    with pytest.raises(ConfigError, match=r"wheels must be a list of bucket:object \.whl files"):
        parse_metadata(json.dumps({"wheels": "bkt:mylib-1.0-py3-none-any.whl"}))


def test_the_users_py_modules_are_merged_with_the_wheels_and_anything_else_is_an_error() -> None:
    wheels = ["gcs://mylib-1.0-0abc-py3-none-any.whl"]
    env = build_runtime_env(None, Metadata(), {"py_modules": ["s3://bucket/shared.zip", wheels[0]]}, wheels)
    assert env == {"py_modules": ["s3://bucket/shared.zip", wheels[0]]}
    assert build_runtime_env(None, Metadata(), {"py_modules": ["s3://b/x.zip"]}) == {"py_modules": ["s3://b/x.zip"]}
    with pytest.raises(ConfigError, match=r"runtime_env\.py_modules must be a list of URIs to be merged"):
        build_runtime_env(None, Metadata(), {"py_modules": "s3://bucket/shared.zip"}, wheels)


def test_a_wheel_over_rays_upload_limit_is_bad_input_before_it_is_read(tmp_path: Path) -> None:
    wheel = tmp_path / "huge-1.0-py3-none-any.whl"
    with wheel.open("wb") as sparse:
        sparse.truncate(UPLOAD_LIMIT + 1)
    with pytest.raises(ConfigError) as caught:
        wheel_package(wheel, "--wheel")
    assert caught.value.lines == [
        "--wheel: the wheel huge-1.0-py3-none-any.whl is 100.0 MiB, more than the 100.0 MiB Ray's dashboard "
        "takes in one upload"
    ]


def test_validate_knows_the_wheels_key(tmp_path: Path) -> None:
    def validate(metadata: dict[str, Any], **keys: str) -> tuple[int, str]:
        manifest = tmp_path / "cm.json"
        data = {
            "resourceURL": "http://ray.example:8265",
            "jobdata.scriptLocation": "inline",
            "jobdata.jobScript": "import mylib",
            "jobdata.scriptMetadata": json.dumps(metadata),
            **keys,
        }
        manifest.write_text(json.dumps({"kind": "ConfigMap", "data": data}))
        completed = raypod("validate", "--config", str(manifest))
        return completed.returncode, completed.stdout

    wheels = {"wheels": ["bkt:mylib-1.0-py3-none-any.whl"]}
    assert validate(wheels, **{"s3.endpoint": "minio:9000"})[0] == 0
    code, out = validate(wheels)
    assert code == 2 and "error: s3.endpoint: missing, but the wheels of jobdata.scriptMetadata are in S3" in out
    code, out = validate({"wheels": ["bkt:mylib.zip"]}, **{"s3.endpoint": "minio:9000"})
    assert code == 2 and "error: jobdata.scriptMetadata: wheels: wheel 'bkt:mylib.zip' is not a .whl file" in out
    code, out = validate(wheels, **{"s3.endpoint": "minio:9000", "jobproperties": '{"runtime_env": {"py_modules": 1}}'})
    assert code == 2 and "error: jobproperties: runtime_env.py_modules must be a list of URIs" in out


# -- the ConfigMap's wheels, from S3, on the shared head -----------------------------------------------
IMPORT_SCRIPT = "import bridge_wheel_mod\nprint('WHEEL ' + bridge_wheel_mod.VALUE)\n"


@pytest.mark.integration
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


@pytest.mark.integration
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
