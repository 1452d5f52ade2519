"""The operator's pod as a whole, in memory: the real ``Runner`` (and through it ``JobSession``,
the submitter, ``finish``, the result file and the termination message) against the fake dashboard
(``tests.support.fake_dashboard``), the BridgeJob's ConfigMap and a fake clock.

Everything waits on the model clock: the session's polls and waits, every retry policy's sleeps
(the SIGTERM event is a ``FakeTimeEvent``) and tenacity's own stopwatch (``fake_time``). SIGTERM
comes at a fake time; like the real handler it cuts a call in flight (``raypod.interrupt``).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import threading
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from unittest import mock

import tenacity

from raypod.commands import leave_report
from raypod.config import BridgeConfig, ConfigOverrides, kill_requested
from raypod.contract import JOB_STATUS, KILL, OWNED_KEYS, BridgeStatus
from raypod.credentials import RayAuthSources
from raypod.errors import KubeApiError, Terminated
from raypod.exits import ExitCodes
from raypod.interrupt import in_flight
from raypod.ray import RayJobsClient
from raypod.retry import RetryPolicy
from raypod.runner import Runner, RunOptions, RunResult, timestamped_printer
from raypod.session import SessionSettings
from raypod.source import ConfigMapJob
from tests.support.fake_dashboard import COOKIE, TOKEN, FakeDashboard
from tests.support.fakes import FakeClock

JOB_NAME = "train"
NAMESPACE = "bridge"
#: The BridgeJob's uid: every pod of it derives the same submission id from it.
BRIDGEJOB_UID = "5c0f3e2a-bridgejob-uid"
KUBE_DOWN = KubeApiError(
    "PATCH", "https://kube.test/api/v1/namespaces/bridge/configmaps/train-bridge-cm", 503, "Service Unavailable"
)


class FakeTimeEvent(threading.Event):
    """The SIGTERM event: a retry policy's wait on it passes fake time, not real time."""

    clock: ModelClock

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None or self.is_set():
            return self.is_set()
        return self.clock.wait(timeout)


class ModelClock(FakeClock):
    """``FakeClock`` with what the runner needs of a clock (``terminate``, ``wake``), and SIGTERM that,
    like the pod's handler, cuts the call in flight when time reaches it during that call."""

    def __init__(self) -> None:
        super().__init__(limit=365 * 24 * 3600.0)
        self.event = FakeTimeEvent()
        self.event.clock = self
        self.sigterm_at: float | None = None

    @property
    def terminate(self) -> threading.Event:
        return self.event

    def wake(self) -> None:
        """The log follower's wake-up: the model follows no log."""

    def epoch_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    def terminate_at(self, elapsed: float) -> None:
        self.sigterm_at = elapsed
        super().terminate_at(elapsed)

    def new_pod(self) -> None:
        """A new process: no SIGTERM yet."""
        self.event = FakeTimeEvent()
        self.event.clock = self
        self._terminate_at = self.sigterm_at = None

    def _move_to(self, target: float) -> None:
        if self.sigterm_at is not None and not self.event.is_set() and self.sigterm_at <= target:
            super()._move_to(max(self.elapsed, self.sigterm_at))
            self.event.set()
            if in_flight():
                raise Terminated("SIGTERM during a call")  # as raypod.interrupt.cut_call_in_flight
            return
        super()._move_to(target)


@contextmanager
def fake_time(clock: ModelClock) -> Iterator[None]:
    """tenacity's stopwatch and its plain sleep on the model clock (retry deadlines are fake seconds)."""
    shim = types.SimpleNamespace(monotonic=clock.monotonic, time=lambda: clock.now().timestamp())
    with mock.patch.object(tenacity, "time", shim), mock.patch.object(tenacity.nap, "sleep", clock.advance):
        yield


class ApiConfigMap:
    """``<JOBNAME>-bridge-cm`` as the Kubernetes API holds it: the job's source and the status sink."""

    description = "ConfigMap train-bridge-cm (model)"
    identity: str | None = BRIDGEJOB_UID

    def __init__(self, data: Mapping[str, str], clock: FakeClock) -> None:
        self.data = dict(data)
        self.clock = clock
        #: The data after every change with its fake time, oldest first (what a lagging mount shows).
        self.versions: list[tuple[float, dict[str, str]]] = [(clock.elapsed, dict(self.data))]
        #: Writes that go through before the next ``failures_left`` are refused.
        self.successes_first = 0
        self.failures_left = 0
        self.refused: list[dict[str, str]] = []

    def read(self) -> dict[str, str]:
        return dict(self.data)

    def load(self) -> dict[str, str]:
        return {key: value for key, value in self.data.items() if key in OWNED_KEYS}

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        if self.successes_first > 0:
            self.successes_first -= 1
        elif self.failures_left > 0:
            self.failures_left -= 1
            self.refused.append(dict(changes))
            raise KUBE_DOWN
        self.operator_sets(changes)

    def operator_sets(self, changes: Mapping[str, str]) -> None:
        self.data.update(changes)
        self.versions.append((self.clock.elapsed, dict(self.data)))

    def as_of(self, elapsed: float) -> dict[str, str]:
        """The data as it was at fake time ``elapsed`` (the kubelet's copy lags the API)."""
        return dict(next((data for at, data in reversed(self.versions) if at <= elapsed), self.versions[0][1]))

    @property
    def status(self) -> BridgeStatus | None:
        return BridgeStatus.parse(self.data.get(JOB_STATUS, ""))


