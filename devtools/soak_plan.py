"""What one soak run does, drawn from its seed: the pod's store, the script, the properties, the
secrets and how they reach the pod, and the faults (when, what, on which calls).

A plan is a pure function of its seed (``plan_run(seed)``), so a failing run is replayed with the
same seed. The timing of a replay is the machine's, so a replay meets the same faults at the same
offsets, not always at the same point of raypod's work.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

#: Where the pod writes its status: the fake Kubernetes API (in-cluster env vars, a service
#: account's token and CA), or ``--config DIR`` and ``--status-file``.
STORES = ("kube", "file")
#: What the job's script does.
SCRIPTS = ("succeed", "fail", "sleep", "flaky", "big_input")

#: Faults through the proxy in front of the dashboard, by kind: the calls each may hit.
RAY_FAULTS: dict[str, tuple[str, ...]] = {
    "http5xx": ("poll", "submit", "version", "packages", "stop", "logs", "any"),
    "html404": ("poll", "stop", "logs", "version", "any"),
    "trickle": ("poll", "version"),
    "reset": ("poll", "submit", "version", "packages", "logs", "any"),
    "garbled": ("poll", "version", "submit"),
    "lost_answer": ("submit", "poll"),
    "slow": ("poll", "submit", "version", "packages", "any"),
    "echo": ("poll", "version", "packages", "logs", "submit"),
}
#: Faults that are not one call's: the dashboard away for a few seconds; the Kubernetes API's.
OTHER_FAULTS = ("down", "kube503", "kube_slow")
#: What a run's shape adds: SIGTERM and a replacement pod, a small /tmp, a mounted ConfigMap that lags.
SHAPES = ("sigterm", "small_tmp", "stale_mount")
FAULT_KINDS = (*RAY_FAULTS, *OTHER_FAULTS, *SHAPES)

#: (method, path regex) of the dashboard's calls, as the proxy's rules match them.
TARGETS: dict[str, tuple[str, str]] = {
    "poll": ("GET", r"^/api/jobs/[^/?]+/?(\?.*)?$"),
    "submit": ("POST", r"^/api/jobs/?$"),
    "version": ("GET", r"^/api/version"),
    "packages": (".*", r"^/api/packages/"),
    "stop": ("POST", r"^/api/jobs/[^/]+/stop"),
    "logs": ("GET", r"/logs"),
    "any": (".*", r".*"),
}

#: retryDelaySeconds of every plan with retries: short, so that runs stay short.
RETRY_DELAY_SECONDS = 1

#: How big the small /tmp is (a tmpfs, or RLIMIT_FSIZE), and the input that does not fit in it.
SMALL_TMP_BYTES = 256 * 1024
BIG_INPUT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Fault:
    #: Seconds after the run's start.
    at: float
    kind: str
    #: A key of TARGETS; "get"/"patch" for the Kubernetes API; "" for ``down``.
    target: str = ""
    times: int = 1
    #: The status code, or the seconds (slow, trickle per byte, down, the Kubernetes API's slowness).
    value: float = 0.0
    #: echo: how many characters come before the secrets in the page.
    pad: int = 0

    def label(self) -> str:
        return f"{self.kind}@{self.target}" if self.target else self.kind


@dataclass(frozen=True)
class Secrets:
    """Values that must never appear in any output; the soak never prints them either."""

    token: str
    header: str
    s3: str

    def named(self) -> dict[str, str]:
        return {"ray token": self.token, "header": self.header, "S3 secret key": self.s3}


@dataclass(frozen=True)
class Plan:
    seed: int
    store: str
    script: str
    #: How long the script runs, in seconds.
    seconds: float
    retries: int
    start_deadline: int | None
    active_deadline: int | None
    connect_timeout: int
    #: How the token reaches the pod: the credentials dir's ``token``, or ``RAY_AUTH_TOKEN_PATH``.
    token_via: str
    #: How the extra header reaches the pod: ``headers.json``, or ``RAY_JOB_HEADERS``.
    header_via: str
    secrets: Secrets
    faults: tuple[Fault, ...] = ()
    #: Seconds after each pod's start at which it gets SIGTERM; one replacement pod per entry.
    sigterms: tuple[float, ...] = ()
    #: "tmpfs", "fsize" or None.
    small_tmp: str | None = None
    #: The replacement pods read a mounted ConfigMap that lags the API (kube only).
    stale_mount: bool = False
    kinds: tuple[str, ...] = field(default=())

    @property
    def properties(self) -> dict[str, int]:
        properties: dict[str, int] = {}
        if self.retries:
            properties |= {"retries": self.retries, "retryDelaySeconds": RETRY_DELAY_SECONDS}
        if self.start_deadline is not None:
            properties["startDeadlineSeconds"] = self.start_deadline
        if self.active_deadline is not None:
            properties["activeDeadlineSeconds"] = self.active_deadline
        return properties

    def summary(self) -> str:
        parts = [self.store, f"{self.script} {self.seconds:.0f}s"]
        parts += [f"{key}={value}" for key, value in self.properties.items() if key != "retryDelaySeconds"]
        parts += [fault.label() for fault in self.faults]
        parts += [f"sigterm+{at:.1f}s" for at in self.sigterms]
        if self.small_tmp:
            parts.append(f"small_tmp({self.small_tmp})")
        if self.stale_mount:
            parts.append("stale_mount")
        return ", ".join(parts)


def _secret(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(32))


def _ray_fault(rng: random.Random) -> Fault:
    kind = rng.choice(list(RAY_FAULTS))
    target = rng.choice(RAY_FAULTS[kind])
    at = round(rng.uniform(0.0, 10.0), 1)
    if kind == "http5xx":
        return Fault(at, kind, target, rng.randint(1, 3), rng.choice((500, 502, 503, 504)))
    if kind in ("html404", "reset"):
        return Fault(at, kind, target, rng.randint(1, 3))
    if kind == "trickle":
        return Fault(at, kind, target, 1, rng.choice((0.5, 1.0, 2.0)))
    if kind == "garbled":
        return Fault(at, kind, target, rng.randint(1, 2))
    if kind == "lost_answer":
        return Fault(at, kind, target, 1)
    if kind == "slow":
        return Fault(at, kind, target, rng.randint(1, 2), rng.choice((2.0, 4.0, 8.0)))
    # echo: an error page that repeats the request's headers, the secrets at a random offset, so
    # that a cut anywhere near a message's limit falls inside one.
    status = 400 if target == "submit" else rng.choice((500, 502))
    return Fault(at, kind, target, 1, status, pad=rng.randint(0, 600))


def _other_fault(rng: random.Random, store: str) -> Fault | None:
    kind = rng.choice(OTHER_FAULTS)
    at = round(rng.uniform(0.0, 10.0), 1)
    if kind == "down":
        return Fault(at, kind, "", 1, rng.choice((2.0, 4.0, 6.0)))
    if store != "kube":
        return None
    verb = rng.choice(("get", "patch"))
    if kind == "kube503":
        return Fault(at, kind, verb, rng.randint(1, 3), 503)
    return Fault(at, kind, verb, rng.randint(1, 2), rng.choice((1.0, 2.0, 4.0)))


def plan_run(seed: int, *, can_mount: bool) -> Plan:
    """The run of ``seed``. ``can_mount``: a tmpfs can be mounted (root); else a small /tmp is RLIMIT_FSIZE."""
    rng = random.Random(seed)
    store = rng.choice(STORES)
    script = rng.choices(SCRIPTS, weights=(4, 2, 2, 2, 1))[0]
    seconds = rng.choice((1.0, 2.0, 3.0, 5.0))
    retries = rng.choice((0, 0, 1, 2))
    start_deadline = rng.choice((None, None, 8, 15))
    active_deadline = rng.choice((None, None, None, 4, 20))
    faults: list[Fault] = []
    for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
        fault = _ray_fault(rng) if rng.random() < 0.75 else _other_fault(rng, store)
        if fault is not None:
            faults.append(fault)
    sigterms = tuple(round(rng.uniform(0.5, 8.0), 1) for _ in range(rng.choice((0, 0, 1, 1, 2))))
    small_tmp = None
    if script == "big_input" or rng.random() < 0.1:
        drawn = rng.choice(("tmpfs", "fsize"))  # drawn either way, so the rest of the plan is the same
        small_tmp = drawn if can_mount else "fsize"
    stale_mount = store == "kube" and bool(sigterms) and rng.random() < 0.5
    secrets = Secrets(_secret(rng, "tok-"), _secret(rng, "hdr-"), _secret(rng, "s3k-"))
    kinds = {fault.kind for fault in faults}
    kinds |= {"sigterm"} if sigterms else set()
    kinds |= {"small_tmp"} if small_tmp else set()
    kinds |= {"stale_mount"} if stale_mount else set()
    return Plan(
        seed=seed,
        store=store,
        script=script,
        seconds=seconds,
        retries=retries,
        start_deadline=start_deadline,
        active_deadline=active_deadline,
        connect_timeout=rng.choice((5, 20, 30, 60)),
        token_via=rng.choice(("token file", "RAY_AUTH_TOKEN_PATH")),
        header_via=rng.choice(("headers.json", "RAY_JOB_HEADERS")),
        secrets=secrets,
        faults=tuple(sorted(faults, key=lambda fault: fault.at)),
        sigterms=sigterms,
        small_tmp=small_tmp,
        stale_mount=stale_mount,
        kinds=tuple(sorted(kinds)),
    )
