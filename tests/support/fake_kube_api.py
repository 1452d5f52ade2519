"""The Kubernetes API in memory for the pod model: one ConfigMap, behind ``requests``' transport seam.

``KubeFront`` is a ``requests`` adapter mounted on the real ``raypod.kube.KubeConfigMap``'s session
(one per pod: a pod that has exited sends nothing more); ``FakeKubeApi`` holds the truth every pod
shares. It answers GET and merge-PATCH of the one ConfigMap as the API server does: a
``resourceVersion`` that grows on every change, ``metadata.uid``, ``ownerReferences`` and a
``creationTimestamp`` from the model clock (RFC 3339, whole seconds, UTC), a patch
whose ``metadata.uid`` is not the object's refused (422 Invalid as the real server answers a merge
patch, or 409 Conflict as a uid precondition answers elsewhere: raypod takes both), 404 Status for a
missing object.

Faults, all on the model clock (``tests.support.pod_world.ModelClock``):

- an outage from a start for a drawn length: 503 Status, 503 or 429 with ``Retry-After``, a refused
  connection, or a proxy's HTML page answered 200 or 404 (nothing reaches the API);
- a hung API: a request is answered only when the hang is over, or times out at its read timeout;
- the ConfigMap deleted, and re-created later by the operator (same controller owner, a new uid,
  the BridgeJob's spec keys only) or by someone else (another owner, or none).

Events (``events.k8s.io/v1``): POST and merge-PATCH in the ConfigMap's namespace, validated and
stored as the real server does (``devtools.fake_kube.EventStore``: 201, 409 AlreadyExists, 404,
422), behind the same outages; ``events_denied`` answers them 403 as RBAC does, ``events_broken``
answers them 500.

It records what a check needs: every request (time, thread, verb, answer), every write that landed
and on which object, and the ``Retry-After`` each refusal asked for.
"""

from __future__ import annotations

import enum
import io
import itertools
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, Protocol

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from devtools.fake_kube import EventStore, creation_timestamp, merge_patch, status_body
from raypod.contract import JOB_STATUS, BridgeStatus

NAMESPACE = "bridge"
NAME = "train-bridge-cm"
PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"
EVENTS_PATH = f"/apis/events.k8s.io/v1/namespaces/{NAMESPACE}/events"
OTHER_OWNER = "9e1d77c0-another-bridgejob"


