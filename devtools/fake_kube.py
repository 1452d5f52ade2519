"""A small fake Kubernetes API server for the tests and the soak: ConfigMaps only, over real HTTPS.

- TLS with a throwaway CA (trustme); the service-account directory it writes holds that CA,
  a bearer token and the namespace, laid out as a pod sees them.
- Only the current token is accepted; ``rotate_token()`` replaces the file and rejects the old one.
- ``GET``, ``PATCH`` (JSON merge patch, RFC 7386) and ``PUT`` (409 on a stale ``resourceVersion``)
  of ``/api/v1/namespaces/<ns>/configmaps/<name>``; ``resourceVersion`` grows on every change.
- A patch whose ``metadata.uid`` is not the object's is refused as the real server refuses it: the
  patched object's uid differs from the stored one, and ``metadata.uid`` is immutable (apiserver
  ``rest.BeforeUpdate`` -> ``ValidateObjectMetaUpdate``), so 422 Invalid; a PATCH carries no other
  precondition (its ``UpdatedObjectInfo`` has no object, hence no ``Preconditions()``).
- ``delete_configmap`` then ``create_configmap`` re-creates an object under its name with a new uid;
  each object's ``creationTimestamp`` is the server's clock (``now``, a test may move it) as the API
  server writes it: RFC 3339, whole seconds, UTC, and a write never changes it.
- ``deny()`` answers 401/403 the way the real server does; ``fail()`` injects transient errors
  (with a ``Retry-After`` header when asked); ``answer_page()`` answers with a page that is not the
  API server's (a proxy's), changing nothing; ``hold()`` keeps requests waiting before they are
  served (a slow API server: a held PATCH lands late).
- ``POST`` and ``PATCH`` (JSON merge patch) of ``events.k8s.io/v1`` Events in
  ``/apis/events.k8s.io/v1/namespaces/<ns>/events[/<name>]``, checked as the API server validates
  them (``EventStore``): 201 on create, 409 AlreadyExists for a name taken, 404 for a missing one,
  422 Invalid for what validation refuses; ``deny_events()`` answers 403 as RBAC does, and
  ``fail_events()`` breaks them (an error status, or a page that is not the API server's).
- Just enough discovery (``/api``, ``/apis``, ...) for ``kubectl apply --dry-run=client``.

Runs in a thread on 127.0.0.1 with a free port. Every request is recorded for assertions.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from requests import Session

from raypod.retry import RetryPolicy

#: A retry policy short enough for tests of raypod's client against this server (faults end quickly).
QUICK = RetryPolicy(attempts=2, initial_wait=0.05, max_wait=0.1, deadline=2.0)

#: The RBAC verb of each HTTP method the fake serves.
_VERBS = {"GET": "get", "PATCH": "patch", "PUT": "update", "POST": "create"}

CONFIGMAP_PATH = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/configmaps/(?P<name>[^/]+)$")
#: Any other object path: /api/v1/namespaces/ns/pods/x or /apis/group/version/namespaces/ns/plural/x.
EVENTS_PATH = re.compile(r"^/apis/events\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/events(?:/(?P<name>[^/]+))?$")
OBJECT_PATH = re.compile(r"^/apis?/(?:[^/]+/)?[^/]+/(?:namespaces/[^/]+/)?(?P<plural>[^/]+)/(?P<name>[^/]+)$")

#: (group, version, kind, plural, namespaced) served by the discovery endpoints.
RESOURCES = [
    ("", "v1", "ConfigMap", "configmaps", True),
    ("", "v1", "Secret", "secrets", True),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("", "v1", "Pod", "pods", True),
    ("", "v1", "Namespace", "namespaces", False),
    ("batch", "v1", "Job", "jobs", True),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ("bridgejob.ibm.com", "v1alpha1", "BridgeJob", "bridgejobs", True),
    ("events.k8s.io", "v1", "Event", "events", True),
]


def creation_timestamp(moment: datetime) -> str:
    """``metadata.creationTimestamp`` as the API server writes it: RFC 3339, whole seconds, UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def other_ca_bundle(path: Path) -> Path:
    """The certificate of a CA that is not the fake server's, written to ``path``."""
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


