"""Pure builders of what is sent to Ray: the entrypoint, the runtime_env and the POST body."""

from __future__ import annotations

import hashlib
import secrets
import shlex
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from raypod.config import (
    BridgeConfig,
    ConfigOverrides,
    S3Settings,
    checked_submission_id,
    read_config,
    require_s3_for_wheels,
    settle,
)
from raypod.contract import JOB_PROPERTIES
from raypod.errors import ConfigError
from raypod.jobdata import Metadata
from raypod.pod_identity import MAX_NAME_LENGTH, TRACEPARENT_LENGTH, UID_LENGTH, PodIdentity
from raypod.properties import JobProperties

if TYPE_CHECKING:
    from raypod.inputs import JobInputs, LocalInputs
    from raypod.package import JobPackages

#: Fields of runtime_env that raypod fills itself, from the jobdata keys (and ``submit``'s flags).
RAYPOD_RUNTIME_ENV_FIELDS = {
    "working_dir": "the script and jobdata.additionalData (or --working-dir)",
    "env_vars": "the env of jobdata.scriptMetadata",
    "pip": "the pip of jobdata.scriptMetadata",
}
#: Where the wheels raypod adds to ``py_modules`` come from.
WHEEL_SOURCES = "the wheels of jobdata.scriptMetadata (or --wheel)"

#: The Ray job's metadata keys raypod sets (docs/configmap.md#job-properties-jobproperties): a job on the Ray
#: dashboard leads back to its BridgeJob and to the pod that submitted it. A user's metadata may not
#: use them, whether or not this pod knows their values, so a ConfigMap is valid or not everywhere.
BRIDGE_JOB_KEY = "bridge-job"
BRIDGE_NAMESPACE_KEY = "bridge-namespace"
POD_KEY = "bridge-pod"
POD_UID_KEY = "bridge-pod-uid"
POD_NODE_KEY = "bridge-pod-node"
#: W3C trace context's own name, as OpenTelemetry's carriers spell it.
TRACEPARENT_KEY = "traceparent"
RAYPOD_METADATA_KEYS = (BRIDGE_JOB_KEY, BRIDGE_NAMESPACE_KEY, POD_KEY, POD_UID_KEY, POD_NODE_KEY, TRACEPARENT_KEY)
#: The most the pod's keys add to the metadata, as JSON (its values are ASCII, checked in
#: ``PodIdentity``). Ray takes any string map, and hands it to the driver in one environment
#: variable (``RAY_JOB_CONFIG_JSON_ENV_VAR``, within Linux's 128 KiB for one): a bound, not a budget.
POD_METADATA_MAX_BYTES = sum(
    len(f', "{key}": ""') + length
    for key, length in (
        (POD_KEY, MAX_NAME_LENGTH),
        (POD_UID_KEY, UID_LENGTH),
        (POD_NODE_KEY, MAX_NAME_LENGTH),
        (TRACEPARENT_KEY, TRACEPARENT_LENGTH),
    )
)


def kwargs_tokens(params: Mapping[str, str], *, s3: S3Settings | None, bucket: str | None, job_name: str) -> list[str]:
    """The ``key=value`` tokens after ``--kwargs``: the four s3_ ones first when S3 is configured."""
    tokens = []
    if s3 is not None:
        tokens += [
            f"s3_secret={s3.secret_name}",
            f"s3_bucket={bucket or ''}",
            f"s3_prefix={job_name}/",
            f"s3_secure={'true' if s3.secure else 'false'}",
        ]
    tokens += [f"{key}={value}" for key, value in params.items()]
    return tokens


def build_entrypoint(
    script: str,
    tokens: Sequence[str],
    folder: str | None = None,
    python: str = "python",
    *,
    always_kwargs: bool = True,
    args: Sequence[str] = (),
) -> str:
    """``[cd <folder> &&] python <script> [args...] --kwargs k=v ...`` with every word shell-quoted
    (Ray runs the entrypoint with ``sh -c``).

    ``args`` (``submit --script ... -- ARGS``) come before ``--kwargs``, whose ``nargs='*'`` would
    otherwise swallow the positional ones among them.

    ``folder`` is where the package put the script and its files, so the script finds
    them next to itself and in its working directory. ``always_kwargs`` is the Bridge convention:
    ``--kwargs`` even with no tokens, as the operator's scripts parse it; without it, ``--kwargs``
    comes only with tokens, so an ordinary argparse script runs unchanged.
    """
    kwargs = ["--kwargs", *tokens] if tokens or always_kwargs else []
    command = " ".join([python, *(shlex.quote(word) for word in [script, *args, *kwargs])])
    return f"cd {shlex.quote(folder)} && {command}" if folder else command


