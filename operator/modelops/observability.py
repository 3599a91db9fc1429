"""The operator's own Prometheus metrics, on an injected registry (never the global one)."""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _PhaseCollector(Collector):
    """``modelops_trainingruns{namespace,phase}``: counted at scrape time from the last phase
    each reconcile saw, so a deleted run simply stops counting."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.phases: dict[tuple[str, str], str] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelops_trainingruns",
            "TrainingRuns by namespace and phase.",
            labels=["namespace", "phase"],
        )
        with self._lock:
            counts = Tally((ns, phase) for (ns, _), phase in self.phases.items())
        for (ns, phase), n in sorted(counts.items()):
            family.add_metric([ns, phase], n)
        yield family

    def set(self, namespace: str, name: str, phase: str | None) -> None:
        with self._lock:
            if phase is None:
                self.phases.pop((namespace, name), None)
            else:
                self.phases[(namespace, name)] = phase


@dataclass
class OperatorMetrics:
    """Every ``modelops_*`` metric the operator exports; see docs/operations.md."""

    registry: CollectorRegistry
    reconciles: Counter
    reconcile_duration: Histogram
    writes: Counter
    _phases: _PhaseCollector = field(default_factory=_PhaseCollector)

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> OperatorMetrics:
        """Register the metrics on ``registry`` (a fresh one by default)."""
        reg = registry if registry is not None else CollectorRegistry()
        metrics = cls(
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
        )
        reg.register(metrics._phases)
        return metrics

    def set_trainingrun_phase(self, namespace: str, name: str, phase: str) -> None:
        """Record the phase a TrainingRun is in."""
        self._phases.set(namespace, name, phase)

    def forget_trainingrun(self, namespace: str, name: str) -> None:
        """Stop counting a deleted TrainingRun."""
        self._phases.set(namespace, name, None)
