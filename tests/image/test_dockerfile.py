"""The Dockerfile read as text, and its runtime replayed in venvs on this machine's Python.

The image itself is built and run by tests/image/test_container.py (buildah and podman). The replay here
needs neither, and takes about 13 s: it does what the Dockerfile does, with the commands parsed
from it (so the two cannot drift apart): `make wheelhouse`, the build stage's offline pip commands
in a fresh venv, the runtime stage's install (and removal of pip) in another fresh venv. It then
runs a job with that runtime against the real Ray and S3.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from devtools.measure import run_measured
from tests.support.helpers import REPO, BridgeJob

DOCKERFILE = REPO / "Dockerfile"
MiB = 1024 * 1024
#: The pod's memory limit in the operator's pod spec.
POD_MEMORY_LIMIT = 100 * MiB


def stages(text: str) -> dict[str, list[str]]:
    """Each stage's RUN commands (continuations joined, RUN flags such as --mount dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    result: dict[str, list[str]] = {}
    current = ""
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip() if " AS " in line else line
            result[current] = []
        elif line.startswith("RUN ") and current:
            words = line[len("RUN ") :].split(" ")
            while words and words[0].startswith("--"):
                words.pop(0)
            result[current].append(" ".join(words))
    return result


def stage_env(text: str, stage: str) -> dict[str, str]:
    """The ENV settings of one stage (the `ENV KEY=value ...` form)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    env: dict[str, str] = {}
    current = ""
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            current = line.split(" AS ")[-1].strip()
        elif line.startswith("ENV ") and current == stage:
            for word in shlex.split(line[len("ENV ") :]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def pip_commands(run_line: str) -> list[list[str]]:
    """The `python -m pip ...` commands of one RUN line, split at `;` and `&&`."""
    commands = []
    for part in re.split(r";|&&", run_line):
        part = part.strip()
        if part.startswith("python -m pip "):
            commands.append(shlex.split(part))
    return commands


def clean_pip_env() -> dict[str, str]:
    """An environment like the image build's: no pip configuration, indexes or find-links from this host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert completed.returncode == 0, f"{command}\n{completed.stdout}\n{completed.stderr}"
    return completed  # type: ignore[no-any-return]


def directory_size(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink())


def test_dockerfile_runtime_is_slim_non_root_and_runs_raypod() -> None:
    text = DOCKERFILE.read_text()
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in text
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\} AS runtime$", text, re.M)
    assert re.search(r"^USER 65532:65532$", text, re.M)
    assert 'ENTRYPOINT ["python", "-m", "raypod"]' in text
    runtime = stages(text)["runtime"]
    install = [c for line in runtime for c in pip_commands(line) if "install" in c]
    assert len(install) == 1
    assert {"--no-cache-dir", "--no-index"} <= set(install[0]) and install[0][-1] == "raypod"


def test_dockerfile_names_no_frontend_image_so_an_air_gapped_build_pulls_nothing() -> None:
    # `# syntax=` before the first instruction makes BuildKit pull that frontend image from a registry.
    directives = re.findall(r"^#\s*(\w+)\s*=", DOCKERFILE.read_text().split("\nARG ", 1)[0], re.M)
    assert "syntax" not in [name.lower() for name in directives]


def test_dockerfile_labels_the_runtime_from_build_arguments() -> None:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    runtime = text.split(" AS runtime", 1)[1]
    labels = dict(re.findall(r'(org\.opencontainers\.image\.\w+)="\$\{(\w+)\}"', runtime))
    assert labels == {
        "org.opencontainers.image.source": "IMAGE_SOURCE",
        "org.opencontainers.image.version": "IMAGE_VERSION",
        "org.opencontainers.image.revision": "IMAGE_REVISION",
        "org.opencontainers.image.licenses": "IMAGE_LICENSES",
    }
    for arg in labels.values():
        assert re.search(rf"^ARG {arg}=", runtime, re.M), arg
    # After the install, so that a new commit does not invalidate the install's layer.
    assert runtime.index("pip uninstall") < runtime.index("LABEL ")


