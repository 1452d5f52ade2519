"""The Pushgateway's protocol in raypod.pushgateway: the text format read back strictly, the label
escaping round trip, the grouping key of the URL path, the gateway's address; and the metrics a run
yields (raypod.run_metrics) from what the run holds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raypod.artifacts import Collected
from raypod.contract import ATTEMPT, ID, JOB_STATUS, REASON, BridgeStatus
from raypod.outcome import Ending, Outcome
from raypod.pushgateway import GatewayAddress, Metric, Sample, exposition, format_value, grouping_path
from raypod.ray import JobInfo, RayStatus
from raypod.run_metrics import GatewaySettings, QueueClock, ending_label, run_metrics
from raypod.runner import RunResult
from tests.support.pushgateway import parse_exposition, parse_grouping_path

label_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@given(label_values, label_values)
def test_label_values_and_help_come_back_as_they_were(value: str, help_text: str) -> None:
    metric = Metric("raypod_x", help_text, [Sample(1.5, {"a": value, "b": "plain"})])
    families = parse_exposition(exposition([metric]))
    assert families["raypod_x"].help == help_text
    assert families["raypod_x"].labels == {"a": value, "b": "plain"}
    assert families["raypod_x"].value == 1.5


def test_the_three_escapes_of_a_label_value_are_written_as_the_format_says() -> None:
    text = exposition([Metric("m", 'a\\b\nc"d', [Sample(2, {"l": 'x\\y\nz"w'})])])
    assert text == '# HELP m a\\\\b\\nc"d\n# TYPE m gauge\nm{l="x\\\\y\\nz\\"w"} 2\n'


def test_values_are_written_as_prometheus_writes_them() -> None:
    assert [format_value(v) for v in (3, 0.25, 1e21, math.nan, math.inf, -math.inf, 1_764_000_000.5)] == [
        "3",
        "0.25",
        "1e+21",
        "NaN",
        "+Inf",
        "-Inf",
        "1764000000.5",
    ]


def test_names_the_format_cannot_hold_are_refused() -> None:
    for bad in (lambda: Metric("1x", "", []), lambda: Metric("m", "", [Sample(1, {"__x": "v"})])):
        with pytest.raises(ValueError):
            bad()


@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30), st.text(max_size=30))
def test_a_grouping_key_reads_back_as_the_pushgateway_reads_it(namespace: str, name: str) -> None:
    path = grouping_path("raypod", {"namespace": namespace, "bridgejob": name})
    assert "//" not in path and not path.endswith("/")
    assert parse_grouping_path(path) == {"job": "raypod", "namespace": namespace, "bridgejob": name}


def test_the_grouping_key_uses_base64_only_where_it_must() -> None:
    assert grouping_path("raypod", {"namespace": "ns", "bridgejob": "train-1.a"}) == (
        "/metrics/job/raypod/namespace/ns/bridgejob/train-1.a"
    )
    # The README's own examples: a slash, and an empty value.
    readme = "/metrics/job/raypod/path@base64/L3Zhci90bXA/e@base64/="
    assert grouping_path("raypod", {"path": "/var/tmp", "e": ""}) == readme


def test_a_gateway_address_keeps_its_password_out_of_its_url() -> None:
    address = GatewayAddress.parse("https://ops:s3cr%40t-pw@gw.example:9091/prefix/")
    assert address.url == "https://gw.example:9091/prefix"
    assert address.auth == ("ops", "s3cr@t-pw")
    assert "s3cr" not in repr(address)
    for bad in ("gw.example:9091", "ftp://gw", "http://gw:port", "http://gw/?a=b"):
        with pytest.raises(ValueError) as error:
            GatewayAddress.parse(bad)
        assert "port" not in bad or "port" in str(error.value)


def test_settings_never_quote_the_password_of_an_address_that_does_not_parse() -> None:
    settings = GatewaySettings.parse("http://user:hunter22-secret@gw:notaport", "")
    assert settings.address is None and "hunter22" not in settings.problem
    assert GatewaySettings.parse(None, "true") == GatewaySettings()
    assert GatewaySettings.parse("http://gw:9091", "TRUE").delete
    odd = GatewaySettings.parse("http://gw:9091", "sure")
    assert not odd.delete and "RAYPOD_PUSHGATEWAY_DELETE" in odd.problem


def job(status: RayStatus, start_ms: int | None = 1_000_000, end_ms: int | None = None, sid: str = "s-1") -> JobInfo:
    return JobInfo(sid, status, start_time_ms=start_ms, end_time_ms=end_ms)


def test_the_queue_time_is_known_only_when_this_pod_saw_the_start() -> None:
    now = [900.0]
    clock = QueueClock(lambda: now[0])
    # Submitted after the pod started (start 1000 s): the first RUNNING poll, 7 s after.
    now[0] = 1007.0
    clock.observe(job(RayStatus.RUNNING))
    now[0] = 1020.0
    clock.observe(job(RayStatus.RUNNING))
    assert clock.queue_seconds(job(RayStatus.SUCCEEDED, end_ms=1_030_000)) == 7.0
    # Re-attached to a job submitted before the pod: already RUNNING, so its start is unknown...
    clock.observe(job(RayStatus.RUNNING, start_ms=500_000, sid="old"))
    assert clock.queue_seconds(job(RayStatus.RUNNING, start_ms=500_000, sid="old")) is None
    # ...unless a poll saw it PENDING first.
    clock.observe(job(RayStatus.PENDING, start_ms=500_000, sid="waiting"))
    now[0] = 1100.0
    clock.observe(job(RayStatus.RUNNING, start_ms=500_000, sid="waiting"))
    assert clock.queue_seconds(job(RayStatus.RUNNING, start_ms=500_000, sid="waiting")) == 600.0
    # Never seen RUNNING (it ended between two polls), or no job at all: unknown.
    assert clock.queue_seconds(job(RayStatus.FAILED, sid="short")) is None
    assert clock.queue_seconds(None) is None


def test_a_finished_run_yields_every_figure_from_what_it_holds() -> None:
    ended = job(RayStatus.SUCCEEDED, start_ms=1_000_000, end_ms=1_042_500)
    outcome = Outcome.final("s-1", BridgeStatus.SUCCEEDED, "done", ended)
    written = {ID: "s-1", ATTEMPT: "2", JOB_STATUS: "SUCCEEDED", REASON: "Succeeded"}
    collected = Collected("log uploaded", "s3://b/j/logs", log_bytes=1234)
    metrics = run_metrics(
        RunResult(0, outcome, collected, written), duration=50.25, queue_seconds=3.5, completed_at=1_764_000_000.0
    )
    families = parse_exposition(exposition(metrics))
    assert {name: family.value for name, family in families.items()} == {
        "raypod_run_outcome": 1,
        "raypod_run_exit_code": 0,
        "raypod_run_duration_seconds": 50.25,
        "raypod_last_completion_timestamp_seconds": 1_764_000_000.0,
        "raypod_job_duration_seconds": 42.5,
        "raypod_job_queue_seconds": 3.5,
        "raypod_job_attempts": 2,
        "raypod_log_uploaded_bytes": 1234,
    }
    assert families["raypod_run_outcome"].labels == {"status": "SUCCEEDED", "reason": "Succeeded", "ending": "final"}
    assert all(family.type == "gauge" for family in families.values())


def test_a_run_cut_short_yields_only_what_it_knows() -> None:
    written = {ID: "s-1", JOB_STATUS: "RUNNING"}
    result = RunResult(143, Outcome.terminated("s-1"), None, written)
    families = parse_exposition(exposition(run_metrics(result, duration=1, queue_seconds=None, completed_at=2)))
    assert set(families) == {
        "raypod_run_outcome",
        "raypod_run_exit_code",
        "raypod_run_duration_seconds",
        "raypod_last_completion_timestamp_seconds",
        "raypod_job_attempts",
    }
    assert families["raypod_run_outcome"].labels == {"status": "RUNNING", "reason": "", "ending": "terminated"}


def test_every_ending_has_its_own_label() -> None:
    assert len({ending_label(ending) for ending in Ending}) == len(Ending)
