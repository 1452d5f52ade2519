"""raypod's runtime requirements, as the README and docs/comparison.md state them."""

from __future__ import annotations

import re

#: The runtime requirements the README and docs/comparison.md state.
RUNTIME = {"requests", "minio", "tenacity"}


def requirement_name(line: str) -> str:
    return re.split(r"[<>=!~\[;\s]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
