"""Getting one attempt of a job onto Ray: its inputs fetched and packed, Ray checked, the packages
uploaded, then one POST that survives lost answers. And the ids of the attempts.

The lifecycle (``raypod.session``) sees only the ``Submitter`` protocol: ``prepare`` does all the
work that sends nothing Ray would run, ``post`` sends the job. Between the two the lifecycle
persists the submission id, so a lost answer or a new pod never submits twice.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from raypod.clock import Clock
from raypod.config import BridgeConfig
from raypod.contract import RESOURCE_URL
from raypod.credentials import RAY_TOKEN_SOURCES
from raypod.entrypoint import new_submission_id, plan_submission
from raypod.errors import (
    ConfigError,
    LocalFileError,
    RayApiError,
    RaypodError,
    SubmissionRejected,
    Terminated,
    looks_like_a_page,
)
from raypod.inputs import LocalInputs, build_packages, fetch_inputs
from raypod.jobs import RayJobs
from raypod.objectstore import ObjectStore
from raypod.package import mib
from raypod.pod_identity import PodIdentity
from raypod.ray import is_duplicate_submission, is_wrapped_rejection, stranger_at
from raypod.retry import NO_RETRY, RetryPolicy
from raypod.safetext import one_line
from raypod.terminal import ByteProgress, no_progress

log = logging.getLogger(__name__)


def attempt_id(base_id: str, attempt: int) -> str:
    """The submission id of an attempt: the job's id, then ``<id>-r1``, ``<id>-r2`` for the retries."""
    return base_id if attempt <= 1 else f"{base_id}-r{attempt - 1}"


def attempt_number(base_id: str, submission_id: str) -> int | None:
    """Which attempt of the job ``base_id`` the id ``submission_id`` is: 1 for the job's id itself,
    n for ``<base>-r<n-1>``; None when it is none of them."""
    if submission_id == base_id:
        return 1
    rest = submission_id.removeprefix(f"{base_id}-r")
    if rest == submission_id or not rest.isdecimal() or rest.startswith("0"):
        return None
    return int(rest) + 1


def split_recorded(submission_id: str, number: int) -> tuple[str, int]:
    """The job's id and the attempt from a recorded attempt id and ``status.attempt``. A record that
    disagrees with itself (the id lacks that attempt's suffix) names attempt 1 of the id it holds."""
    suffix = f"-r{number - 1}"
    if number > 1 and submission_id.endswith(suffix) and len(submission_id) > len(suffix):
        return submission_id.removesuffix(suffix), number
    return submission_id, 1


def resolve_attempt(configured: str, recorded_id: str, recorded_number: int) -> tuple[str, int]:
    """The job's id and the newest attempt the records know, from the ConfigMap's ``id`` and what an
    earlier pod recorded (``status.attempt`` with its attempt id).

    The two may disagree: a mounted ConfigMap lags the API, so its ``id`` may name an older attempt
    than the record; with a status file, the ConfigMap's ``id`` is the job's own. An ``id`` that is
    an attempt of the recorded job counts as that attempt (the newer of the two wins); any other
    names another job, at its first attempt. An attempt id is never taken for a job's id."""
    if not recorded_id:
        return configured, 1
    base_id, number = split_recorded(recorded_id, recorded_number)
    if not configured:
        return base_id, number
    known = attempt_number(base_id, configured)
    if known is None:
        return configured, 1  # the ConfigMap names another job than the one recorded
    return base_id, max(number, known)


def parse_attempt(text: str) -> int | None:
    """``status.attempt`` as an earlier pod wrote it, or None when it is no attempt number."""
    try:
        attempt = int(text)
    except ValueError:
        return None
    return attempt if attempt >= 1 else None


def recorded_attempt(text: str) -> int:
    """``status.attempt`` as an earlier pod wrote it; 1 when absent or unreadable."""
    if not text:
        return 1
    attempt = parse_attempt(text)
    if attempt is None:
        log.warning("status.attempt=%r is not an attempt number; taking it as 1", text)
        return 1
    return attempt


