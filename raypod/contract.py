"""The Bridge Operator's contract in code: the ConfigMap keys each side writes, the statuses and
their meaning, the reasons, and the defaults. docs/configmap.md and docs/kubernetes.md say the same in words.

Standard library only: everything else reads its vocabulary from here.
"""

from __future__ import annotations

import enum
from typing import NoReturn

#: The operator names the ConfigMap ``<JOBNAME>-bridge-cm``.
CONFIGMAP_SUFFIX = "-bridge-cm"

# -- keys the operator writes: the pod's input ---------------------------------------------
RESOURCE_URL = "resourceURL"
UPDATE_INTERVAL = "updateInterval"
JOB_SCRIPT = "jobdata.jobScript"
SCRIPT_LOCATION = "jobdata.scriptLocation"
SCRIPT_METADATA = "jobdata.scriptMetadata"
JOB_PARAMETERS = "jobdata.jobParameters"
SCRIPT_EXTRA_LOCATION = "jobdata.scriptExtraLocation"
ADDITIONAL_DATA = "jobdata.additionalData"
JOB_PROPERTIES = "jobproperties"
S3_ENDPOINT = "s3.endpoint"
S3_SECURE = "s3.secure"
S3_SECRET = "s3.secret"
S3_UPLOAD_BUCKET = "s3upload.bucket"
S3_UPLOAD_FILES = "s3upload.files"
#: Set to ``true`` by the operator when the user kills the BridgeJob; re-read on every poll.
KILL = "kill"

# -- keys the pod writes: its output ---------------------------------------------------------
#: The Ray submission id; an ``id`` present at start-up is re-attached to, never submitted again.
ID = "id"
JOB_STATUS = "status.jobStatus"
SUBMIT_TIME = "status.submitTime"
START_TIME = "status.startTime"
END_TIME = "status.endTime"
MESSAGE = "status.message"
#: Why the job ended, for machines (one of ``Reason``); ``status.message`` says it for people.
REASON = "status.reason"
#: Which attempt ``id`` is (1 for the first; ``jobproperties.retries`` adds more), persisted before its POST.
ATTEMPT = "status.attempt"
OWNED_KEYS = (ID, JOB_STATUS, SUBMIT_TIME, START_TIME, END_TIME, MESSAGE, REASON, ATTEMPT)
#: Every key the operator writes for the pod to read (its ``newConfigMapDefinition``), and ``kill``.
INPUT_KEYS = (
    RESOURCE_URL,
    UPDATE_INTERVAL,
    JOB_PROPERTIES,
    JOB_SCRIPT,
    SCRIPT_LOCATION,
    SCRIPT_METADATA,
    JOB_PARAMETERS,
    SCRIPT_EXTRA_LOCATION,
    ADDITIONAL_DATA,
    S3_ENDPOINT,
    S3_SECURE,
    S3_SECRET,
    S3_UPLOAD_BUCKET,
    S3_UPLOAD_FILES,
    KILL,
)
#: Keys others write into the same ConfigMap: the operator's ``message`` (its failCR), and the
#: status keys the other Bridge pods (LSF, Slurm, Quantum) write without the ``status.`` prefix.
FOREIGN_BRIDGE_KEYS = ("message", "jobStatus", "submitTime", "startTime", "endTime", "history")

# -- submission ids ----------------------------------------------------------------------------
#: Ray writes a job's driver log to ``job-driver-<id>.log``: a file name holds at most 255 bytes.
MAX_SUBMISSION_ID_LENGTH = 240
#: Printable ASCII characters an id may not hold: ``/`` and ``\\`` make it a path (urllib3 turns
#: ``a/../b`` into ``b``, and Ray names the log file after the id); Ray's routes never match ``{`` ``}``.
SUBMISSION_ID_FORBIDDEN = "/\\{}"
SUBMISSION_ID_RULE = (
    f"an id is 1 to {MAX_SUBMISSION_ID_LENGTH} printable ASCII characters other than "
    f"{' '.join(SUBMISSION_ID_FORBIDDEN)}, without spaces, and not . or .."
)


def submission_id_problem(text: str) -> str | None:
    """Why ``text`` cannot be a Ray submission id, as one sentence; None when it can.

    The one rule for every id raypod sends or is given (the ConfigMap's ``id``, a status file's,
    ``RAY_JOB_SUBMISSION_ID``, ``submissionIdPrefix``, the commands' arguments). Ray itself takes any
    string in a POST, but a job whose id is a path or holds a brace cannot be read back safely."""
    shown = repr(text) if len(text) <= 60 else f"{text[:60]!r}..."
    if not text:
        why = "it is empty"
    elif len(text) > MAX_SUBMISSION_ID_LENGTH:
        why = f"it has {len(text)} characters"
    elif bad := sorted({c for c in text if not "!" <= c <= "~" or c in SUBMISSION_ID_FORBIDDEN}):
        why = f"it holds {', '.join(repr(c) for c in bad[:5])}"
    elif text in (".", ".."):
        why = "it is a path"
    else:
        return None
    return f"{shown} is not a Ray submission id: {why} ({SUBMISSION_ID_RULE})"


