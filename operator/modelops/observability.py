"""The operator's own Prometheus metrics, on an injected registry (never the global one)."""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from modelops.core.driftpolicy import PROBLEM_REASONS


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


class QuarantinedVersions(Collector):
    """``modelops_quarantined_versions{namespace,model}``: versions of each Model a Quarantine
    reaches (exported only while there are some), from each Model reconcile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelops_quarantined_versions",
            "ModelVersions a Quarantine reaches, by namespace and Model.",
            labels=["namespace", "model"],
        )
        with self._lock:
            counts = sorted(self._counts.items())
        for (ns, model), n in counts:
            family.add_metric([ns, model], n)
        yield family

    def set(self, namespace: str, model: str, count: int) -> None:
        with self._lock:
            if count:
                self._counts[(namespace, model)] = count
            else:
                self._counts.pop((namespace, model), None)


class ServingInfo(Collector):
    """``modelops_model_serving_info{namespace,model,version,role} 1`` for every version that
    serves (role ``production`` or ``canary``): join it with other series to label them by the
    serving version, or alert when a model serves nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: dict[tuple[str, str], tuple[str | None, str | None]] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "modelops_model_serving_info",
            "The versions each Model serves, by role.",
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


@dataclass(frozen=True)
class FeatureDriftSample:
    """One feature's verdict in a policy's last window."""

    feature: str
    method: str
    score: float
    """The distance, or the corrected p-value for ks and chi2 (drifted when at most the
    threshold)."""
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftSample:
    """A policy's last successful evaluation, as exported.

    ``features``, ``dataset_drifted`` and ``drifted_share`` are empty/None when the window
    had too few predictions for a verdict; ``detected`` (DriftDetected after hysteresis) is
    None when the policy does not alert (``spec.actions.alert: false``).
    """

    model: str
    version: str
    samples: int
    features: tuple[FeatureDriftSample, ...]
    dataset_drifted: bool | None
    drifted_share: float | None
    detected: bool | None


_POLICY = ["namespace", "policy", "model"]
_VERSION = [*_POLICY, "version"]
_FEATURE = [*_VERSION, "feature", "method"]


@dataclass
class _PolicyRecord:
    model: str
    interval: float
    failures: dict[str, float]
    evaluated_at: float | None = None
    sample: DriftSample | None = None


