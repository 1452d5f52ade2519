"""A stateful model of the whole pod (issue 20, "the machinery"): hypothesis drives a BridgeJob's
life through pods, restarts, faults and deadlines, and checks it against what Ray really did.

Each pod is the real ``Runner`` (and so ``JobSession``, the submitter, ``finish``, the result file
and the termination message) on a fake clock, its dashboard client talking through raypod's own HTTP
client to a fake Ray 2.60 dashboard that holds the truth (``tests/support/fake_dashboard.py``,
``tests/support/pod_world.py``). The rules: a pod starts (reading the ConfigMap through the API, a
lagging mounted copy, or with KubeRay's ``RAY_JOB_SUBMISSION_ID``); SIGTERM at any fake time, also
inside a call; an operator-written ``id``; faults and hostile answers on every call (refused,
an ingress's HTML 503 and HTML 404, Ray's 500, a reset, a timeout, a trickle, JSON cut short); Ray
starting, ending, failing or losing jobs; ``kill``; the deadlines; retries; failed status writes;
time passing between pods. The ConfigMap is the real ``raypod.kube.KubeConfigMap`` on an API server
in memory (``tests/support/fake_kube_api.py``) whose faults come at any time (issue 25): outages of a
drawn length (503, 429 or 503 with ``Retry-After``, refused connections), a proxy's HTML page (200 or
404), a hung API, the ConfigMap deleted and re-created by the operator (same owner) or someone else.

The invariants, after every step, against the fake dashboard's truth:

- no submission id is created on Ray twice (unless a head restart lost the first before any pod was
  told Ray had it: no pod can tell that from a POST that never arrived);
- never more attempts than ``retries + 1``; an attempt follows only one that Ray failed for a reason
  the table (``raypod.ray_failures``) retries, and a FAILED status carries the table's reason;
- no stop request reaches a job without a reason that truly holds: ``kill``, activeDeadlineSeconds
  passed since the BridgeJob's first submission, or startDeadlineSeconds passed since the attempt's
  submission for a job no answer had shown RUNNING;
- every pod exits through ``finish``: a final status (unless SIGTERM, which leaves a non-final one for
  the next pod, or the sink refused the final write), a ``--result`` file and a termination message;
- a final status agrees with Ray; UNKNOWN only for a job Ray lost (or never had), or after Ray gave
  no answer about it for the status or connect timeout;
- neither secret (the token, the proxy cookie; the hostile answers echo them; the service-account
  token) appears in any output, log record, status value, result file or termination message;
- nothing is ever written into a ConfigMap with another owner (or none);
- a final status written carries the ``id`` it is about, also into a ConfigMap the operator re-created;
- a final status outlives API outages shorter than its write budget (docs/failures.md), unless SIGTERM;
- a retry asked to wait (``Retry-After``) never comes before the time asked;
- while the API hangs, Ray is still polled every ``updateInterval``;
- a pod leaves within the grace period (30 s) after SIGTERM;
- each pod that exits pushes its metrics once, after its final status, and a Pushgateway that fails
  (500, refused: by the pod's number) changes nothing: the same exit code, the same ConfigMap, one warning;
- Events (``raypod.events``, written to the API in memory; denied by RBAC or failing with 500 by a
  rule): a denied or failing Event changes nothing above (every invariant holds in every mode); a
  pod's Event of a final status is the status it wrote (reason and message), and only a pod that
  wrote a final status has one; repeats are aggregated (never two Events of one pod with the same
  reason and note); an Event only ever regards this BridgeJob's ConfigMap; a failure is logged once,
  and a denied pod tries one Event only.

In the unit lane the model runs 200 derandomized examples without shrinking (a failure shows its whole
sequence); ``make model`` runs thousands and shrinks them (``RAYPOD_MODEL_PROFILE=nightly``,
``RAYPOD_MODEL_EXAMPLES``). The model's counterexamples are kept as replays at the end of this file.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, currently_in_test_context, event, settings
from hypothesis import strategies as s
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from raypod.contract import ID, JOB_STATUS, KILL, MESSAGE, REASON, BridgeStatus, Reason
from raypod.events import EventReasons, final_reason
from raypod.outcome import Ending
from raypod.ray_failures import ray_failure
from raypod.retry import MAX_RETRY_AFTER
from raypod.status_store import FINAL_WRITE_BUDGET
from tests.support.fake_dashboard import (
    COMMAND_ERROR,
    FAILED,
    ROUTES,
    RUNNING,
    SECRETS,
    STOPPED,
    SUCCEEDED,
    TERMINAL,
    FakeDashboard,
    Fault,
    JobPlan,
)
from tests.support.fake_kube_api import OTHER_OWNER, ApiFault, FakeKubeApi
from tests.support.fakes import BASE_CONFIG
from tests.support.pod_world import BRIDGEJOB_UID, KUBE_TOKEN, ModelClock, PodRun, PodSettings, run_pod

settings.register_profile(
    "pod-model-ci",
    max_examples=int(os.environ.get("RAYPOD_MODEL_EXAMPLES", "200")),
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "pod-model-nightly",
    max_examples=int(os.environ.get("RAYPOD_MODEL_EXAMPLES", "2000")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = f"pod-model-{os.environ.get('RAYPOD_MODEL_PROFILE', 'ci')}"

#: A SIGTERM no later than this after a pod's start ends every pod (fake seconds): the operator's
#: pod has no status timeout, and a job may run for ever.
BACKSTOP = 900.0
#: The operator's time layout has whole seconds: a deadline counted from a recorded time may pass
#: up to a second before it truly has.
RESOLUTION = 1.0
#: terminationGracePeriodSeconds (Kubernetes' default, the operator's pod sets no other): SIGKILL then.
GRACE = 30.0
OPERATOR_ID = "ext-train-2f9d"

#: Ray's reasons for a FAILED job: mostly the driver's exit; else reasons a retry cannot mend, can
#: mend, and one Ray 2.60 does not have.
ERROR_TYPES = (
    COMMAND_ERROR,
    COMMAND_ERROR,
    "RUNTIME_ENV_SETUP_FAILURE",
    "JOB_SUPERVISOR_ACTOR_DIED",
    "RAY_3_NEW_REASON",
)

seconds = s.integers(min_value=0, max_value=400).map(float)
#: Most faults begin with the next pod (its start-up is where restarts meet outages).
fault_delays = s.one_of(s.just(0.0), seconds)
plans = s.builds(
    JobPlan,
    start_after=s.one_of(s.none(), s.integers(0, 120).map(float)),
    run_for=s.one_of(s.none(), s.integers(1, 30).map(float), s.integers(1, 300).map(float)),
    end=s.sampled_from([SUCCEEDED, FAILED, FAILED]),
    error_type=s.sampled_from(ERROR_TYPES),
)


class PodModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ModelClock()
        self.ray = FakeDashboard(self.clock)
        self.api = FakeKubeApi(self.clock, BRIDGEJOB_UID)
        self.workdir = Path(tempfile.mkdtemp(prefix="raypod-model-"))
        self.pods: list[PodRun] = []
        self.pod_settings = PodSettings()
        self.retries = 0
        self.active_deadline: float | None = None
        self.start_deadline: float | None = None
        self.kuberay_id: str | None = None
        self.kill_times: list[float] = []
        self.checked_pods = 0
        self.interval = 5.0
        #: The dashboard had a fault at some time (its polls may then be slower than the interval).
        self.dashboard_faulted = False
        self.pod_running = False
        #: The ConfigMap was deleted or re-created while no pod ran: what pods recorded in it is gone
        #: (the operator's concern, not raypod's); the model's BridgeJob ends there.
        self.wiped = False
        #: Each pod's Event mode ("allowed", "denied", "broken"), by its number.
        self.event_modes: dict[int, str] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- the BridgeJob ---------------------------------------------------------------------------
    @initialize(
        retries=s.sampled_from([0, 0, 1, 2]),
        retry_delay=s.sampled_from([0, 10, 60]),
        active_deadline=s.one_of(s.none(), s.integers(20, 600)),
        start_deadline=s.one_of(s.none(), s.integers(5, 120)),
        interval=s.sampled_from(["5", "10"]),
        connect_timeout=s.sampled_from([3.0, 30.0]),
        status_timeout=s.sampled_from([None, None, 60.0, 300.0]),
        existing=s.sampled_from(["none", "none", "operator id on Ray", "operator id not on Ray", "kuberay id"]),
        existing_plan=plans,
        uid_refusal=s.sampled_from([422, 409]),
    )
    def a_bridgejob_is_created(
        self,
        retries: int,
        retry_delay: int,
        active_deadline: int | None,
        start_deadline: int | None,
        interval: str,
        connect_timeout: float,
        status_timeout: float | None,
        existing: str,
        existing_plan: JobPlan,
        uid_refusal: int,
    ) -> None:
        properties: dict[str, Any] = {"retries": retries, "retryDelaySeconds": retry_delay}
        if active_deadline is not None:
            properties["activeDeadlineSeconds"] = active_deadline
        if start_deadline is not None:
            properties["startDeadlineSeconds"] = start_deadline
        data = {**BASE_CONFIG, "updateInterval": interval, "jobproperties": json.dumps(properties)}
        if existing.startswith("operator id"):
            data[ID] = OPERATOR_ID
        if existing in ("operator id on Ray", "kuberay id"):
            self.ray.add_job(OPERATOR_ID, existing_plan)
        if existing == "kuberay id":
            self.kuberay_id = OPERATOR_ID
        self.api = FakeKubeApi(self.clock, BRIDGEJOB_UID, uid_refusal=uid_refusal)
        self.api.create(data, BRIDGEJOB_UID)
        self.spec = dict(data)
        self.interval = float(interval)
        self.retries = retries
        self.active_deadline = None if active_deadline is None else float(active_deadline)
        self.start_deadline = None if start_deadline is None else float(start_deadline)
        self.pod_settings = PodSettings(connect_timeout=connect_timeout, status_timeout=status_timeout)

    # -- Ray -------------------------------------------------------------------------------------
    @rule(plan=plans)
    def ray_will_run_the_next_submitted_job_so(self, plan: JobPlan) -> None:
        self.ray.plans.append(plan)

    @rule(delay=seconds, event=s.sampled_from(["starts", "ends SUCCEEDED", "fails", "head restarts"]))
    def ray_acts_later(self, delay: float, event: str) -> None:
        actions = {
            "starts": self.ray.start_jobs,
            "ends SUCCEEDED": lambda: self.ray.end_jobs(SUCCEEDED),
            "fails": lambda: self.ray.end_jobs(FAILED),
            "head restarts": self.ray.restart_head,
        }
        self.clock.at(self.clock.elapsed + delay, actions[event])

    @rule(
        route=s.one_of(s.none(), s.sampled_from(ROUTES)),
        fault=s.sampled_from(Fault),
        delay=fault_delays,
        duration=s.integers(1, 600).map(float),
    )
    def the_dashboard_is_unreachable_for_a_while(
        self, route: str | None, fault: Fault, delay: float, duration: float
    ) -> None:
        self.ray.outage(route, fault, self.clock.elapsed + delay, duration)
        self.dashboard_faulted = True

    # -- the operator and the cluster -------------------------------------------------------------
    @rule(delay=seconds)
    def the_operator_sets_kill_later(self, delay: float) -> None:
        def kill() -> None:
            self.api.operator_sets({KILL: "true"})
            self.kill_times.append(self.clock.elapsed)

        self.clock.at(self.clock.elapsed + delay, kill)

    @rule(after=s.integers(0, 8), count=s.integers(1, 5))
    def status_writes_fail(self, after: int, count: int) -> None:
        """The Kubernetes API takes the next ``after`` writes, then refuses ``count``."""
        self.api.successes_first, self.api.failures_left = after, count

    @rule(
        fault=s.sampled_from(ApiFault),
        delay=fault_delays,
        duration=s.one_of(s.integers(1, 60), s.integers(1, 400)).map(float),
        retry_after=s.sampled_from([1, 10, 45]),
    )
    def the_kubernetes_api_fails_for_a_while(
        self, fault: ApiFault, delay: float, duration: float, retry_after: int
    ) -> None:
        """From ``delay`` s on, for ``duration`` s: 503s, 429s or 503s with ``Retry-After``, refused
        connections, a proxy's HTML page (200 or 404), or a hung API."""
        self.api.outage(fault, self.clock.elapsed + delay, duration, retry_after)

    @rule(delay=seconds, gap=s.sampled_from([0.0, 0.0, 5.0, 60.0]), by=s.sampled_from(["operator", "other", "none"]))
    def the_configmap_is_deleted_and_re_created_later(self, delay: float, gap: float, by: str) -> None:
        """``kubectl replace --force``, a slow garbage collection: the ConfigMap is deleted, and ``gap`` s
        later created again under its name, by the operator for this BridgeJob (its spec keys only) or
        by someone else (another BridgeJob's, or one without an owner)."""
        owner = {"operator": BRIDGEJOB_UID, "other": OTHER_OWNER, "none": None}[by]
        at = self.clock.elapsed + delay

        def delete() -> None:
            self.wiped = self.wiped or not self.pod_running
            self.api.delete()

        def create() -> None:
            self.wiped = self.wiped or not self.pod_running
            self.api.create(self.spec, owner)

        self.clock.at(at, delete)
        self.clock.at(at + gap, create)

    @rule(mode=s.sampled_from(["allowed", "denied", "broken"]))
    def event_writes_are(self, mode: str) -> None:
        """From now on Events are written, denied (a Role without ``events``: 403), or fail (500)."""
        self.api.events_denied, self.api.events_broken = mode == "denied", mode == "broken"

    @rule(duration=s.integers(1, 900).map(float))
    def time_passes_without_a_pod(self, duration: float) -> None:
        self.clock.advance(duration)

    @precondition(lambda self: not self._final() and not self._foreign() and not self.wiped)
    @rule(
        variant=s.sampled_from(["api", "api", "mounted"]),
        lag=s.integers(5, 120).map(float),
        sigterm_after=s.one_of(s.none(), s.integers(0, 300).map(float)),
        faults=s.lists(s.tuples(s.sampled_from(ROUTES), s.sampled_from(Fault)), max_size=3),
    )
    def a_pod_runs(
        self, variant: str, lag: float, sigterm_after: float | None, faults: list[tuple[str, Fault]]
    ) -> None:
        """A pod starts: reading the ConfigMap through the API, or (``mounted``) from the kubelet's
        copy, which shows the ConfigMap as it was ``lag`` seconds ago (``kill`` also from the API).
        SIGTERM comes ``sigterm_after`` seconds after its start; ``faults`` spoil the first calls of
        their routes."""
        for route, fault in faults:
            self.ray.fail_next(route, fault)
        self.clock.new_pod()
        start = self.clock.elapsed
        self.clock.terminate_at(start + (sigterm_after if sigterm_after is not None else BACKSTOP))
        mounted = self.api.as_of(start - lag) if variant == "mounted" else None
        self.dashboard_faulted = self.dashboard_faulted or bool(faults)
        self.pod_running = True
        self.event_modes[len(self.pods) + 1] = (
            "denied" if self.api.events_denied else "broken" if self.api.events_broken else "allowed"
        )
        pod = run_pod(
            len(self.pods) + 1,
            self.clock,
            self.ray,
            self.api,
            self.pod_settings,
            self.workdir,
            variant=variant,
            mounted=mounted,
            kuberay_id=self.kuberay_id,
        )
        self.pod_running = False
        self.pods.append(pod)
        self.ray.settle()
        outcome = pod.result.outcome if pod.result is not None else None
        if currently_in_test_context():
            event(f"pod ends: {outcome.ending.value if outcome else 'crash'} {outcome.status if outcome else ''}")

    def _final(self) -> bool:
        status = self.api.status
        return status is not None and status.final

    def _foreign(self) -> bool:
        """Another BridgeJob's ConfigMap (or one without an owner) holds the name: this BridgeJob's
        pods would run its job; the model's BridgeJob ends there."""
        return any(stored.owner != BRIDGEJOB_UID for stored in self.api.objects)

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def no_submission_id_is_created_on_ray_twice(self) -> None:
        ids = self.ray.created_ids()
        # Ray lost the first before anyone was told it had it: no pod can tell it from a POST that
        # never arrived (kept apart in the report, not here).
        twice = sorted({sid for sid in ids if ids.count(sid) > 1 and sid not in self.ray.lost_unconfirmed})
        assert not twice, f"created on Ray more than once: {twice}"

    @invariant()
    def never_more_attempts_than_retries_plus_one(self) -> None:
        ids = self.ray.created_ids()
        assert len(set(ids)) <= self.retries + 1, f"{len(set(ids))} attempts with retries={self.retries}: {ids}"

    @invariant()
    def an_attempt_follows_only_a_failure_the_table_retries(self) -> None:
        for submission_id in set(self.ray.created_ids()):
            base, _, number = submission_id.rpartition("-r")
            if not base or not number.isdigit():
                continue
            previous = base if number == "1" else f"{base}-r{int(number) - 1}"
            job = self.ray.jobs.get(previous)
            if job is None:
                continue  # a head restart lost it: what it was is not known here
            said = f"{submission_id} follows {previous}, {job.status} ({job.error_type})"
            assert job.status == FAILED, said
            assert ray_failure(job.error_type, job.driver_exit_code).retried, said

    @invariant()
    def no_job_is_stopped_without_a_reason_that_holds(self) -> None:
        for stop in self.ray.stops:
            if stop.status in TERMINAL:
                continue  # Ray answers {"stopped": false}: nothing happens
            why = self._stop_reasons(stop.submission_id, stop.at, stop.reported_running)
            assert why, (
                f"stop of {stop.submission_id} ({stop.status}, reported RUNNING: {stop.reported_running}) "
                f"at t={stop.at:g} s: no kill, no deadline truly passed"
            )

    def _stop_reasons(self, submission_id: str, at: float, reported_running: bool) -> list[str]:
        reasons = []
        if any(when <= at for when in self.kill_times):
            reasons.append("kill")
        first = self.ray.created[0][1] if self.ray.created else None
        if self.active_deadline is not None and first is not None and at - first > self.active_deadline - RESOLUTION:
            reasons.append("activeDeadlineSeconds")
        created = self.ray.created_at(submission_id)
        if (
            self.start_deadline is not None
            and created is not None
            and at - created > self.start_deadline - RESOLUTION
            and not reported_running
        ):
            reasons.append("startDeadlineSeconds")
        return reasons

    @invariant()
    def nothing_is_ever_written_into_another_bridgejobs_configmap(self) -> None:
        foreign = [landed for landed in self.api.landed if landed.owner != BRIDGEJOB_UID]
        assert not foreign, f"written into a ConfigMap this BridgeJob does not own: {foreign}"

    @invariant()
    def retry_after_is_honoured(self) -> None:
        """No retry of a call asked to wait comes before the time asked (a thread's next request of
        the same verb; other threads' calls cannot know)."""
        with self.api.lock:
            requests = list(self.api.requests)
        for index, asked in enumerate(requests):
            if asked.retry_after is None:
                continue
            later = next(
                (r for r in requests[index + 1 :] if (r.thread, r.method) == (asked.thread, asked.method)), None
            )
            wait = min(asked.retry_after, MAX_RETRY_AFTER)
            assert later is None or later.at >= asked.at + wait - 1e-6, (
                f"{asked.method} from {asked.thread} asked at t={later.at:g} s; "
                f"the answer at t={asked.at:g} s said Retry-After: {asked.retry_after:g}"
            )

    @invariant()
    def every_pod_exit_leaves_a_record_that_agrees_with_ray(self) -> None:
        while self.checked_pods < len(self.pods):
            pod = self.pods[self.checked_pods]
            self.checked_pods += 1
            self._check_leaves_within_the_grace_period(pod)
            self._check_exit(pod)
            self._check_no_secret(pod)
            self._check_recreated_configmap_gets_the_id(pod)
            self._check_final_status_outlives_short_outages(pod)
            self._check_polls_go_on_while_the_api_hangs(pod)
            self._check_metrics_pushed_once_after_the_final_status(pod)
            self._check_events(pod)

    def _check_metrics_pushed_once_after_the_final_status(self, pod: PodRun) -> None:
        if pod.result is None:
            assert not pod.gateway_calls, f"pod {pod.number} crashed and still pushed"
            return
        assert [call.method for call in pod.gateway_calls] == ["PUT"], f"pod {pod.number}: {pod.gateway_calls}"
        push = pod.gateway_calls[0]
        assert pod.exit_code == pod.result.exit_code, f"pod {pod.number}: the push changed the exit code"
        # Nothing the pod wrote comes after the push: its status is in the ConfigMap first.
        mine = (JOB_STATUS, MESSAGE, REASON, ID)
        if not self._replaced_during(pod):
            assert {k: push.configmap.get(k) for k in mine} == {k: pod.configmap_after.get(k) for k in mine}, (
                f"pod {pod.number} pushed before its last status write"
            )
        written = pod.result.status.get(JOB_STATUS, "")
        assert f'status="{written}"'.encode() in push.body, (written, push.body)
        warnings = [line for line in pod.logs if line.startswith("WARNING") and "Pushgateway" in line]
        assert len(warnings) == (0 if pod.gateway_mode == "ok" else 1), (pod.gateway_mode, warnings)

    def _check_events(self, pod: PodRun) -> None:
        mine = [e for e in self.api.events if e["reportingInstance"] == pod.name]
        said = f"pod {pod.number} ({self.event_modes[pod.number]}): {[(e['reason'], e['note']) for e in mine]}"
        pairs = [(e["reason"], e["note"]) for e in mine]
        assert len(pairs) == len(set(pairs)), f"{said}: a repeat was not aggregated"
        ours = {o.uid for o in self.api.objects if o.owner == BRIDGEJOB_UID}
        assert all(e["regarding"]["uid"] in ours for e in mine), f"{said}: an Event about another object"
        warnings = [line for line in pod.logs if line.startswith("WARNING raypod.events")]
        assert len(warnings) <= 1, f"pod {pod.number} logged Event failures {len(warnings)} times"
        if self.event_modes[pod.number] == "denied":
            assert not mine and pod.event_requests <= 1, f"{said}: {pod.event_requests} Event writes though denied"
        claimed = [e for e in mine if e["reason"] in FINAL_EVENTS]
        result, written = pod.result, pod.configmap_after
        assert result is not None
        status = BridgeStatus.parse(written.get(JOB_STATUS, ""))
        wrote_final = (
            result.outcome.ending in (Ending.FINAL, Ending.BAD_INPUT)
            and status is not None
            and status.final
            and pod.result_file is not None
            and pod.result_file.get("final") is True
        )
        if not wrote_final:
            assert not claimed, f"{said}: an Event of a final status the pod did not write"
            return
        assert status is not None
        expected = final_reason(status, written.get(REASON, ""))
        for e in mine:
            if e["reason"] in FINAL_EVENTS or e["note"] == written.get(MESSAGE):
                assert (e["reason"], e["note"]) == (expected, written.get(MESSAGE)), f"{said}; wrote {status}"

    def _replaced_during(self, pod: PodRun) -> bool:
        """The ConfigMap was deleted (and maybe re-created) while the pod ran: raypod may refuse to write."""
        return any(pod.start <= (o.deleted if o.deleted is not None else -1) <= pod.end for o in self.api.objects)

    def _check_leaves_within_the_grace_period(self, pod: PodRun) -> None:
        """After SIGTERM the kubelet waits GRACE s, then kills: a pod still writing then leaves no
        result and no termination message."""
        if pod.sigterm_at is None:
            return
        assert pod.end - pod.sigterm_at < GRACE, (
            f"pod {pod.number} got SIGTERM at t={pod.sigterm_at:g} s and left at t={pod.end:g} s: "
            f"killed at {pod.sigterm_at + GRACE:g} s, before its result and termination message"
        )

    def _check_recreated_configmap_gets_the_id(self, pod: PodRun) -> None:
        """A final status written carries the ``id`` it is about, also into a ConfigMap the operator
        re-created under the pod (which held none of raypod's keys)."""
        status = BridgeStatus.parse(pod.configmap_after.get(JOB_STATUS, ""))
        expected = pod.id_written or pod.configmap_before.get(ID)
        if status is None or not status.final or not expected or pod.result is None:
            return
        if pod.result.outcome.ending is Ending.ALREADY_FINAL:
            return
        assert pod.configmap_after.get(ID) == expected, (
            f"pod {pod.number} wrote {status} into ConfigMap {pod.uid_after} (was {pod.uid_before}) "
            f"with id {pod.configmap_after.get(ID)!r}, not {expected!r}"
        )

    def _check_final_status_outlives_short_outages(self, pod: PodRun) -> None:
        """docs/failures.md: a final status is retried for FINAL_WRITE_BUDGET s; API outages shorter
        than that in all, in a pod whose ConfigMap stayed, never lose it."""
        if pod.result is None or pod.result.outcome.ending not in (Ending.FINAL, Ending.BAD_INPUT) or pod.sigterm:
            return
        if pod.uid_before is None or pod.uid_after != pod.uid_before or not pod.read_at_start:
            return
        if self._replaced_during(pod):
            return
        overlapping = [o for o in self.api.outages if o.start <= pod.end and o.end > pod.start]
        if sum(o.end - o.start for o in overlapping) >= FINAL_WRITE_BUDGET - 2 * RESOLUTION:
            return
        status = BridgeStatus.parse(pod.configmap_after.get(JOB_STATUS, ""))
        outages = [(o.fault.value, o.start, o.end) for o in overlapping]
        assert status is not None and status.final, (
            f"pod {pod.number} ended {pod.result.outcome.ending} at t={pod.end:g} s without a final status "
            f"through API outages {outages} (less than {FINAL_WRITE_BUDGET:g} s in all)"
        )

    def _check_polls_go_on_while_the_api_hangs(self, pod: PodRun) -> None:
        """While the API hangs, Ray is polled every interval all the same (between the pod's first and
        last poll, with no dashboard fault and no submission in between)."""
        if self.dashboard_faulted:
            return
        hangs = [o for o in self.api.outages if o.fault is ApiFault.HUNG and o.start < pod.end and o.end > pod.start]
        if not hangs:
            return
        calls = [(at, route) for at, route, _ in self.ray.requests if pod.start <= at <= pod.end]
        polls = [at for at, route in calls if route == "get"]
        submits = [at for at, route in calls if route in ("submit", "version", "stop")]
        slack = self.interval + 2 * RESOLUTION
        for before, after in itertools.pairwise(polls):
            if after - before <= slack or any(before <= at <= after for at in submits):
                continue
            hung = [(o.start, o.end) for o in hangs if o.start < after and o.end > before]
            assert not hung, (
                f"pod {pod.number}: no Ray poll from t={before:g} to t={after:g} s while the API hung {hung}"
            )

    def _check_exit(self, pod: PodRun) -> None:
        assert pod.crash is None, f"pod {pod.number} died of {pod.crash!r}: no status, no result, no message"
        result = pod.result
        assert result is not None
        assert pod.termination_message, f"pod {pod.number} left no termination message"
        assert pod.result_file is not None, f"pod {pod.number} left no --result file"
        status = BridgeStatus.parse(pod.configmap_after.get(JOB_STATUS, ""))
        if result.outcome.ending is Ending.TERMINATED:
            assert pod.sigterm, f"pod {pod.number} left as if terminated, without SIGTERM"
            assert status is None or not status.final, f"pod {pod.number} wrote {status} and then left on SIGTERM"
            assert pod.result_file["final"] is False
            return
        assert result.outcome.ending in (Ending.FINAL, Ending.BAD_INPUT, Ending.ALREADY_FINAL), result.outcome
        if status is None or not status.final:
            refused = pod.refused_writes > 0 or self._replaced_during(pod) or not pod.read_at_start
            assert refused, f"pod {pod.number} exited ({result.outcome.ending}) without a final status"
            if not pod.read_at_start:
                # A ConfigMap the pod never read is never written: the record says so.
                assert pod.result_file is not None and pod.result_file.get("notRecorded"), pod.result_file
            assert result.exit_code != 0, "a final status that could not be written must fail the pod"
            return
        assert pod.result_file["final"] is True
        assert pod.result_file["status"] == status
        self._check_agrees_with_ray(pod, status)

    def _check_agrees_with_ray(self, pod: PodRun, status: BridgeStatus) -> None:
        written = pod.configmap_after
        submission_id = written.get(ID, "")
        reason = written.get(REASON, "")
        job = self.ray.jobs.get(submission_id)
        truth = job.status if job is not None else ("lost" if submission_id in self.ray.lost else "never on Ray")
        # A job that had ended when a head restart lost it: a pod may have seen its end before.
        truth = self.ray.lost_ended.get(submission_id, truth) if job is None else truth
        message = written.get(MESSAGE, "")[:160]
        named = submission_id or "no id"
        said = f"pod {pod.number} wrote {status} ({reason}) {message!r} for {named}; Ray's truth: {truth}"
        if reason in (Reason.BAD_INPUT, Reason.NOT_SUBMITTED, Reason.SUBMISSION_REJECTED):
            unknown_to_any_pod = submission_id in self.ray.lost_unconfirmed
            assert submission_id not in self.ray.created_ids() or truth in TERMINAL or unknown_to_any_pod, said
            return
        if status is BridgeStatus.UNKNOWN:
            if job is None:
                return  # Ray lost it, or never had it
            window = min(self.pod_settings.connect_timeout, self.pod_settings.status_timeout or float("inf"))
            last = self.ray.last_answer(submission_id, since=pod.start)
            silent = pod.end - (last if last is not None else pod.start)
            assert silent > window - RESOLUTION, f"{said}; Ray was silent about it for only {silent:g} s"
            return
        if status is BridgeStatus.KILL:
            # Kill before the submission, a stop Ray confirmed, or kill during the delay before a retry.
            assert self.kill_times or truth == STOPPED, said
            assert truth in (STOPPED, FAILED, "never on Ray", "lost"), said
            return
        assert job is not None or truth in TERMINAL, said
        match status:
            case BridgeStatus.SUCCEEDED:
                assert truth == SUCCEEDED, said
            case BridgeStatus.FAILED if reason not in (Reason.DEADLINE_EXCEEDED, Reason.START_DEADLINE_EXCEEDED):
                assert truth == FAILED, said
                if job is not None:
                    assert reason == ray_failure(job.error_type, job.driver_exit_code).reason, said
            case BridgeStatus.FAILED:
                assert reason in (Reason.DEADLINE_EXCEEDED, Reason.START_DEADLINE_EXCEEDED), said
                assert truth != RUNNING, said
                reasons = self._stop_reasons(submission_id, pod.end, reported_running=False)
                wanted = "activeDeadlineSeconds" if reason == Reason.DEADLINE_EXCEEDED else "startDeadlineSeconds"
                assert wanted in reasons, f"{said}; {wanted} has not passed"
            case _:
                raise AssertionError(said)

    def _check_no_secret(self, pod: PodRun) -> None:
        places = {
            "stdout": pod.output,
            "log records": "\n".join(pod.logs),
            "ConfigMap": json.dumps(pod.configmap_after),
            "termination message": pod.termination_message or "",
            "--result file": json.dumps(pod.result_file),
        }
        for where, text in places.items():
            for secret in (*SECRETS, KUBE_TOKEN):
                assert secret not in text, f"pod {pod.number}: a secret in its {where}"


