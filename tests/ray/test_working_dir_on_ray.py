"""``submit --working-dir``: the job on the real head, its modules imported in remote tasks, and
the upload limit checked before anything reaches Ray."""

from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from devtools.proxy import Proxy
from raypod.package import JOB_FOLDER, UPLOAD_LIMIT, build_package
from raypod.workdir import working_dir_files
from tests.support.cli import client_args, raypod
from tests.support.helpers import Services, jobs_of, ray_job, unique, wait_for_ray_status
from tests.support.working_dir import make_tree

# -- against the real Ray head -----------------------------------------------------------------------
DRIVER = """\
import json, os, sys
import ray
import helper
from lib import util

print("DRIVER " + json.dumps({"helper": helper.VALUE, "util": util.NAME, "cwd": sorted(os.listdir("."))}))
ray.init()


@ray.remote
def in_a_worker():
    import helper
    from lib import util
    return [helper.VALUE, util.NAME, sorted(os.listdir("."))]


print("TASK " + json.dumps(ray.get(in_a_worker.remote())))
print("ARGV " + json.dumps(sys.argv[1:]))
"""


def printed(stdout: str, tag: str) -> object:
    for line in stdout.splitlines():
        if line.removeprefix("[job] ").startswith(tag + " "):
            return json.loads(line.removeprefix("[job] ")[len(tag) + 1 :])
    raise AssertionError(f"no {tag} line in {stdout}")


def test_a_working_dir_is_the_jobs_directory_and_its_modules_import_in_remote_tasks(
    services: Services, tmp_path: Path
) -> None:
    project = make_tree(
        tmp_path / "project",
        {
            "scripts/train.py": DRIVER,
            "helper.py": "VALUE = 21\n",
            "lib/__init__.py": "",
            "lib/util.py": "NAME = 'util'\n",
            "data/keep.csv": "1\n",
            "data/big.bin": "x" * 1000,
            "notes.tmp": "",
            ".env": "SECRET=1\n",
            ".gitignore": ".env\n*.tmp\n",
        },
    )
    name = unique("wd")
    completed = raypod(
        "submit",
        *client_args(services, tmp_path),
        "--working-dir",
        str(project),
        "--script",
        "scripts/train.py",
        "--exclude",
        "*.bin",
        "--param",
        "epochs=3",
        "--job-name",
        name,
        "--wait",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    # The driver and a remote task on a worker both import the working dir's modules, from its top level.
    kept = [".gitignore", "data", "helper.py", "lib", "scripts"]
    assert printed(completed.stdout, "DRIVER") == {"helper": 21, "util": "util", "cwd": kept}
    assert printed(completed.stdout, "TASK") == [21, "util", kept]
    assert printed(completed.stdout, "ARGV") == ["--kwargs", "epochs=3"]
    [job] = jobs_of(services, name)
    info = ray_job(services, job["submission_id"])
    assert info["entrypoint"] == "python scripts/train.py --kwargs epochs=3"  # no `cd raypod_job`
    assert info["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_")


def test_a_working_dir_over_rays_upload_limit_is_bad_input_and_nothing_reaches_ray(
    services: Services, tmp_path: Path
) -> None:
    project = make_tree(tmp_path / "project", {"main.py": "print(1)\n"})
    with (project / "weights.pt").open("wb") as weights:
        for _ in range(UPLOAD_LIMIT // (1024 * 1024) + 1):
            weights.write(os.urandom(1024 * 1024))  # random: it does not compress below the limit
    name = unique("too-big")
    with Proxy("127.0.0.1", services.ray.port) as proxy:
        completed = raypod(
            "submit",
            "--address",
            proxy.url,
            "--credentials",
            str(tmp_path),
            "--working-dir",
            str(project),
            "--script",
            "main.py",
            "--job-name",
            name,
        )
        assert completed.returncode == 2, completed.stdout + completed.stderr
        assert proxy.recorded("PUT") == [] and proxy.recorded("POST") == []
    assert (
        "raypod: bad input: --working-dir: the package is over the 100.0 MiB Ray's dashboard takes in one upload"
        in completed.stderr
    )
    assert "the largest files: weights.pt (101.0 MiB), main.py (9 B)" in completed.stderr
    assert jobs_of(services, name) == []


def test_one_folder_down_in_the_package_a_module_cannot_be_imported_in_remote_tasks(
    services: Services, tmp_path: Path
) -> None:
    """Why a working dir is the package's top level: Ray puts only the top level on the workers' sys.path.

    The same files, laid out as a ConfigMap's are (in ``raypod_job/``), give the driver its module (its
    own folder is on its path) but not a remote task.
    """
    driver = (
        "import ray\nimport helper\nprint('DRIVER', helper.VALUE)\n\n\n@ray.remote\ndef in_a_worker():\n"
        "    import helper\n    return helper.VALUE\n\n\nprint('TASK', ray.get(in_a_worker.remote()))\n"
    )
    project = make_tree(tmp_path / "project", {"main.py": driver, "helper.py": "VALUE = 21\n"})
    output = tmp_path / "out"
    output.mkdir()
    package = build_package(working_dir_files(project), output, folder=JOB_FOLDER)
    address = services.ray_address
    requests.put(f"{address}/api/packages/gcs/{package.name}", data=package.path.read_bytes(), timeout=60)
    body = {"entrypoint": f"cd {JOB_FOLDER} && python main.py", "runtime_env": {"working_dir": package.uri}}
    submission_id = requests.post(f"{address}/api/jobs/", json=body, timeout=60).json()["submission_id"]
    assert wait_for_ray_status(services, submission_id, {"SUCCEEDED", "FAILED", "STOPPED"}) == "FAILED"
    log = requests.get(f"{address}/api/jobs/{submission_id}/logs", timeout=60).json()["logs"]
    assert "DRIVER 21" in log  # the driver imported helper...
    assert "ModuleNotFoundError: No module named 'helper'" in log  # ...the remote task could not