#: What events.k8s.io/v1 validation allows (k8s.io/kubernetes pkg/apis/core/validation/events.go).
NOTE_LIMIT = 1024
FIELD_LIMIT = 128
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def event_problems(event: Any, namespace: str) -> list[str]:
    """Why the API server would refuse ``event`` in ``namespace`` (422 Invalid); empty when it would not."""
    if not isinstance(event, dict):
        return ["the body is not an object"]
    problems: list[str] = []
    metadata = event.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        problems.append(f"metadata.name: Invalid value: {name!r}")
    if isinstance(metadata, dict) and metadata.get("namespace") not in (None, namespace):
        problems.append("metadata.namespace: does not match the namespace of the request")
    if event.get("apiVersion") != "events.k8s.io/v1" or event.get("kind") != "Event":
        problems.append("apiVersion/kind: expected events.k8s.io/v1 Event")
    if not isinstance(event.get("eventTime"), str) or not MICRO_TIME.match(event["eventTime"]):
        problems.append("eventTime: Required value (MicroTime)")
    for key in ("reportingController", "reportingInstance", "action", "reason"):
        value = event.get(key)
        if not isinstance(value, str) or not value or len(value) > FIELD_LIMIT:
            problems.append(f"{key}: Required value, at most {FIELD_LIMIT} characters")
    if event.get("type") not in ("Normal", "Warning"):
        problems.append(f"type: Unsupported value: {event.get('type')!r}")
    note = event.get("note", "")
    if not isinstance(note, str) or len(note.encode("utf-8")) > NOTE_LIMIT:
        problems.append(f"note: Too long: may not be more than {NOTE_LIMIT} bytes")
    regarding = event.get("regarding")
    if not isinstance(regarding, dict) or regarding.get("namespace") != namespace:
        problems.append("regarding: must be an object in the event's namespace")
    series = event.get("series")
    if series is not None and (
        not isinstance(series, dict)
        or not isinstance(series.get("count"), int)
        or series["count"] < 2
        or not isinstance(series.get("lastObservedTime"), str)
        or not MICRO_TIME.match(series["lastObservedTime"])
    ):
        problems.append("series.count: must be at least 2, with series.lastObservedTime")
    return problems


class EventStore:
    """Events as the API server keeps them: created once per name, merge-patched, validated."""

    def __init__(self, next_version: Callable[[], int]) -> None:
        self.next_version = next_version
        self.events: dict[tuple[str, str], dict[str, Any]] = {}

    def create(self, ns: str, body: Any) -> tuple[int, Any]:
        problems = event_problems(body, ns)
        if problems:
            return 422, status_body(422, "Invalid", f"Event is invalid: {'; '.join(problems)}")
        name = body["metadata"]["name"]
        if (ns, name) in self.events:
            return 409, status_body(409, "AlreadyExists", f'events.events.k8s.io "{name}" already exists')
        event = copy.deepcopy(body)
        event["metadata"] = {**event["metadata"], "namespace": ns, "uid": secrets.token_hex(8)}
        event["metadata"]["resourceVersion"] = str(self.next_version())
        self.events[(ns, name)] = event
        return 201, copy.deepcopy(event)

    def patch(self, ns: str, name: str, content_type: str, body: Any) -> tuple[int, Any]:
        current = self.events.get((ns, name))
        if current is None:
            return 404, status_body(404, "NotFound", f'events.events.k8s.io "{name}" not found')
        if content_type.split(";")[0].strip() != "application/merge-patch+json":
            return 415, status_body(415, "UnsupportedMediaType", f"the media type {content_type!r} is not supported")
        if not isinstance(body, dict):
            return 400, status_body(400, "BadRequest", "the patch is not a JSON object")
        updated = merge_patch(current, body)
        # What the server owns stays the server's.
        updated["metadata"] = {**current["metadata"]}
        problems = event_problems(updated, ns)
        if problems:
            return 422, status_body(422, "Invalid", f"Event is invalid: {'; '.join(problems)}")
        if updated != current:
            updated["metadata"]["resourceVersion"] = str(self.next_version())
            self.events[(ns, name)] = updated
        return 200, copy.deepcopy(self.events[(ns, name)])

    def forbidden(self, verb: str, ns: str, user: str) -> dict[str, Any]:
        """RBAC's answer to a service account without the verb on events."""
        return status_body(
            403,
            "Forbidden",
            f'events.events.k8s.io is forbidden: User "{user}" cannot {verb} resource "events" '
            f'in API group "events.k8s.io" in the namespace "{ns}"',
        )


@dataclass
class Recorded:
    method: str
    path: str
    content_type: str
    body: Any
    status: int
    #: time.monotonic() when it was answered.
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Page:
    """An answer that is not the API server's (a proxy's HTML page, its JSON): sent as it is."""

    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Fault:
    verb: str
    status: int
    remaining: int | None  # None: until cleared
    page: Page | None = None
    retry_after: str | None = None


@dataclass
class Hold:
    verb: str
    seconds: float
    remaining: int | None  # None: until cleared