def is_refusal(error: RayApiError) -> bool:
    """Ray said no to the request itself (a 4xx): it did not take it, and asking again cannot help.
    A page (an ingress's 404) is not Ray's word: whether Ray has the job is asked; a 401 or 403 page
    (an auth proxy) refuses all the same."""
    return (
        not error.transient
        and error.status is not None
        and 400 <= error.status < 500
        # An auth proxy's page refuses as surely as Ray; any other page is not Ray's word.
        and (error.unauthorized or not looks_like_a_page(error.body))
    )


class Unclear(RaypodError):
    """The POST's answer could not be read, nor could Ray be asked whether it took the job: the POST is
    sent again (a job Ray has is named as a duplicate, never run twice)."""

    transient = True

    def __init__(self, error: RayApiError) -> None:
        self.error = error
        super().__init__(str(error))


class NotOnRay(RaypodError):
    """The POST got an answer raypod cannot read (a page, garbled JSON), and Ray then said with its
    own 404 that it has no such job: the POST is sent again, and should every try end so, the job
    was not submitted."""

    transient = True

    def __init__(self, error: RayApiError) -> None:
        self.error = error
        super().__init__(f"{error}; Ray then said it has no such job")


@dataclass(frozen=True)
class Prepared:
    """An attempt ready to POST: its packages are on Ray, its body is built."""

    submission_id: str
    payload: dict[str, Any]


class Submitter(Protocol):
    def prepare(self, submission_id: str | None) -> Prepared:
        """Fetch the inputs, pack and upload them, and check that Ray answers; nothing that Ray
        would run is sent. ``None``: choose the job's id. Raises ConfigError for bad input."""
        ...

    def post(self, prepared: Prepared) -> None:
        """POST the job until Ray has it. ``SubmissionRejected`` when Ray refuses it, ``NotOnRay``
        when Ray said it does not have it after the last try; any other error means Ray may have it."""
        ...


@dataclass(frozen=True)
class SubmissionSettings:
    job_name: str
    namespace: str
    #: How long an unreachable dashboard is retried before the submission is given up.
    connect_timeout: float = 60.0
    #: The patient policy, with the SIGTERM event (``RetryPolicy.interruptible``).
    retry: RetryPolicy = RetryPolicy()
    #: The submitting pod and the caller's trace context, for the Ray job's metadata.
    pod: PodIdentity = PodIdentity()
    #: Where the dashboard's address came from: a problem with it names this.
    address_origin: str = RESOURCE_URL
    #: How the package's zipping and upload are shown (the CLI's progress line; nothing in the pod).
    progress: ByteProgress = no_progress

    @property
    def connect_policy(self) -> RetryPolicy:
        return self.retry.with_deadline(self.connect_timeout)


