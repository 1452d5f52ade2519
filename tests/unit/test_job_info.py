"""``JobInfo`` read from Ray's job object without a client: an answer raypod cannot trust is a
permanent RayApiError. (The client's answers over HTTP are in tests/loopback/test_ray_answers.py.)"""

from __future__ import annotations

import pytest

from raypod.errors import RayApiError
from raypod.ray import JobInfo


def test_from_api_without_a_client_raises_a_permanent_ray_error() -> None:
    with pytest.raises(RayApiError) as caught:
        JobInfo.from_api({"status": "WEIRD"})
    assert not caught.value.transient
