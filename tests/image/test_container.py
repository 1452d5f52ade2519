"""The image, built from the Dockerfile for real and run the way the Bridge operator runs the pod.

The image is built once per session with buildah (devtools/image.py: offline from `make wheelhouse`,
on a local Debian stand-in for python:3.12-slim that is made once and cached). Each test runs it
with podman as samples/kubernetes/pod.yaml does: 100 MiB of memory, a read-only root with /tmp as
a tmpfs, UID 65532, every capability dropped, no new privileges, the resource and S3 Secrets
mounted read-only at /credentials and /s3credentials. In Kubernetes mode the service account is
mounted at its standard path and KUBERNETES_SERVICE_HOST/PORT name the fake API server; the
container shares the host's network, and every service it reaches is on 127.0.0.1.

The figures (build time, size over the base, peak memory, seconds to exit after `podman stop`)
are recorded with record_property and shown at the end of the run ("raypod image"); only the
size has a goal that is asserted. Without buildah, podman, runc, mmdebstrap, root or cgroup v1
these tests are skipped with one reason; with CI=true that is a failure instead.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import raypod
from devtools.fake_kube import FakeKube
from devtools.image import (
    NONROOT,
    SERVICE_ACCOUNT_DIR,
    SIZE_GOAL,
    Built,
    MiB,
    Pod,
    Store,
    added_paths,
    build,
    inspect,
    missing_requirements,
)
from devtools.proxy import Proxy
from tests.support.helpers import (
    Services,
    jobs_of,
    ray_job,
    stop_ray_job,
    unique,
    wait_for_ray_status,
    waiting_script,
)
from tests.support.samples import one, sample_on_local_services

Record = Callable[[str, object], None]
#: The pod's grace period (the operator's pods keep Kubernetes' default).
GRACE = 30
#: Ray's job list, where a submission is a POST.
JOBS = r"^/api/jobs/$"
#: A job whose log is 200 MB: 100-byte numbered lines, 1 MB per write.
BIG_LOG_MB = 200
BIG_LOG_SCRIPT = f"""\
import sys
for block in range({BIG_LOG_MB}):
    sys.stdout.write("".join(f"line {{block:04d}} {{i:05d}} " + "x" * 83 + "\\n" for i in range(10_000)))
sys.stdout.flush()
print("wrote {BIG_LOG_MB} MB", flush=True)
"""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


PROBLEMS = missing_requirements()
REASON = f"the image is not built and run here: {'; '.join(PROBLEMS)}"
if PROBLEMS and not in_ci():
    pytest.skip(REASON, allow_module_level=True)  # one line in the summary for the whole module


class Figures:
    """The measured figures, shown in a section of the terminal summary at the end of the run."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, record_property: Record, name: str, value: object, line: str) -> None:
        record_property(name, value)
        self.lines.append(line)
        print(line)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.lines:
            terminalreporter.section("raypod image")
            for line in self.lines:
                terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def figures(request: pytest.FixtureRequest) -> Figures:
    plugin = Figures()
    request.config.pluginmanager.register(plugin, "raypod-image-figures")
    return plugin


@pytest.fixture(scope="session")
def image(figures: Figures) -> Iterator[Built]:
    if PROBLEMS:  # only with CI=true: elsewhere the module is skipped
        pytest.fail(f"CI=true, and {REASON} (.ci/run installs the tools)", pytrace=False)
    # A store of the session's own, in memory: every container copies the whole root filesystem.
    store = Store.scratch()
    try:
        built = build(f"raypod-test:{uuid.uuid4().hex[:8]}", tool="buildah", store=store)
        figures.lines.append(
            f"built with buildah in {built.build_seconds:.1f} s (base and wheels ready in "
            f"{built.prepare_seconds:.1f} s); raypod's layers over the base: {built.size_over_base / MiB:.1f} MiB "
            f"(goal: at most {SIZE_GOAL // MiB} MiB)"
        )
        yield built
    finally:
        store.drop()


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKube]:
    with FakeKube(tmp_path / "kube") as fake:
        yield fake


