"""The BridgeJob's ConfigMap through the Kubernetes REST API: plain HTTP, no client library.

One object is both where the job is read from (``ConfigSource``) and where its status
goes (``StatusSink``). Only two calls are used, so the Role needs only ``get`` and
``patch`` on ``configmaps``:

- ``GET /api/v1/namespaces/<ns>/configmaps/<name>`` on start-up and on every poll (for ``kill``);
- ``PATCH`` of the same path with a JSON merge patch of raypod's own keys. A merge patch
  never carries a ``resourceVersion`` and touches no other key, so a ``kill`` (or any key)
  the operator writes in between is never overwritten and never causes a conflict.

Both answers are checked like any other: the API server answers a ConfigMap, and a PATCH's
answer holds what was written. A 2xx that is not (an HTML page or other JSON from a proxy in
between) is a transient error, retried, and never taken as a read or a write.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from raypod.clock import format_time
from raypod.config import kill_requested
from raypod.contract import CONFIGMAP_SUFFIX, KILL, OWNED_KEYS
from raypod.credentials import read_secret_file
from raypod.errors import ConfigError, DeploymentError, KubeApiError, NeverRead, RaypodError
from raypod.http import HttpClient, Timeouts
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.source import ConfigSource, controller_uid, object_identity, object_uid

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: Test and out-of-cluster overrides.
API_ENV = "RAYPOD_KUBE_API"
SERVICE_ACCOUNT_ENV = "RAYPOD_SERVICE_ACCOUNT_DIR"
MERGE_PATCH = "application/merge-patch+json"
RBAC_RULE = 'apiGroups: [""], resources: ["configmaps"], verbs: ["get", "patch"]'
#: How long the start-up read is retried through an outage: the 60 s of one call.
STARTUP_READ_BUDGET = 60.0
#: A PATCH whose ``metadata.uid`` is not the object's: the API server answers 422 (uid is immutable:
#: a patch has no other precondition); 409 is what a uid precondition answers elsewhere (PUT, DELETE).
UID_REFUSED = (409, 422)
#: How far the API server's clock (``creationTimestamp``) may run ahead of the node's (the pod's start)
#: before a ConfigMap first read is taken for one made after the pod started. Nodes and control plane
#: keep NTP time (milliseconds apart); 10 s also covers a node whose sync lapsed, and a pod whose process
#: starts within a second of the ConfigMap. It only has to be shorter than the window the rule guards:
#: a start-up read delayed by an outage (up to ``STARTUP_READ_BUDGET``) or a re-creation after a delete.
CREATION_SKEW = 10.0


def configmap_name(job_name: str) -> str:
    return f"{job_name}{CONFIGMAP_SUFFIX}"


@dataclass(frozen=True)
class ServiceAccount:
    """The mounted service-account directory: token, ca.crt and namespace."""

    directory: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceAccount:
        env = os.environ if environ is None else environ
        return cls(Path(env.get(SERVICE_ACCOUNT_ENV) or SERVICE_ACCOUNT_DIR))

    @property
    def token_path(self) -> Path:
        return self.directory / "token"

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.crt"

    def present(self) -> bool:
        """A token file is what says raypod runs in a pod with a service account."""
        return self.token_path.is_file()

    def token(self) -> str:
        # Read for every request: projected tokens are rotated by the kubelet (about hourly).
        token = read_secret_file(self.token_path)
        if token is None:
            raise ConfigError.single("service account", f"{self.token_path} is missing or empty")
        return token

    def namespace(self) -> str | None:
        return read_secret_file(self.directory / "namespace")


def api_base_url(environ: Mapping[str, str] | None = None) -> str:
    """``RAYPOD_KUBE_API``, else ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``."""
    env = os.environ if environ is None else environ
    override = (env.get(API_ENV) or "").strip()
    if override:
        return override.rstrip("/")
    host = (env.get("KUBERNETES_SERVICE_HOST") or "").strip()
    if not host:
        raise ConfigError.single(
            "KUBERNETES_SERVICE_HOST",
            f"not set, so the Kubernetes API cannot be found; set it (or {API_ENV}), or pass --config",
        )
    port = (env.get("KUBERNETES_SERVICE_PORT") or "443").strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    return f"https://{host}:{port}"


class KubeConfigMap:
    """``<JOBNAME>-bridge-cm`` read with GET and written with merge patches.

    Implements both ``ConfigSource`` (``read``) and ``StatusSink`` (``load``/``write``).
    """

    def __init__(
        self,
        base_url: str,
        account: ServiceAccount,
        namespace: str,
        name: str,
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeouts: Timeouts = Timeouts(connect=5.0, read=30.0),
        startup_budget: float = STARTUP_READ_BUDGET,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.account = account
        #: The pod's start (made as the process starts): the ConfigMap it was made for is older.
        self.started = now()
        self.startup_budget = startup_budget
        self.namespace = namespace
        self.name = name
        self.description = f"ConfigMap {namespace}/{name}"
        #: The object's own metadata.uid, from the last read.
        self.uid: str | None = None
        #: The BridgeJob's uid (the controller's) from the first read, else ``uid``.
        self.identity: str | None = None
        #: The controller's uid from the first read: a ConfigMap re-created under it is the same job's.
        self.owner: str | None = None
        #: raypod's keys as recorded in the ConfigMap (loaded or written): all written again into a
        #: ConfigMap the operator re-created (``id`` first of all).
        self.recorded: dict[str, str] = {}
        #: The operator re-created the ConfigMap: the next write carries every recorded key.
        self._recreated = False
        #: Why the name now holds another object: nothing is read from or written there again.
        self.foreign: str | None = None
        #: Why the object first read is not taken as this pod's (made after it started): never written.
        self.unread: str | None = None
        self.path = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps/{quote(name, safe='')}"
        # A path, not True: requests never lets REQUESTS_CA_BUNDLE override a per-request path.
        verify: bool | str = str(account.ca_path) if account.ca_path.is_file() else True
        self.http = HttpClient(
            base_url,
            error_class=KubeApiError,
            verify=verify,
            headers=self._headers,
            retry=retry,
            timeouts=timeouts,
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.account.token()}", "Accept": "application/json"}

    def close(self) -> None:
        self.http.close()

    # -- the two calls ----------------------------------------------------------------------
    def _call(
        self,
        method: str,
        *,
        data: str | None = None,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        written: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """The ConfigMap the API answers, checked (after a PATCH: that it holds what was
        ``written``); retried by the policy, a garbled 2xx too."""

        def once() -> dict[str, Any]:
            try:
                answer = self.http.json_answer(method, self.path, data=data, headers=headers, retry=NO_RETRY)
            except KubeApiError as error:
                if error.status is not None and 200 <= error.status < 300:
                    raise self._garbled(method, error.status, error.reason) from None
                if error.status in (401, 403, 404) and not error.from_the_api_server:
                    # A proxy's page: not the API server saying the ConfigMap or the right is missing.
                    raise self._garbled(method, error.status, error.reason) from None
                raise
            problem = _configmap_problem(answer.value, written or {})
            if problem is not None:
                raise self._garbled(method, answer.status, f"unexpected answer: {problem}")
            document: dict[str, Any] = answer.value
            return document

        return (retry or self.http.retry).call(once, what=f"{method} {self.description}")

    def _garbled(self, method: str, status: int, reason: str) -> KubeApiError:
        """A 2xx the API server would never give: something in between answered; try again."""
        hint = "not the API server's answer (a proxy in between?)"
        return KubeApiError(method, self.http.url(self.path), status, f"{reason}; {hint}", retryable=True)

    # -- ConfigSource -------------------------------------------------------------------
    def read(self) -> dict[str, str]:
        self._refuse_if_foreign()
        first = self.uid is None
        try:
            # The start-up read waits out an outage for its budget; a later one (kill) is asked again.
            document = self._call("GET", retry=self.http.retry.with_deadline(self.startup_budget) if first else None)
        except KubeApiError as error:
            explained = self._explain(error, "get")
            if explained is not error:
                # Missing ConfigMap or missing rights: the deployment is wrong, not the job (nothing is
                # submitted at start-up, exit 2; during the watch it is logged, and the watch goes on).
                raise DeploymentError("ConfigMap", str(explained)) from error
            raise
        if first:
            self._refuse_if_made_after_start(document)
            self.uid, self.identity = object_uid(document), object_identity(document)
            self.owner = controller_uid(document)
        else:
            self._check_same_object(document)
        return {str(key): value for key, value in (document.get("data") or {}).items()}

    # -- one BridgeJob's ConfigMap, and no other -----------------------------------------------
    def _check_same_object(self, document: dict[str, Any]) -> None:
        """The object read is the one read at start-up, or one the operator re-created for the same
        BridgeJob (its controller is the same: carry on with it, and write raypod's keys again);
        anything else is another object under the same name: never written, nor read, again."""
        uid = object_uid(document)
        if uid == self.uid:
            return
        owner = controller_uid(document)
        if self.owner is not None and owner == self.owner:
            log.warning(
                "%s was re-created (uid %s, was %s) under the same BridgeJob: raypod's keys are written to it again",
                self.description,
                uid,
                self.uid,
            )
            self.uid, self._recreated = uid, True
            return
        whose = f"owned by {owner}" if owner else "with no owner"
        self.foreign = (
            f"{self.namespace}/{self.name} was deleted and re-created as another object (uid {uid}, {whose}; "
            f"this pod read uid {self.uid}{f' of BridgeJob {self.owner}' if self.owner else ''}): raypod never "
            "writes into another BridgeJob's ConfigMap, so this pod's status is not recorded there"
        )
        log.error("%s", self.foreign)
        self._refuse_if_foreign()

    def _refuse_if_made_after_start(self, document: dict[str, Any]) -> None:
        """The first object read was created after this pod started: not the one the operator made for it
        (it creates the ConfigMap before the pod), but one re-created under the name since, maybe for
        another BridgeJob. Taken as not read: no uid, nothing from it, nothing written into it."""
        late = created_after(document, self.started)
        if late is None:
            return
        self.unread = (
            f"{self.namespace}/{self.name} {late}: the operator makes a pod's ConfigMap before the pod, so this "
            "one was made for another BridgeJob (or re-made since); nothing is taken from it or written into it"
        )
        log.error("%s", self.unread)
        raise DeploymentError("ConfigMap", self.unread)

    def _refuse_if_foreign(self) -> None:
        # Not an API error: no answer is awaited, and no retry could change the object's owner.
        if self.foreign is not None:
            raise DeploymentError("ConfigMap", self.foreign)

    # -- DeletionProbe -------------------------------------------------------------------
    def being_deleted(self) -> bool | None:
        """After SIGTERM: whether the ConfigMap is gone (the garbage collector deletes it with its
        BridgeJob) or going (a deletionTimestamp); None when the API cannot say now. One try: the
        caller asks again within its short window."""
        try:
            document = self._call("GET", retry=NO_RETRY)
        except KubeApiError as error:
            return True if error.not_found else None
        metadata = document.get("metadata")
        return bool(isinstance(metadata, dict) and metadata.get("deletionTimestamp"))

    # -- StatusSink ----------------------------------------------------------------------
    def load(self) -> dict[str, str]:
        owned = {key: value for key, value in self.read().items() if key in OWNED_KEYS}
        self.recorded.update({key: value for key, value in owned.items() if value})
        return owned

    def write(self, changes: Mapping[str, str], *, within: float | None = None) -> None:
        """A merge patch of ``changes`` whose ``metadata.uid`` is the object's read at start-up: the
        API server refuses it on any other object (422), so no write lands in a ConfigMap deleted and
        re-created under the same name. Then the object is read again: re-created by the operator for
        this BridgeJob, every recorded key is written into it; anything else is never written."""
        self._refuse_if_foreign()
        if self.uid is None:
            # Never read: the object under this name is unknown (another BridgeJob's, or one whose job
            # still runs on Ray after an earlier pod): writing into it could end the wrong BridgeJob.
            raise NeverRead(
                "ConfigMap",
                self.unread
                or f"{self.namespace}/{self.name} could not be read at start-up, so nothing is written to it",
            )
        retry = self.http.retry.with_deadline(within) if within is not None else None
        data = {**self.recorded, **changes} if self._recreated else dict(changes)
        try:
            try:
                self._patch(data, retry)
            except KubeApiError as error:
                if error.status not in UID_REFUSED or self.uid is None:
                    raise
                before = self.uid
                self._check_same_object(self._call("GET", retry=retry))
                if self.uid == before:
                    raise  # refused for another reason: the object is the same one
                data = {**self.recorded, **changes}
                self._patch(data, retry)
        except KubeApiError as error:
            raise self._explain(error, "patch") from error
        self.recorded.update(data)
        self._recreated = False

    def _patch(self, data: Mapping[str, str], retry: RetryPolicy | None) -> None:
        patch: dict[str, Any] = {"data": dict(data)}
        if self.uid is not None:
            patch["metadata"] = {"uid": self.uid}  # the precondition: this object, not one under its name
        body = json.dumps(patch)
        self._call("PATCH", data=body, headers={"Content-Type": MERGE_PATCH}, written=data, retry=retry)

    # -- errors ----------------------------------------------------------------------------
    def _explain(self, error: KubeApiError, verb: str) -> KubeApiError:
        """The same error, with what to fix when the cause is on the cluster's side."""
        rule = (
            f"the pod's service account needs a Role in namespace {self.namespace} with {{{RBAC_RULE}}} "
            "and a RoleBinding to it"
        )
        if error.status == 401:
            hint = (
                f"the service-account token in {self.account.token_path} was not accepted: check that the pod "
                f"mounts its service account's token (automountServiceAccountToken); {rule}"
            )
        elif error.status == 403:
            hint = f"{verb} was denied: {rule}"
        elif error.status == 404 and self.uid is not None:
            hint = (
                f"ConfigMap {self.name} was deleted from namespace {self.namespace} after this pod read it "
                "(its BridgeJob deleted, or the ConfigMap by hand; the operator re-creates a missing one)"
            )
        elif error.status == 404:
            hint = (
                f"ConfigMap {self.name} not found in namespace {self.namespace}: the operator creates "
                "<JOBNAME>-bridge-cm before it starts the pod; check JOBNAME and NAMESPACE"
            )
        else:
            return error
        return KubeApiError(error.method, error.url, error.status, f"{error.reason} ({hint})", error.body)


class KillFromEither:
    """``--config DIR`` inside a cluster: the job from the directory, ``kill`` from either source.

    A mounted ConfigMap lags the API by the kubelet's sync period (a minute or more), so the
    API usually sees ``kill`` first; the directory still counts when the API cannot be read.
    """

    def __init__(self, primary: ConfigSource, api: KubeConfigMap) -> None:
        self.primary = primary
        self.api = api
        self.description = f"{primary.description} (kill also from {api.description})"

    @property
    def identity(self) -> str | None:
        return self.api.identity

    def read(self) -> dict[str, str]:
        data = self.primary.read()
        try:
            killed = kill_requested(self.api.read())
        except RaypodError as error:
            log.warning("could not read kill from %s: %s", self.api.description, error)
            return data
        if killed:
            data[KILL] = "true"
        return data


def _configmap_problem(document: object, written: Mapping[str, str | None]) -> str | None:
    """Why an answer is not a ConfigMap object (holding what was ``written``), or None."""
    # The API server always names the kind: an object without it is someone else's.
    if not isinstance(document, dict) or document.get("kind") != "ConfigMap":
        return "not a ConfigMap object"
    data = document.get("data")
    if data is not None and (not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values())):
        return "data is not key to string"
    # The API server answers a PATCH with the object as patched.
    missing = sorted(key for key, value in written.items() if value is not None and (data or {}).get(key) != value)
    return f"the ConfigMap it answers lacks the written {', '.join(missing)}" if missing else None


def created_after(document: Any, started: datetime, skew: float = CREATION_SKEW) -> str | None:
    """What says the object was created after ``started`` (more than ``skew`` seconds: the API
    server's clock is not the node's), or None. A ``creationTimestamp`` that is missing or not a
    time proves nothing about the object's age: it is no reason to refuse it (the uid and owner
    checks still hold from the first read on); a ConfigMap is refused only on a time that says so."""
    metadata = document.get("metadata") if isinstance(document, dict) else None
    text = metadata.get("creationTimestamp") if isinstance(metadata, dict) else None
    created = _rfc3339(text)
    if created is None or created <= started + timedelta(seconds=skew):
        return None
    return (
        f"was created at {format_time(created)}, after this pod started ({format_time(started)}; "
        f"{skew:g} s allowed for clock skew)"
    )


def _rfc3339(text: Any) -> datetime | None:
    """An RFC 3339 time with its offset (the API server's ``2006-01-02T15:04:05Z``), else None."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    # fromisoformat reads "Z" only from Python 3.11 on.
    iso = f"{text[:-1]}+00:00" if text.endswith(("Z", "z")) else text
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