class _DriftCollector(Collector):
    """``modelops_drift_*``: each policy's last evaluation, built at scrape time from what the
    reconciles recorded, so a deleted policy's series (and those of a version no longer
    watched) simply disappear. Documented in docs/drift-operations.md."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self._lock = threading.Lock()
        self._reasons = tuple(reasons)
        self._policies: dict[tuple[str, str], _PolicyRecord] = {}

    def evaluated(
        self, key: tuple[str, str], sample: DriftSample, at: float, interval: float
    ) -> None:
        with self._lock:
            record = self._record(key, sample.model, interval)
            record.sample = sample
            record.evaluated_at = at

    def failed(
        self,
        key: tuple[str, str],
        reason: str,
        model: str,
        version: str | None,
        interval: float,
    ) -> None:
        with self._lock:
            record = self._record(key, model, interval)
            record.failures[reason] = record.failures.get(reason, 0.0) + 1
            if record.sample is not None and record.sample.version != version:
                # The verdict was about a version no longer watched (or gone): drop it.
                record.sample = None

    def _record(self, key: tuple[str, str], model: str, interval: float) -> _PolicyRecord:
        record = self._policies.get(key)
        if record is None or record.model != model:
            # Every reason starts at 0, so that the first failure is an increase Prometheus
            # can see (increase() ignores the first sample of a new series).
            record = _PolicyRecord(model, interval, dict.fromkeys(self._reasons, 0.0))
            self._policies[key] = record
        record.interval = interval
        return record

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._policies.pop(key, None)

    def describe(self) -> Iterator[Metric]:
        yield from _DriftFamilies().all()

    def collect(self) -> Iterator[Metric]:
        f = _DriftFamilies()
        with self._lock:
            for key, record in sorted(self._policies.items()):
                policy_labels = [*key, record.model]
                f.interval.add_metric(policy_labels, record.interval)
                for reason, n in sorted(record.failures.items()):
                    f.failures.add_metric([*policy_labels, reason], n)
                if record.evaluated_at is not None:
                    f.last.add_metric(policy_labels, record.evaluated_at)
                s = record.sample
                if s is None:
                    continue
                version_labels = [*policy_labels, s.version]
                for feature in s.features:
                    feature_labels = [*version_labels, feature.feature, feature.method]
                    f.score.add_metric(feature_labels, feature.score)
                    f.threshold.add_metric(feature_labels, feature.threshold)
                    f.drifted.add_metric(feature_labels, float(feature.drifted))
                if s.dataset_drifted is not None:
                    f.dataset.add_metric(version_labels, float(s.dataset_drifted))
                if s.drifted_share is not None:
                    f.share.add_metric(version_labels, s.drifted_share)
                if s.detected is not None:
                    f.detected.add_metric(version_labels, float(s.detected))
                f.samples.add_metric(version_labels, s.samples)
        yield from f.all()


@dataclass
class _DriftFamilies:
    """The ``modelops_drift_*`` families of one scrape, empty until filled."""

    score: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_feature_score",
            "Drift score of a feature in the policy's last window: the distance (psi, js, "
            "wasserstein) or the corrected p-value (ks, chi2).",
            labels=_FEATURE,
        )
    )
    threshold: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_feature_threshold",
            "Threshold the feature's score is compared with (distances drift at or above it, "
            "p-values at or below it).",
            labels=_FEATURE,
        )
    )
    drifted: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_feature_drifted",
            "1 if the feature drifted in the policy's last window, else 0.",
            labels=_FEATURE,
        )
    )
    dataset: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_dataset_drifted",
            "1 if the last window drifted as a whole (spec.datasetDriftShare), else 0; absent "
            "while the window has too few predictions.",
            labels=_VERSION,
        )
    )
    share: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_drifted_share",
            "Share of the watched features that drifted in the last window.",
            labels=_VERSION,
        )
    )
    detected: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_detected",
            "1 while the DriftDetected condition is True (spec.consecutiveWindows drifted "
            "windows in a row), else 0; only for policies with spec.actions.alert.",
            labels=_VERSION,
        )
    )
    samples: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_window_samples",
            "Predictions in the last window (the smallest count over the watched features).",
            labels=_VERSION,
        )
    )
    last: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_last_evaluation_timestamp_seconds",
            "When the policy last evaluated a window (Unix time), with or without enough data "
            "for a verdict.",
            labels=_POLICY,
        )
    )
    interval: GaugeMetricFamily = field(
        default_factory=lambda: GaugeMetricFamily(
            "modelops_drift_evaluation_interval_seconds",
            "The policy's spec.interval: how often it evaluates a window.",
            labels=_POLICY,
        )
    )
    failures: CounterMetricFamily = field(
        default_factory=lambda: CounterMetricFamily(
            "modelops_drift_evaluation_failures",
            "Evaluations that could not run, by the Ready condition's reason.",
            labels=[*_POLICY, "reason"],
        )
    )

    def all(self) -> list[Metric]:
        return [
            self.score,
            self.threshold,
            self.drifted,
            self.dataset,
            self.share,
            self.detected,
            self.samples,
            self.last,
            self.interval,
            self.failures,
        ]


@dataclass
class OperatorMetrics:
    """Every ``modelops_*`` metric the operator exports; see docs/operations.md."""

    registry: CollectorRegistry
    reconciles: Counter
    reconcile_duration: Histogram
    writes: Counter
    notifications: Counter
    api_requests: Counter
    serving_info: ServingInfo = field(default_factory=ServingInfo)
    quarantined: QuarantinedVersions = field(default_factory=QuarantinedVersions)
    _phases: _PhaseCollector = field(default_factory=_PhaseCollector)
    _drift: _DriftCollector = field(default_factory=lambda: _DriftCollector(PROBLEM_REASONS))

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> OperatorMetrics:
        """Register the metrics on ``registry`` (a fresh one by default)."""
        reg = registry if registry is not None else CollectorRegistry()
        metrics = cls(
            registry=reg,
            reconciles=Counter(
                "modelops_reconciles",
                "Reconciles by kind and result (success; error; conflict: a write met a newer "
                "object, and the reconcile ran again from a fresh read).",
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
            api_requests=Counter(
                "modelops_api_requests",
                "Requests the reconciles made to the API server, by verb and resource; reads "
                "are served by the cache, so get and list stay near zero (the cache's own list "
                "and watch requests are not counted).",
                ["verb", "resource"],
                registry=reg,
            ),
        )
        reg.register(metrics._phases)
        reg.register(metrics.serving_info)
        reg.register(metrics.quarantined)
        reg.register(metrics._drift)
        return metrics

    def set_trainingrun_phase(self, namespace: str, name: str, phase: str) -> None:
        """Record the phase a TrainingRun is in."""
        self._phases.set(namespace, name, phase)

    def forget_trainingrun(self, namespace: str, name: str) -> None:
        """Stop counting a deleted TrainingRun."""
        self._phases.set(namespace, name, None)

    def drift_evaluated(
        self, namespace: str, policy: str, sample: DriftSample, *, at: float, interval: float
    ) -> None:
        """Record a DriftPolicy's evaluation at ``at`` (Unix time), replacing its last one."""
        self._drift.evaluated((namespace, policy), sample, at, interval)

    def drift_failed(
        self,
        namespace: str,
        policy: str,
        reason: str,
        *,
        model: str,
        version: str | None,
        interval: float,
    ) -> None:
        """Count an evaluation that could not run. The last verdict stays exported while the
        policy still watches its ``version``, and goes when it watches another or none."""
        self._drift.failed((namespace, policy), reason, model, version, interval)

    def forget_driftpolicy(self, namespace: str, policy: str) -> None:
        """Stop exporting a deleted DriftPolicy."""
        self._drift.forget((namespace, policy))


# -- leader election ---------------------------------------------------------------------------


class LeaderMetric:
    """``modelops_leader{identity}``: 1 while this process leads (holds the leader Lease, or
    runs with election off), else 0. Every replica exports it, so ``sum(modelops_leader)`` is
    1 when exactly one leads."""

    def __init__(self, registry: CollectorRegistry, identity: str) -> None:
        gauge = Gauge(
            "modelops_leader",
            "1 if this operator process is the leader (the one that reconciles), else 0.",
            ["identity"],
            registry=registry,
        )
        self._child = gauge.labels(identity)
        self._child.set(0)

    def set(self, leading: bool) -> None:
        """Record whether this process leads now."""
        self._child.set(1 if leading else 0)