class Clock(Protocol):
    elapsed: float

    def advance(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class ApiFault(enum.Enum):
    UNAVAILABLE = "503"
    UNAVAILABLE_RETRY_AFTER = "503 with Retry-After"
    TOO_MANY_REQUESTS = "429 with Retry-After"
    REFUSED = "connection refused"
    HTML_200 = "a proxy's HTML page, 200"
    HTML_404 = "a proxy's HTML page, 404"
    HUNG = "hung"


@dataclass
class Outage:
    fault: ApiFault
    start: float
    end: float
    retry_after: int = 10


@dataclass(frozen=True)
class Request:
    at: float
    thread: str
    method: str
    status: int | None  # None: no answer (refused, timed out)
    retry_after: float | None = None
    #: Answered by a proxy in between, not the API server.
    proxy: bool = False


@dataclass
class StoredObject:
    uid: str
    owner: str | None
    data: dict[str, str]
    resource_version: int
    created: float
    deleted: float | None = None
    #: ``metadata.creationTimestamp``, stamped by the API server's clock (the model's).
    creation_timestamp: str = ""

    def as_api(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": NAME,
            "namespace": NAMESPACE,
            "uid": self.uid,
            "resourceVersion": str(self.resource_version),
            "creationTimestamp": self.creation_timestamp,
        }
        if self.owner is not None:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "bridge.ibm.com/v1alpha1",
                    "kind": "BridgeJob",
                    "name": "train",
                    "uid": self.owner,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": metadata, "data": dict(self.data)}


@dataclass(frozen=True)
class Landed:
    """A PATCH that changed an object: when, from which thread, which object, what."""

    at: float
    uid: str
    owner: str | None
    changes: dict[str, str]


@dataclass
class FakeKubeApi:
    clock: Clock
    owner: str
    #: What a failed uid precondition answers (the real server answers a merge patch 422).
    uid_refusal: int = 422
    objects: list[StoredObject] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    landed: list[Landed] = field(default_factory=list)
    #: Every change of the current object's data with its time, oldest first (a lagging mount).
    versions: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    #: PATCHes to take before ``failures_left`` are refused with 503.
    successes_first: int = 0
    failures_left: int = 0
    #: Event writes answered 403 as RBAC does / 500 (a broken API), from now on.
    events_denied: bool = False
    events_broken: bool = False

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self._threads = threading.local()
        self._thread_numbers = itertools.count(1)
        self._uids = (f"cm-uid-{n}" for n in itertools.count(1))
        self._versions = itertools.count(100)
        self.event_store = EventStore(lambda: next(self._versions))

    @property
    def events(self) -> list[dict[str, Any]]:
        """The Events stored, in the order they were created."""
        with self.lock:
            return list(self.event_store.events.values())

    # -- the cluster's side ---------------------------------------------------------------------
    def create(self, data: Mapping[str, str], owner: str | None) -> StoredObject:
        with self.lock:
            stored = StoredObject(
                next(self._uids),
                owner,
                dict(data),
                next(self._versions),
                self.clock.elapsed,
                creation_timestamp=creation_timestamp(self.clock.now()),
            )
            self.objects.append(stored)
            self.versions.append((self.clock.elapsed, dict(stored.data)))
            return stored

    def delete(self) -> None:
        with self.lock:
            current = self.current
            if current is not None:
                current.deleted = self.clock.elapsed

    @property
    def current(self) -> StoredObject | None:
        with self.lock:
            last = self.objects[-1] if self.objects else None
            return last if last is not None and last.deleted is None else None

    def operator_sets(self, changes: Mapping[str, str]) -> None:
        """The operator (or a user) writes keys into the ConfigMap, if there is one."""
        with self.lock:
            current = self.current
            if current is not None:
                self._change(current, changes)

    def read(self) -> dict[str, str]:
        current = self.current
        return dict(current.data) if current is not None else {}

    def as_of(self, elapsed: float) -> dict[str, str]:
        """The data as it was at fake time ``elapsed`` (the kubelet's copy lags the API)."""
        return dict(next((data for at, data in reversed(self.versions) if at <= elapsed), self.versions[0][1]))

    @property
    def status(self) -> BridgeStatus | None:
        return BridgeStatus.parse(self.read().get(JOB_STATUS, ""))

    def outage(self, fault: ApiFault, start: float, duration: float, retry_after: int = 10) -> None:
        with self.lock:
            self.outages.append(Outage(fault, start, start + duration, retry_after))

    def fault_at(self, elapsed: float) -> Outage | None:
        with self.lock:
            return next((o for o in self.outages if o.start <= elapsed < o.end), None)

    def hung_until(self, elapsed: float) -> float | None:
        with self.lock:
            ends = [o.end for o in self.outages if o.fault is ApiFault.HUNG and o.start <= elapsed < o.end]
            return max(ends) if ends else None

    def _change(self, stored: StoredObject, changes: Mapping[str, str]) -> None:
        stored.data.update(changes)
        stored.resource_version = next(self._versions)
        if stored is self.current:
            self.versions.append((self.clock.elapsed, dict(stored.data)))

    # -- the API server's side --------------------------------------------------------------------
    def serve(self, method: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            current = self.current
            if current is None:
                return 404, status_body(404, "NotFound", f'configmaps "{NAME}" not found')
            if method == "GET":
                return 200, current.as_api()
            if method != "PATCH":
                return 405, status_body(405, "MethodNotAllowed", f"{method} is not supported here")
            if self.successes_first > 0:
                self.successes_first -= 1
            elif self.failures_left > 0:
                self.failures_left -= 1
                return 503, status_body(
                    503, "ServiceUnavailable", "the server is currently unable to handle the request"
                )
            if not isinstance(body, dict):
                return 400, status_body(400, "BadRequest", "the patch is not a JSON object")
            updated = merge_patch(current.as_api(), body)
            uid = (updated.get("metadata") or {}).get("uid")
            if uid != current.uid:
                return self.uid_refusal, _uid_refused(self.uid_refusal, uid, current.uid)
            data = updated.get("data") or {}
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                return 422, status_body(422, "Invalid", "data values must be strings")
            changes = {k: v for k, v in data.items() if current.data.get(k) != v}
            if changes:
                self.landed.append(Landed(self.clock.elapsed, current.uid, current.owner, changes))
                self._change(current, changes)
            return 200, current.as_api()

    def serve_event(self, method: str, path: str, content_type: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            if self.events_denied:
                verb = "create" if method == "POST" else "patch"
                return 403, self.event_store.forbidden(verb, NAMESPACE, "system:serviceaccount:bridge:bridge-cm-viewer")
            if self.events_broken:
                return 500, status_body(500, "InternalError", "etcdserver: request timed out")
            if method == "POST" and path == EVENTS_PATH:
                return self.event_store.create(NAMESPACE, body)
            if method == "PATCH" and path.startswith(EVENTS_PATH + "/"):
                return self.event_store.patch(NAMESPACE, path.rsplit("/", 1)[1], content_type, body)
            return 405, status_body(405, "MethodNotAllowed", f"{method} {path} is not supported here")

    def record(self, method: str, status: int | None, retry_after: float | None = None, *, proxy: bool = False) -> None:
        with self.lock:
            if not hasattr(self._threads, "number"):
                self._threads.number = next(self._thread_numbers)
            # Each pod is its own process: a new pod's first call owes nothing to an earlier pod's Retry-After.
            pod = getattr(self.clock, "pod_number", 0)
            thread = f"{threading.current_thread().name} #{self._threads.number} of pod {pod}"
            self.requests.append(Request(self.clock.elapsed, thread, method, status, retry_after, proxy))


def _uid_refused(status: int, asked: Any, stored: str) -> dict[str, Any]:
    if status == 409:
        return status_body(
            409, "Conflict", f"Precondition failed: UID in precondition: {asked}, UID in object meta: {stored}"
        )
    return status_body(
        422, "Invalid", f'ConfigMap "{NAME}" is invalid: metadata.uid: Invalid value: "{asked}": field is immutable'
    )


PROXY_PAGE = b"<html><head><title>Gateway</title></head><body><h1>Please sign in</h1></body></html>"


class KubeFront(BaseAdapter):
    """One pod's connection to the fake API: every request of its ``KubeConfigMap`` comes here."""

    def __init__(self, api: FakeKubeApi, clock: Clock) -> None:
        super().__init__()
        self.api = api
        self.clock = clock
        #: The pod has exited: its leftover threads reach nothing.
        self.closed = False
        #: This pod's Event writes that were sent (answered or not).
        self.event_requests = 0

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, **kwargs: Any
    ) -> requests.Response:
        method = str(request.method)
        path = str(request.path_url).split("?")[0]
        is_event = path.startswith(EVENTS_PATH)
        assert path == PATH or is_event, f"the pod called {method} {path}, which the model does not serve"
        if is_event:
            return self._event(request, method, path, timeout)
        if self.closed:
            raise requests.ConnectionError("the pod has exited")
        read_timeout = _read_timeout(timeout)
        start = self.clock.elapsed
        hung = self.api.hung_until(start)
        if hung is not None:
            if hung - start > read_timeout:
                self.clock.advance(read_timeout)
                self.api.record(method, None)
                raise requests.ReadTimeout(f"Read timed out. (read timeout={read_timeout:g})")
            self.clock.advance(hung - start)
        if self.closed:
            raise requests.ConnectionError("the pod has exited")
        outage = self.api.fault_at(self.clock.elapsed)
        headers: dict[str, str] = {}
        if outage is not None and outage.fault is ApiFault.REFUSED:
            self.api.record(method, None)
            raise requests.ConnectionError("[Errno 111] Connection refused")
        if outage is not None and outage.fault in (ApiFault.HTML_200, ApiFault.HTML_404):
            status = 200 if outage.fault is ApiFault.HTML_200 else 404
            self.api.record(method, status, proxy=True)
            return _response(request, status, PROXY_PAGE, "text/html", headers)
        if outage is not None and outage.fault is not ApiFault.HUNG:
            status = 429 if outage.fault is ApiFault.TOO_MANY_REQUESTS else 503
            retry_after = None if outage.fault is ApiFault.UNAVAILABLE else outage.retry_after
            if retry_after is not None:
                headers["Retry-After"] = str(retry_after)
            self.api.record(method, status, retry_after)
            reason = "TooManyRequests" if status == 429 else "ServiceUnavailable"
            body = json.dumps(status_body(status, reason, "please try again later")).encode()
            return _response(request, status, body, "application/json", headers)
        try:
            sent = json.loads(request.body) if request.body else None
        except ValueError:
            sent = None
        status, answer = self.api.serve(method, sent)
        self.api.record(method, status)
        return _response(request, status, json.dumps(answer).encode(), "application/json", headers)

    def _event(self, request: requests.PreparedRequest, method: str, path: str, timeout: Any) -> requests.Response:
        """An Event write: behind the same outages as the ConfigMap's calls, recorded apart from them."""
        if self.closed:
            raise requests.ConnectionError("the pod has exited")
        self.event_requests += 1
        start = self.clock.elapsed
        hung = self.api.hung_until(start)
        if hung is not None:
            if hung - start > _read_timeout(timeout):
                self.clock.advance(_read_timeout(timeout))
                raise requests.ReadTimeout("Read timed out.")
            self.clock.advance(hung - start)
        if self.closed:
            raise requests.ConnectionError("the pod has exited")
        outage = self.api.fault_at(self.clock.elapsed)
        if outage is not None and outage.fault is ApiFault.REFUSED:
            raise requests.ConnectionError("[Errno 111] Connection refused")
        if outage is not None and outage.fault in (ApiFault.HTML_200, ApiFault.HTML_404):
            status = 200 if outage.fault is ApiFault.HTML_200 else 404
            return _response(request, status, PROXY_PAGE, "text/html", {})
        if outage is not None and outage.fault is not ApiFault.HUNG:
            body = json.dumps(status_body(503, "ServiceUnavailable", "please try again later")).encode()
            return _response(request, 503, body, "application/json", {})
        try:
            sent = json.loads(request.body) if request.body else None
        except ValueError:
            sent = None
        content_type = str(request.headers.get("Content-Type", ""))
        status, answer = self.api.serve_event(method, path, content_type, sent)
        return _response(request, status, json.dumps(answer).encode(), "application/json", {})

    def close(self) -> None:
        return None


def _read_timeout(timeout: Any) -> float:
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    return float(timeout) if isinstance(timeout, (int, float)) else 30.0


def _response(
    request: requests.PreparedRequest, status: int, body: bytes, content_type: str, headers: Mapping[str, str]
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.reason = HTTPStatus(status).phrase
    response.headers = CaseInsensitiveDict({"Content-Type": content_type, "Content-Length": str(len(body)), **headers})
    response.raw = io.BytesIO(body)
    response.url = str(request.url)
    response.request = request
    response.encoding = "utf-8"
    return response