#: The Events only the end of a run records (DeadlineExceeded is also the stop's, with its own note).
FINAL_EVENTS = frozenset(
    {EventReasons.SUCCEEDED, EventReasons.FAILED, EventReasons.LOST, EventReasons.BAD_INPUT, EventReasons.STOPPED}
)

PodModel.TestCase.settings = settings.get_profile(PROFILE)
TestThePodKeepsItsPromisesAcrossRestartsFaultsAndDeadlines = PodModel.TestCase


# -- the model's counterexamples, replayed: each names the class of defect it found -------------
def replay(setup: dict[str, Any], *steps: tuple[str, dict[str, Any]]) -> PodModel:
    """The BridgeJob ``setup``, then each rule in turn with every invariant checked after it, as
    hypothesis runs the model."""
    machine = PodModel()
    defaults: dict[str, Any] = {
        "retries": 0,
        "retry_delay": 0,
        "active_deadline": None,
        "start_deadline": None,
        "interval": "5",
        "connect_timeout": 3.0,
        "status_timeout": None,
        "existing": "none",
        "existing_plan": JobPlan(),
        "uid_refusal": 422,
    }
    try:
        machine.a_bridgejob_is_created(**{**defaults, **setup})
        for name, arguments in steps:
            getattr(machine, name)(**arguments)
            machine.no_submission_id_is_created_on_ray_twice()
            machine.never_more_attempts_than_retries_plus_one()
            machine.no_job_is_stopped_without_a_reason_that_holds()
            machine.nothing_is_ever_written_into_another_bridgejobs_configmap()
            machine.retry_after_is_honoured()
            machine.every_pod_exit_leaves_a_record_that_agrees_with_ray()
    finally:
        machine.teardown()
    return machine


