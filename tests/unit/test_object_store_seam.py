"""The inputs, the log upload and the result check use only the ObjectStore protocol: each runs here
on an in-memory store, with no S3 server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from raypod.artifacts import collect_results, keep_attempt_log
from raypod.config import parse_config
from raypod.errors import ConfigError
from raypod.inputs import fetch_inputs
from raypod.jobdata import Metadata
from raypod.logs import LineEcho
from raypod.ray import JobInfo, RayJobsClient
from raypod.retry import NO_RETRY
from raypod.terminal import TransferProgress, wiping_progress
from tests.support.memory_store import MemoryStore

S3_KEYS = {"s3.endpoint": "s3.test:9000", "s3upload.bucket": "results"}
JOB = JobInfo(submission_id="raypod-train-1", status="FAILED", driver_node_id="node-1")


class LogOnlyRay:
    """What the artifacts use of the dashboard client: the finished job's log, as chunks."""

    def __init__(self, log: bytes) -> None:
        self.log = log

    def log_chunks(self, job: JobInfo) -> Iterator[bytes]:
        yield from (self.log[i : i + 3] for i in range(0, len(self.log), 3))


def ray_with(log: bytes) -> RayJobsClient:
    return cast(RayJobsClient, LogOnlyRay(log))


def test_inputs_in_the_store_are_fetched_and_their_json_parsed(tmp_path: Path) -> None:
    store = MemoryStore(
        {
            ("inputs", "job/train.py"): b"print('hi')\n",
            ("inputs", "job/meta.json"): json.dumps({"pip": ["rich"], "env": {"MODE": "batch"}}).encode(),
            ("inputs", "job/params.json"): b'{"epochs": 3}',
            ("inputs", "data/table.csv"): b"a,b\n",
        }
    )
    config = parse_config(
        {
            "resourceURL": "http://ray:8265",
            "jobdata.scriptLocation": "s3",
            "jobdata.jobScript": "inputs:job/train.py",
            "jobdata.scriptExtraLocation": "s3",
            "jobdata.scriptMetadata": "inputs:job/meta.json",
            "jobdata.jobParameters": "inputs:job/params.json",
            "jobdata.additionalData": "inputs:data/table.csv",
            **S3_KEYS,
        }
    )

    inputs = fetch_inputs(config, store, tmp_path)

    assert inputs.metadata == Metadata(pip=("rich",), env={"MODE": "batch"})
    assert dict(inputs.parameters) == {"epochs": "3"}
    assert {name: path.read_bytes() for name, path in inputs.files.items()} == {
        "train.py": b"print('hi')\n",
        "table.csv": b"a,b\n",
    }


def test_a_missing_input_object_is_bad_input_naming_its_key(tmp_path: Path) -> None:
    config = parse_config(
        {
            "resourceURL": "http://ray:8265",
            "jobdata.additionalData": "inputs:gone.csv",
            "jobdata.jobScript": "/x.py",
            **S3_KEYS,
        }
    )
    with pytest.raises(ConfigError) as caught:
        fetch_inputs(config, MemoryStore(), tmp_path)
    assert caught.value.problems == [("jobdata.additionalData", "S3 object inputs:gone.csv does not exist")]


def test_the_log_is_uploaded_whole_and_the_result_files_are_checked() -> None:
    store = MemoryStore({("results", "train/model.pt"): b"weights"})
    config = parse_config(
        {
            "resourceURL": "http://ray:8265",
            "jobdata.jobScript": "/x.py",
            "s3upload.files": "model.pt, metrics.json",
            **S3_KEYS,
        }
    )
    out = io.StringIO()

    collected = collect_results(ray_with(b"one\ntwo\n"), store, config, JOB, "train", LineEcho(out), NO_RETRY)

    assert store.objects[("results", "train/logs")] == b"one\ntwo\n"
    assert collected.log_uri == "s3://results/train/logs"
    assert (collected.files_found, collected.files_missing) == (("model.pt",), ("metrics.json",))
    assert collected.text == (
        "log uploaded to s3://results/train/logs; result file(s) missing under s3://results/train/: metrics.json."
    )
    assert out.getvalue() == "[job] one\n[job] two\n"  # each line shown once, by the upload pass


def test_a_retried_attempts_log_is_kept_beside_the_last_ones_in_a_bucket_made_on_the_way() -> None:
    store = MemoryStore()
    config = parse_config({"resourceURL": "http://ray:8265", "jobdata.jobScript": "/x.py", **S3_KEYS})

    keep_attempt_log(ray_with(b"flaky\n"), store, config, JOB, "train", 1, LineEcho(io.StringIO()), NO_RETRY)

    assert store.objects == {("results", "train/logs.1"): b"flaky\n"}
    assert "results" in store.buckets


def test_without_a_store_the_log_is_shown_and_not_uploaded() -> None:
    config = parse_config({"resourceURL": "http://ray:8265", "jobdata.jobScript": "/x.py"})
    out = io.StringIO()

    collected = collect_results(ray_with(b"only here\n"), None, config, JOB, "train", LineEcho(out), NO_RETRY)

    assert collected.log_uri is None
    assert out.getvalue() == "[job] only here\n"


def test_the_logs_upload_shows_its_progress_on_a_terminal_wiped_before_the_jobs_lines() -> None:
    store = MemoryStore()
    config = parse_config({"resourceURL": "http://ray:8265", "jobdata.jobScript": "/x.py", **S3_KEYS})
    terminal = io.StringIO()  # stdout and stderr on one terminal, as a person sees them
    progress = TransferProgress(terminal, tty=True, clock=iter(range(1000)).__next__)

    collect_results(
        ray_with(b"one\ntwo\n"), store, config, JOB, "train", LineEcho(wiping_progress(terminal)), NO_RETRY, progress
    )

    shown = terminal.getvalue()
    assert "\r\x1b[Kuploading the log to s3://results/train/logs: 0.0 MiB, 1s elapsed" in shown
    # Each of the job's lines starts on a clean line, and the progress is wiped at the end.
    assert "\r\x1b[K[job] one\n" in shown and "\r\x1b[K[job] two\n" in shown
    assert shown.endswith("\r\x1b[K")
    assert store.objects[("results", "train/logs")] == b"one\ntwo\n"
