"""The raypod image, built from the Dockerfile for real and run the way the Bridge operator runs it.

``python -m devtools.image`` (``make image``) builds with docker when a docker daemon answers, else
with buildah, which needs no daemon, and prints the image's name. tests/image/test_container.py builds the
image the same way (buildah), once per session, and runs it with podman through ``Pod``.

- **The base.** Without a registry, buildah builds on a local stand-in for ``python:3.12-slim``:
  Debian bookworm's minimal system with its Python 3.11 and pip (``mmdebstrap``), imported into
  podman's storage as ``localhost/raypod-base:<key>``. The key is a hash of what makes the base, so
  the base is made once (about 20 s) and then found in the store, or re-imported from the tarball
  kept in the cache directory (``$RAYPOD_IMAGE_CACHE``, else ``~/.cache/raypod-image``; delete it
  to refresh the base).
- **The build.** The build context is a copy of what ``.dockerignore`` admits, with a wheelhouse
  from ``make wheelhouse`` for the base's Python, so the build itself is offline and the
  repository's own ``wheelhouse/`` is left alone.
- **The store.** podman and buildah use the vfs driver (no overlay mounts), in the default store
  for ``make image``. The tests use a store of their own in memory (``Store.scratch()``, under
  /dev/shm), removed at the end: vfs copies the whole root filesystem for every container, and on
  ext4, right after many files were deleted (the last container, the build's first stage), creating
  files is slow: 12 s per container here, against 0.5 s on tmpfs.
- **The runtime.** Containers run with runc, not crun (crun cannot set RLIMIT_NOFILE here), and
  runc needs a containers.conf without default ulimits: ``containers_env()`` points CONTAINERS_CONF
  at one.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024

#: podman's and buildah's storage driver: one that needs no overlay mounts.
DRIVER = "vfs"
#: What the container tests need on the machine (.ci/run installs them with apt-get).
TOOLS = ("buildah", "podman", "runc", "mmdebstrap")
#: The local stand-in for python:3.12-slim.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "python-is-python3", "ca-certificates")
BASE_CHANGES = ("ENV PIP_BREAK_SYSTEM_PACKAGES=1",)
BASE_PYTHON = "3.11"
#: The image's user (Dockerfile's USER; the sample pod's runAsUser).
NONROOT = "65532:65532"
#: The operator's memory limit for the pod (samples/kubernetes/pod.yaml: 100Mi).
POD_MEMORY = "100m"
#: The goal for raypod's layers over the base.
SIZE_GOAL = 25 * MiB
#: Where a pod finds its service account.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: A short command's time limit (inspect, rm, ...); the long ones give their own.
SHORT = 120.0


class ImageError(RuntimeError):
    """A build or container step failed; the message holds the command and its output."""


def say(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    configured = os.environ.get("RAYPOD_IMAGE_CACHE")
    if configured:
        path = Path(configured)
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "raypod-image"
    path.mkdir(parents=True, exist_ok=True)
    return path


def containers_env() -> dict[str, str]:
    """This environment with CONTAINERS_CONF naming a containers.conf that lets runc start here."""
    conf = cache_dir() / "containers.conf"
    text = "# raypod's container tests: runc cannot apply podman's default RLIMIT_NOFILE here.\n"
    text += "[containers]\ndefault_ulimits = []\n"
    if not conf.exists() or conf.read_text() != text:
        temp = conf.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(text)
        os.replace(temp, conf)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def missing_requirements() -> list[str]:
    """Why the image cannot be built and run here, one short phrase each; empty when it can."""
    problems = [f"{tool} is not installed" for tool in TOOLS if shutil.which(tool) is None]
    if os.geteuid() != 0:
        problems.append("it needs root (memory limits on cgroup v1)")
    if not (CGROUP_ROOT / "memory" / "memory.max_usage_in_bytes").exists():
        problems.append("it reads peak memory from a cgroup v1 memory controller, and there is none")
    return problems


def command(argv: list[str], *, timeout: float = SHORT, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tool with podman's environment, its output captured; ImageError when it fails."""
    try:
        completed = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=containers_env(), stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as error:
        raise ImageError(f"{' '.join(argv[:4])} ... did not finish within {timeout:.0f} s") from error
    if check and completed.returncode != 0:
        raise ImageError(
            f"{' '.join(argv)} exited {completed.returncode}\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
        )
    return completed


