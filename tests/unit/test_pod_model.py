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
time passing between pods.

The invariants, after every step, against the fake dashboard's truth:

- no submission id is created on Ray twice (unless a head restart lost the first before any pod was
  told Ray had it: no pod can tell that from a POST that never arrived);
- never more attempts than ``retries + 1``;
- no stop request reaches a job without a reason that truly holds: ``kill``, activeDeadlineSeconds
  passed since the BridgeJob's first submission, or startDeadlineSeconds passed since the attempt's
  submission for a job no answer had shown RUNNING;
- every pod exits through ``finish``: a final status (unless SIGTERM, which leaves a non-final one for
  the next pod, or the sink refused the final write), a ``--result`` file and a termination message;
- a final status agrees with Ray; UNKNOWN only for a job Ray lost (or never had), or after Ray gave
  no answer about it for the status or connect timeout;
- neither secret (the token, the proxy cookie; the hostile answers echo them) appears in any output,
  log record, status value, result file or termination message.

In the unit lane the model runs 200 derandomized examples without shrinking (a failure shows its whole
sequence); ``make model`` runs thousands and shrinks them (``RAYPOD_MODEL_PROFILE=nightly``,
``RAYPOD_MODEL_EXAMPLES``). The model's counterexamples are kept as replays at the end of this file.
"""

from __future__ import annotations

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
from raypod.outcome import Ending
from tests.support.fake_dashboard import (
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
from tests.support.fakes import BASE_CONFIG
from tests.support.pod_world import ApiConfigMap, ModelClock, PodRun, PodSettings, run_pod

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
OPERATOR_ID = "ext-train-2f9d"

seconds = s.integers(min_value=0, max_value=400).map(float)
#: Most faults begin with the next pod (its start-up is where restarts meet outages).
fault_delays = s.one_of(s.just(0.0), seconds)
plans = s.builds(
    JobPlan,
    start_after=s.one_of(s.none(), s.integers(0, 120).map(float)),
    run_for=s.one_of(s.none(), s.integers(1, 30).map(float), s.integers(1, 300).map(float)),
    end=s.sampled_from([SUCCEEDED, FAILED, FAILED]),
)


class PodModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ModelClock()
        self.ray = FakeDashboard(self.clock)
        self.api = ApiConfigMap({}, self.clock)
        self.workdir = Path(tempfile.mkdtemp(prefix="raypod-model-"))
        self.pods: list[PodRun] = []
        self.pod_settings = PodSettings()
        self.retries = 0
        self.active_deadline: float | None = None
        self.start_deadline: float | None = None
        self.kuberay_id: str | None = None
        self.kill_times: list[float] = []
        self.checked_pods = 0

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
        self.api = ApiConfigMap(data, self.clock)
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

    @rule(duration=s.integers(1, 900).map(float))
    def time_passes_without_a_pod(self, duration: float) -> None:
        self.clock.advance(duration)

    @precondition(lambda self: not self._final())
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
        self.pods.append(pod)
        self.ray.settle()
        outcome = pod.result.outcome if pod.result is not None else None
        if currently_in_test_context():
            event(f"pod ends: {outcome.ending.value if outcome else 'crash'} {outcome.status if outcome else ''}")

    def _final(self) -> bool:
        status = self.api.status
        return status is not None and status.final

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
    def every_pod_exit_leaves_a_record_that_agrees_with_ray(self) -> None:
        while self.checked_pods < len(self.pods):
            pod = self.pods[self.checked_pods]
            self.checked_pods += 1
            self._check_exit(pod)
            self._check_no_secret(pod)

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
            assert pod.refused_writes > 0, f"pod {pod.number} exited ({result.outcome.ending}) without a final status"
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
        assert job is not None, said
        match status:
            case BridgeStatus.SUCCEEDED:
                assert truth == SUCCEEDED, said
            case BridgeStatus.FAILED if reason == Reason.APP_FAILED:
                assert truth == FAILED, said
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
            for secret in SECRETS:
                assert secret not in text, f"pod {pod.number}: a secret in its {where}"


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
    }
    try:
        machine.a_bridgejob_is_created(**{**defaults, **setup})
        for name, arguments in steps:
            getattr(machine, name)(**arguments)
            machine.no_submission_id_is_created_on_ray_twice()
            machine.never_more_attempts_than_retries_plus_one()
            machine.no_job_is_stopped_without_a_reason_that_holds()
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