def command_entrypoint(command: Sequence[str]) -> str:
    """``submit -- COMMAND``'s entrypoint: the words shell-quoted and joined, as ``ray job submit`` joins
    them (``shlex.join``), so each reaches the command's ``sys.argv`` as it was typed."""
    return shlex.join(command)


def build_runtime_env(
    package_uri: str | None,
    metadata: Metadata,
    extra: Mapping[str, Any] | None = None,
    wheel_uris: Sequence[str] = (),
) -> dict[str, Any]:
    """raypod's runtime_env, merged with the jobproperties' extra fields; a clash is an error."""
    env: dict[str, Any] = {}
    if package_uri:
        env["working_dir"] = package_uri
    if metadata.pip:
        env["pip"] = list(metadata.pip)
    if metadata.env:
        env["env_vars"] = dict(metadata.env)
    if wheel_uris:
        env["py_modules"] = list(wheel_uris)
    for name, value in (extra or {}).items():
        if name == "pip" and isinstance(value, dict) and "packages" not in value:
            # pip options (index URL for a mirror, pip_check, pip_version) around raypod's packages.
            env["pip"] = {**value, "packages": list(metadata.pip)}
            continue
        if name == "py_modules" and wheel_uris:
            env["py_modules"] = merged_py_modules(value, wheel_uris)
            continue
        if name in env:
            raise ConfigError.single(
                JOB_PROPERTIES,
                f"runtime_env.{name} clashes with the one raypod sets from {RAYPOD_RUNTIME_ENV_FIELDS[name]}",
            )
        env[name] = value
    return env


def merged_py_modules(user: Any, wheel_uris: Sequence[str]) -> list[str]:
    """The user's own ``py_modules`` URIs first, then the wheels', each once."""
    if not isinstance(user, list) or not all(isinstance(uri, str) for uri in user):
        raise ConfigError.single(
            JOB_PROPERTIES, f"runtime_env.py_modules must be a list of URIs to be merged with {WHEEL_SOURCES}"
        )
    return list(dict.fromkeys([*user, *wheel_uris]))


def new_submission_id(job_name: str, prefix: str | None = None, identity: str | None = None) -> str:
    """``<prefix or raypod-JOBNAME>-<12 hex>``: derived from ``identity`` (the ConfigMap's uid) when
    there is one, so every pod of one BridgeJob chooses the same id; random otherwise."""
    base = prefix or (f"raypod-{job_name}" if job_name else "raypod")
    suffix = hashlib.sha256(identity.encode()).hexdigest()[:12] if identity else secrets.token_hex(6)
    # submissionIdPrefix is checked where it is read; the job name (JOBNAME, --job-name) here.
    return checked_submission_id(f"{base}-{suffix}", "JOBNAME")


def job_metadata(
    properties: JobProperties, job_name: str, namespace: str, pod: PodIdentity = PodIdentity()
) -> dict[str, str]:
    """The user's metadata plus raypod's keys that trace a job back to its BridgeJob and its pod,
    each only with a value. The pod's values were checked where they were read (``PodIdentity``):
    short and printable, they add at most ``POD_METADATA_MAX_BYTES`` to what Ray hands the driver."""
    own = {
        BRIDGE_JOB_KEY: job_name,
        BRIDGE_NAMESPACE_KEY: namespace,
        POD_KEY: pod.name,
        POD_UID_KEY: pod.uid,
        POD_NODE_KEY: pod.node,
        TRACEPARENT_KEY: pod.traceparent,
    }
    clash = sorted(set(RAYPOD_METADATA_KEYS) & set(properties.metadata))
    if clash:
        raise ConfigError.single(JOB_PROPERTIES, f"metadata key(s) {', '.join(clash)} are set by raypod")
    return {**properties.metadata, **{k: v for k, v in own.items() if v}}


def submitted_by(metadata: Mapping[str, str]) -> str:
    """``pod NAME on node NODE`` from a Ray job's metadata, "" when it names no pod. Ray's answer is
    data from outside (any client may have set these keys): only a valid pod's name is repeated."""
    pod = PodIdentity.checked(name=metadata.get(POD_KEY), node=metadata.get(POD_NODE_KEY))
    if not pod.name:
        return ""
    return f"pod {pod.name} on node {pod.node}" if pod.node else f"pod {pod.name}"