def test_runtime_installed_as_the_dockerfile_does_runs_a_whole_job_without_ray(
    tmp_path: Path, bridge_job: BridgeJob
) -> None:
    env = clean_pip_env()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    # 1. `make wheelhouse`, for this interpreter (the image's would be IMAGE_PYTHON=3.12).
    wheelhouse = tmp_path / "wheelhouse"
    run(["make", "-C", str(REPO), "wheelhouse", f"WHEELHOUSE={wheelhouse}", f"IMAGE_PYTHON={version}"])
    assert list(wheelhouse.glob("raypod-*.whl"))

    parsed = stages(DOCKERFILE.read_text())
    image_env = stage_env(DOCKERFILE.read_text(), "runtime")
    assert image_env == {"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONSAFEPATH": "1"}
    wheels = tmp_path / "wheels"

    def localize(command: list[str], python: Path) -> list[str]:
        replaced = {"$offline": "--no-index", "wheelhouse": str(wheelhouse), "/wheels": str(wheels), ".": str(REPO)}
        assert command[:3] == ["python", "-m", "pip"]
        return [str(python), "-m", "pip", *(replaced.get(word, word) for word in command[3:])]

    # 2. The build stage, offline (the wheelhouse is there): its pip commands in a fresh venv.
    build_venv = tmp_path / "build-venv"
    run([sys.executable, "-m", "venv", str(build_venv)])
    build_commands = [c for line in parsed["wheels"] for c in pip_commands(line)]
    assert len(build_commands) == 2 and all("$offline" in c for c in build_commands)
    for command in build_commands:
        run(localize(command, build_venv / "bin" / "python"), env=env, cwd=REPO)

    # 3. The runtime stage: its pip commands in another fresh venv.
    runtime = tmp_path / "runtime"
    run([sys.executable, "-m", "venv", str(runtime)])
    python = runtime / "bin" / "python"
    if sys.version_info < (3, 12):
        # Before 3.12 a venv comes with setuptools; the python:3.12-slim base image has none.
        run([str(python), "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"], env=env)
    runtime_commands = [c for line in parsed["runtime"] for c in pip_commands(line)]
    for command in runtime_commands:
        run(localize(command, python), env={**env, **image_env})

    probe = (
        "import importlib.metadata as m, importlib.util as u, json\n"
        "print(json.dumps({'dists': sorted(d.metadata['Name'].lower() for d in m.distributions()),"
        " 'missing': [n for n in ('ray', 'kubernetes', 'pip', 'yaml') if u.find_spec(n) is None],"
        " 'present': [n for n in ('raypod', 'requests', 'minio', 'tenacity') if u.find_spec(n)]}))\n"
    )
    report = __import__("json").loads(run([str(python), "-I", "-c", probe]).stdout)
    assert report["missing"] == ["ray", "kubernetes", "pip", "yaml"]
    assert report["present"] == ["raypod", "requests", "minio", "tenacity"]
    assert not {"ray", "kubernetes", "pip", "setuptools", "pyyaml"} & set(report["dists"])
    (site_packages,) = runtime.glob("lib/python*/site-packages")
    size = directory_size(site_packages)
    print(f"\nruntime install (site-packages, pip removed): {size / MiB:.1f} MiB; distributions: {report['dists']}")

    # 4. A whole job with that runtime, against the real Ray and S3.
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('from the slim runtime')\n")
    bridge_job.write_config()
    command = [str(python), *bridge_job.command()[1:]]
    stdout_path = tmp_path / "stdout"
    with stdout_path.open("wb") as stdout:
        # Measured by a small launcher: a child of pytest would report pytest's own peak RSS.
        usage = run_measured(command, env={**bridge_job.env(), **image_env}, cwd=tmp_path, stdout=stdout, timeout=300)
    assert usage.returncode == 0, usage.stderr
    peak = usage.peak_rss_kib * 1024
    print(f"raypod peak RSS for the job in the slim runtime: {peak / MiB:.1f} MiB")
    assert bridge_job.read_status()["status.jobStatus"] == "SUCCEEDED"
    assert "from the slim runtime" in bridge_job.log_text()
    assert peak < POD_MEMORY_LIMIT
