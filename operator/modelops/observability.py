"""The operator's own Prometheus metrics, on an injected registry (never the global one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class OperatorMetrics:
    """Every ``modelops_*`` metric the operator exports; see docs/operations.md."""

    registry: CollectorRegistry
    reconciles: Counter
    reconcile_duration: Histogram
    writes: Counter
    trainingruns: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> OperatorMetrics:
        """Register the metrics on ``registry`` (a fresh one by default)."""
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=reg,
            reconciles=Counter(
                "modelops_reconciles",
                "Reconciles by kind and result (success, error).",
                ["kind", "result"],
                registry=reg,
            ),
            reconcile_duration=Histogram(
                "modelops_reconcile_duration_seconds",
                "Time one reconcile took, observation and writes included.",
                ["kind"],
                registry=reg,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            ),
            writes=Counter(
                "modelops_api_writes",
                "Writes the operator made to the API server, by kind of reconciled object.",
                ["kind"],
                registry=reg,
            ),
            trainingruns=Gauge(
                "modelops_trainingruns",
                "TrainingRuns by namespace and phase.",
                ["namespace", "phase"],
                registry=reg,
            ),
        )