def pod(
    sigterm_after: float | None = None, *faults: tuple[str, Fault], mounted_lag: float | None = None
) -> tuple[str, dict[str, Any]]:
    variant = "api" if mounted_lag is None else "mounted"
    arguments = {"variant": variant, "lag": mounted_lag or 5.0, "sigterm_after": sigterm_after, "faults": list(faults)}
    return ("a_pod_runs", arguments)


def test_a_pod_that_cannot_reach_ray_at_first_never_stops_a_job_known_to_run_for_its_start_deadline() -> None:
    # Pod 1 saw the job RUNNING and was terminated; pod 2's first polls find no dashboard.
    replay(
        {"start_deadline": 8},
        pod(30.0),
        (
            "the_dashboard_is_unreachable_for_a_while",
            {"route": "get", "fault": Fault.REFUSED, "delay": 0.0, "duration": 10.0},
        ),
        pod(),
    )


def test_a_mounted_configmap_that_lags_never_makes_an_attempt_of_an_attempt() -> None:
    # Attempts 1 and 2 failed; attempt 3 (-r2) runs when pod 1 is terminated; pod 2's mounted copy
    # still names -r1.
    replay(
        {"retries": 2},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 10.0, FAILED)}),
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 10.0, FAILED)}),
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, None, SUCCEEDED)}),
        pod(30.0),
        pod(mounted_lag=10.0),
    )


