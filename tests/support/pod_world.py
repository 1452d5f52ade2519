"""The operator's pod as a whole, in memory: the real ``Runner`` (and through it ``JobSession``,
the submitter, ``finish``, the result file and the termination message) against the fake dashboard
(``tests.support.fake_dashboard``), the BridgeJob's ConfigMap and a fake clock.

Everything waits on the model clock: the session's polls and waits, every retry policy's sleeps
(the SIGTERM event is a ``FakeTimeEvent``) and tenacity's own stopwatch (``fake_time``). SIGTERM
comes at a fake time; like the real handler it cuts a call in flight (``raypod.interrupt``).
"""

from __future__ import annotations

import argparse
import functools
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

import requests
import tenacity
from requests.adapters import BaseAdapter

from raypod import runner as runner_module
from raypod.background import BackgroundKillSwitch, BackgroundReporter
from raypod.commands import leave_report
from raypod.config import BridgeConfig, ConfigOverrides
from raypod.contract import ID
from raypod.credentials import RayAuthSources
from raypod.errors import Terminated
from raypod.events import NULL_EVENTS, BackgroundEvents, EventRecorder, KubeEvents
from raypod.exits import ExitCodes
from raypod.http import Timeouts
from raypod.interrupt import in_flight
from raypod.kube import KillFromEither, KubeConfigMap, ServiceAccount
from raypod.pushgateway import GatewayAddress, Pushgateway
from raypod.ray import RayJobsClient
from raypod.retry import RetryPolicy
from raypod.run_metrics import GatewaySettings, MetricsAtExit
from raypod.runner import Runner, RunOptions, RunResult, timestamped_printer
from raypod.session import SessionSettings
from raypod.source import ConfigMapJob
from tests.support.fake_dashboard import COOKIE, TOKEN, FakeDashboard, _response
from tests.support.fake_kube_api import NAME, FakeKubeApi, KubeFront
from tests.support.fakes import FakeClock

JOB_NAME = "train"
NAMESPACE = "bridge"
#: The BridgeJob's uid: every pod of it derives the same submission id from it.
BRIDGEJOB_UID = "5c0f3e2a-bridgejob-uid"
#: The pod's service-account token: sent on every API call; no output may ever show it.
KUBE_TOKEN = "sa-tok-3b7e90c1d2f4a685"
KUBE_URL = "https://kube.test"
#: The real waits of the background threads (raypod.background), in real seconds: a poll waits this
#: long for the kill re-read it started, a synchronous write for the write in flight, the end of the
#: run for a late write. Time in the model is fake; these only let a thread that is not waiting for
#: fake time finish first (see ``ModelClock``).
THREAD_WAIT = 0.1
#: A thread waiting for fake time that only the main thread moves gives up after this (real seconds).
#: Only a hang ends that way: the main thread never waits on such a thread without a real timeout, and
#: the pod's exit lets them go. A short cap let a loaded machine end a Retry-After wait early.
THREAD_TIME_CAP = 60.0
#: Real seconds the model waits for a pod's queued Events to be written (they take milliseconds).
EVENTS_DRAIN_CAP = 30.0


class FakeTimeEvent(threading.Event):
    """The SIGTERM event: a retry policy's wait on it passes fake time, not real time."""

    clock: ModelClock

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is None or self.is_set():
            return self.is_set()
        return self.clock.wait(timeout)


class ModelClock(FakeClock):
    """``FakeClock`` with what the runner needs of a clock (``terminate``, ``wake``), and SIGTERM that,
    like the pod's handler, cuts the call in flight when time reaches it during that call.

    Only the main thread moves time. A background thread of raypod's (the kill re-reader, the status
    writer) that waits (a retry's backoff, a hung API) blocks until the main thread's time reaches the
    end of its wait, as it would in a pod, or SIGTERM; a thread of a pod that has exited is let go."""

    def __init__(self) -> None:
        super().__init__(limit=365 * 24 * 3600.0)
        self.event = FakeTimeEvent()
        self.event.clock = self
        self.sigterm_at: float | None = None
        self.owner = threading.current_thread()
        self.moved = threading.Condition()
        self.pod_number = 0

    def wait(self, seconds: float) -> bool:
        if threading.current_thread() is self.owner:
            return super().wait(seconds)
        self._wait_for_main(self.elapsed + max(0.0, seconds))
        return self.event.is_set()

    def advance(self, seconds: float) -> None:
        if threading.current_thread() is self.owner:
            super().advance(seconds)
        else:
            self._wait_for_main(self.elapsed + seconds)

    def _wait_for_main(self, target: float) -> None:
        pod, event = self.pod_number, self.event
        with self.moved:
            self.moved.wait_for(
                lambda: self.elapsed >= target or event.is_set() or self.pod_number != pod, THREAD_TIME_CAP
            )

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
        with self.moved:
            self.event = FakeTimeEvent()
            self.event.clock = self
            self._terminate_at = self.sigterm_at = None
            self.pod_number += 1
            self.moved.notify_all()

    def pod_exited(self) -> None:
        """The pod's process is gone: its threads stop waiting."""
        with self.moved:
            self.pod_number += 1
            self.moved.notify_all()

    def _move_to(self, target: float) -> None:
        if self.sigterm_at is not None and not self.event.is_set() and self.sigterm_at <= target:
            super()._move_to(max(self.elapsed, self.sigterm_at))
            self.event.set()
            self._notify()
            if in_flight():
                raise Terminated("SIGTERM during a call")  # as raypod.interrupt.cut_call_in_flight
            return
        super()._move_to(target)
        self._notify()

    def _notify(self) -> None:
        with self.moved:
            self.moved.notify_all()


