"""``raypod delete`` leaves the job deleted: Ray 2.60 writes a job deleted within about a second of
its end back as FAILED (its job monitor finds the supervisor gone and no info), so the delete watches
a few seconds and deletes again (``raypod.jobs.delete_ended_job``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.errors import RayApiError
from raypod.jobs import DELETE_SETTLE, MAX_DELETES, delete_ended_job
from tests.support.fakes import FakeClock, FakeRay, ray_error

JOB = "raypod-train-0123456789ab"


def ended_ray(clock: FakeClock) -> FakeRay:
    ray = FakeRay(clock, life=("STOPPED",))
    ray.add_job(JOB)
    return ray


def test_a_delete_that_holds_is_watched_for_the_settle_time_only() -> None:
    clock = FakeClock()
    ray = ended_ray(clock)

    assert delete_ended_job(ray, JOB, clock=clock)

    assert JOB not in ray.jobs
    assert ray.calls_of("delete_job") == [JOB]
    assert DELETE_SETTLE <= clock.elapsed <= DELETE_SETTLE + 1.0


@given(write_back_after=st.floats(min_value=0.0, max_value=DELETE_SETTLE - 0.01))
def test_a_job_ray_writes_back_after_its_delete_is_deleted_again(write_back_after: float) -> None:
    clock = FakeClock()
    ray = ended_ray(clock)
    ray.writes_back_deleted_after = write_back_after

    deleted = delete_ended_job(ray, JOB, clock=clock)

    clock.advance(60.0)
    assert deleted and JOB not in ray.jobs
    assert ray.calls_of("delete_job") == [JOB, JOB]


def test_a_job_written_back_after_every_delete_is_reported_not_deleted() -> None:
    clock = FakeClock()
    ray = ended_ray(clock)
    ray.writes_back_deleted_after, ray.write_backs = 0.2, MAX_DELETES

    assert not delete_ended_job(ray, JOB, clock=clock)
    assert len(ray.calls_of("delete_job")) == MAX_DELETES


class RayTakingOneDelete(FakeRay):
    """Answers ``{"deleted": false}`` to every delete after the first."""

    def delete_job(self, submission_id: str) -> bool:
        if self.calls_of("delete_job"):
            self._record("delete_job", submission_id)
            return False
        return super().delete_job(submission_id)


def test_a_job_written_back_whose_second_delete_ray_does_not_take_is_reported_not_deleted() -> None:
    clock = FakeClock()
    ray = RayTakingOneDelete(clock, life=("STOPPED",))
    ray.add_job(JOB)
    ray.writes_back_deleted_after = 0.2

    assert not delete_ended_job(ray, JOB, clock=clock)
    assert ray.calls_of("delete_job") == [JOB, JOB] and JOB in ray.jobs


def test_a_failed_watch_is_raised_and_sigterm_ends_the_watch() -> None:
    clock = FakeClock()
    ray = ended_ray(clock)
    ray.fail("get_job", ray_error(502, "GET", f"/api/jobs/{JOB}", "Bad Gateway", "<html>"))
    with pytest.raises(RayApiError):
        delete_ended_job(ray, JOB, clock=clock)

    clock = FakeClock()
    ray = ended_ray(clock)
    clock.terminate_at(0.0)
    assert delete_ended_job(ray, JOB, clock=clock)
    assert ray.calls_of("get_job") == [] and clock.elapsed == 0.0
