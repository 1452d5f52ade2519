"""The ``restricted`` Pod Security Standard's checks (baseline's included) for a pod spec.

From the Kubernetes page "Pod Security Standards" (the controls of the Baseline and Restricted
profiles as of v1.30): each check returns the control it breaks, so a test can plant one breach
and see exactly that control named.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: Restricted: the only volume types allowed.
ALLOWED_VOLUME_TYPES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
#: Baseline: the sysctls a pod may set.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
SECCOMP_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
#: A volume entry's keys that are not its type.
_VOLUME_META_KEYS = frozenset({"name"})


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", []), *spec.get("ephemeralContainers", [])]


def violations(spec: Mapping[str, Any]) -> list[str]:
    """The controls of the restricted profile that a pod spec breaks, each named once."""
    return sorted(set(_violations(spec)))


def _violations(spec: Mapping[str, Any]) -> Iterator[str]:
    pod_context: Mapping[str, Any] = spec.get("securityContext") or {}
    every = containers(spec)
    contexts: list[Mapping[str, Any]] = [c.get("securityContext") or {} for c in every]
    # -- baseline ---------------------------------------------------------------------------------
    if (pod_context.get("windowsOptions") or {}).get("hostProcess") or any(
        (c.get("windowsOptions") or {}).get("hostProcess") for c in contexts
    ):
        yield "HostProcess"
    if any(spec.get(key) for key in ("hostNetwork", "hostPID", "hostIPC")):
        yield "Host Namespaces"
    if any(c.get("privileged") for c in contexts):
        yield "Privileged Containers"
    if any("hostPath" in volume for volume in spec.get("volumes", [])):
        yield "HostPath Volumes"
    if any(port.get("hostPort", 0) for c in every for port in c.get("ports", [])):
        yield "Host Ports"
    for context in (pod_context, *contexts):
        apparmor = (context.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            yield "AppArmor"
        selinux = context.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            yield "SELinux"
        if context.get("procMount", "Default") != "Default":
            yield "/proc Mount Type"
        seccomp = (context.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in SECCOMP_ALLOWED:
            yield "Seccomp"
    if any(sysctl.get("name") not in SAFE_SYSCTLS for sysctl in pod_context.get("sysctls", [])):
        yield "Sysctls"
    # -- restricted -------------------------------------------------------------------------------
    for volume in spec.get("volumes", []):
        types = set(volume) - _VOLUME_META_KEYS
        if not types <= ALLOWED_VOLUME_TYPES:
            yield "Volume Types"
    if any(c.get("allowPrivilegeEscalation") is not False for c in contexts):
        yield "Privilege Escalation"
    pod_non_root = pod_context.get("runAsNonRoot") is True
    if any(
        c.get("runAsNonRoot") is False or (not pod_non_root and c.get("runAsNonRoot") is not True) for c in contexts
    ):
        yield "Running as Non-root"
    if any(context.get("runAsUser") == 0 for context in (pod_context, *contexts)):
        yield "Running as Non-root user"
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    for context in contexts:
        own = (context.get("seccompProfile") or {}).get("type")
        if (own or pod_seccomp) not in SECCOMP_ALLOWED:
            yield "Seccomp"
    for context in contexts:
        capabilities = context.get("capabilities") or {}
        if "ALL" not in capabilities.get("drop", []) or set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            yield "Capabilities"