def test_an_ingress_404_during_a_poll_is_a_failed_poll_not_ray_losing_the_job() -> None:
    replay({}, pod(None, ("get", Fault.INGRESS_404)))


def test_an_ingress_404_on_a_stop_is_a_refused_stop_not_ray_losing_the_job() -> None:
    replay(
        {"connect_timeout": 30.0},
        ("the_operator_sets_kill_later", {"delay": 12.0}),
        pod(None, ("stop", Fault.INGRESS_404)),
    )


def test_one_spoiled_answer_while_attaching_to_a_known_id_is_a_failed_call_not_a_final_unknown() -> None:
    # The operator wrote the id of a job Ray has; the first answer about it arrives cut short.
    replay({"existing": "operator id on Ray", "connect_timeout": 30.0}, pod(None, ("get", Fault.GARBLED)))


def test_a_refused_write_of_a_new_attempt_never_leaves_that_attempt_named_in_the_status() -> None:
    # Attempt 1 fails; the write that records attempt 2 (the fifth write) is refused once.
    replay(
        {"retries": 1, "connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 10.0, FAILED)}),
        ("status_writes_fail", {"after": 4, "count": 1}),
        pod(),
    )


def test_a_spoiled_answer_to_the_post_is_asked_about_again_not_a_final_unknown_at_once() -> None:
    # Ray creates the job; its answer arrives cut short, and the lookup after it fails once.
    replay({"connect_timeout": 30.0}, pod(None, ("submit", Fault.GARBLED), ("get", Fault.REFUSED)))


def test_an_ingress_404_while_attaching_to_an_operator_written_id_is_not_ray_saying_it_has_no_such_job() -> None:
    # Ray runs the job the operator named; the first answer about it, and the version check after
    # it, come from an ingress.
    replay({"existing": "operator id on Ray"}, pod(None, ("get", Fault.INGRESS_404), ("version", Fault.INGRESS_404)))


def api_fails(fault: ApiFault, delay: float, duration: float, retry_after: int = 10) -> tuple[str, dict[str, Any]]:
    arguments = {"fault": fault, "delay": delay, "duration": duration, "retry_after": retry_after}
    return ("the_kubernetes_api_fails_for_a_while", arguments)


def re_created(delay: float, gap: float, by: str) -> tuple[str, dict[str, Any]]:
    return ("the_configmap_is_deleted_and_re_created_later", {"delay": delay, "gap": gap, "by": by})


def test_a_retry_after_longer_than_what_is_left_of_the_budget_is_honoured_all_the_same() -> None:
    # The start-up read is answered 503 Retry-After: 45 at 0 s and 45 s; its 60 s budget ends at 60 s,
    # and the last try comes then, 30 s before the time the API asked for.
    replay({}, api_fails(ApiFault.UNAVAILABLE_RETRY_AFTER, 0.0, 100.0, retry_after=45), pod())


def test_sigterm_during_the_final_write_leaves_no_record_that_claims_a_final_status() -> None:
    # The API answers 503: the start-up read fails (Not submitted), the final write is retried until
    # SIGTERM cuts it; the result file and termination message still say final FAILED, exit 0.
    replay({}, api_fails(ApiFault.UNAVAILABLE, 0.0, 200.0), pod(112.0))


def test_the_status_flushed_after_sigterm_never_outlasts_the_grace_period() -> None:
    # The job ends at 30 s while the API hangs (from 20 s); SIGTERM at 40 s cuts the final write, and
    # the best-effort flush after it waits its whole 30 s read timeout: the kubelet kills the pod first.
    replay(
        {"connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 30.0, SUCCEEDED)}),
        api_fails(ApiFault.HUNG, 20.0, 200.0),
        pod(40.0),
    )


def test_a_status_is_never_written_into_a_configmap_someone_else_re_created_before_the_pod_could_read() -> None:
    # The API is down at the start-up (no uid known), the ConfigMap is re-created meanwhile by someone
    # else; the Not-submitted status goes out with no uid precondition and lands in that object.
    replay({}, api_fails(ApiFault.UNAVAILABLE, 0.0, 70.0), re_created(30.0, 5.0, "none"), pod())


def test_a_proxys_html_404_is_a_failed_call_not_a_missing_configmap() -> None:
    # A proxy in front of the API answers its own HTML 404 for a minute from the pod's start: the
    # start-up read takes it for a missing ConfigMap (a deployment error, exit 2), and the bad-input
    # status is refused by the same page at once; the API server's own 404 is a JSON Status.
    replay({}, api_fails(ApiFault.HTML_404, 0.0, 60.0), pod())


def test_a_pod_that_cannot_read_the_configmap_never_ends_a_bridgejob_whose_job_runs_on_ray() -> None:
    # Pod 1 submits and is terminated while the job runs; pod 2 cannot reach the API for its 60 s
    # start-up budget and, never having read the recorded id, writes a final FAILED "Not submitted"
    # once the API is back: the BridgeJob is over while its Ray job runs on.
    replay(
        {"connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, None, SUCCEEDED)}),
        pod(30.0),
        api_fails(ApiFault.REFUSED, 0.0, 70.0),
        pod(),
    )


def test_a_pod_that_gets_sigterm_before_its_first_call_never_starts_one_on_a_trickling_dashboard() -> None:
    # Pods 1 and 2 are terminated while the dashboard trickles (one byte every 3 s); pod 3 gets SIGTERM
    # as it starts, with no call in flight to cut. Its attach GET, started after SIGTERM, read a
    # trickled answer for 1284 s: far past the grace period.
    replay(
        {
            "existing": "kuberay id",
            "existing_plan": JobPlan(None, None, FAILED, COMMAND_ERROR),
            "uid_refusal": 409,
            "interval": "10",
            "retries": 1,
            "retry_delay": 60,
            "status_timeout": 60.0,
        },
        (
            "the_dashboard_is_unreachable_for_a_while",
            {"route": None, "fault": Fault.TRICKLE, "delay": 0.0, "duration": 599.0},
        ),
        pod(26.0, ("get", Fault.INGRESS_404), mounted_lag=23.0),
        pod(167.0, ("get", Fault.GARBLED), ("submit", Fault.TRICKLE), ("get", Fault.RAY_500)),
        pod(0.0, ("submit", Fault.TRICKLE), ("submit", Fault.TIMEOUT), ("version", Fault.INGRESS_404)),
    )


def test_a_pod_that_gets_sigterm_before_it_reads_the_configmap_never_waits_for_a_hung_api() -> None:
    # SIGTERM as the pod starts, the API hung: the start-up read, started after SIGTERM, waited its
    # 30 s read timeout; the kubelet kills the pod first.
    replay({}, api_fails(ApiFault.HUNG, 0.0, 200.0), pod(0.0))


# -- the API's faults the pod already weathers: the invariants hold, and what they rest on happened ---
def test_ray_is_polled_every_interval_while_the_kubernetes_api_hangs() -> None:
    machine = replay(
        {"connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 120.0, SUCCEEDED)}),
        api_fails(ApiFault.HUNG, 10.0, 80.0),
        pod(),
    )
    polls = [at for at, route, _ in machine.ray.requests if route == "get" and 10.0 <= at <= 90.0]
    assert len(polls) >= 80 / 5 - 1, f"{len(polls)} polls of Ray in the 80 s the API hung"
    assert machine.api.status is BridgeStatus.SUCCEEDED


def test_a_configmap_the_operator_re_creates_mid_run_gets_the_id_and_the_final_status() -> None:
    machine = replay(
        {"connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 60.0, SUCCEEDED)}),
        re_created(20.0, 5.0, "operator"),
        pod(),
    )
    assert [stored.uid for stored in machine.api.objects] == ["cm-uid-1", "cm-uid-2"]
    assert machine.api.status is BridgeStatus.SUCCEEDED
    assert machine.api.read().get(ID) == machine.ray.created_ids()[0]


def test_a_final_status_outlives_a_four_minute_outage_that_begins_as_the_job_ends() -> None:
    machine = replay(
        {"connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 30.0, SUCCEEDED)}),
        api_fails(ApiFault.UNAVAILABLE, 29.0, 240.0),
        pod(),
    )
    assert machine.api.status is BridgeStatus.SUCCEEDED
    assert machine.pods[0].end >= 29.0 + 240.0


def test_a_429_with_retry_after_is_waited_out_within_the_budget() -> None:
    machine = replay(
        {"connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 30.0, SUCCEEDED)}),
        api_fails(ApiFault.TOO_MANY_REQUESTS, 29.0, 100.0, retry_after=45),
        pod(),
    )
    assert any(request.status == 429 for request in machine.api.requests)
    assert machine.api.status is BridgeStatus.SUCCEEDED


def test_a_configmap_someone_else_re_creates_mid_run_is_never_written_and_the_pod_fails() -> None:
    machine = replay(
        {"connect_timeout": 30.0},
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(0.0, 60.0, SUCCEEDED)}),
        re_created(20.0, 0.0, "other"),
        pod(),
    )
    assert machine.api.read() == machine.spec
    assert machine.pods[0].result is not None and machine.pods[0].result.exit_code != 0


# -- Events in the model ---------------------------------------------------------------------------
def events_of(mode: str, *steps: tuple[str, dict[str, Any]]) -> PodModel:
    return replay(
        {"retries": 1},
        ("event_writes_are", {"mode": mode}),
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(1.0, 10.0, FAILED)}),
        ("ray_will_run_the_next_submitted_job_so", {"plan": JobPlan(1.0, 10.0, SUCCEEDED)}),
        *steps,
    )


def test_a_pods_lifecycle_is_told_in_events_with_repeats_never_created_twice() -> None:
    machine = events_of("allowed", pod(5.0), pod())
    first, second = (
        [(e["reason"], e["note"]) for e in machine.api.events if e["reportingInstance"] == p.name] for p in machine.pods
    )
    # SIGTERM: what was still queued is dropped (the pod is going), never written twice.
    assert [reason for reason, _ in first] in (["Submitted"], ["Submitted", "Running"])
    assert [reason for reason, _ in second] == [
        "Reattached",
        "Running",
        "RetryScheduled",
        "Submitted",
        "Running",
        "Succeeded",
    ]
    assert second[-1][1] == machine.api.read()[MESSAGE]


def test_denied_or_failing_events_leave_the_outcome_the_status_and_the_exit_code_as_they_are() -> None:
    def ending(machine: PodModel) -> list[tuple[Any, ...]]:
        return [
            (
                p.result.exit_code,
                p.result.outcome.status,
                p.configmap_after.get(JOB_STATUS),
                p.configmap_after.get(REASON),
            )
            for p in machine.pods
            if p.result is not None
        ]

    allowed = events_of("allowed", pod(30.0), pod())
    for mode in ("denied", "broken"):
        machine = events_of(mode, pod(30.0), pod())
        assert not machine.api.events
        assert ending(machine) == ending(allowed), mode


def test_a_configmap_first_read_after_someone_else_re_created_it_is_never_taken_for_the_pods_own() -> None:
    # The nightly find: 429s (Retry-After: 1) from the pod's start; the ConfigMap is deleted then, and
    # re-created 30 s later by another BridgeJob; the start-up read gets through at 40 s and the first
    # object it ever sees is the other's: no uid or owner known yet to tell it apart, but it was created
    # after the pod started, which the operator's own (made before the pod) never is. Through the API and
    # from the kubelet's copy alike: nothing taken from it, nothing written into it, nothing submitted.
    for lag in (None, 5.0):
        machine = replay(
            {},
            api_fails(ApiFault.TOO_MANY_REQUESTS, 0.0, 40.0, retry_after=1),
            re_created(0.0, 30.0, "other"),
            pod(mounted_lag=lag),
        )
        (run,) = machine.pods
        assert not run.read_at_start and run.id_written is None
        assert not machine.ray.created_ids()
        assert run.exit_code == 2  # as for a ConfigMap that cannot be read at start-up
        said = "was created at 2025-03-04T05:06:37Z, after this pod started (2025-03-04T05:06:07Z"
        assert said in (run.termination_message or ""), run.termination_message
