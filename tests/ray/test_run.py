"""`raypod run` end to end against the real Ray head and S3 server (no HTTP mocking)."""

from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path

from tests.support.helpers import (
    PARSE_KWARGS_SCRIPT,
    BridgeJob,
    assert_operator_times,
    jobs_of,
    ray_job,
    transitions,
    wait_for_ray_status,
)


def put(client, bucket: str, name: str, data: str | bytes) -> str:  # type: ignore[no-untyped-def]
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    raw = data.encode() if isinstance(data, str) else data
    client.put_object(bucket, name, io.BytesIO(raw), len(raw))
    return f"{bucket}:{name}"


def printed(result_lines: list[str], tag: str) -> object:
    for line in result_lines:
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"the job printed no {tag} line: {result_lines}")


def test_inline_script_parameters_with_spaces_and_quotes_reach_sys_argv(bridge_job: BridgeJob) -> None:
    params = {"greeting": "hello  world", "quote": 'it\'s "quoted"', "count": 3, "flag": True}
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript=PARSE_KWARGS_SCRIPT,
        jobdata__jobParameters=json.dumps(params),
        jobdata__scriptMetadata=json.dumps({"env": {"MY_VAR": "from metadata"}}),
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    log = bridge_job.log_text()
    kwargs_line = next(line for line in log.splitlines() if line.startswith("ARGV "))
    argv = json.loads(kwargs_line[len("ARGV ") :])
    assert argv == [
        "--kwargs",
        "s3_secret=my-s3-secret",
        f"s3_bucket={bridge_job.bucket}",
        f"s3_prefix={bridge_job.name}/",
        "s3_secure=false",
        "greeting=hello  world",
        'quote=it\'s "quoted"',
        "count=3",
        "flag=true",
    ]
    status = result.status
    assert status["status.jobStatus"] == "SUCCEEDED"
    assert status["id"].startswith(f"raypod-{bridge_job.name}-")
    assert (
        status["status.message"] == f"Job succeeded; log uploaded to s3://{bridge_job.bucket}/{bridge_job.name}/logs."
    )
    assert_operator_times(status)
    info = ray_job(bridge_job.services, status["id"])
    assert info["metadata"] == {"bridge-job": bridge_job.name, "bridge-namespace": "test-ns"}
    assert info["runtime_env"]["env_vars"] == {"MY_VAR": "from metadata"}
    # Every status change is one readable line on stdout, and the job's output is marked as the job's.
    seen = transitions(result.stdout)
    assert (seen[0], seen[-1]) == ("SUBMITTED", "SUCCEEDED"), seen
    assert printed(result.job_lines, "KWARGS")["greeting"] == "hello  world"  # type: ignore[index]


def test_everything_in_s3_with_additional_data(bridge_job: BridgeJob, s3_client) -> None:  # type: ignore[no-untyped-def]
    inputs = f"inputs-{bridge_job.name}"
    script = PARSE_KWARGS_SCRIPT + (
        "import os\n"
        "print('DATA ' + json.dumps({n: open(n).read() for n in sorted(os.listdir('.')) if n.endswith('.txt')}))\n"
        "print('ENV ' + json.dumps(os.environ.get('FROM_S3_META')))\n"
    )
    bridge_job.set(
        jobdata__scriptLocation="s3",
        jobdata__jobScript=put(s3_client, inputs, "ray/code.py", script),
        jobdata__scriptExtraLocation="s3",
        jobdata__jobParameters=put(s3_client, inputs, "ray/parameters.json", json.dumps({"alpha": "1", "beta": "two"})),
        jobdata__scriptMetadata=put(
            s3_client, inputs, "ray/metadata.json", json.dumps({"env": {"FROM_S3_META": "yes"}})
        ),
        jobdata__additionalData=", ".join(
            [put(s3_client, inputs, "data/a.txt", "first file"), put(s3_client, inputs, "more/deep/b.txt", "second")]
        ),
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    log = bridge_job.log_text()
    lines = log.splitlines()
    assert printed(lines, "KWARGS") == {
        "s3_secret": "my-s3-secret",
        "s3_bucket": bridge_job.bucket,
        "s3_prefix": f"{bridge_job.name}/",
        "s3_secure": "false",
        "alpha": "1",
        "beta": "two",
    }
    assert printed(lines, "DATA") == {"a.txt": "first file", "b.txt": "second"}
    assert printed(lines, "ENV") == "yes"
    # code.py shadows the standard library's `code` module (ray -> pdb -> code): it runs under another name,
    # from a folder that is not on the workers' sys.path.
    entrypoint = ray_job(bridge_job.services, result.status["id"])["entrypoint"]
    assert "cd raypod_job && python job_code.py --kwargs" in entrypoint


def test_remote_script_runs_from_its_path_on_the_ray_nodes(bridge_job: BridgeJob, tmp_path: Path) -> None:
    remote = tmp_path / "on-the-nodes" / "remote_job.py"
    remote.parent.mkdir()
    remote.write_text(PARSE_KWARGS_SCRIPT)
    bridge_job.set(
        jobdata__scriptLocation="remote", jobdata__jobScript=str(remote), jobdata__jobParameters='{"x": "y"}'
    )
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert printed(bridge_job.log_text().splitlines(), "KWARGS")["x"] == "y"  # type: ignore[index]
    assert "working_dir" not in (ray_job(bridge_job.services, result.status["id"]).get("runtime_env") or {})


def test_failing_job_ends_failed_exit_1_and_log_uploaded(bridge_job: BridgeJob) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import sys\nprint('about to fail')\nsys.exit(3)\n",
    )
    result = bridge_job.run()
    assert result.returncode == 1
    assert result.status["status.jobStatus"] == "FAILED"
    assert result.status["status.message"].startswith("Job failed:")
    assert f"log uploaded to s3://{bridge_job.bucket}/{bridge_job.name}/logs" in result.status["status.message"]
    assert "about to fail" in bridge_job.log_text()
    assert_operator_times(result.status)


