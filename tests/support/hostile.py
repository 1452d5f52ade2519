"""A hostile Ray dashboard, and a pod that runs ``raypod.cli.main`` in-process against it.

``Dashboard`` puts a small model of Ray's job API on a ``ScriptedServer``: each endpoint answers
from its own script of steps (the last step is repeated once the script is spent). A step is an
answer class of ``JUNK`` (a transient failure, a refusal, an answer raypod cannot trust), or one of
Ray's own answers:

- ``GET /api/version``: ``ok``;
- ``GET /api/packages/gcs/*``: ``present`` (200) or ``missing`` (404); ``PUT``: ``ok``;
- ``POST /api/jobs/``: ``ok`` (Ray takes the job), ``lost`` (Ray takes it, the answer is reset),
  ``accept+<class>`` (Ray takes it, the answer is garbled into that class), ``wrapped`` (the
  dashboard's 500 around its agent's 400); a second POST of a job Ray has is answered with Ray's
  duplicate-id 500;
- ``GET /api/jobs/<id>``: a Ray status (``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED``,
  ``STOPPED``), or ``kill`` (``RUNNING``, and the operator sets ``kill: "true"`` meanwhile). A job
  Ray does not have is a 404 whatever the script says, without using up a status step; a job Ray
  stopped is ``STOPPED``; ``gone`` is Ray's own 404 (``Job <id> does not exist``, as after a
  head restart), unlike the ``404`` and ``404-html`` of ``JUNK``, which are not Ray's;
- ``POST /api/jobs/<id>/stop``: ``ok`` (Ray stops the job), ``ended`` (``{"stopped": false}``) or
  ``gone``.

Error bodies and answers of the wrong shape quote the credentials header the request carried
(``ECHO_AUTH``), as a misbehaving proxy does: the token must never come out of raypod.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from devtools.fake_kube import FakeKube
from raypod.cli import main
from raypod.voice import NOTHING_RAN
from tests.support.scripted_server import Answer, ScriptedServer, Seen
from tests.support.status_lines import printed_statuses

#: The token in the credentials directory: it is sent, and must never be printed or written.
TOKEN = "MARKER-TOKEN-5f1d"
JOB_NAME = "hostile"
NAMESPACE = "bridge"
MIB = 1024 * 1024
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
#: The ConfigMap every pod starts from: a remote script, polled at the floor of 0.5 s.
BASE_CONFIG = {
    "updateInterval": "0.5",
    "jobdata.scriptLocation": "remote",
    "jobdata.jobScript": "/opt/train.py",
}
RAY_STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "STOPPED")
#: Ray's times, later than any run of the tests: a start is never before the pod's submitTime.
START_MS = 4_102_444_800_000
END_MS = 4_102_444_860_000

_HUGE_JOB = json.dumps({"status": "RUNNING", "message": "x" * (5 * MIB)}).encode()


def ray_job_unknown(submission_id: str) -> Answer:
    """Ray's own answer for a job it does not have (Ray 2.60's job_head)."""
    return Answer(404, f"Job {submission_id} does not exist".encode(), "text/plain; charset=utf-8")


#: The answer classes of a hostile dashboard, each an answer to any request.
JUNK: dict[str, Answer] = {
    "503": Answer(503, b"Service Unavailable (request had @AUTH@)", "text/plain"),
    "502-ingress": Answer(502, b'{"error": "upstream connect error; request had @AUTH@"}'),
    "reset": Answer(reset=True),
    "400": Answer(400, b'{"message": "Bad request, headers: Authorization: @AUTH@"}'),
    "401": Answer(401, b'{"message": "invalid token @AUTH@"}'),
    "403": Answer(403, b"<html><body>Forbidden: @AUTH@</body></html>", "text/html"),
    "404": Answer(404, b'{"message": "Not Found"}'),
    # An ingress's own page: a 404 that says nothing about the job.
    "404-html": Answer(404, b"<html><body><h1>404 Not Found</h1>nginx</body></html>", "text/html"),
    "html": Answer(200, b"<html><body>Please sign in (@AUTH@)</body></html>", "text/html; charset=utf-8"),
    "list": Answer(body=b"[]"),
    "null": Answer(body=b"null"),
    "string": Answer(body=b'"x"'),
    "status-int": Answer(body=b'{"status": 1}'),
    "weird": Answer(body=b'{"status": "WEIRD", "message": "@AUTH@"}'),
    "status-echo": Answer(body=b'{"status": "@AUTH@"}'),
    "ingress-200": Answer(body=b'{"error": "upstream @AUTH@"}'),
    "no-id": Answer(body=b'{"job_id": null}'),
    "huge": Answer(body=_HUGE_JOB),
    "huge-chunked": Answer(body=_HUGE_JOB, declare_length=False),
}
TRANSIENT = ("503", "502-ingress", "reset")
REFUSALS = ("400", "401", "403")
#: 200 answers that are not what the call expects (for a status poll: not a job raypod can trust).
GARBAGE = (
    "html",
    "list",
    "null",
    "string",
    "status-int",
    "weird",
    "status-echo",
    "ingress-200",
    "huge",
    "huge-chunked",
)

Step = str | Answer | Callable[[Seen], Answer]


def job_answer(submission_id: str, status: str, **fields: Any) -> Answer:
    """Ray's answer for one job, with times that fit the status."""
    body: dict[str, Any] = {
        "type": "SUBMISSION",
        "submission_id": submission_id,
        "status": status,
        "message": f"Job is {status.lower()}.",
        "start_time": START_MS if status != "PENDING" else None,
        "end_time": END_MS if status in ("SUCCEEDED", "FAILED", "STOPPED") else None,
        "driver_node_id": "node-1",
        "driver_exit_code": None,
        **fields,
    }
    return Answer(body=json.dumps(body, allow_nan=True).encode())


