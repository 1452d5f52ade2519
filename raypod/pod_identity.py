"""Which pod this is: its name, uid and node (the Downward API's environment variables), and the
W3C trace context a caller handed it.

One place reads them, for the Ray job's metadata (a job on the Ray dashboard leads back to its pod),
the Kubernetes Events' ``reportingInstance`` and the JSON log lines. Every value is data from
outside: one that is malformed is left out, never passed on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

#: The variables the sample pod sets from the Downward API (``fieldRef``: metadata.name, metadata.uid, spec.nodeName).
POD_NAME_VARIABLE = "POD_NAME"
POD_UID_VARIABLE = "POD_UID"
NODE_NAME_VARIABLE = "NODE_NAME"
#: A W3C trace context (https://www.w3.org/TR/trace-context/), as OpenTelemetry's environment carriers name it.
TRACEPARENT_VARIABLE = "TRACEPARENT"
#: Set by the kubelet in every pod (the API's address): only there does HOSTNAME name a pod.
IN_POD_VARIABLE = "KUBERNETES_SERVICE_HOST"

#: Set by the Bridge Operator in the pod it starts: the BridgeJob whose ConfigMap the pod runs.
OPERATOR_JOB_VARIABLE = "JOBNAME"

#: The longest value each can have: a DNS-1123 subdomain, a uid, a version-00 traceparent.
MAX_NAME_LENGTH = 253
UID_LENGTH = 36
TRACEPARENT_LENGTH = 55

# A DNS-1123 subdomain (pod and node names), at most MAX_NAME_LENGTH characters.
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_UID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# version 00: version-traceid-parentid-flags; all-zero trace and parent ids are invalid.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@dataclass(frozen=True)
class PodIdentity:
    """What is known of the pod; an empty string where nothing (valid) was given."""

    name: str = ""
    uid: str = ""
    node: str = ""
    traceparent: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> PodIdentity:
        # Kubernetes sets HOSTNAME to the pod's name unless the spec sets a hostname; outside a pod
        # (a laptop, a container of CI) it names a machine, which no job should be traced to.
        hostname = environ.get("HOSTNAME") if environ.get(IN_POD_VARIABLE) else None
        return cls.checked(
            name=environ.get(POD_NAME_VARIABLE) or hostname,
            uid=environ.get(POD_UID_VARIABLE),
            node=environ.get(NODE_NAME_VARIABLE),
            traceparent=environ.get(TRACEPARENT_VARIABLE),
        )

    @classmethod
    def checked(
        cls, *, name: str | None = None, uid: str | None = None, node: str | None = None, traceparent: str | None = None
    ) -> PodIdentity:
        """The valid ones of these values (from the environment, or a Ray job's metadata)."""
        return cls(
            name=_checked(name, _dns_subdomain),
            uid=_checked(uid, _UID.fullmatch),
            node=_checked(node, _dns_subdomain),
            traceparent=_checked(traceparent, _TRACEPARENT.fullmatch),
        )


def _dns_subdomain(text: str) -> bool:
    return len(text) <= MAX_NAME_LENGTH and _DNS_SUBDOMAIN.fullmatch(text) is not None


def _checked(value: str | None, valid: Callable[[str], object]) -> str:
    text = (value or "").strip()
    return text if text and valid(text) else ""


def started_as_pod(environ: Mapping[str, str]) -> bool:
    """Whether a bare ``raypod`` (no command) is the pod: the operator starts its image with no
    arguments, in a pod (the kubelet's ``KUBERNETES_SERVICE_HOST``) and with ``JOBNAME`` set. Either
    one says pod; with neither, a person typed ``raypod`` and gets the usage."""
    return bool(environ.get(IN_POD_VARIABLE) or environ.get(OPERATOR_JOB_VARIABLE))