@dataclass(frozen=True)
class Store:
    """Where podman and buildah keep images and containers: the default store, or a directory of its own."""

    directory: Path | None = None

    def args(self, tool: str = "podman") -> list[str]:
        """The global options of ``tool`` (podman or buildah) for this store."""
        if self.directory is None:
            return ["--storage-driver", DRIVER]
        root, run = self.directory / "root", self.directory / "run"
        # podman's own state (exit codes, locks' "alive" file) too, not in the machine's /run/libpod.
        state = ["--tmpdir", str(self.directory / "libpod")] if tool == "podman" else []
        return ["--root", str(root), "--runroot", str(run), *state, "--storage-driver", DRIVER]

    @classmethod
    def scratch(cls) -> Store:
        """A new store of its own, in memory when /dev/shm has room (see the module's docstring)."""
        shm = Path("/dev/shm")
        in_memory = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * 1024 * MiB
        return cls(Path(tempfile.mkdtemp(prefix="raypod-store-", dir=shm if in_memory else None)))

    def drop(self) -> None:
        """Remove a scratch store: its containers (all made by its owner), then its files."""
        if self.directory is None:
            return
        listed = podman("ps", "--all", "--quiet", store=self, check=False).stdout.split()
        if listed:
            podman("rm", "--force", "--time", "0", *listed, store=self, check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


DEFAULT_STORE = Store()


def podman(
    *args: str, store: Store = DEFAULT_STORE, timeout: float = SHORT, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return command(["podman", *store.args(), *args], timeout=timeout, check=check)


def docker_works() -> bool:
    """A docker client whose daemon answers (a client alone is not enough)."""
    if shutil.which("docker") is None:
        return False
    try:
        answered = subprocess.run(["docker", "info"], capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False
    return answered.returncode == 0


def image_exists(name: str, store: Store = DEFAULT_STORE) -> bool:
    return podman("image", "exists", name, store=store, check=False).returncode == 0


def image_id(name: str, store: Store = DEFAULT_STORE) -> str:
    """The image's id in the store; empty when there is none of that name."""
    found = podman("image", "inspect", "--format", "{{.Id}}", name, store=store, check=False)
    return found.stdout.strip() if found.returncode == 0 else ""


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``: two sessions on one machine make the base once."""
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_key() -> str:
    """A hash of everything that makes the stand-in base (changing any of it makes a new one)."""
    inputs = ["mmdebstrap", "minbase", BASE_SUITE, *BASE_PACKAGES, *BASE_CHANGES, platform.machine()]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:12]


def standin_base(store: Store = DEFAULT_STORE) -> str:
    """The local stand-in for python:3.12-slim: made once, then found in the store or imported from the cache."""
    name = f"localhost/raypod-base:{base_key()}"
    cache = cache_dir()
    tarball = cache / f"base-{base_key()}.tar"
    with locked(cache / "base.lock"):
        if image_exists(name, store):
            return name
        if not tarball.exists():
            say(f"making the base with mmdebstrap ({BASE_SUITE}, Python {BASE_PYTHON}); once per cache")
            partial = cache / f"base-{base_key()}-partial.tar"  # mmdebstrap picks the format by the suffix
            partial.unlink(missing_ok=True)
            command(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    BASE_SUITE,
                    str(partial),
                ],
                timeout=1200,
            )
            os.replace(partial, tarball)
        changes = [arg for change in BASE_CHANGES for arg in ("--change", change)]
        podman("import", *changes, str(tarball), name, store=store, timeout=600)
    return name


def oci_labels() -> dict[str, str]:
    """The Dockerfile's label build arguments: where the source is, its version and commit, the licence."""
    version = re.search(r'^__version__ = "(.+)"', (REPO / "raypod" / "__init__.py").read_text(), re.M)
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    return {
        "IMAGE_SOURCE": _git("config", "--get", "remote.origin.url"),
        "IMAGE_VERSION": version.group(1) if version else "",
        "IMAGE_REVISION": revision(),
        "IMAGE_LICENSES": setup.get("metadata", "license", fallback=""),
    }


def revision() -> str:
    """The commit, with ``-dirty`` when what goes into the image differs from it."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return ""
    paths = ["Dockerfile", ".dockerignore", *admitted_paths()]
    # No optional locks: reading the state must not write the index.
    changed = _git("--no-optional-locks", "status", "--porcelain", "--", *paths)
    return f"{head}-dirty" if changed else head


def _git(*args: str) -> str:
    try:
        completed = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""


def admitted_paths() -> list[str]:
    """What .dockerignore lets into the build context (its ``!`` lines), the wheelhouse aside."""
    names = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        if line.startswith("!"):
            name = line[1:].strip().rstrip("/")
            if name and name != "wheelhouse":
                names.append(name)
    return names


def stage_context(destination: Path, python: str) -> None:
    """A build context: the files .dockerignore admits, and a wheelhouse for ``python`` from ``make wheelhouse``."""
    for name in [*admitted_paths(), "Dockerfile", ".dockerignore"]:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, destination / name)
    command(
        [
            "make",
            "-s",
            "-C",
            str(REPO),
            "wheelhouse",
            f"WHEELHOUSE={destination / 'wheelhouse'}",
            f"IMAGE_PYTHON={python}",
        ],
        timeout=900,
    )


def dockerfile_default_base() -> str:
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)", (REPO / "Dockerfile").read_text(), re.M)
    return found.group(1) if found else "python:3.12-slim"


@dataclass(frozen=True)
class Built:
    name: str
    tool: str
    base: str
    #: seconds of the build command itself (the base and the wheelhouse are made before)
    build_seconds: float
    #: seconds to get the base and the wheelhouse ready
    prepare_seconds: float
    #: bytes of raypod's layers over the base (image size minus base size)
    size_over_base: int
    labels: dict[str, str] = field(default_factory=dict)
    #: buildah: the store the image is in
    store: Store = DEFAULT_STORE


def local_name(tag: str) -> str:
    """The name podman lists a buildah-built tag under (``raypod:1`` is ``localhost/raypod:1``)."""
    first = tag.split("/", 1)[0]
    qualified = "/" in tag and ("." in first or ":" in first or first == "localhost")
    return tag if qualified else f"localhost/{tag}"


def build(
    tag: str, *, tool: str = "auto", base: str | None = None, python: str = BASE_PYTHON, store: Store = DEFAULT_STORE
) -> Built:
    """Build the Dockerfile as ``tag``: with docker (its own base, online or from ./wheelhouse) or buildah
    (into ``store``, on the stand-in base unless ``base`` is given, with a wheelhouse for ``python``)."""
    if tool == "auto":
        tool = "docker" if docker_works() else "buildah"
    labels = oci_labels()
    label_args = [arg for key, value in labels.items() for arg in ("--build-arg", f"{key}={value}")]
    if tool == "docker":
        base = base or dockerfile_default_base()
        argv = ["docker", "build", "-t", tag, *label_args, "--build-arg", f"PYTHON_IMAGE={base}", str(REPO)]
        started = time.monotonic()
        say(" ".join(argv))
        _stream({**os.environ, "DOCKER_BUILDKIT": "1"}, argv, timeout=1800)
        seconds = time.monotonic() - started
        size = _size(["docker"], tag) - _size(["docker"], base)
        return Built(tag, tool, base, seconds, 0.0, size, labels)
    if tool != "buildah":
        raise ImageError(f"unknown build tool {tool!r}: docker or buildah")
    name = local_name(tag)
    started = time.monotonic()
    base = base or standin_base(store)
    previous = image_id(name, store)
    with tempfile.TemporaryDirectory(prefix="raypod-context-") as temp:
        context = Path(temp)
        stage_context(context, python)
        prepared = time.monotonic()
        argv = [
            "buildah",
            *store.args("buildah"),
            "bud",
            "--isolation",
            "chroot",
            "--build-arg",
            f"PYTHON_IMAGE={base}",
            *label_args,
            "-t",
            name,
            str(context),
        ]
        say(" ".join(argv))
        _stream(containers_env(), argv, timeout=1800)
        finished = time.monotonic()
    if previous and previous != image_id(name, store):
        # The image this tag named before is now nameless; with vfs each one is a whole root filesystem.
        podman("rmi", previous, store=store, check=False)
    size = _size(["podman", *store.args()], name) - _size(["podman", *store.args()], base)
    return Built(name, tool, base, finished - prepared, prepared - started, size, labels, store)


def _stream(env: Mapping[str, str], argv: list[str], timeout: float) -> None:
    """Run a build; its output, which can be long, goes to a file and its end into the error."""
    with tempfile.TemporaryFile(mode="w+") as output:
        try:
            completed = subprocess.run(
                argv, stdout=output, stderr=subprocess.STDOUT, env=dict(env), timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as error:
            raise ImageError(f"the build did not finish within {timeout:.0f} s") from error
        output.seek(0)
        text = output.read()
    if completed.returncode != 0:
        raise ImageError(f"{' '.join(argv)} exited {completed.returncode}:\n{text[-6000:]}")


def _size(tool: list[str], name: str) -> int:
    return int(command([*tool, "image", "inspect", "--format", "{{.Size}}", name]).stdout.strip())


def inspect(name: str, store: Store = DEFAULT_STORE) -> dict[str, object]:
    """podman's ``image inspect`` of one image."""
    (found,) = json.loads(podman("image", "inspect", name, store=store).stdout)
    return dict(found)


def added_paths(name: str, base: str, store: Store = DEFAULT_STORE) -> list[str]:
    """The paths the image adds to its base (``A`` lines of ``podman image diff``)."""
    lines = podman("image", "diff", name, base, store=store).stdout.splitlines()
    return [line[2:] for line in lines if line.startswith("A ")]


@dataclass
class Pod:
    """One run of the image as the operator's pod (samples/kubernetes/pod.yaml), with podman.

    100 MiB of memory and no swap, a read-only root with ``/tmp`` as a tmpfs, UID 65532, every
    capability dropped, no new privileges, the host's network (every service is on 127.0.0.1),
    ``mounts`` bind-mounted read-only. Its cgroup's parent is one of its own (``--cgroups
    no-conmon`` keeps conmon out of it), so the peak memory can still be read once it has exited.
    """

    image: str
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    #: container path -> host directory, mounted read-only (the Secrets, the service account)
    mounts: Mapping[str, Path] = field(default_factory=dict)
    #: what follows the image: the entrypoint's arguments
    args: tuple[str, ...] = ()
    #: another entrypoint than the image's (for a probe)
    entrypoint: str | None = None
    #: another working directory than the image's
    workdir: str | None = None
    memory: str = POD_MEMORY
    store: Store = DEFAULT_STORE

    @property
    def cgroup_parent(self) -> str:
        return f"raypod-{self.name}"

    def run_args(self) -> list[str]:
        argv = [
            "run",
            "--detach",
            "--name",
            self.name,
            "--runtime",
            "runc",
            "--network",
            "host",
            "--memory",
            self.memory,
            "--memory-swap",
            self.memory,
            "--read-only",
            "--read-only-tmpfs=false",
            "--tmpfs",
            "/tmp:rw,size=64m,mode=1777",
            "--user",
            NONROOT,
            "--cap-drop",
            "all",
            "--security-opt",
            "no-new-privileges",
            "--cgroups",
            "no-conmon",
            "--cgroup-parent",
            f"/{self.cgroup_parent}",
            # The job's whole output goes to stdout; keep the log file (and the disk) small.
            "--log-opt",
            "max-size=16mb",
        ]
        for key, value in self.env.items():
            argv += ["--env", f"{key}={value}"]
        for target, source in self.mounts.items():
            argv += ["--volume", f"{source}:{target}:ro"]
        if self.entrypoint is not None:
            argv += ["--entrypoint", self.entrypoint]
        if self.workdir is not None:
            argv += ["--workdir", self.workdir]
        return [*argv, self.image, *self.args]

    def start(self) -> Pod:
        podman(*self.run_args(), store=self.store, timeout=300)
        return self

    def running(self) -> bool:
        return self.state().get("Running") is True

    def wait(self, timeout: float) -> int:
        """The exit code; a container still running after ``timeout`` is killed (and ImageError raised)."""
        try:
            completed = podman("wait", self.name, timeout=timeout, store=self.store)
        except ImageError:
            podman("kill", self.name, check=False, store=self.store)
            raise
        return int(completed.stdout.strip().splitlines()[-1])

    def stop(self, grace: int) -> float:
        """``podman stop -t grace``: SIGTERM, SIGKILL after ``grace`` seconds; the seconds it took."""
        started = time.monotonic()
        podman("stop", "-t", str(grace), self.name, store=self.store, timeout=grace + SHORT)
        return time.monotonic() - started

    def state(self) -> dict[str, object]:
        (found,) = json.loads(podman("container", "inspect", self.name, store=self.store).stdout)
        return dict(found["State"])

    def exit_code(self) -> int:
        return int(str(self.state()["ExitCode"]))

    def logs(self) -> tuple[str, str]:
        """The container's stdout and stderr (the end of them: the log file is capped)."""
        completed = podman("logs", self.name, check=False, store=self.store)
        return completed.stdout, completed.stderr

    def peak_memory(self) -> int | None:
        """The cgroup's high-water mark of memory use (cgroup v1), in bytes; None where unreadable."""
        path = CGROUP_ROOT / "memory" / self.cgroup_parent / "memory.max_usage_in_bytes"
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    def remove(self) -> None:
        """Remove the container (killed if running) and the cgroups made for it, by name only."""
        podman("rm", "--force", "--time", "0", self.name, check=False, store=self.store)
        for controller in CGROUP_ROOT.iterdir() if CGROUP_ROOT.is_dir() else []:
            own = controller / self.cgroup_parent
            if not own.is_dir():
                continue
            for directory, _, _ in sorted(os.walk(own), key=lambda entry: -len(entry[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)

    def __enter__(self) -> Pod:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.image",
        description="Build the raypod image from the Dockerfile (docker if its daemon answers, else buildah) "
        "and print its name.",
    )
    parser.add_argument("--tag", default="raypod:latest", help="the image's name (default: %(default)s)")
    parser.add_argument("--tool", choices=["auto", "docker", "buildah"], default="auto")
    parser.add_argument(
        "--base",
        help="the base image (PYTHON_IMAGE); default: the Dockerfile's with docker, a local Debian stand-in "
        "with buildah",
    )
    parser.add_argument(
        "--python",
        default=BASE_PYTHON,
        help="buildah: the base's Python, for the wheelhouse (default: %(default)s, the stand-in's)",
    )
    options = parser.parse_args(argv)
    tool = options.tool
    if tool == "auto":
        tool = "docker" if docker_works() else "buildah"
    needed = ("buildah", "podman") if options.base else ("buildah", "podman", "mmdebstrap")
    missing = [name for name in needed if shutil.which(name) is None] if tool == "buildah" else []
    if missing:
        print(
            f"no docker daemon, and {', '.join(missing)} not installed: apt-get install -y {' '.join(TOOLS)}",
            file=sys.stderr,
        )
        return 2
    try:
        built = build(options.tag, tool=tool, base=options.base, python=options.python)
    except ImageError as error:
        print(error, file=sys.stderr)
        return 1
    say(
        f"built with {built.tool} in {built.build_seconds:.1f} s (base and wheels ready in "
        f"{built.prepare_seconds:.1f} s); raypod's layers over {built.base}: {built.size_over_base / MiB:.1f} MiB"
    )
    print(built.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