class Dashboard:
    """A fake Ray dashboard on ``server``: one script per endpoint, and the jobs Ray has."""

    ENDPOINTS = ("version", "package_get", "package_put", "post", "poll", "stop")

    def __init__(self, server: ScriptedServer, config_dir: Path) -> None:
        self.server = server
        self.config_dir = config_dir
        self.accepted: list[str] = []
        self.stopped: set[str] = set()
        #: The Ray statuses the polls answered, in order.
        self.served: list[str] = []
        self.scripts: dict[str, deque[Step]] = {
            "version": deque(["ok"]),
            "package_get": deque(["missing"]),
            "package_put": deque(["ok"]),
            "post": deque(["ok"]),
            "poll": deque(["SUCCEEDED"]),
            "stop": deque(["ok"]),
        }
        server.route("GET", "/api/version", self._version)
        server.route("GET", "/api/packages/gcs/*", self._package_get)
        server.route("PUT", "/api/packages/gcs/*", self._package_put)
        server.route("POST", "/api/jobs/", self._post)
        server.route("POST", "/api/jobs/*/stop", self._stop)
        server.route("GET", "/api/jobs/*", self._poll)

    def script(self, endpoint: str, *steps: Step) -> None:
        assert endpoint in self.ENDPOINTS and steps
        self.scripts[endpoint] = deque(steps)

    def has(self, submission_id: str) -> None:
        """Ray has this job already (submitted by an earlier pod)."""
        self.accepted.append(submission_id)

    # -- what happened ---------------------------------------------------------------------------------
    def count(self, method: str = "*", pattern: str = "*") -> int:
        return self.server.count(method, pattern)

    @property
    def posts(self) -> int:
        return self.count("POST", "/api/jobs/")

    # -- the endpoints ---------------------------------------------------------------------------------
    def _next(self, endpoint: str, *, peek: bool = False) -> Step:
        script = self.scripts[endpoint]
        return script[0] if peek or len(script) == 1 else script.popleft()

    def _junk(self, step: Step, seen: Seen) -> Answer | None:
        if isinstance(step, Answer):
            return step
        if callable(step):
            return step(seen)
        return JUNK.get(step)

    def _version(self, seen: Seen) -> Answer:
        step = self._next("version")
        return self._junk(step, seen) or Answer(body=b'{"version": "4", "ray_version": "2.60.0"}')

    def _package_get(self, seen: Seen) -> Answer:
        step = self._next("package_get")
        if step == "present":
            return Answer(200, b"", "application/octet-stream")
        return self._junk(step, seen) or Answer(404, b"Package gcs://_ray_pkg_x.zip does not exist", "text/plain")

    def _package_put(self, seen: Seen) -> Answer:
        step = self._next("package_put")
        return self._junk(step, seen) or Answer(body=b'{"result": true, "msg": "uploaded"}')

    def _post(self, seen: Seen) -> Answer:
        submission_id = str(json.loads(seen.body or b"{}").get("submission_id", ""))
        step = self._next("post")
        junk = self._junk(step, seen)
        if junk is not None:
            return junk
        if submission_id in self.accepted:
            trace = f"Traceback ...\nValueError: Job with submission_id {submission_id} already exists. "
            return Answer(500, (trace + "Please use a different submission_id.").encode(), "text/plain")
        if isinstance(step, str) and step.startswith("accept+"):
            # Ray takes the job, and its answer is garbled on the way (an ingress, a proxy).
            self.accepted.append(submission_id)
            return JUNK[step.removeprefix("accept+")]
        if step == "wrapped":
            return Answer(500, b"Traceback ...\nRuntimeError: Request failed with status code 400: bad runtime_env")
        self.accepted.append(submission_id)
        if step == "lost":
            return Answer(reset=True)
        assert step == "ok", step
        return Answer(body=json.dumps({"submission_id": submission_id}).encode())

    def _poll(self, seen: Seen) -> Answer:
        submission_id = unquote(seen.bare_path.rsplit("/", 1)[1])
        step = self._next("poll", peek=True)
        if isinstance(step, str) and step in (*RAY_STATUSES, "kill"):
            if submission_id not in self.accepted:
                return ray_job_unknown(submission_id)
            if submission_id in self.stopped:
                self.served.append("STOPPED")
                return job_answer(submission_id, "STOPPED", message="Job was intentionally stopped.")
        step = self._next("poll")
        if step == "gone":
            return ray_job_unknown(submission_id)
        junk = self._junk(step, seen)
        if junk is not None:
            return junk
        assert isinstance(step, str)
        if step == "kill":
            (self.config_dir / "kill").write_text("true")
            step = "RUNNING"
        self.served.append(step)
        return job_answer(submission_id, step)

    def _stop(self, seen: Seen) -> Answer:
        submission_id = unquote(seen.bare_path.rsplit("/", 2)[1])
        step = self._next("stop")
        junk = self._junk(step, seen)
        if junk is not None:
            return junk
        if submission_id not in self.accepted or step == "gone":
            return ray_job_unknown(submission_id)
        if step == "ended":
            return Answer(body=b'{"stopped": false}')
        assert step == "ok", step
        self.stopped.add(submission_id)
        return Answer(body=b'{"stopped": true}')


