"""Operator settings: one class, read from ``MODELOPS_*`` environment variables and flags."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops.core.model import RETIRE_JOB_DEADLINE_SECONDS, RETIRE_JOB_RESOURCES


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
    workers: int = Field(default=4, ge=1, le=64, description="Concurrent reconciles.")
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
    pod_namespace: str | None = Field(
        default=None,
        description="Namespace of the operator's own pod (set from the downward API).",
    )
