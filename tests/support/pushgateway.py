"""The Pushgateway's side, for the tests: a strict parser of the text format (version 0.0.4), the
grouping key read back from a URL path, and a recording gateway on a ``ScriptedServer``."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from tests.support.scripted_server import Answer, ScriptedServer, Seen

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_HELP = re.compile(rf"# HELP ({_NAME}) (.*)")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)")
_SAMPLE = re.compile(rf"({_NAME})(?:\{{(.*)\}})? (\S+)")
_VALUE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|NaN|[+-]Inf")


@dataclass
class Family:
    name: str
    help: str
    type: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    @property
    def value(self) -> float:
        """The value of a family of one sample."""
        assert len(self.samples) == 1, self.samples
        return self.samples[0][1]

    @property
    def labels(self) -> dict[str, str]:
        assert len(self.samples) == 1, self.samples
        return self.samples[0][0]


def _unescape(text: str, escapable: str) -> str:
    """Undo the format's escapes; any other backslash sequence is an error."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        following = text[index + 1 : index + 2]
        if following not in escapable:
            raise ValueError(f"bad escape \\{following!r} in {text!r}")
        out.append("\n" if following == "n" else following)
        index += 2
    return "".join(out)


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    rest = text
    while rest:
        match = re.match(rf'({_LABEL})="', rest)
        if match is None:
            raise ValueError(f"bad label set: {text!r}")
        index = match.end()
        value: list[str] = []
        while True:
            if index >= len(rest):
                raise ValueError(f"unterminated label value: {text!r}")
            char = rest[index]
            if char == "\\":
                value.append(rest[index : index + 2])
                index += 2
                continue
            if char == '"':
                break
            if char == "\n":
                raise ValueError("a raw newline in a label value")
            value.append(char)
            index += 1
        name = match.group(1)
        if name in labels:
            raise ValueError(f"label {name} twice")
        labels[name] = _unescape("".join(value), '\\"n')
        rest = rest[index + 1 :]
        if rest.startswith(","):
            rest = rest[1:]
            if not rest:
                raise ValueError("a trailing comma")
        elif rest:
            raise ValueError(f"bad label set: {text!r}")
    return labels


def parse_exposition(text: str) -> dict[str, Family]:
    """Every family of a text-format body, strictly: each has its HELP then TYPE before its samples,
    each family's samples together, every line ends with a newline, nothing else."""
    if text and not text.endswith("\n"):
        raise ValueError("the body does not end with a newline")
    families: dict[str, Family] = {}
    current: Family | None = None
    pending_help: tuple[str, str] | None = None
    for line in text.split("\n")[:-1]:
        if match := _HELP.fullmatch(line):
            if match.group(1) in families or pending_help is not None:
                raise ValueError(f"HELP out of place: {line!r}")
            pending_help = (match.group(1), _unescape(match.group(2), "\\n"))
        elif match := _TYPE.fullmatch(line):
            if pending_help is None or pending_help[0] != match.group(1):
                raise ValueError(f"TYPE without its HELP: {line!r}")
            current = Family(match.group(1), pending_help[1], match.group(2))
            families[current.name] = current
            pending_help = None
        elif match := _SAMPLE.fullmatch(line):
            if current is None or match.group(1) != current.name or pending_help is not None:
                raise ValueError(f"sample out of its family: {line!r}")
            if not _VALUE.fullmatch(match.group(3)):
                raise ValueError(f"bad value: {line!r}")
            current.samples.append((_labels(match.group(2) or ""), float(match.group(3))))
        else:
            raise ValueError(f"not a line of the text format: {line!r}")
    if pending_help is not None:
        raise ValueError("HELP without its TYPE")
    return families


def parse_grouping_path(path: str) -> dict[str, str]:
    """The grouping key of ``/metrics/job/<job>{/<label>/<value>}``, as the Pushgateway reads it."""
    assert path.startswith("/metrics/"), path
    parts = path.removeprefix("/metrics/").split("/")
    assert len(parts) % 2 == 0 and all(parts), path
    key: dict[str, str] = {}
    for name, value in zip(parts[::2], parts[1::2], strict=True):
        if name.endswith("@base64"):
            name = name.removesuffix("@base64")
            text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8") if value != "=" else ""
        else:
            text = unquote(value)
        assert re.fullmatch(_LABEL, name) and name not in key, path
        key[name] = text
    assert next(iter(key)) == "job", path
    return key


class RecordingGateway:
    """A Pushgateway on loopback that records every call; ``answer`` is what each PUT and DELETE gets."""

    def __init__(self, server: ScriptedServer, *responders: Answer) -> None:
        self.server = server
        answers = responders or (Answer(200, b"", "text/plain"),)
        server.route("PUT", "/metrics/*", *answers)
        server.route("DELETE", "/metrics/*", *(responders or (Answer(202, b"", "text/plain"),)))

    @property
    def calls(self) -> list[Seen]:
        return [seen for seen in self.server.seen if seen.bare_path.startswith("/metrics/")]

    @property
    def pushes(self) -> list[Seen]:
        return [seen for seen in self.calls if seen.method == "PUT"]

    def only_push(self) -> tuple[dict[str, str], dict[str, Family]]:
        """The grouping key and the families of the one push there was."""
        pushes = self.pushes
        assert len(pushes) == 1, [(seen.method, seen.path) for seen in self.calls]
        push = pushes[0]
        assert push.headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8", push.headers
        return parse_grouping_path(push.bare_path), parse_exposition(push.body.decode("utf-8"))