# -- the pod ------------------------------------------------------------------------------------------
@dataclass
class PodRun:
    """What one ``raypod run`` left behind."""

    code: int
    out: str
    err: str
    log: str
    status: dict[str, str]
    seen: list[Seen] = field(default_factory=list)

    @property
    def statuses(self) -> list[str]:
        """Every status.jobStatus raypod announced (and wrote), in order."""
        return printed_statuses(self.out)

    @property
    def message(self) -> str:
        return self.status.get("status.message", "")

    @property
    def text(self) -> str:
        """Everything raypod said: stdout, stderr, its log, and the status file."""
        return "\n".join([self.out, self.err, self.log, json.dumps(self.status)])

    def assert_clean(self) -> None:
        """No traceback, and no trace of the token, anywhere raypod wrote."""
        for name, text in (("stdout", self.out), ("stderr", self.err), ("log", self.log)):
            assert "Traceback" not in text, f"a traceback on {name}:\n{text}"
        for piece in token_pieces():
            assert piece not in self.text, f"the token ({piece!r}) leaked:\n{self.text}"


def token_pieces(length: int = len(TOKEN)) -> list[str]:
    """The token's substrings of ``length`` characters (the whole token by default)."""
    return [TOKEN[i : i + length] for i in range(len(TOKEN) - length + 1)]


