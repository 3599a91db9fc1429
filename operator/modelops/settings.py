"""Operator settings: one class, read from ``MODELOPS_*`` environment variables and flags."""

from __future__ import annotations

import os
import socket
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops.api import DEFAULT_SERVER_IMAGE
from modelops.core.model import RETIRE_JOB_DEADLINE_SECONDS, RETIRE_JOB_RESOURCES
from modelops.core.runtimes import DEFAULT_RUNTIMES, ServingRuntime


class OperatorSettings(BaseSettings):
    """How the operator process runs. Every field can be set as ``MODELOPS_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MODELOPS_", extra="ignore")

    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig file; unset means $KUBECONFIG, ~/.kube/config, then in-cluster.",
    )
    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch (globs allowed, e.g. 'ml-*'); empty with "
        "all_namespaces false means the namespace of the operator's own pod.",
    )
    all_namespaces: bool = Field(default=False, description="Watch every namespace.")
    health_address: str = Field(
        default="0.0.0.0", description="Address of the liveness/readiness endpoint."
    )
    health_port: int = Field(default=8081, description="Port of /healthz (liveness, readiness).")
    metrics_address: str = Field(default="0.0.0.0", description="Address of /metrics.")
    metrics_port: int = Field(default=8080, description="Port of the Prometheus /metrics.")
    workers: int = Field(default=8, ge=1, le=64, description="Concurrent reconciles.")
    resync_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Every object is reconciled at least this often, even with no events, so "
        "that state drifting outside the watch (a missed event) is corrected.",
    )
    retire_job_resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in RETIRE_JOB_RESOURCES.items()},
        description="Resources of the artifact-retirement Jobs' container, as JSON "
        '(MODELOPS_RETIRE_JOB_RESOURCES=\'{"requests": {...}, "limits": {...}}\'): set both '
        "requests and limits of CPU and memory where a ResourceQuota covers them.",
    )
    retire_job_deadline_seconds: int = Field(
        default=RETIRE_JOB_DEADLINE_SECONDS,
        ge=30,
        le=86_400,
        description="activeDeadlineSeconds of an artifact-retirement Job: a stuck one fails "
        "(Job condition Failed, reason DeadlineExceeded) instead of holding its pod forever.",
    )
    retire_job_image: str = Field(
        default=DEFAULT_SERVER_IMAGE,
        min_length=1,
        description="Image of the artifact-retirement Jobs: the reference server image, which "
        "has the retire program (a mirror of it where images come from a private registry).",
    )
    runtimes: list[ServingRuntime] = Field(
        default_factory=lambda: list(DEFAULT_RUNTIMES),
        min_length=1,
        description='The serving runtimes, as JSON (MODELOPS_RUNTIMES=\'[{"name": ..., '
        '"formats": [...], "image": ..., "command": [...]}]\'): a version is served by the '
        "first runtime listing its artifact format, or the one its Model names "
        "(spec.serving.runtime). Default: the reference server for modelops-linear/v1 and "
        "onnx/v1.",
    )
    pod_namespace: str | None = Field(
        default=None,
        description="Namespace of the operator's own pod (set from the downward API).",
    )
    pod_name: str | None = Field(
        default=None,
        description="Name of the operator's own pod (set from the downward API); it is the "
        "identity the operator holds the leader Lease under.",
    )
    leader_election: bool = Field(
        default=True,
        description="Reconcile only while holding the leader Lease, so that several replicas "
        "can run and exactly one acts. Turn it off only for a single process run by hand.",
    )
    leader_election_namespace: str | None = Field(
        default=None,
        description="Namespace of the leader Lease; unset means the pod's own namespace, or "
        "outside a pod the first watched namespace.",
    )
    leader_election_lease: str = Field(
        default="modelops-leader",
        description="Name of the leader Lease. Replicas of one installation share it; two "
        "installations in one namespace need different names.",
    )
    lease_duration_seconds: int = Field(
        default=15,
        ge=1,
        description="How long a follower waits, after it last saw the Lease change, before it "
        "takes the Lease of a leader that stopped renewing: the longest failover after a "
        "leader dies without releasing it.",
    )
    renew_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long the leader keeps trying to renew before it gives up and exits. "
        "Shorter than the lease duration, so that a leader cut off from the API server has "
        "stopped before anyone else can take over.",
    )
    retry_period_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the leader renews the Lease and a follower tries to take it.",
    )

    @model_validator(mode="after")
    def _lease_timing_is_safe(self) -> Self:
        if (
            not self.retry_period_seconds
            < self.renew_deadline_seconds
            < (self.lease_duration_seconds)
        ):
            raise ValueError(
                "leader election needs retry_period_seconds < renew_deadline_seconds < "
                "lease_duration_seconds"
            )
        return self

    def identity(self) -> str:
        """Who this process is in the leader Lease: the pod name, else host name and pid (a
        process started by hand)."""
        return self.pod_name or f"{socket.gethostname()}_{os.getpid()}"

    def lease_namespace(self) -> str | None:
        """Where the leader Lease lives, or None when nothing says (every namespace watched
        from outside a pod, with no leader_election_namespace)."""
        if self.leader_election_namespace:
            return self.leader_election_namespace
        if self.pod_namespace:
            return self.pod_namespace
        plain = [ns for ns in self.namespaces if not any(c in ns for c in "*?[!,")]
        return plain[0] if plain and not self.all_namespaces else None
