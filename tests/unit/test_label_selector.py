"""``jobproperties.entrypoint_label_selector`` is parsed as a map of strings. (What the real Ray
head does with it is in tests/ray/test_label_selector_on_ray.py.)"""

from __future__ import annotations

from raypod.properties import parse_job_properties


def test_the_selector_is_parsed_as_strings_only() -> None:
    assert parse_job_properties('{"entrypoint_label_selector": {"zone": "a"}}').entrypoint_label_selector == {
        "zone": "a"
    }