class Pod:
    """One pod's world in ``root``: its ConfigMap directory, credentials, status file and dashboard."""

    def __init__(
        self,
        root: Path,
        server: ScriptedServer,
        data: Mapping[str, str] | None = None,
        *,
        recorded: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.server = server
        self.config_dir = root / "config"
        self.config_dir.mkdir(parents=True)
        for key, value in {"resourceURL": server.url, **BASE_CONFIG, **(data or {})}.items():
            (self.config_dir / key).write_text(value, encoding="utf-8")
        self.credentials_dir = root / "credentials"
        self.credentials_dir.mkdir()
        (self.credentials_dir / "token").write_text(TOKEN + "\n")
        (self.credentials_dir / "username").write_text("placeholder-user\n")
        (self.credentials_dir / "password").write_text("placeholder-password\n")
        self.status_file = root / "status.json"
        if recorded is not None:
            self.status_file.write_text(json.dumps(dict(recorded)))
        self.dashboard = Dashboard(server, self.config_dir)

    def argv(self, status_timeout: float, connect_timeout: float) -> list[str]:
        return [
            "run",
            "--config",
            str(self.config_dir),
            "--status-file",
            str(self.status_file),
            "--credentials",
            str(self.credentials_dir),
            "--s3-credentials",
            str(self.root / "s3credentials"),
            "--status-timeout",
            str(status_timeout),
            "--connect-timeout",
            str(connect_timeout),
            "--no-follow-logs",
        ]

    def run(
        self,
        capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
        *,
        status_timeout: float = 2.0,
        connect_timeout: float = 0.5,
    ) -> PodRun:
        capsys.readouterr()
        caplog.clear()
        with pod_environment():
            code = main(self.argv(status_timeout, connect_timeout))
        out, err = capsys.readouterr()
        status = json.loads(self.status_file.read_text()) if self.status_file.is_file() else {}
        return PodRun(code, out, err, caplog.text, status, list(self.server.seen))


@contextmanager
def pod_environment() -> Iterator[None]:
    """JOBNAME and NAMESPACE as the operator sets them; the signal handlers main() installs undone after."""
    import os

    saved_env = {name: os.environ.get(name) for name in ("JOBNAME", "NAMESPACE")}
    saved_signals = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    os.environ.update(JOBNAME=JOB_NAME, NAMESPACE=NAMESPACE)
    try:
        yield
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory for one hypothesis example (tmp_path is one per test, not per example)."""
    with tempfile.TemporaryDirectory(prefix="raypod-hostile-") as temp:
        yield Path(temp)


def capture_logs(caplog: pytest.LogCaptureFixture) -> None:
    """raypod's INFO lines too (a pod logs at INFO), so that they are searched for the token."""
    caplog.set_level(logging.INFO)


def check_exit_matches_status(run: PodRun, recorded: Mapping[str, str] | None = None) -> None:
    """0 iff SUCCEEDED; 1 with FAILED, KILL or UNKNOWN; 2 only with FAILED "Bad input: ..."; never 143."""
    status = run.status.get("status.jobStatus", "")
    assert run.code in (0, 1, 2), run.code
    if run.code == 0:
        assert status == "SUCCEEDED", (run.code, run.status)
    elif run.code == 1:
        assert status in ("FAILED", "KILL", "UNKNOWN"), (run.code, run.status)
    else:
        assert status == "FAILED" and run.message.startswith(("Bad input: ", "Bad input (")), (run.code, run.status)
    if status == "SUCCEEDED":
        assert run.code == 0
    if recorded and recorded.get("status.jobStatus") in ("SUCCEEDED", "FAILED", "KILL", "UNKNOWN"):
        assert run.status == dict(recorded), "a recorded final status must be kept as it is"
    else:
        # Written by this run: the end time in the operator's layout, and one final status, last.
        assert TIME.fullmatch(run.status.get("status.endTime", "")), run.status
        finals = [s for s in run.statuses if s in ("SUCCEEDED", "FAILED", "KILL", "UNKNOWN")]
        if run.status.get("status.reason") in NOTHING_RAN:
            # A command line's end where nothing ran on Ray: its error line alone says why.
            assert finals == [], run.statuses
        else:
            assert finals == [status] and run.statuses[-1] == status, run.statuses
    for key in ("status.submitTime", "status.startTime"):
        if key in run.status:
            assert TIME.fullmatch(run.status[key]), run.status


def steps_text(steps: Sequence[Step]) -> str:
    return ",".join(s if isinstance(s, str) else type(s).__name__ for s in steps)


#: The ConfigMap ``pod_in_the_fake_api`` makes, as the operator names it.
CONFIGMAP = f"{JOB_NAME}-bridge-cm"


def pod_in_the_fake_api(fake: FakeKube, dashboard_url: str, tmp_path: Path, *, interval: str) -> list[str]:
    """A BridgeJob's ConfigMap in the fake API (a remote script on ``dashboard_url``, polled every
    ``interval`` s), and the arguments of its pod's ``run``: Ray's token in a credentials directory,
    no log followed, short connect and long status deadlines."""
    fake.create_configmap(
        CONFIGMAP,
        {
            "resourceURL": dashboard_url,
            "updateInterval": interval,
            "jobdata.scriptLocation": "remote",
            "jobdata.jobScript": "/opt/train.py",
        },
        NAMESPACE,
        owner_uid="bridgejob-uid",
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "token").write_text(TOKEN)
    return [
        "run", "--credentials", str(credentials), "--s3-credentials", str(tmp_path / "s3"), "--no-follow-logs",
        "--status-timeout", "60", "--connect-timeout", "2",
    ]  # fmt: skip