@contextmanager
def fake_time(clock: ModelClock) -> Iterator[None]:
    """tenacity's stopwatch and its plain sleep on the model clock (retry deadlines are fake seconds)."""
    shim = types.SimpleNamespace(monotonic=clock.monotonic, time=lambda: clock.now().timestamp())
    with mock.patch.object(tenacity, "time", shim), mock.patch.object(tenacity.nap, "sleep", clock.advance):
        yield


class MountedCopy:
    """``run --config <mounted dir>``: the ConfigMap as the kubelet last synced it (an older version);
    ``kill`` also from the API (``raypod.kube.KillFromEither``)."""

    description = "mounted ConfigMap (model, lagging)"
    identity: str | None = None

    def __init__(self, snapshot: Mapping[str, str]) -> None:
        self.snapshot = dict(snapshot)

    def read(self) -> dict[str, str]:
        return dict(self.snapshot)


def pod_configmap(api: FakeKubeApi, clock: ModelClock, workdir: Path) -> tuple[KubeConfigMap, KubeFront]:
    """The real ``KubeConfigMap`` as a pod makes it (``raypod.process``), its session on the fake API."""
    account = workdir / "serviceaccount"
    account.mkdir(exist_ok=True)
    (account / "token").write_text(KUBE_TOKEN)
    (account / "namespace").write_text(NAMESPACE)
    retry = RetryPolicy().interruptible(clock.event)
    # The pod's start on the model clock, as a pod's is on its node's.
    configmap = KubeConfigMap(KUBE_URL, ServiceAccount(account), NAMESPACE, NAME, retry=retry, now=clock.now)
    front = KubeFront(api, clock)
    configmap.http.session.trust_env = False
    configmap.http.session.mount("https://", front)
    return configmap, front


class ModelRunner(Runner):
    """The real runner on the model clock, its dashboard client talking to the fake dashboard."""

    def __init__(
        self,
        job: ConfigMapJob,
        sink: KubeConfigMap,
        options: RunOptions,
        clock: ModelClock,
        dashboard: FakeDashboard,
        out: TextIO,
        events: EventRecorder = NULL_EVENTS,
    ) -> None:
        super().__init__(job, sink, options, status_out=out, job_out=out, terminate=clock.event, events=events)
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


#: What the model's Pushgateway does with a pod's calls, by the pod's number (the rule's draws stay as they are).
GATEWAY_MODES = ("ok", "500", "refused")
GATEWAY_URL = "http://pushgateway.model:9091"


@dataclass(frozen=True)
class GatewayCall:
    method: str
    path: str
    body: bytes
    #: The ConfigMap as the call found it.
    configmap: dict[str, str]


class ModelGateway(BaseAdapter):
    """A Pushgateway as a ``requests`` adapter: records each call with the ConfigMap of that moment,
    and answers as its ``mode`` says (``ok``, ``500``, ``refused``)."""

    def __init__(self, mode: str, api: FakeKubeApi) -> None:
        super().__init__()
        self.mode, self.api = mode, api
        self.calls: list[GatewayCall] = []

    def connect(self, address: GatewayAddress, timeouts: Timeouts) -> Pushgateway:
        gateway = Pushgateway(address, timeouts)
        gateway.http.session.trust_env = False
        gateway.http.session.mount("http://", self)
        return gateway

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> requests.Response:
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        self.calls.append(GatewayCall(request.method or "", request.path_url, body, self.api.read()))
        if self.mode == "refused":
            raise requests.ConnectionError("[Errno 111] Connection refused")
        if self.mode == "500":
            return _response(request, 500, b"push failed", "text/plain")
        return _response(request, 200, b"", "text/plain")

    def close(self) -> None:
        pass


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
    #: When SIGTERM came (fake time), if it came.
    sigterm_at: float | None
    configmap_before: dict[str, str]
    configmap_after: dict[str, str]
    #: PATCHes of this pod that changed nothing (refused, no answer, a proxy's page).
    refused_writes: int
    #: The uid of the object at the pod's start and at its exit (None: none there).
    uid_before: str | None
    uid_after: str | None
    #: The last ``id`` this pod's writes landed (in any object).
    id_written: str | None
    #: Whether the pod's start-up read of the ConfigMap went through (else it writes nothing there).
    read_at_start: bool
    #: The model Pushgateway's mode for this pod, its calls, and what ``leave_report`` returned.
    gateway_mode: str = "ok"
    gateway_calls: list[GatewayCall] = field(default_factory=list)
    exit_code: int | None = None
    kill_seen: list[tuple[float, bool]] = field(default_factory=list)
    #: The pod's name (its Events' reportingInstance), and the Event writes it sent.
    name: str = ""
    event_requests: int = 0