def build_submission(
    *,
    submission_id: str,
    entrypoint: str,
    runtime_env: Mapping[str, Any],
    metadata: Mapping[str, str],
    properties: JobProperties,
) -> dict[str, Any]:
    """The body of ``POST /api/jobs/``; fields left unset are not sent."""
    body: dict[str, Any] = {"entrypoint": entrypoint, "submission_id": submission_id}
    if runtime_env:
        body["runtime_env"] = dict(runtime_env)
    if metadata:
        body["metadata"] = dict(metadata)
    if properties.entrypoint_num_cpus is not None:
        body["entrypoint_num_cpus"] = properties.entrypoint_num_cpus
    if properties.entrypoint_num_gpus is not None:
        body["entrypoint_num_gpus"] = properties.entrypoint_num_gpus
    if properties.entrypoint_memory is not None:
        body["entrypoint_memory"] = properties.entrypoint_memory
    if properties.entrypoint_resources:
        body["entrypoint_resources"] = dict(properties.entrypoint_resources)
    if properties.entrypoint_label_selector:
        body["entrypoint_label_selector"] = dict(properties.entrypoint_label_selector)
    return body


def plan_submission(
    config: BridgeConfig,
    inputs: JobInputs,
    job_name: str,
    namespace: str,
    packages: JobPackages,
    submission_id: str,
    pod: PodIdentity = PodIdentity(),
) -> dict[str, Any]:
    """The POST body for this job. Pure, so it is checked before anything is contacted; ``pod`` is
    the submitting pod, read once where the run starts."""
    tokens = kwargs_tokens(inputs.parameters, s3=config.s3, bucket=config.upload_bucket, job_name=job_name)
    working_dir = packages.working_dir
    return build_submission(
        submission_id=submission_id,
        entrypoint=command_entrypoint(config.command)
        if config.command
        else build_entrypoint(
            inputs.script,
            tokens,
            inputs.folder if working_dir else None,
            always_kwargs=config.always_kwargs,
            args=config.script_args,
        ),
        runtime_env=build_runtime_env(
            working_dir.uri if working_dir else None,
            inputs.metadata,
            config.properties.runtime_env,
            [wheel.uri for wheel in packages.wheels],
        ),
        metadata=job_metadata(config.properties, job_name, namespace, pod),
        properties=config.properties,
    )


def checked_config(
    data: Mapping[str, str], overrides: ConfigOverrides = ConfigOverrides()
) -> tuple[BridgeConfig, list[tuple[str, str]]]:
    """A ConfigMap's keys as settings (each bad key at its default), and every problem that can be
    seen without contacting Ray or S3: the keys', and those only the whole job shows."""
    config, problems = read_config(data, overrides)
    return config, [*problems, *submission_problems(config)]


def job_config(
    data: Mapping[str, str], *, submitted: bool = False, overrides: ConfigOverrides = ConfigOverrides()
) -> BridgeConfig:
    """A ConfigMap's keys as settings: the one path ``run``, ``submit --config`` and ``validate`` take.
    The problems of ``checked_config``, then the one rule that sets them aside for a submitted job."""
    config, problems = checked_config(data, overrides)
    return settle(config, problems, submitted=submitted)


def submission_problems(config: BridgeConfig, local: LocalInputs | None = None) -> list[tuple[str, str]]:
    """What ``parse_config`` leaves to submission time, checked now with the same builders: the
    runtime_env and metadata raypod would send, and where the wheels come from."""
    problems: list[tuple[str, str]] = []
    metadata = config.metadata if isinstance(config.metadata, Metadata) else Metadata()
    has_working_dir = local is not None and local.working_dir is not None
    packaged = config.script_location != "remote" or bool(config.additional_data) or has_working_dir
    wheel_uris = ["gcs://wheel.whl"] if metadata.wheels or (local is not None and local.wheels) else []
    for check in (
        lambda: build_runtime_env(
            "gcs://package.zip" if packaged else None, metadata, config.properties.runtime_env, wheel_uris
        ),
        lambda: job_metadata(config.properties, "job", "namespace"),
        lambda: require_s3_for_wheels(metadata, config),
    ):
        try:
            check()
        except ConfigError as error:
            problems.extend(error.problems)
    return problems