class MountedCopy:
    """``run --config <mounted dir>``: the ConfigMap as the kubelet last synced it (an older version),
    ``kill`` also from the API (``raypod.kube.KillFromEither``)."""

    def __init__(self, snapshot: Mapping[str, str], api: ApiConfigMap) -> None:
        self.snapshot = dict(snapshot)
        self.api = api
        self.description = "mounted ConfigMap (model, lagging)"
        self.identity = api.identity

    def read(self) -> dict[str, str]:
        data = dict(self.snapshot)
        if kill_requested(self.api.read()):
            data[KILL] = "true"
        return data


class ModelRunner(Runner):
    """The real runner on the model clock, its dashboard client talking to the fake dashboard."""

    def __init__(
        self,
        job: ConfigMapJob,
        sink: ApiConfigMap,
        options: RunOptions,
        clock: ModelClock,
        dashboard: FakeDashboard,
        out: TextIO,
    ) -> None:
        super().__init__(job, sink, options, status_out=out, job_out=out, terminate=clock.event)
        self.clock = clock  # type: ignore[assignment]
        self.say = timestamped_printer(clock, out)
        self.dashboard = dashboard

    def _connect(self, config: BridgeConfig) -> RayJobsClient:
        ray = super()._connect(config)
        # No proxy or netrc from this machine's environment (and half the cost of a call).
        ray.http.session.trust_env = False
        ray.http.session.mount("http://", self.dashboard)
        ray.http.session.mount("https://", self.dashboard)
        return ray


@dataclass(frozen=True)
class PodSettings:
    connect_timeout: float = 30.0
    #: ``--status-timeout`` (None: the operator's pod default, never).
    status_timeout: float | None = None


@dataclass
class PodRun:
    """One pod's life and what it left."""

    number: int
    start: float
    end: float
    variant: str
    result: RunResult | None
    crash: BaseException | None
    output: str
    logs: list[str]
    termination_message: str | None
    result_file: dict[str, Any] | None
    sigterm: bool
    configmap_before: dict[str, str]
    configmap_after: dict[str, str]
    refused_writes: int
    kill_seen: list[tuple[float, bool]] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def run_pod(
    number: int,
    clock: ModelClock,
    dashboard: FakeDashboard,
    api: ApiConfigMap,
    settings: PodSettings,
    workdir: Path,
    *,
    variant: str = "api",
    mounted: Mapping[str, str] | None = None,
    kuberay_id: str | None = None,
) -> PodRun:
    """One pod from its start to its exit, through the real runner and ``leave_report``."""
    source: ApiConfigMap | MountedCopy = api if mounted is None else MountedCopy(mounted, api)
    overrides = ConfigOverrides(submission_id=kuberay_id)
    options = RunOptions(
        job_name=JOB_NAME,
        namespace=NAMESPACE,
        session=SessionSettings(
            connect_timeout=settings.connect_timeout, retry=RetryPolicy(), first_poll_jitter=lambda: 0.5
        ),
        ray_auth=RayAuthSources(
            workdir / "no-credentials", {"RAY_AUTH_TOKEN": TOKEN, "RAY_JOB_HEADERS": json.dumps({"Cookie": COOKIE})}
        ),
        follow_logs=False,
        exit_codes=ExitCodes.BRIDGE,
        status_timeout=settings.status_timeout,
    )
    out = io.StringIO()
    handler = _Collect()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.INFO)
    termination = workdir / f"termination-{number}"
    result_path = workdir / f"result-{number}.json"
    before = api.read()
    refused_before = len(api.refused)
    start = clock.elapsed
    runner = ModelRunner(ConfigMapJob(source, overrides), api, options, clock, dashboard, out)
    result: RunResult | None = None
    crash: BaseException | None = None
    try:
        # What raypod prints itself (the bad-input lines) is output too.
        with fake_time(clock), redirect_stdout(out), redirect_stderr(out):
            result = runner.run()
            leave_report(argparse.Namespace(termination_log=str(termination), result=result_path), result)
    except BaseException as error:
        crash = error
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    document = json.loads(result_path.read_text()) if result_path.exists() else None
    return PodRun(
        number=number,
        start=start,
        end=clock.elapsed,
        variant=variant,
        result=result,
        crash=crash,
        output=out.getvalue(),
        logs=handler.lines,
        termination_message=termination.read_text() if termination.exists() else None,
        result_file=document,
        sigterm=clock.event.is_set(),
        configmap_before=before,
        configmap_after=api.read(),
        refused_writes=len(api.refused) - refused_before,
    )
