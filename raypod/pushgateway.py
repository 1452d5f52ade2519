"""A Prometheus Pushgateway, spoken to with raypod's one HTTP client (no Prometheus library).

It owns three things of the protocol:

- the text exposition format, version 0.0.4: ``# HELP`` and ``# TYPE`` lines, then one line per
  sample, label values escaped (``\\``, ``"`` and a newline), help text escaped (``\\`` and a newline);
- the grouping key in the URL path, as the Pushgateway's README defines it:
  ``/metrics/job/<job>{/<label>/<value>}``; a value that is empty, holds a ``/`` or anything beyond
  ``[A-Za-z0-9._~-]`` goes as ``<label>@base64/<RFC 4648 URL-safe base64>`` (``=`` for an empty one);
- the calls: ``PUT`` replaces the group's metrics, ``DELETE`` deletes the group.

The gateway's address may carry ``user:password@``: it is taken out of the URL and sent as basic
auth, so every message that names the gateway shows the address without it, and the HTTP client's
scrubber knows the password.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

from raypod.errors import ApiError
from raypod.http import HttpClient, Timeouts, redact_url
from raypod.retry import NO_RETRY
from raypod.safetext import valid_text

#: What the text format of version 0.0.4 is sent as.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The metric and label names Prometheus accepts (a label name never starts with ``__``: reserved).
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
#: A grouping-key value sent as it is; anything else goes base64-encoded.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._~-]+")
METRIC_TYPES = ("gauge", "counter", "untyped")


class PushgatewayError(ApiError):
    service = "Pushgateway"


@dataclass(frozen=True)
class Sample:
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    """One metric family: a name, its help, its type and its samples."""

    name: str
    help: str
    samples: Sequence[Sample]
    type: str = "gauge"

    def __post_init__(self) -> None:
        if not METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"not a metric name: {self.name!r}")
        if self.type not in METRIC_TYPES:
            raise ValueError(f"not a metric type: {self.type!r}")
        for sample in self.samples:
            for label in sample.labels:
                _check_label_name(label)


def _check_label_name(name: str) -> None:
    if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
        raise ValueError(f"not a label name: {name!r}")


def escape_label_value(value: str) -> str:
    """A label value inside its double quotes (format 0.0.4): ``\\``, ``"`` and newline escaped."""
    return valid_text(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """A help text (format 0.0.4): ``\\`` and newline escaped."""
    return valid_text(text).replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: integers without a point, ``NaN``, ``+Inf``, ``-Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def exposition(metrics: Sequence[Metric]) -> str:
    """The metrics in the text format, version 0.0.4, each family's lines together."""
    lines: list[str] = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.type}")
        for sample in metric.samples:
            labels = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sample.labels.items())
            selector = f"{{{labels}}}" if labels else ""
            lines.append(f"{metric.name}{selector} {format_value(sample.value)}")
    return "".join(line + "\n" for line in lines)


def _key_part(name: str, value: str) -> str:
    if _PLAIN_VALUE.fullmatch(value):
        return f"{name}/{value}"
    if not value:
        return f"{name}@base64/="
    encoded = base64.urlsafe_b64encode(valid_text(value).encode("utf-8")).decode("ascii").rstrip("=")
    return f"{name}@base64/{encoded}"


def grouping_path(job: str, labels: Mapping[str, str]) -> str:
    """``/metrics/job/<job>{/<label>/<value>}``: the group the metrics replace (PUT) or leave (DELETE)."""
    if not job:
        raise ValueError("the Pushgateway refuses an empty job name")
    parts = [_key_part("job", job)]
    for name, value in labels.items():
        _check_label_name(name)
        if name == "job":
            raise ValueError("job is the grouping key's first label already")
        parts.append(_key_part(name, value))
    return "/metrics/" + "/".join(parts)


@dataclass(frozen=True)
class GatewayAddress:
    """Where the Pushgateway is: its URL without credentials, and the basic auth they were."""

    url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> GatewayAddress:
        """An ``http(s)://[user:password@]host[:port][/prefix]`` address; ValueError (never quoting a
        password) for anything else."""
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http:// or https:// URL with a host")
        if parts.query or parts.fragment:
            raise ValueError("expected no query and no fragment")
        try:
            parts.port  # noqa: B018 - raises for a port that is no number
        except ValueError:
            raise ValueError("the port is not a number") from None
        auth = None
        if parts.username is not None:
            auth = (unquote(parts.username), unquote(parts.password or ""))
        return cls(redact_url(urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))), auth)


class Pushgateway:
    """The calls to one Pushgateway: each a single try, bounded by ``timeouts`` (a push at exit has
    seconds, not minutes)."""

    def __init__(self, address: GatewayAddress, timeouts: Timeouts) -> None:
        self.address = address
        self.http = HttpClient(
            address.url,
            error_class=PushgatewayError,
            auth=address.auth,
            timeouts=timeouts,
            retry=NO_RETRY,
        )

    def push(self, group: str, metrics: Sequence[Metric]) -> None:
        """PUT: the group's metrics are these, and only these."""
        body = exposition(metrics).encode("utf-8")
        self.http.request("PUT", group, data=body, headers={"Content-Type": CONTENT_TYPE}).close()

    def delete(self, group: str) -> None:
        """DELETE: the group and its metrics are gone (a group that is not there is no error)."""
        self.http.request("DELETE", group).close()

    def close(self) -> None:
        self.http.close()
