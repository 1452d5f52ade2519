"""The test and demo Ray head (devtools/services.py): a head that does not come up is started once
more on new ports, and a second failure says what its log said (the log's directory is removed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from devtools.services import LocalRay


def test_a_head_that_did_not_come_up_is_started_again_on_new_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = LocalRay()
    tried: list[tuple[int, Path]] = []

    def start_once(self: LocalRay, timeout: float) -> LocalRay:
        tried.append((self.port, self.temp_dir))
        if len(tried) == 1:
            shutil.rmtree(self.temp_dir)  # as stop() leaves it
            raise RuntimeError("Ray head did not start (no answer)")
        return self

    monkeypatch.setattr(LocalRay, "_start_once", start_once)
    try:
        assert ray.start(timeout=1.0) is ray
        assert len(tried) == 2
        assert tried[0][1] != tried[1][1] and not tried[0][1].exists()
        assert ray.address == f"http://127.0.0.1:{tried[1][0]}"
        assert ray.log_path.parent == tried[1][1]
    finally:
        shutil.rmtree(ray.temp_dir, ignore_errors=True)


def test_a_head_that_never_comes_up_fails_after_the_second_try_with_its_logs_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ray = LocalRay()
    calls: list[int] = []

    def start_once(self: LocalRay, timeout: float) -> LocalRay:
        calls.append(1)
        shutil.rmtree(self.temp_dir)
        raise RuntimeError(f"Ray head did not start (try {len(calls)}); the end of its log:\nport in use")

    monkeypatch.setattr(LocalRay, "_start_once", start_once)
    try:
        with pytest.raises(RuntimeError, match=r"try 2\).*\nport in use"):
            ray.start(timeout=1.0)
        assert len(calls) == 2
    finally:
        shutil.rmtree(ray.temp_dir, ignore_errors=True)


def test_no_attempts_is_refused_before_any_head_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = LocalRay()
    calls: list[float] = []

    def start_once(self: LocalRay, timeout: float) -> LocalRay:
        calls.append(timeout)
        return self

    monkeypatch.setattr(LocalRay, "_start_once", start_once)
    try:
        with pytest.raises(ValueError, match="at least 1, not 0"):
            ray.start(timeout=1.0, attempts=0)
        assert calls == [] and ray.process is None
    finally:
        shutil.rmtree(ray.temp_dir, ignore_errors=True)
