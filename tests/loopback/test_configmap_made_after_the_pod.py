"""``raypod run`` (a child process, as the operator's pod) whose start-up read first finds a ConfigMap
created after the pod started: one re-created under the name since (here another BridgeJob's), never
the one the operator made for this pod before starting it. Nothing is submitted, nothing is written
into it, and the exit code and message say why (docs/failures.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from devtools.fake_kube import FakeKube, utc_now
from tests.support.cli import SCRUBBED
from tests.support.hostile import BASE_CONFIG
from tests.support.scripted_server import ScriptedServer

JOB = "late"
CM = f"{JOB}-bridge-cm"
ANOTHER_BRIDGEJOB = "5e7a01c2-another-bridgejob"
#: Bounds of the test's own waits (real seconds): the pod's first GET, and the pod's whole run.
FIRST_GET_WITHIN = 30.0
RUN_WITHIN = 120.0


def test_a_configmap_created_after_the_pod_started_is_never_written_and_the_pod_says_so(
    fake_kube: FakeKube, server: ScriptedServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(fake_kube.env(), JOBNAME=JOB, NAMESPACE=fake_kube.namespace, PYTHONUNBUFFERED="1")
    result_file, termination = tmp_path / "result.json", tmp_path / "termination-log"
    # No ConfigMap answers yet (an API that asks the pod to come back): the start-up read keeps trying.
    fake_kube.fail("get", 503, count=None, retry_after="1")
    pod = subprocess.Popen(
        [sys.executable, "-m", "raypod", "run", "--result", str(result_file), "--termination-log", str(termination)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + FIRST_GET_WITHIN
        while not fake_kube.calls("GET") and pod.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake_kube.calls("GET"), "the pod never asked for its ConfigMap"
        # Made under the name while the pod waits: the API server's clock a minute on stands for a
        # re-creation a minute after the pod started (no test waits that minute).
        fake_kube.now = lambda: utc_now() + timedelta(seconds=60)
        # With the other BridgeJob's id: re-attaching by it would watch, or stop, that BridgeJob's job.
        theirs = {"resourceURL": server.url, **BASE_CONFIG, "id": "raypod-late-0123456789ab"}
        created = fake_kube.create_configmap(CM, theirs, owner_uid=ANOTHER_BRIDGEJOB)
        fake_kube.clear_faults()
        output, _ = pod.communicate(timeout=RUN_WITHIN)
    finally:
        if pod.poll() is None:
            pod.kill()
            pod.wait()

    stamp = created["metadata"]["creationTimestamp"]
    said = f"{fake_kube.namespace}/{CM} was created at {stamp}, after this pod started"
    assert pod.returncode == 2, output  # as for a ConfigMap that cannot be read at start-up
    assert said in output
    assert fake_kube.data(CM) == theirs
    assert not fake_kube.calls("PATCH")
    assert not server.seen, "nothing reaches Ray: no submission, no re-attaching by the id found there"
    assert said in termination.read_text()
    document = json.loads(result_file.read_text())
    assert said in str(document["notRecorded"])