class RaySubmitter:
    """Submits ``config``'s job (and ``local``'s files) to Ray's dashboard."""

    def __init__(
        self,
        config: BridgeConfig,
        ray: RayJobs,
        store: ObjectStore | None,
        clock: Clock,
        settings: SubmissionSettings,
        *,
        local: LocalInputs = LocalInputs(),
        identity: str | None = None,
    ) -> None:
        self.config = config
        self.ray = ray
        self.store = store
        self.clock = clock
        self.settings = settings
        self.local = local
        #: The ConfigMap's uid, when known: every pod of one BridgeJob then picks the same id.
        self.identity = identity

    def prepare(self, submission_id: str | None) -> Prepared:
        try:
            return self._prepare(submission_id)
        except OSError as error:
            # The pod's own disk (a full or read-only TMPDIR, a file-size limit): nothing was sent to Ray.
            raise LocalFileError(f"cannot make the job's files in {tempfile.gettempdir()}", error) from None

    def _prepare(self, submission_id: str | None) -> Prepared:
        config, settings = self.config, self.settings
        with tempfile.TemporaryDirectory(prefix="raypod-") as temp:
            workdir = Path(temp)
            inputs = fetch_inputs(config, self.store, workdir, self.local)
            packages = build_packages(inputs, workdir, settings.progress)
            chosen = submission_id or new_submission_id(
                settings.job_name, config.properties.submission_id_prefix, self.identity
            )
            payload = plan_submission(
                config, inputs, settings.job_name, settings.namespace, packages, chosen, settings.pod
            )
            try:
                version = self.ray.version(retry=settings.connect_policy)
            except RayApiError as error:
                stranger = stranger_at(config.resource_url, settings.address_origin, error)
                raise (stranger or unreachable(error, settings.address_origin)) from error
            log.info("Ray dashboard %s answers (Ray %s)", config.resource_url, version.get("ray_version", "?"))
            try:
                for package in packages.all:  # the working dir's, then each wheel's: once per content
                    if not self.ray.package_exists(package.name):
                        log.info("uploading package %s (%s)", package.name, mib(package.path.stat().st_size))
                        self.ray.upload_package(package.name, package.path, settings.progress)
            except RayApiError as error:
                if not error.unauthorized:
                    raise
                # /api/version may answer without auth; the package calls are where a token is checked.
                raise unreachable(error, settings.address_origin) from error
        return Prepared(chosen, payload)

    def post(self, prepared: Prepared) -> None:
        """POST until Ray has the job, asking after every lost answer whether it arrived."""
        ray, submission_id = self.ray, prepared.submission_id

        def attempt() -> None:
            if self.clock.terminated:
                raise Terminated("terminated before the submission")
            try:
                ray.submit_job(prepared.payload, retry=NO_RETRY)
            except RayApiError as error:
                if is_duplicate_submission(error):
                    log.info("Ray already has %s: the earlier POST went through", submission_id)
                    return
                if is_wrapped_rejection(error):
                    raise SubmissionRejected(error) from error
                if is_refusal(error):
                    raise
                # The answer may be lost, or garbled on its way (an ingress page), after Ray accepted
                # the job: ask before posting again, or before calling it anything.
                try:
                    ray.get_job(submission_id, retry=NO_RETRY)
                except RayApiError as lookup_error:
                    if lookup_error.job_unknown and error.status is not None and error.status < 500:
                        # A whole answer (garbled, or a page) came back: the POST is over, and Ray has
                        # no such job. A gateway's 5xx may come while Ray still handles the POST.
                        raise NotOnRay(error) from error
                    if lookup_error.job_unknown:
                        raise error from lookup_error  # no answer: the POST may still be on its way
                    # Cannot tell whether Ray has it: post again (Ray names a duplicate), within the deadline.
                    raise Unclear(error) from None
                log.info("Ray accepted %s although its answer was lost", submission_id)

        try:
            self.settings.connect_policy.call(attempt, what=f"submission of {submission_id}")
        except RayApiError as error:
            if not is_refusal(error):
                raise  # Ray may have the job: the lifecycle reports UNKNOWN, not a rejection
            raise SubmissionRejected(error) from error


def unreachable(error: RayApiError, origin: str = RESOURCE_URL) -> ConfigError:
    """The address (named by ``origin``: resourceURL, a flag or a variable) is wrong, refuses raypod,
    or does not answer: say which, and what to check."""
    if error.unauthorized:
        return ConfigError.single(
            origin,
            f"the Ray dashboard refused access (HTTP {error.status}: {one_line(error.reason, 80)}); "
            f"{RAY_TOKEN_SOURCES}; with auth 'basic', check username/password in the credentials directory",
        )
    if "TLS" in error.reason:
        return ConfigError.single(
            origin,
            "the dashboard's https certificate did not verify; give its CA in RAYPOD_RAY_CA_BUNDLE or as "
            f"ca.crt in the credentials directory ({error})",
        )
    return ConfigError.single(origin, f"cannot reach the Ray dashboard: {error}")