@pytest.fixture
def secrets(tmp_path: Path, services: Services) -> dict[str, Path]:
    """The resource Secret (samples/kubernetes/secrets.yaml) and the S3 one, as the pod mounts them."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for key, value in one("Secret", "ray-resource-secret")["stringData"].items():
        (credentials / key).write_text(value)
    return {"/credentials": credentials, "/s3credentials": services.s3.write_credentials(tmp_path / "s3credentials")}


def operator_pod(
    image: Built, kube: FakeKube, job_name: str, secrets: dict[str, Path], *, command: tuple[str, ...] = ()
) -> Pod:
    """The pod the operator starts for ``job_name``: no flags, only its environment and mounts.
    ``command``: what replaces the image's entrypoint (a Kubeflow component's ``sh -c ...``)."""
    return Pod(
        image.name,
        unique("raypod-test"),
        entrypoint=command[0] if command else None,
        args=command[1:],
        store=image.store,
        env={
            "JOBNAME": job_name,
            "NAMESPACE": kube.namespace,  # the pod's fieldRef metadata.namespace
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": kube.url.rsplit(":", 1)[1],
        },
        mounts={**secrets, SERVICE_ACCOUNT_DIR: kube.sa_dir},
    )


def poll(predicate: Callable[[], bool], what: str, timeout: float) -> None:
    """Wait for ``predicate`` once a second (each look runs podman or asks the fake API)."""
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished(pod: Pod, timeout: float) -> tuple[int, str, str]:
    """The exit code once the container has ended, and its stdout and stderr."""
    code = pod.wait(timeout)
    stdout, stderr = pod.logs()
    return code, stdout, stderr


def read_object(services: Services, bucket: str, name: str) -> str:
    response = services.s3.client().get_object(bucket, name)
    try:
        return str(response.read().decode())
    finally:
        response.close()
        response.release_conn()


def test_image_is_labelled_non_root_and_adds_only_raypod_to_its_base(image: Built, record_property: Record) -> None:
    # The figures' line is written when the image is built; here they go into the report as well.
    record_property("size_over_base_mib", round(image.size_over_base / MiB, 1))
    record_property("build_seconds", round(image.build_seconds, 1))
    config = inspect(image.name, image.store)
    labels = dict(config["Labels"])  # type: ignore[call-overload]
    assert labels["org.opencontainers.image.version"] == raypod.__version__
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.revision"] == image.labels["IMAGE_REVISION"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.source"] == image.labels["IMAGE_SOURCE"]
    assert config["User"] == NONROOT
    assert config["Config"]["Entrypoint"] == ["python", "-m", "raypod"]  # type: ignore[index]
    # Run from a folder of the image's own, where nothing the pod writes can shadow a module, with
    # no working directory on sys.path at all; the first ray-pod's entry file is there.
    assert config["Config"]["WorkingDir"] == "/app"  # type: ignore[index]
    assert "PYTHONSAFEPATH=1" in config["Config"]["Env"]  # type: ignore[index]

    # raypod's layer holds Python packages and their scripts, and the first ray-pod's entry file,
    # nothing else: no wheels, no pip.
    added = added_paths(image.name, image.base, image.store)
    assert added and all(path.startswith("/usr/local/") or path in ("/app", "/app/ray-pod.py") for path in added), added
    assert not [path for path in added if path.endswith(".whl") or re.search(r"/pip[-/]", path)]
    assert image.size_over_base <= SIZE_GOAL, f"raypod's layers: {image.size_over_base / MiB:.1f} MiB"

    # What the runtime can import, checked in the pod's own settings.
    probe = (
        "import importlib.util as u, raypod\n"
        "print('present', [n for n in ('raypod', 'requests', 'minio', 'tenacity') if u.find_spec(n)])\n"
        "print('missing', [n for n in ('ray', 'kubernetes', 'yaml') if u.find_spec(n) is None])\n"
        "print('version', raypod.__version__)\n"
    )
    pod = Pod(image.name, unique("raypod-test"), args=("--version",), store=image.store)
    with pod:
        code, stdout, stderr = finished(pod, timeout=120)
    assert (code, stdout.strip()) == (0, f"raypod {raypod.__version__}"), stderr
    pod = Pod(image.name, unique("raypod-test"), entrypoint="python", args=("-c", probe), store=image.store)
    with pod:
        code, stdout, stderr = finished(pod, timeout=120)
    assert code == 0, stderr
    assert "present ['raypod', 'requests', 'minio', 'tenacity']" in stdout
    assert "missing ['ray', 'kubernetes', 'yaml']" in stdout


@pytest.mark.parametrize("case", ["inline", "s3"])
def test_sample_configmap_runs_in_kubernetes_mode_with_no_flags(
    case: str, image: Built, kube: FakeKube, secrets: dict[str, Path], services: Services
) -> None:
    configmap, data = sample_on_local_services(case, services)
    name = configmap["metadata"]["name"]
    job_name, bucket = name.removesuffix("-bridge-cm"), data["s3upload.bucket"]
    kube.create_configmap(name, data)

    with operator_pod(image, kube, job_name, secrets) as pod:
        code, stdout, stderr = finished(pod, timeout=300)
        state = pod.state()
    status = kube.data(name)
    assert code == 0, f"{status}\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert state["OOMKilled"] is False
    assert status["status.jobStatus"] == "SUCCEEDED"
    assert status["status.message"] == f"Job succeeded; log uploaded to s3://{bucket}/{job_name}/logs."
    # Other tests of the session may have run the same sample on this head: the id is one of them.
    assert status["id"] in [job["submission_id"] for job in jobs_of(services, job_name)]
    log = read_object(services, bucket, f"{job_name}/logs")
    assert "sum of squares below 20: 2470" in log
    if case == "s3":
        assert "greeting file says: Hello from an additionalData file in S3" in log


def test_a_200_mb_log_is_uploaded_within_the_pods_100_mib(
    image: Built,
    kube: FakeKube,
    secrets: dict[str, Path],
    services: Services,
    figures: Figures,
    record_property: Record,
) -> None:
    job_name = unique("bigjob")
    bucket = unique("bucket")
    kube.create_configmap(
        f"{job_name}-bridge-cm",
        {
            "resourceURL": services.ray_address,
            "updateInterval": "1",
            "jobdata.scriptLocation": "inline",
            "jobdata.jobScript": BIG_LOG_SCRIPT,
            "s3.endpoint": services.s3.endpoint,
            "s3.secure": "false",
            "s3.secret": "s3-secret",
            "s3upload.bucket": bucket,
        },
    )
    with operator_pod(image, kube, job_name, secrets) as pod:
        code, stdout, stderr = finished(pod, timeout=600)
        state = pod.state()
        peak = pod.peak_memory()
    status = kube.data(f"{job_name}-bridge-cm")
    assert code == 0, f"{status}\n{stdout[-3000:]}\n{stderr[-3000:]}"
    assert state["OOMKilled"] is False
    assert status["status.jobStatus"] == "SUCCEEDED", status
    stat = services.s3.client().stat_object(bucket, f"{job_name}/logs")
    assert stat.size >= BIG_LOG_MB * 1_000_000
    assert peak is not None, "the container's cgroup could not be read"
    figures.add(
        record_property,
        "peak_memory_mib",
        round(peak / MiB, 1),
        f"peak memory of the pod for a {stat.size / 1e6:.0f} MB log: {peak / MiB:.1f} MiB of 100 MiB "
        "(cgroup memory.max_usage_in_bytes)",
    )


def test_podman_stop_leaves_the_operators_pod_succeeded_and_a_kubeflow_style_pod_re_attaches(
    image: Built,
    kube: FakeKube,
    secrets: dict[str, Path],
    services: Services,
    ray_proxy: Proxy,
    tmp_path: Path,
    figures: Figures,
    record_property: Record,
) -> None:
    job_name = unique("stopjob")
    cm = f"{job_name}-bridge-cm"
    release = tmp_path / "release"  # the job runs on this machine's Ray, so it sees the file
    kube.create_configmap(
        cm,
        {
            "resourceURL": ray_proxy.url,
            "updateInterval": "1",
            "jobdata.scriptLocation": "inline",
            "jobdata.jobScript": f"# {job_name}\n{waiting_script(release)}",
            "s3.endpoint": services.s3.endpoint,
            "s3.secure": "false",
            "s3.secret": "s3-secret",
            "s3upload.bucket": unique("bucket"),
        },
    )
    submission_id = ""
    try:
        with operator_pod(image, kube, job_name, secrets) as first:
            poll(
                lambda: kube.data(cm).get("status.jobStatus") == "RUNNING" or not first.running(),
                "the first pod to see the job RUNNING",
                timeout=180,
            )
            submission_id = kube.data(cm)["id"]
            seconds = first.stop(GRACE)
            code = first.exit_code()
            stdout, stderr = first.logs()
        figures.add(
            record_property,
            "exit_seconds",
            round(seconds, 2),
            f"podman stop -t {GRACE} during a running job: exit {code} after {seconds:.1f} s",
        )
        # 0: as the operator's pod raypod left on SIGTERM without ending in phase Failed (which would
        # fail the BridgeJob); 137 would be podman's SIGKILL at the end of the grace period.
        assert code == 0, f"{stdout[-3000:]}\n{stderr[-3000:]}"
        assert f"Ray job {submission_id} keeps running" in stdout + stderr
        assert ray_job(services, submission_id)["status"] == "RUNNING"
        assert kube.data(cm)["status.jobStatus"] == "RUNNING"

        # The next pod as a pipeline written for the first ray-pod starts it: `python -u ./ray-pod.py`.
        kubeflow = ("sh", "-c", "python -u ./ray-pod.py")
        with operator_pod(image, kube, job_name, secrets, command=kubeflow) as second:
            poll(
                lambda: f"re-attached to Ray job {submission_id}" in "".join(second.logs()) or not second.running(),
                "the second pod to re-attach",
                timeout=120,
            )
            release.touch()
            code, stdout, stderr = finished(second, timeout=300)
        status = kube.data(cm)
        assert code == 0, f"{status}\n{stdout[-3000:]}\n{stderr[-3000:]}"
        assert status["id"] == submission_id
        assert status["status.jobStatus"] == "SUCCEEDED"
        assert len(ray_proxy.recorded("POST", JOBS)) == 1, "the second pod must not submit again"
        assert [job["submission_id"] for job in jobs_of(services, job_name)] == [submission_id]
    finally:
        release.touch()
        if submission_id and ray_job(services, submission_id)["status"] in ("PENDING", "RUNNING"):
            stop_ray_job(services, submission_id)
            wait_for_ray_status(services, submission_id, {"STOPPED", "SUCCEEDED", "FAILED"}, timeout=60)


def test_a_bad_configmap_exits_2_with_the_message_in_the_configmap(
    image: Built, kube: FakeKube, secrets: dict[str, Path], ray_proxy: Proxy
) -> None:
    job_name = unique("badjob")
    cm = f"{job_name}-bridge-cm"
    kube.create_configmap(
        cm,
        {
            "resourceURL": ray_proxy.url,
            "updateInterval": "twenty",
            "jobdata.scriptLocation": "inline",
            "jobdata.jobScript": "print('never runs')\n",
        },
    )
    with operator_pod(image, kube, job_name, secrets) as pod:
        code, stdout, stderr = finished(pod, timeout=120)
    status = kube.data(cm)
    assert code == 2, f"{stdout}\n{stderr}"
    assert "bad input: updateInterval: " in stderr
    assert "Traceback" not in stderr
    assert status["status.jobStatus"] == "FAILED"
    assert status["status.message"].startswith("Bad input: updateInterval: ")
    assert ray_proxy.recorded() == [], "bad input must be found before Ray is contacted"


def test_a_module_in_the_working_directory_cannot_shadow_what_raypod_imports(image: Built, tmp_path: Path) -> None:
    """The pod's working directory may be an emptyDir other containers write (/tmp): PYTHONSAFEPATH keeps
    a ``tenacity.py`` (or ``json.py``) there from replacing the module raypod imports."""
    shared = tmp_path / "shared"
    (shared / "cm").mkdir(parents=True)
    for module in ("tenacity", "json", "requests", "raypod"):
        (shared / f"{module}.py").write_text("import sys\nprint('SHADOWED', file=sys.stderr)\nsys.exit(97)\n")
    config = {
        "resourceURL": "http://127.0.0.1:8265",
        "jobdata.scriptLocation": "inline",
        "jobdata.jobScript": "print('hi')\n",
    }
    for key, value in config.items():
        (shared / "cm" / key).write_text(value)
    pod = Pod(
        image.name,
        unique("raypod-test"),
        args=("validate", "--config", "/shared/cm"),
        mounts={"/shared": shared},
        workdir="/shared",
        store=image.store,
    )
    with pod:
        code = pod.wait(timeout=120)
        stdout, stderr = pod.logs()

    assert "SHADOWED" not in stdout + stderr
    assert code == 0, f"{stdout}\n{stderr}"
