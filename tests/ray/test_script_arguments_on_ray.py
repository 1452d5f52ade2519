"""``submit --script`` and the script's own command line, on the real Ray head: what reaches the
script's ``sys.argv``, and the name it runs under."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support.cli import client_args, raypod
from tests.support.helpers import Services, ray_job, ray_jobs, supervisor_actor, unique

#: An ordinary argparse script, as a Ray user writes one: it knows nothing of --kwargs.
ARGPARSE_SCRIPT = """\
import argparse, json, sys
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--name", default="")
args = parser.parse_args()
print("ARGV " + json.dumps(sys.argv[1:]))
print("FILE " + __file__.rsplit("/", 1)[-1])
"""


def _submitted(services: Services, tmp_path: Path, script: Path, *extra: str) -> tuple[str, list[str]]:
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--wait", *extra)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    return lines[0], [line.removeprefix("[job] ") for line in lines[1:]]


def _printed(lines: list[str], label: str) -> str:
    return next(line.removeprefix(f"{label} ") for line in lines if line.startswith(f"{label} "))


def test_an_argparse_script_without_parameters_gets_no_kwargs_and_succeeds(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    submission_id, lines = _submitted(services, tmp_path, script)
    assert json.loads(_printed(lines, "ARGV")) == []
    assert _printed(lines, "FILE") == "ap.py"
    assert "--kwargs" not in ray_job(services, submission_id)["entrypoint"]


def test_the_arguments_after_double_dash_reach_the_scripts_argv_exactly(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    arguments = ["--epochs", "3", "--name", "a b; rm -rf x", "--name", "$HOME 'q' \"d\" `id`"]
    submission_id, lines = _submitted(services, tmp_path, script, "--", *arguments)
    assert json.loads(_printed(lines, "ARGV")) == arguments
    assert ray_job(services, submission_id)["status"] == "SUCCEEDED"


def test_a_stray_word_before_double_dash_is_refused_and_nothing_is_submitted(
    services: Services, tmp_path: Path
) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "stray")
    assert completed.returncode == 2
    assert "unrecognized arguments: stray" in completed.stderr
    assert completed.stdout == ""


def test_a_traceback_in_rays_log_names_the_users_own_script(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "my_train.py"
    script.write_text("def step():\n    raise ValueError('boom')\n\nstep()\n")
    completed = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--wait")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    submission_id = completed.stdout.splitlines()[0]
    log = raypod("logs", submission_id, *client_args(services, tmp_path))
    assert 'my_train.py", line 2, in step' in log.stdout
    assert "python my_train.py" in ray_job(services, submission_id)["entrypoint"]


def test_a_script_whose_name_the_shell_would_read_runs_as_script_py(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "my job;x.py"
    script.write_text(ARGPARSE_SCRIPT)
    _, lines = _submitted(services, tmp_path, script)
    assert _printed(lines, "FILE") == "script.py"


# -- Ray's own flags -----------------------------------------------------------------------------
def test_rays_own_flags_reach_the_ray_job(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT + "import os\nprint('MODE ' + os.environ['MODE'])\n")
    runtime_env = tmp_path / "env.yaml"
    runtime_env.write_text("env_vars:\n  MODE: from-yaml\n")
    chosen = unique("my-own-id")
    submission_id, lines = _submitted(
        services,
        tmp_path,
        script,
        "--submission-id",
        chosen,
        "--runtime-env",
        str(runtime_env),
        "--metadata-json",
        '{"team": "vision"}',
        "--entrypoint-num-cpus",
        "0.5",
        "--entrypoint-num-gpus",
        "0",
        "--entrypoint-memory",
        "100000000",
        # Every head node has this resource, so the job can run on the test's one-node cluster.
        "--entrypoint-resources",
        '{"node:__internal_head__": 0.001}',
        # "!value": the node must not carry the label with that value; the head carries no such label.
        "--entrypoint-label-selector",
        '{"raypod-test-pool": "!gpu"}',
    )
    assert submission_id == chosen
    assert _printed(lines, "MODE") == "from-yaml"
    info = ray_job(services, chosen)
    assert info["status"] == "SUCCEEDED"
    assert info["runtime_env"]["env_vars"] == {"MODE": "from-yaml"}
    assert info["metadata"]["team"] == "vision"
    # Ray's job info does not echo the entrypoint's options: the actor that ran the entrypoint shows them.
    actor = supervisor_actor(services, chosen)
    # entrypoint_num_gpus 0 reserves no GPU: Ray leaves a zero amount out.
    assert actor["required_resources"] == {"CPU": 0.5, "memory": 100_000_000.0, "node:__internal_head__": 0.001}
    assert actor["label_selector"] == {"raypod-test-pool": "!gpu"}


def test_runtime_env_json_reaches_the_ray_job(services: Services, tmp_path: Path) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT + "import os\nprint('MODE ' + os.environ['MODE'])\n")
    submission_id, lines = _submitted(
        services, tmp_path, script, "--runtime-env-json", '{"env_vars": {"MODE": "json"}}'
    )
    assert _printed(lines, "MODE") == "json"
    assert ray_job(services, submission_id)["runtime_env"]["env_vars"] == {"MODE": "json"}


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (
            ["--entrypoint-num-cpus", "1", "--properties", '{"entrypoint_num_cpus": 2}'],
            "--entrypoint-num-cpus, --properties: both set entrypoint_num_cpus",
        ),
        (
            ["--metadata-json", '{"a": "b"}', "--properties", '{"metadata": {"c": "d"}}'],
            "--metadata-json, --properties: both set metadata",
        ),
        (["--runtime-env-json", "{}", "--runtime-env", "env.json"], "--runtime-env-json, --runtime-env: both set"),
        (["--entrypoint-memory", "1.5"], "--entrypoint-memory: entrypoint_memory must be a whole number of bytes"),
        (["--entrypoint-num-gpus", "many"], "--entrypoint-num-gpus: expected a number, got 'many'"),
    ],
)
def test_a_ray_flag_in_conflict_or_bad_exits_2_and_submits_nothing(
    services: Services, tmp_path: Path, flags: list[str], said: str
) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    (tmp_path / "env.json").write_text("{}")
    chosen = unique("never")
    completed = raypod(
        "submit", *client_args(services, tmp_path), "--script", str(script), "--submission-id", chosen, *flags
    )
    assert completed.returncode == 2
    assert said in completed.stderr
    assert completed.stdout == ""
    assert requests.get(f"{services.ray_address}/api/jobs/{chosen}", timeout=30).status_code == 404


def test_a_second_submit_with_the_same_submission_id_attaches_and_submits_nothing_new(
    services: Services, tmp_path: Path
) -> None:
    script = tmp_path / "ap.py"
    script.write_text(ARGPARSE_SCRIPT)
    chosen = unique("once")
    first, _ = _submitted(services, tmp_path, script, "--submission-id", chosen)
    again = raypod("submit", *client_args(services, tmp_path), "--script", str(script), "--submission-id", chosen)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines() == [chosen] == [first]
    assert f"Ray job {chosen} was submitted already" in again.stderr
    assert [job["submission_id"] for job in ray_jobs(services)].count(chosen) == 1
