"""Ray's own "no such job" is told apart from any other 404, on the real head: only the former may
make raypod conclude that Ray lost a job (issue 20, class 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.proxy import RESPOND, Proxy, Rule
from raypod.errors import RayApiError
from raypod.ray import RayJobsClient
from tests.support.helpers import Services, unique

#: What an nginx ingress answers for a path it has no route for.
INGRESS_PAGE = b"<html><head><title>404 Not Found</title></head><body><center>nginx</center></body></html>"

CALLS: dict[str, Callable[[RayJobsClient, str], object]] = {
    "poll": lambda ray, job: ray.get_job(job),
    "stop": lambda ray, job: ray.stop_job(job),
    "delete": lambda ray, job: ray.delete_job(job),
    "logs": lambda ray, job: ray.job_logs(job),
}


def error_of(call: Callable[[RayJobsClient, str], object], ray: RayJobsClient, submission_id: str) -> RayApiError:
    with pytest.raises(RayApiError) as raised:
        call(ray, submission_id)
    return raised.value


@pytest.mark.parametrize("call", CALLS.values(), ids=list(CALLS))
def test_the_real_heads_404_for_an_unknown_job_is_read_as_ray_not_knowing_it(
    services: Services, call: Callable[[RayJobsClient, str], object]
) -> None:
    ray = RayJobsClient.connect(services.ray_address)
    try:
        error = error_of(call, ray, unique("raypod-never-submitted"))
    finally:
        ray.close()

    assert error.status == 404
    assert error.job_unknown


@pytest.mark.parametrize("call", CALLS.values(), ids=list(CALLS))
def test_an_ingress_404_in_front_of_the_real_head_is_not_read_as_ray_not_knowing_the_job(
    ray_proxy: Proxy, call: Callable[[RayJobsClient, str], object]
) -> None:
    ray_proxy.add(Rule(RESPOND, path="/api/jobs/", status=404, body=INGRESS_PAGE, content_type="text/html"))
    ray = RayJobsClient.connect(ray_proxy.url)
    try:
        error = error_of(call, ray, unique("raypod-job"))
    finally:
        ray.close()

    assert error.status == 404
    assert not error.job_unknown


def test_the_real_heads_answer_for_a_missing_package_is_read_as_missing(services: Services) -> None:
    ray = RayJobsClient.connect(services.ray_address)
    try:
        assert ray.package_exists(f"_ray_pkg_{'0' * 16}{unique('x')[-8:]}.zip") is False
    finally:
        ray.close()


def test_an_ingress_404_for_a_package_check_is_an_error_not_a_missing_package(ray_proxy: Proxy) -> None:
    ray_proxy.add(Rule(RESPOND, path="/api/packages/", status=404, body=INGRESS_PAGE, content_type="text/html"))
    ray = RayJobsClient.connect(ray_proxy.url)
    try:
        with pytest.raises(RayApiError) as raised:
            ray.package_exists(f"_ray_pkg_{'0' * 24}.zip")
    finally:
        ray.close()

    assert raised.value.status == 404
    assert not raised.value.package_unknown
