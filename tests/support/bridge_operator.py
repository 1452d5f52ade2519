"""A small, faithful copy of the Bridge Operator's Reconcile rules that matter to its pod.

From ``IBM/Bridge-Operator`` at commit 56334fa, ``operator/controllers/bridgejob_controller.go``:

- 97-100: the BridgeJob gone: nothing (its pod and ConfigMap go by garbage collection).
- 102-105: its status DONE, KILL, FAILED or UNKNOWN: nothing more, ever (no pod, no kill, no copy).
- 108-139: the ConfigMap missing: created again, without ``id``, status or ``kill``.
- 145-193: the pod NotFound: a new pod, and nothing else on that reconcile. A pod that exists,
  whatever its phase, is never replaced.
- 198-216: the pod in phase Failed while ``status.jobStatus`` is not exactly KILL or FAILED:
  ``failCR`` (568-583) makes the BridgeJob FAILED, copying no time and no message.
- 218-237: ``spec.kill`` writes ``kill: "true"`` into the ConfigMap (never reset).
- 239-249 with ``updateCondition`` (512-565): ``status.jobStatus`` is copied when it changed;
  on a change to DONE, KILL, FAILED, UNKNOWN or SUCCEEDED, ``status.submitTime``,
  ``status.endTime`` and ``status.message`` are copied once, at that change. SUCCEEDED is
  copied, but not final.

The pod's phase comes from its exit code (``restartPolicy: Never``): 0 is Succeeded, anything else
Failed. Kubernetes 1.27+ kubelets give a deleted or evicted pod that terminal phase before it
disappears, so the operator can see it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

FINAL = ("DONE", "KILL", "FAILED", "UNKNOWN")
#: ``getPodType`` (613-631) with ``push_metrics.go``'s names: the first its image reference contains,
#: case-sensitive, is the pod's type in the operator's metrics.
POD_TYPES = ("lsf", "slurm", "ray", "quantum")


def pod_type(image: str) -> str:
    """The type the operator's metrics give a BridgeJob whose ``spec.image`` is ``image``."""
    return next((kind for kind in POD_TYPES if kind in image), "unknown")


COPIED_ON = (*FINAL, "SUCCEEDED")
#: What a Failed pod may have recorded without failing its BridgeJob (line 209).
TOLERATED_IN_A_FAILED_POD = ("KILL", "FAILED")


class Phase(enum.Enum):
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def phase_of(exit_code: int) -> Phase:
    return Phase.SUCCEEDED if exit_code == 0 else Phase.FAILED


class Action(enum.Enum):
    NOTHING = "nothing"
    CREATE_POD = "create pod"
    CREATE_CONFIGMAP = "create configmap"


@dataclass
class BridgeJobStatus:
    """The BridgeJob's status fields the operator fills (``bridgejob_types.go``)."""

    job_status: str = ""
    start_time: str = ""
    completion_time: str = ""
    message: str = ""


@dataclass
class BridgeOperator:
    status: BridgeJobStatus = field(default_factory=BridgeJobStatus)
    pods_created: int = 0
    #: ``failCR`` was called for the pod (the "pod error" rule).
    pod_error: bool = False

    def reconcile(self, configmap: Mapping[str, str] | None, pod: Phase | None) -> Action:
        """One reconcile, given the ConfigMap's data (None: NotFound) and the pod's phase (None: gone)."""
        if self.status.job_status in FINAL:
            return Action.NOTHING
        if configmap is None:
            return Action.CREATE_CONFIGMAP
        if pod is None:
            self.pods_created += 1
            return Action.CREATE_POD
        if pod is Phase.FAILED and configmap.get("status.jobStatus", "") not in TOLERATED_IN_A_FAILED_POD:
            self._fail_cr()
            return Action.NOTHING
        self._update_condition(configmap)
        return Action.NOTHING

    def _fail_cr(self) -> None:
        self.pod_error = True
        self.status.job_status = "FAILED"  # updateCondition(bridgejob, FAILED, nil): nothing copied

    def _update_condition(self, configmap: Mapping[str, str]) -> None:
        status = configmap.get("status.jobStatus", "")
        if not status or status == self.status.job_status:
            return
        self.status.job_status = status
        if status in COPIED_ON:
            self.status.start_time = configmap.get("status.submitTime", "")
            self.status.completion_time = configmap.get("status.endTime", "")
            self.status.message = configmap.get("status.message", "")

    @property
    def final(self) -> bool:
        return self.status.job_status in FINAL
