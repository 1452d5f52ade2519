"""KubeRay's submitter variables as the CLI's fallbacks, on the real Ray head:
``RAY_DASHBOARD_ADDRESS`` for the address, ``RAY_JOB_SUBMISSION_ID`` for the id ``submit`` uses."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import raypod
from tests.support.helpers import Services, ray_job, unique


def test_kuberays_dashboard_address_and_submission_id_are_used_when_nothing_else_is_set(
    services: Services, tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('from a KubeRay submitter')\n")
    wanted_id = unique("kuberay-job")
    env = {"RAY_DASHBOARD_ADDRESS": services.ray_address.removeprefix("http://"), "RAY_JOB_SUBMISSION_ID": wanted_id}
    credentials = ["--credentials", str(tmp_path)]

    first = raypod("submit", *credentials, "--script", str(script), "--job-name", "kr", "--wait", env=env)
    again = raypod("submit", *credentials, "--script", str(script), "--job-name", "kr", "--wait", env=env)

    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == wanted_id
    assert ray_job(services, wanted_id)["status"] == "SUCCEEDED"
    # The same id again (a restarted submitter): attached to, not submitted twice.
    assert again.returncode == 0, again.stderr
    assert f"attached to existing Ray job {wanted_id}" in again.stderr