# -- defaults --------------------------------------------------------------------------------
#: The operator's default polling interval, in seconds.
DEFAULT_UPDATE_INTERVAL = 20.0
#: The shortest ``updateInterval`` accepted, in seconds: a shorter one only floods the dashboard.
MIN_UPDATE_INTERVAL = 0.5
#: ``jobdata.scriptLocation`` when absent (the CRD's default), and ``scriptExtraLocation``'s.
DEFAULT_SCRIPT_LOCATION = "remote"
DEFAULT_EXTRA_LOCATION = "inline"


def assert_never(value: NoReturn) -> NoReturn:
    """The end of an exhaustive ``match``: mypy fails wherever a member is left unhandled."""
    raise AssertionError(f"unhandled value: {value!r}")


class TextEnum(str, enum.Enum):
    """An enum whose members are their text: written to the ConfigMap, to JSON and to messages as it is."""

    def __str__(self) -> str:
        return str(self.value)


class BridgeStatus(TextEnum):
    """The values of ``status.jobStatus``."""

    SUBMITTED = "SUBMITTED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    #: Ray's STOPPED: killed at the operator's request, or stopped on Ray.
    KILL = "KILL"
    #: raypod lost track of the job: it may still run on Ray.
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, text: str) -> BridgeStatus | None:
        """A status as an earlier pod recorded it; None when it is none of ours."""
        try:
            return cls(text)
        except ValueError:
            return None

    @property
    def final(self) -> bool:
        """The job has ended (or is lost): nothing later changes the status."""
        match self:
            case BridgeStatus.SUCCEEDED | BridgeStatus.FAILED | BridgeStatus.KILL | BridgeStatus.UNKNOWN:
                return True
            case BridgeStatus.SUBMITTED | BridgeStatus.PENDING | BridgeStatus.RUNNING:
                return False
            case _:
                assert_never(self)

    @property
    def confirmed(self) -> bool:
        """Recorded only once Ray had accepted the job: Ray's 404 for its id then means Ray lost it.
        UNKNOWN says nothing of what Ray had."""
        match self:
            case (
                BridgeStatus.SUBMITTED
                | BridgeStatus.PENDING
                | BridgeStatus.RUNNING
                | BridgeStatus.SUCCEEDED
                | BridgeStatus.FAILED
                | BridgeStatus.KILL
            ):
                return True
            case BridgeStatus.UNKNOWN:
                return False
            case _:
                assert_never(self)


FINAL_STATUSES = tuple(status for status in BridgeStatus if status.final)


class Reason:
    """The values of ``status.reason`` (and of ``reason`` in the ``--result`` file)."""

    SUCCEEDED = "Succeeded"
    #: The job ran and failed: its driver exited non-zero (or Ray gave no reason of its own).
    APP_FAILED = "AppFailed"
    #: Stopped: at the operator's request (``kill``), or by someone else on Ray.
    KILLED = "Killed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    START_DEADLINE_EXCEEDED = "StartDeadlineExceeded"
    SUBMISSION_REJECTED = "SubmissionRejected"
    BAD_INPUT = "BadInput"
    #: Nothing was submitted for a reason other than bad input (S3 or the dashboard failing before the POST).
    NOT_SUBMITTED = "NotSubmitted"
    #: raypod lost track of the job (``UNKNOWN``): it may still run on Ray.
    LOST = "Lost"
    # Ray's own reasons for a job it failed (its ``error_type``; the table is ``raypod.ray_failures``).
    # A well-formed ``error_type`` Ray 2.60 does not have is written as it is.
    #: The runtime_env could not be built (a pip package that does not exist, a failed build): not retried.
    RUNTIME_ENV_SETUP_FAILED = "RuntimeEnvSetupFailed"
    #: Ray's job supervisor did not start within RAY_JOB_START_TIMEOUT_SECONDS (no resources for it).
    SUPERVISOR_START_TIMEOUT = "SupervisorStartTimeout"
    SUPERVISOR_START_FAILED = "SupervisorStartFailed"
    SUPERVISOR_UNSCHEDULABLE = "SupervisorUnschedulable"
    SUPERVISOR_FAILED = "SupervisorFailed"
    SUPERVISOR_DIED = "SupervisorDied"
    #: Ray's supervisor could not start the entrypoint's process.
    ENTRYPOINT_START_FAILED = "EntrypointStartFailed"
    #: The entrypoint exited 127: the shell found no such command. Not retried.
    ENTRYPOINT_NOT_FOUND = "EntrypointNotFound"
    #: The entrypoint exited 126: the shell found the command but could not run it. Not retried.
    ENTRYPOINT_NOT_EXECUTABLE = "EntrypointNotExecutable"


def default_reason(status: BridgeStatus) -> str:
    """The reason a status has unless something more precise is known; empty while it runs."""
    match status:
        case BridgeStatus.SUCCEEDED:
            return Reason.SUCCEEDED
        case BridgeStatus.FAILED:
            return Reason.APP_FAILED
        case BridgeStatus.KILL:
            return Reason.KILLED
        case BridgeStatus.UNKNOWN:
            return Reason.LOST
        case BridgeStatus.SUBMITTED | BridgeStatus.PENDING | BridgeStatus.RUNNING:
            return ""
        case _:
            assert_never(status)
