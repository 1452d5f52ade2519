"""Which ConfigMap keys are misspellings of raypod's: a misspelled key would be ignored, and the job
run without its parameters, pip list or retries. Pure: no I/O.

raypod's namespaces are the keys under ``jobdata.``, ``s3.``, ``s3upload.`` and ``jobproperties.``,
any key that differs from a known one only in case or separators (``jobProperties``,
``jobdata.job_parameters``), and a key close to one of the operator's longer input keys
(``resourceURI``). Everything else is left alone: other tools may annotate the ConfigMap, and
``status.*`` is written by pods, whose later versions may add keys. docs/configmap.md says the same.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from raypod.contract import FOREIGN_BRIDGE_KEYS, INPUT_KEYS, OWNED_KEYS
from raypod.safetext import bounded_text

KNOWN_KEYS = frozenset(INPUT_KEYS + OWNED_KEYS + FOREIGN_BRIDGE_KEYS)
#: Prefixes only raypod's own keys have: any other key under them is a mistake.
OWN_PREFIXES = ("jobdata.", "s3.", "s3upload.", "jobproperties.")
#: Written by pods (raypod and others): never policed beyond case and separators.
STATUS_PREFIX = "status."
#: How alike (difflib's ratio, case-insensitive) a key must be to a known one to be taken for it.
CLOSENESS = 0.8
#: A key this short (``kill``, ``id``) draws foreign keys only by case or separators.
SHORTEST_CLOSE_KEY = 6
_SEPARATORS = re.compile(r"[\s._-]+")


def normalized(key: str) -> str:
    """A key without case and separators: ``jobProperties`` and ``job_properties`` meet ``jobproperties``."""
    return _SEPARATORS.sub("", key).lower()


_BY_NORMAL_FORM = {normalized(key): key for key in KNOWN_KEYS}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: how many characters to insert, delete or change to make ``a`` into ``b``."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def suggestions(key: str) -> tuple[str, ...]:
    """The known keys ``key`` is most likely a misspelling of: the one equal but for case and
    separators first, else the input keys difflib finds close that need the fewest edits (two when
    a key is as near to both: ``s3.secre``); empty when none is close."""
    same = _BY_NORMAL_FORM.get(normalized(key))
    if same is not None:
        return (same,)
    lowered = {known.lower(): known for known in INPUT_KEYS}
    close = difflib.get_close_matches(key.lower(), list(lowered), n=3, cutoff=CLOSENESS)
    if not close:
        return ()
    distance = {known: edit_distance(key.lower(), known) for known in close}
    fewest = min(distance.values())
    return tuple(sorted(lowered[known] for known, edits in distance.items() if edits == fewest))


def in_own_namespace(key: str, suggested: tuple[str, ...]) -> bool:
    """Whether raypod owns ``key``'s name, so that an unknown one is a mistake, not another tool's key."""
    lowered = key.lower()
    if any(normalized(key) == normalized(known) for known in suggested):
        return True
    if lowered.startswith(STATUS_PREFIX):
        return False
    if lowered.startswith(OWN_PREFIXES):
        return True
    return any(len(known) >= SHORTEST_CLOSE_KEY for known in suggested)


def unknown_key_problems(keys: Iterable[str]) -> list[tuple[str, str]]:
    """One problem per key in raypod's namespaces that raypod does not know, with a suggestion."""
    problems: list[tuple[str, str]] = []
    for key in sorted(set(keys) - KNOWN_KEYS):
        suggested = suggestions(key)
        if not in_own_namespace(key, suggested):
            continue
        shown = bounded_text(key, 80)
        if suggested:
            meant = " or ".join(suggested)
            problems.append((shown, f"unknown key, raypod would ignore it: did you mean {meant}?"))
        else:
            prefix = next(p for p in OWN_PREFIXES if key.lower().startswith(p))
            own = ", ".join(sorted(k for k in INPUT_KEYS if k.lower().startswith(prefix)))
            known = f"its {prefix}* keys: {own}" if own else f"{prefix.rstrip('.')} is one key holding JSON"
            problems.append((shown, f"unknown key, raypod would ignore it ({known})"))
    return problems
