"""The process around a run: logging, signals, and where ``run`` reads its job and writes its status.

Imported by the command handlers; it imports no command code, so nothing here can form a cycle.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from raypod.clock import TIME_LAYOUT
from raypod.errors import ConfigError
from raypod.exits import ExitCodes
from raypod.interrupt import TerminateEvent, cut_call_in_flight
from raypod.log_context import json_line
from raypod.source import ConfigSource, open_source
from raypod.status_store import NullSink, StatusFile, StatusSink
from raypod.terminal import wiping_progress
from raypod.voice import Voice

if TYPE_CHECKING:
    from raypod.kube import KubeConfigMap, ServiceAccount

log = logging.getLogger("raypod")
#: The namespace named in the Ray job's metadata when none is known (outside a cluster).
DEFAULT_NAMESPACE = "default"


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line (``raypod.log_context.json_line``)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info:
            # Only the exception's type: its text may quote what a message never shows.
            error = record.exc_info[0].__name__ if record.exc_info[0] else None
            return json_line(record.getMessage(), record.levelname, record.created, error=error)
        return json_line(record.getMessage(), record.levelname, record.created)


def configure_logging(verbose: bool, quiet: bool = False, *, json_lines: bool = False) -> None:
    """``quiet``: the human commands print what matters themselves; only warnings are logged.
    ``json_lines`` (``--log-format json``): stderr's log lines as JSON objects, for log collectors."""
    # A log line wipes a progress line on the terminal first, so the two never share a line.
    handler = logging.StreamHandler(wiping_progress(sys.stderr))
    if json_lines:
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt=TIME_LAYOUT))
    logging.basicConfig(
        level=logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO), handlers=[handler]
    )
    logging.Formatter.converter = time.gmtime
    # Third-party chatter (connection pools) stays out of the pod's log unless asked for.
    for noisy in ("urllib3", "tenacity"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


def install_terminate_handler(*, pod: bool = True) -> TerminateEvent:
    """SIGTERM (pod deletion) and SIGINT stop the watch, never the Ray job. ``pod``: say so in the
    pod's log; a command line says what the interrupt left on Ray once it leaves."""
    event = TerminateEvent()

    def handle(signum: int, _frame: object) -> None:
        log.log(
            logging.WARNING if pod else logging.DEBUG,
            "received %s: writing the last status and leaving",
            signal.Signals(signum).name,
        )
        if event.signum is None:
            event.signum = signum
        event.set()
        cut_call_in_flight()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return event


@dataclass(frozen=True)
class RunTarget:
    """Where ``run`` reads the ConfigMap and writes its status, and the namespace it runs in."""

    source: ConfigSource
    sink: StatusSink
    namespace: str
    #: The ConfigMap through the Kubernetes API, when the status goes there: raypod is then the
    #: operator's pod (its exit codes follow the operator's rules, and a deleted BridgeJob's Ray job
    #: is stopped on SIGTERM).
    api: KubeConfigMap | None = None

    @property
    def exit_codes(self) -> ExitCodes:
        """The convention unless a flag says otherwise: the operator's in its pod, POSIX elsewhere."""
        return ExitCodes.BRIDGE if self.api is not None else ExitCodes.POSIX

    @property
    def voice(self) -> Voice:
        """The operator's pod speaks in the keys it writes to the ConfigMap; elsewhere, a command line."""
        return Voice.POD if self.api is not None else Voice.CLI


def fallback_sink(status_file: Path | None) -> StatusSink:
    """Where a start-up problem is reported when the run target itself could not be opened."""
    return StatusFile(status_file) if status_file is not None else NullSink()


def fallback_voice(status_file: Path | None, environ: Mapping[str, str] | None = None) -> Voice:
    """The voice of a start-up problem when the run target could not be opened: the pod's where the
    status would have gone to the ConfigMap through the API (a service account, no status file)."""
    env = os.environ if environ is None else environ
    return Voice.POD if status_file is None and _service_account(env).present() else Voice.CLI


def open_run_target(
    job_name: str | None,
    namespace: str | None,
    config_path: Path | None,
    status_file: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    interrupt: threading.Event | None = None,
) -> RunTarget:
    """Choose the job's source and the status's sink.

    - The job: ``--config`` when given, else ``<JOBNAME>-bridge-cm`` through the Kubernetes API.
    - The status: ``--status-file`` when given, else the same ConfigMap through the API when a
      service account is mounted (inside a pod), else stdout only.
    - ``kill``: with ``--config`` and the status going to the API, from either source (the
      mounted copy lags the API by the kubelet's sync period).

    The namespace defaults to the service account's, so the Ray job's metadata names the same one.
    ``interrupt`` (the SIGTERM event) cuts short the Kubernetes API's waits between retries.
    """
    from raypod.kube import KillFromEither

    env = os.environ if environ is None else environ
    if not job_name:
        raise ConfigError.single("JOBNAME", "missing: set $JOBNAME or pass --job-name (it names <JOBNAME>-bridge-cm)")
    if config_path is None:
        api = _configmap_api(job_name, namespace, env, interrupt)
        if status_file is not None:
            return RunTarget(api, StatusFile(status_file), api.namespace)
        return RunTarget(api, api, api.namespace, api)
    source = open_source(config_path)
    if status_file is not None:
        return RunTarget(source, StatusFile(status_file), namespace or DEFAULT_NAMESPACE)
    if _service_account(env).present():
        api = _configmap_api(job_name, namespace, env, interrupt)
        return RunTarget(KillFromEither(source, api), api, api.namespace, api)
    return RunTarget(source, NullSink(), namespace or DEFAULT_NAMESPACE)


def _service_account(env: Mapping[str, str]) -> ServiceAccount:
    from raypod.kube import ServiceAccount

    return ServiceAccount.from_env(env)


def _configmap_api(
    job_name: str, namespace: str | None, env: Mapping[str, str], interrupt: threading.Event | None
) -> KubeConfigMap:
    """``<JOBNAME>-bridge-cm`` through the API, as the pod's service account."""
    from raypod.kube import KubeConfigMap, api_base_url, configmap_name
    from raypod.retry import RetryPolicy

    account = _service_account(env)
    if not account.present():
        raise ConfigError.single(
            "--config",
            f"missing: give a ConfigMap directory or manifest (no service-account token in {account.directory}, "
            "so the ConfigMap cannot be read through the Kubernetes API)",
        )
    namespace = namespace or account.namespace()
    if not namespace:
        raise ConfigError.single(
            "NAMESPACE", f"missing: set $NAMESPACE or pass --namespace ({account.directory}/namespace is absent)"
        )
    retry = RetryPolicy().interruptible(interrupt) if interrupt is not None else RetryPolicy()
    return KubeConfigMap(api_base_url(env), account, namespace, configmap_name(job_name), retry=retry)
