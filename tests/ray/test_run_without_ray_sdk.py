"""What the submitting side needs: `requests`, `minio` and `tenacity`, and no Ray SDK.

The test environment has Ray and the Kubernetes client installed (for the real head), so a
stray import would go unnoticed there: a whole run is made with both refused, and every module
it loaded is traced back to a distribution that the runtime requirements pull in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.helpers import BridgeJob, Services
from tests.support.requirements import RUNTIME, requirement_name

#: Runs raypod's CLI with `ray` and `kubernetes` refused, then prints the distributions of every
#: module it loaded (the standard library has none; what the interpreter's start-up loaded, such
#: as setuptools' distutils hook, is not raypod's).
RUN_WITHOUT_THE_SDK = """\
import sys
at_start = set(sys.modules)
import atexit, importlib.metadata as md, json

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "kubernetes"):
            raise ImportError(name + " is not a runtime dependency of raypod")
        return None

sys.meta_path.insert(0, Refuse())

def report():
    owners = md.packages_distributions()
    names = set(sys.modules) - at_start
    loaded = {owner for name in names for owner in owners.get(name.split(".")[0], [])}
    print("LOADED " + json.dumps(sorted(loaded - {"raypod"})), flush=True)
    admin = getattr(sys.modules.get("minio.minioadmin"), "__file__", None) is not None
    print("MINIO_ADMIN " + json.dumps(admin), flush=True)
    detection = getattr(sys.modules.get("charset_normalizer"), "__file__", None) is not None
    print("CHARSET_DETECTION " + json.dumps(detection), flush=True)

atexit.register(report)
from raypod.cli import main
sys.exit(main(sys.argv[1:]))
"""


def closure(names: set[str]) -> set[str]:
    """The distributions ``names`` pull in, themselves included (extras left out)."""
    from importlib.metadata import PackageNotFoundError, requires

    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needed = requires(name) or []
        except PackageNotFoundError:
            continue
        pending += [requirement_name(line) for line in needed if "extra ==" not in line]
    return seen


@dataclass(frozen=True)
class WholeRun:
    job: BridgeJob
    completed: subprocess.CompletedProcess[str]

    def printed(self, tag: str) -> Any:
        line = next(line for line in self.completed.stdout.splitlines() if line.startswith(tag + " "))
        return json.loads(line[len(tag) + 1 :])


@pytest.fixture(scope="module")
def whole_run(services: Services, tmp_path_factory: pytest.TempPathFactory) -> WholeRun:
    """One job run to its end, its log uploaded, with the Ray SDK and the Kubernetes client refused."""
    job = BridgeJob(tmp_path_factory.mktemp("without-sdk"), services)
    job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('without the SDK')\n")
    job.write_config()
    command = [sys.executable, "-c", RUN_WITHOUT_THE_SDK, *job.command()[3:]]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=job.env())
    return WholeRun(job, completed)


def test_a_whole_run_imports_no_ray_sdk_and_only_the_runtime_requirements(whole_run: WholeRun) -> None:
    completed = whole_run.completed
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert whole_run.job.read_status()["status.jobStatus"] == "SUCCEEDED"
    assert "without the SDK" in whole_run.job.log_text()
    loaded = {name.lower().replace("_", "-") for name in whole_run.printed("LOADED")}
    assert loaded >= RUNTIME  # each of them was used
    assert loaded <= closure(RUNTIME), f"loaded from outside the runtime requirements: {loaded - closure(RUNTIME)}"


def test_a_whole_run_never_loads_minios_admin_client(whole_run: WholeRun) -> None:
    assert whole_run.completed.returncode == 0, whole_run.completed.stderr
    assert whole_run.printed("MINIO_ADMIN") is False


def test_a_whole_run_never_loads_requests_charset_detection(whole_run: WholeRun) -> None:
    # raypod decodes every answer itself: charset_normalizer's 2.8 MiB would be for nothing.
    assert whole_run.completed.returncode == 0, whole_run.completed.stderr
    assert whole_run.printed("CHARSET_DETECTION") is False
