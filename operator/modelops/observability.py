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


class ServingInfo(Collector):
    """``modelops_model_serving_info{namespace,model,version,role} 1`` for every version that
    serves (role ``production`` or ``canary``): join it with other series to label them by the
    serving version, or alert when a model serves nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelops_model_serving_info", "The versions each Model serves, by role.",
            labels=["namespace", "model", "version", "role"],
        )
        with self._lock:
            items = sorted(self._serving.items())
        for (ns, model), (production, canary) in items:
            for version, role in ((production, "production"), (canary, "canary")):
                if version:
                    family.add_metric([ns, model, version, role], 1)
        yield family

    def set(self, namespace: str, model: str, production: str | None, canary: str | None) -> None:
        """Record what ``model`` serves now."""
        with self._lock:
            self._serving[(namespace, model)] = (production, canary)

    def forget(self, namespace: str, model: str) -> None:
        """Stop exporting a deleted Model."""
        with self._lock:
            self._serving.pop((namespace, model), None)


@dataclass
class OperatorMetrics:
    """Every ``modelops_*`` metric the operator exports; see docs/operations.md."""

    registry: CollectorRegistry
    reconciles: Counter
    reconcile_duration: Histogram
    writes: Counter
    notifications: Counter
    serving_info: ServingInfo = field(default_factory=ServingInfo)
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
            notifications=Counter(
                "modelops_notifications",
                "CloudEvents sent to notification sinks, by result (delivered, failed: every "
                "retry exhausted, dropped: the queue was full).",
                ["result"],
                registry=reg,
            ),
        )
        reg.register(metrics._phases)
        reg.register(metrics.serving_info)
        return metrics

    def set_trainingrun_phase(self, namespace: str, name: str, phase: str) -> None:
        """Record the phase a TrainingRun is in."""
        self._phases.set(namespace, name, phase)

    def forget_trainingrun(self, namespace: str, name: str) -> None:
        """Stop counting a deleted TrainingRun."""
        self._phases.set(namespace, name, None)