@dataclass
class FakeKube:
    root: Path
    namespace: str = "bridge-test"
    service_account: str = "bridge-cm-viewer"
    requests: list[Recorded] = field(default_factory=list)
    #: The API server's clock: it stamps ``creationTimestamp`` (a test moves it to make an object "later").
    now: Callable[[], datetime] = utc_now

    def __post_init__(self) -> None:
        self.ca = trustme.CA()
        self.sa_dir = self.root / "serviceaccount"
        self.sa_dir.mkdir(parents=True, exist_ok=True)
        self.ca_path = self.sa_dir / "ca.crt"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        (self.sa_dir / "namespace").write_text(self.namespace)
        self.token = ""
        self.tokens_seen: dict[str, int] = {}
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._version = 100
        self._faults: list[Fault] = []
        self._holds: list[Hold] = []
        self._event_faults: list[Fault] = []
        self.event_store = EventStore(self._next_version)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.rotate_token()

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> FakeKube:
        server = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        # The handshake happens in the handler thread, so one slow client cannot stall the others.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # a held request is let go at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def env(self) -> dict[str, str]:
        """What raypod needs to find this server instead of the in-cluster one."""
        return {"RAYPOD_KUBE_API": self.url, "RAYPOD_SERVICE_ACCOUNT_DIR": str(self.sa_dir)}

    # -- test controls ------------------------------------------------------------------------
    def rotate_token(self) -> str:
        """A new token in the file (replaced atomically, as the kubelet does); the old one stops working."""
        new = secrets.token_urlsafe(24)
        temp = self.sa_dir / ".token.tmp"
        temp.write_text(new)
        os.replace(temp, self.sa_dir / "token")
        with self._lock:
            self.token = new
            self.tokens_seen.setdefault(new, 0)
        return new

    def deny(self, verb: str, status: int = 403) -> None:
        """Answer every `verb` ("get", "patch", "put") with 401 or 403 until cleared."""
        self.fail(verb, status, None)

    def fail(self, verb: str, status: int, count: int | None = 1, *, retry_after: str | None = None) -> None:
        """The next ``count`` calls of ``verb`` answered ``status`` (with ``Retry-After: retry_after``)."""
        with self._lock:
            self._faults.append(Fault(verb, status, count, retry_after=retry_after))

    def answer_page(self, verb: str, page: Page, status: int = 200, count: int | None = 1) -> None:
        """The next ``count`` calls of ``verb`` get ``page`` (with ``status``) and change nothing."""
        with self._lock:
            self._faults.append(Fault(verb, status, count, page))

    def hold(self, verb: str, seconds: float, count: int | None = None) -> None:
        """The next ``count`` calls of ``verb`` (None: every one, until cleared) wait ``seconds``
        before they are served: read and applied only then, as by an API server that is slow."""
        with self._lock:
            self._holds.append(Hold(verb, seconds, count))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._holds.clear()
            self._event_faults.clear()

    def deny_events(self, status: int = 403) -> None:
        """Every Event write answered 403 (401) as RBAC does, until cleared."""
        self.fail_events(status, None)

    def fail_events(self, status: int, count: int | None = 1, *, page: Page | None = None) -> None:
        """The next ``count`` Event writes (None: all, until cleared) answered ``status`` (with ``page``)."""
        with self._lock:
            self._event_faults.append(Fault("events", status, count, page))

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The Events stored, in the order they were created."""
        ns = namespace or self.namespace
        with self._lock:
            return [copy.deepcopy(e) for (n, _), e in self.event_store.events.items() if n == ns]

    def create_configmap(
        self, name: str, data: Mapping[str, str], namespace: str | None = None, *, owner_uid: str | None = None
    ) -> dict[str, Any]:
        """A new object (a new uid); ``owner_uid``: owned by a BridgeJob, as the operator makes it."""
        ns = namespace or self.namespace
        with self._lock:
            metadata: dict[str, Any] = {
                "name": name,
                "namespace": ns,
                "uid": secrets.token_hex(8),
                "creationTimestamp": creation_timestamp(self.now()),
            }
            if owner_uid is not None:
                metadata["ownerReferences"] = [
                    {
                        "apiVersion": "bridgejob.ibm.com/v1alpha1",
                        "kind": "BridgeJob",
                        "name": name.removesuffix("-bridge-cm"),
                        "uid": owner_uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ]
            obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}
            self._store(ns, name, obj)
            return copy.deepcopy(obj)

    def update_data(self, name: str, changes: Mapping[str, str], namespace: str | None = None) -> None:
        """The same object with these keys set, as the operator's Update writes ``kill``."""
        ns = namespace or self.namespace
        with self._lock:
            obj = copy.deepcopy(self._objects[(ns, name)])
            obj["data"] = {**(obj.get("data") or {}), **changes}
            self._store(ns, name, obj)

    def delete_configmap(self, name: str, namespace: str | None = None) -> None:
        """Gone at once, as a ConfigMap without finalizers is (the garbage collector's delete)."""
        with self._lock:
            self._objects.pop((namespace or self.namespace, name), None)

    def mark_deleting(self, name: str, namespace: str | None = None) -> None:
        """A deletionTimestamp, as an object held by a finalizer has while it is deleted."""
        with self._lock:
            obj = self._objects[(namespace or self.namespace, name)]
            obj["metadata"]["deletionTimestamp"] = "2026-12-03T10:00:00Z"

    def configmap(self, name: str, namespace: str | None = None) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._objects[(namespace or self.namespace, name)])

    def data(self, name: str, namespace: str | None = None) -> dict[str, str]:
        return dict(self.configmap(name, namespace).get("data") or {})

    def session(self) -> Session:
        """A client as the operator would be: verifies the CA and sends the current token."""
        session = Session()
        # Else REQUESTS_CA_BUNDLE in the environment would replace the session's verify.
        session.trust_env = False
        session.verify = str(self.ca_path)
        session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def calls(self, method: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    # -- internals -------------------------------------------------------------------------
    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def _store(self, ns: str, name: str, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(self._next_version())
        self._objects[(ns, name)] = obj

    def _held_for(self, method: str) -> float:
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update"}.get(method, method.lower())
        with self._lock:
            for hold in self._holds:
                if hold.verb == verb and (hold.remaining is None or hold.remaining > 0):
                    if hold.remaining is not None:
                        hold.remaining -= 1
                    return hold.seconds
        return 0.0

    def _fault_for(self, verb: str) -> Fault | None:
        for fault in self._faults:
            if fault.verb == verb and (fault.remaining is None or fault.remaining > 0):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Any]:
        content_type = headers.get("content-type", "")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        self._stopping.wait(self._held_for(method))
        with self._lock:
            status, answer = self._answer(method, path, headers, content_type, body)
            self.requests.append(Recorded(method, path, content_type, body, status))
        return status, answer

    def _answer(
        self, method: str, path: str, headers: Mapping[str, str], content_type: str, body: Any
    ) -> tuple[int, Any]:
        presented = headers.get("authorization", "")
        if presented != f"Bearer {self.token}":
            return 401, status_body(401, "Unauthorized", "Unauthorized")
        self.tokens_seen[self.token] = self.tokens_seen.get(self.token, 0) + 1
        verb = _VERBS.get(method, method.lower())
        match = CONFIGMAP_PATH.match(path)
        if match:
            injected = self._fault_for(verb)
            if injected is not None and injected.page is not None:
                return injected.status, injected.page
            if injected is not None:
                refusal = self._refusal(injected.status, verb, match["ns"], match["name"])
                if injected.retry_after is not None:
                    header = (("Retry-After", injected.retry_after),)
                    return injected.status, Page(json.dumps(refusal).encode(), "application/json", header)
                return injected.status, refusal
            return self._configmap(method, match["ns"], match["name"], content_type, body)
        match = EVENTS_PATH.match(path)
        if match and method in ("POST", "PATCH"):
            return self._event(method, match["ns"], match["name"], content_type, body)
        return self._discovery_or_other(method, path)

    def _event(self, method: str, ns: str, name: str | None, content_type: str, body: Any) -> tuple[int, Any]:
        injected = self._fault_for_events()
        if injected is not None and injected.page is not None:
            return injected.status, injected.page
        if injected is not None:
            if injected.status == 403:
                user = f"system:serviceaccount:{self.namespace}:{self.service_account}"
                return 403, self.event_store.forbidden(_VERBS[method], ns, user)
            return injected.status, self._refusal(injected.status, "create", ns, "events")
        if method == "POST" and name is None:
            return self.event_store.create(ns, body)
        if method == "PATCH" and name is not None:
            return self.event_store.patch(ns, name, content_type, body)
        return 405, status_body(405, "MethodNotAllowed", f"{method} is not supported here")

    def _fault_for_events(self) -> Fault | None:
        for fault in self._event_faults:
            if fault.remaining is None or fault.remaining > 0:
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def _refusal(self, status: int, verb: str, ns: str, name: str) -> dict[str, Any]:
        if status == 401:
            return status_body(401, "Unauthorized", "Unauthorized")
        if status == 403:
            user = f"system:serviceaccount:{self.namespace}:{self.service_account}"
            return status_body(
                403,
                "Forbidden",
                f'configmaps "{name}" is forbidden: User "{user}" cannot {verb} resource "configmaps" '
                f'in API group "" in the namespace "{ns}"',
            )
        return status_body(status, "InternalError", f"injected failure {status}")

    def _configmap(self, method: str, ns: str, name: str, content_type: str, body: Any) -> tuple[int, Any]:
        current = self._objects.get((ns, name))
        if current is None:
            return 404, status_body(404, "NotFound", f'configmaps "{name}" not found')
        if method == "GET":
            return 200, copy.deepcopy(current)
        if method == "PATCH":
            if content_type.split(";")[0].strip() != "application/merge-patch+json":
                return 415, status_body(
                    415, "UnsupportedMediaType", f"the media type {content_type!r} is not supported"
                )
            if not isinstance(body, dict):
                return 400, status_body(400, "BadRequest", "the patch is not a JSON object")
            updated = merge_patch(current, body)
            uid = (updated.get("metadata") or {}).get("uid")
            if uid != current["metadata"]["uid"]:
                return 422, _uid_is_immutable(name, uid)
            return self._replace(ns, name, current, updated)
        if method == "PUT":
            if not isinstance(body, dict) or (body.get("metadata") or {}).get("name") != name:
                return 400, status_body(400, "BadRequest", "the body must be this ConfigMap")
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
                return 409, status_body(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on configmaps "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                )
            return self._replace(ns, name, current, copy.deepcopy(body))
        return 405, status_body(405, "MethodNotAllowed", f"{method} is not supported here")

    def _replace(self, ns: str, name: str, current: dict[str, Any], updated: dict[str, Any]) -> tuple[int, Any]:
        data = updated.get("data") or {}
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            return 422, status_body(422, "Invalid", "data values must be strings")
        # Fields the server owns stay the server's.
        owned = {key: current["metadata"][key] for key in ("uid", "creationTimestamp") if key in current["metadata"]}
        updated["metadata"] = {**(updated.get("metadata") or {}), **owned}
        updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if updated != current:
            self._store(ns, name, updated)
        return 200, copy.deepcopy(self._objects[(ns, name)])

    def _discovery_or_other(self, method: str, path: str) -> tuple[int, Any]:
        groups = sorted({(g, v) for g, v, *_ in RESOURCES if g})
        if method == "GET" and path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if method == "GET" and path == "/apis":
            return 200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [
                    {
                        "name": g,
                        "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                        "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v},
                    }
                    for g, v in groups
                ],
            }
        for group, version in [("", "v1"), *groups]:
            prefix = "/api/v1" if not group else f"/apis/{group}/{version}"
            if method == "GET" and path == prefix:
                return 200, {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{group}/{version}".lstrip("/"),
                    "resources": [
                        {
                            "name": plural,
                            "singularName": kind.lower(),
                            "namespaced": namespaced,
                            "kind": kind,
                            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                        }
                        for g, v, kind, plural, namespaced in RESOURCES
                        if (g, v) == (group, version)
                    ],
                }
        match = OBJECT_PATH.match(path)
        if method == "GET" and match:
            return 404, status_body(404, "NotFound", f'{match["plural"]} "{match["name"]}" not found')
        return 404, status_body(404, "NotFound", "the server could not find the requested resource")

    def iter_patched_keys(self) -> Iterator[str]:
        for call in self.calls("PATCH"):
            if isinstance(call.body, dict):
                yield from (call.body.get("data") or {}).keys()


def _uid_is_immutable(name: str, uid: Any) -> dict[str, Any]:
    """The real server's answer to an update that changes ``metadata.uid`` (422 Invalid)."""
    body = status_body(
        422, "Invalid", f'ConfigMap "{name}" is invalid: metadata.uid: Invalid value: "{uid}": field is immutable'
    )
    body["details"] = {
        "name": name,
        "kind": "ConfigMap",
        "causes": [{"reason": "FieldValueInvalid", "message": "field is immutable", "field": "metadata.uid"}],
    }
    return body


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that rejects our certificate is what some tests want


def _make_handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, answer = fake.handle(self.command, path, headers, raw)
            page = answer if isinstance(answer, Page) else Page(json.dumps(answer).encode(), "application/json")
            payload = page.body
            self.send_response(status)
            self.send_header("Content-Type", page.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in page.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PATCH = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return None  # quiet: the recorded requests are the log

    return Handler
