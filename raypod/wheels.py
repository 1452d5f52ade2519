"""Wheel file names: checked, and made content-addressed for their upload. Pure: no I/O.

Ray installs each ``py_modules`` wheel with ``pip install <file> --target <dir>`` on the node
(``install_wheel_package`` in ray/_private/runtime_env/packaging.py), so the uploaded file must keep
a wheel file name pip accepts. Ray itself uploads a wheel as ``gcs://<its file name>``, which is not
content-addressed: a second, different wheel of the same name would be taken for the first. raypod
puts the content hash in the wheel's build tag instead (``name-ver-0<sha256[:32]>-py3-none-any.whl``):
still a valid wheel name, and one per content.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: ``{name}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl`` (PEP 427): no part
#: holds '-', and a build tag starts with a digit.
_WHEEL_NAME = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)-(?P<version>[A-Za-z0-9_.!+]+)"
    r"(?:-(?P<build>\d[A-Za-z0-9_.]*))?"
    r"-(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)-(?P<platform>[A-Za-z0-9_.]+)\.whl"
)
WHEEL_NAME_FORM = "name-version[-build]-python-abi-platform.whl, e.g. mylib-1.0-py3-none-any.whl"


@dataclass(frozen=True)
class WheelName:
    distribution: str
    version: str
    python: str
    abi: str
    platform: str

    @classmethod
    def parse(cls, filename: str) -> WheelName | None:
        match = _WHEEL_NAME.fullmatch(filename)
        if match is None:
            return None
        return cls(match["name"], match["version"], match["python"], match["abi"], match["platform"])

    @property
    def project(self) -> str:
        """The distribution's normalized name: two wheels of one project cannot both be installed."""
        return re.sub(r"[-_.]+", "_", self.distribution).lower()

    def with_build(self, build: str) -> str:
        return f"{self.distribution}-{self.version}-{build}-{self.python}-{self.abi}-{self.platform}.whl"


def wheel_name_problems(names: Sequence[str], what: Sequence[str]) -> list[str]:
    """Why these file names cannot be installed together as wheels; ``what`` says how each was given."""
    problems: list[str] = []
    projects: dict[str, str] = {}
    for name, given in zip(names, what, strict=True):
        if not name.endswith(".whl"):
            problems.append(f"{given} is not a .whl file")
            continue
        wheel = WheelName.parse(name)
        if wheel is None:
            problems.append(f"{given}: {name!r} is not a wheel file name ({WHEEL_NAME_FORM})")
            continue
        if wheel.project in projects:
            problems.append(f"{given} and {projects[wheel.project]} are both wheels of {wheel.distribution}")
            continue
        projects[wheel.project] = given
    return problems


def content_addressed_name(filename: str, digest: str) -> str:
    """The wheel's name with its content hash as the build tag (which must start with a digit)."""
    wheel = WheelName.parse(filename)
    if wheel is None:
        raise ValueError(f"{filename!r} is not a wheel file name")
    return wheel.with_build(f"0{digest[:32]}")