class _Collect(logging.Handler):
    """One pod's log lines. A thread an earlier pod left behind (its Events writer, cut by SIGTERM)
    would be dead with its process in a real cluster: what it logs is not this pod's."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._leftovers = frozenset(threading.enumerate()) - {threading.current_thread()}

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() in self._leftovers:
            return
        self.lines.append(self.format(record))


def run_pod(
    number: int,
    clock: ModelClock,
    dashboard: FakeDashboard,
    api: FakeKubeApi,
    settings: PodSettings,
    workdir: Path,
    *,
    variant: str = "api",
    mounted: Mapping[str, str] | None = None,
    kuberay_id: str | None = None,
) -> PodRun:
    """One pod from its start to its exit, through the real runner and ``leave_report``."""
    configmap, front = pod_configmap(api, clock, workdir)
    source: KubeConfigMap | KillFromEither = (
        configmap if mounted is None else KillFromEither(MountedCopy(mounted), configmap)
    )
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
    uid_before = api.current.uid if api.current is not None else None
    requests_before, landed_before = len(api.requests), len(api.landed)
    start = clock.elapsed
    gateway = ModelGateway(GATEWAY_MODES[number % len(GATEWAY_MODES)], api)
    metrics = MetricsAtExit(
        GatewaySettings(GatewayAddress.parse(GATEWAY_URL)), JOB_NAME, NAMESPACE, connect=gateway.connect
    )
    exit_code: int | None = None
    name = f"train-raypod-{number}"
    # As raypod.events.events_for makes them in a pod: written aside, on the model's time.
    events = BackgroundEvents(KubeEvents(configmap, name, now=clock.now))
    runner = ModelRunner(ConfigMapJob(source, overrides), configmap, options, clock, dashboard, out, events)
    result: RunResult | None = None
    crash: BaseException | None = None
    try:
        # What raypod prints itself (the bad-input lines) is output too.
        with fake_time(clock), short_thread_waits(), redirect_stdout(out), redirect_stderr(out):
            result = runner.run()
            if not clock.event.is_set() and api.hung_until(clock.elapsed) is None:
                # The pod's CLOSE_WAIT (5 s) lets a write to an API that answers finish; here the
                # writer thread may just not have had its turn within THREAD_WAIT. The API answers at
                # once, so this returns as soon as the queue is written; the cap only stops a hang,
                # and is generous because a loaded machine may starve the writer for seconds.
                events.close(EVENTS_DRAIN_CAP)
            records = argparse.Namespace(termination_log=str(termination), result=result_path)
            exit_code = leave_report(records, result, metrics)
    except BaseException as error:
        crash = error
    finally:
        front.closed = True
        clock.pod_exited()
        root.removeHandler(handler)
        root.setLevel(previous_level)
    with api.lock:
        patches = [r for r in api.requests[requests_before:] if r.method == "PATCH"]
        ids = [w.changes[ID] for w in api.landed[landed_before:] if ID in w.changes]
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
        sigterm_at=clock.sigterm_at if clock.event.is_set() else None,
        configmap_before=before,
        configmap_after=api.read(),
        refused_writes=sum(1 for r in patches if r.status != 200 or r.proxy),
        uid_before=uid_before,
        uid_after=api.current.uid if api.current is not None else None,
        id_written=ids[-1] if ids else None,
        read_at_start=configmap.uid is not None,
        gateway_mode=gateway.mode,
        gateway_calls=list(gateway.calls),
        exit_code=exit_code,
        name=name,
        event_requests=front.event_requests,
    )


@contextmanager
def short_thread_waits() -> Iterator[None]:
    """raypod.background's real-time waits made short (see ``THREAD_WAIT``)."""
    with (
        mock.patch.object(
            runner_module, "BackgroundKillSwitch", functools.partial(BackgroundKillSwitch, fresh_wait=THREAD_WAIT)
        ),
        mock.patch.object(
            runner_module, "BackgroundReporter", functools.partial(BackgroundReporter, supersede_after=THREAD_WAIT)
        ),
        mock.patch.object(runner_module, "CLOSE_WAIT", THREAD_WAIT),
        mock.patch.object(runner_module, "EVENTS_CLOSE_WAIT", THREAD_WAIT),
        mock.patch.object(runner_module, "LAST_FLUSH_WAIT", THREAD_WAIT),
    ):
        yield