def test_kill_file_stops_running_job(bridge_job: BridgeJob) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import time\nprint('started', flush=True)\ntime.sleep(600)\n",
    )
    process = bridge_job.start()
    try:
        status = bridge_job.wait_for_status("RUNNING")
        (bridge_job.config_dir / "kill").write_text("true")
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    final = bridge_job.read_status()
    assert final["status.jobStatus"] == "KILL"
    assert "kill=true" in final["status.message"]
    assert ray_job(bridge_job.services, status["id"])["status"] == "STOPPED"
    assert "started" in bridge_job.log_text()


def test_preset_id_reattaches_and_submits_nothing_new(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('first and only run')\n")
    first = bridge_job.run(env={"POD_NAME": "first-pod", "NODE_NAME": "node-1"})
    assert first.returncode == 0, first.stderr
    submission_id = first.status["id"]
    bridge_job.status_file.unlink()
    bridge_job.set(id=submission_id)
    second = bridge_job.run(env={"POD_NAME": "second-pod"})
    assert second.returncode == 0, second.stderr
    assert second.status["id"] == submission_id
    assert second.status["status.jobStatus"] == "SUCCEEDED"
    assert [job["submission_id"] for job in jobs_of(bridge_job.services, bridge_job.name)] == [submission_id]
    # The job's metadata names the pod that submitted it: where its first log was.
    assert f"attached to existing Ray job {submission_id} (SUCCEEDED), submitted by pod first-pod on node node-1" in (
        second.stdout
    )


def test_status_file_id_reattaches_after_sigterm(bridge_job: BridgeJob) -> None:
    bridge_job.set(
        jobdata__scriptLocation="inline",
        jobdata__jobScript="import time\nfor i in range(8):\n    print('tick', i, flush=True)\n    time.sleep(1)\n",
    )
    process = bridge_job.start()
    try:
        status = bridge_job.wait_for_status("RUNNING")
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143
    # The Ray job was left running for the next pod.
    assert ray_job(bridge_job.services, status["id"])["status"] in ("RUNNING", "SUCCEEDED")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert result.status["id"] == status["id"]
    assert len(jobs_of(bridge_job.services, bridge_job.name)) == 1
    assert "tick 7" in bridge_job.log_text()


def test_kill_before_start_submits_nothing(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('never')\n", kill="true")
    result = bridge_job.run()
    assert result.returncode == 1
    assert result.status["status.jobStatus"] == "KILL"
    assert jobs_of(bridge_job.services, bridge_job.name) == []


def test_manifest_config_source_runs_job(bridge_job: BridgeJob) -> None:
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('from a manifest')\n")
    manifest = bridge_job.root / "cm.json"
    manifest.write_text(
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": bridge_job.data})
    )
    command = bridge_job.command()
    command[command.index("--config") + 1] = str(manifest)
    import subprocess

    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=bridge_job.env())
    assert completed.returncode == 0, completed.stderr
    assert "from a manifest" in bridge_job.log_text()


def test_job_finishes_while_ray_job_still_known(bridge_job: BridgeJob) -> None:
    """A sanity check of the helper itself: Ray reports our finished job as SUCCEEDED."""
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="print('ok')\n")
    result = bridge_job.run()
    assert result.returncode == 0
    assert wait_for_ray_status(bridge_job.services, result.status["id"], {"SUCCEEDED"}) == "SUCCEEDED"


def test_short_job_output_is_shown_once_without_s3(bridge_job: BridgeJob) -> None:
    """Without S3 there is no upload pass: the output the live stream missed is printed at the end."""
    for key in ("s3.endpoint", "s3.secure", "s3.secret", "s3upload.bucket"):
        bridge_job.data.pop(key)
    bridge_job.set(jobdata__scriptLocation="inline", jobdata__jobScript="for i in range(5):\n    print('quick', i)\n")
    result = bridge_job.run()
    assert result.returncode == 0, result.stderr
    assert [line for line in result.job_lines if line.startswith("quick")] == [f"quick {i}" for i in range(5)]
    # Outside the operator's pod, nothing is said about an upload nobody asked for.
    assert result.status["status.message"] == "Job succeeded."
