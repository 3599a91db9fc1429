"""Prometheus metrics of the server, all on an injected :class:`CollectorRegistry`.

Besides request and load metrics, :class:`FeatureCollector` exports the live distribution of
every input feature with the training reference bins of ``reference.json``, the input of the
operator's drift detection:

* numeric features: one histogram family ``modelops_server_feature_value{model,version,feature}``
  whose ``le`` bounds are exactly the feature's ``binEdges`` plus ``+Inf``, so bucket *i* counts
  the same interval as reference count *i* (the buckets differ per series, which the exposition
  format allows and a prometheus-client ``Histogram`` does not);
* categorical features: ``modelops_server_feature_category_total{model,version,feature,category}``
  with one series per reference category plus ``__other__`` for values never seen in training;
* every feature: ``modelops_server_feature_missing_total{model,version,feature}``, the missing
  values (NaN, or an empty category) — counted here, never in a bucket;
* numeric features: ``modelops_server_feature_out_of_range_total{model,version,feature,side}``,
  with ``side="below"`` the summed distance ``edges[0] - v`` of the values in the first bucket
  and ``side="above"`` the summed ``v - edges[-1]`` of the values in the last one. Those two
  buckets are beyond the training range (the trainer places the outer edges outside it), and
  the distances tell the drift evaluation how far out the values are;
* numeric features with at most as many distinct training values as buckets (the reference's
  ``distinct`` equals its number of non-empty buckets, whose ``binMeans`` are then those exact
  values): ``modelops_server_feature_exact_total{model,version,feature,le}``, per bucket the
  values equal to its training value, and
  ``modelops_server_feature_below_value_total{model,version,feature,le}``, per bucket the
  values below it, so a shift to values training never had is seen even when it crosses no
  edge (the rest of the bucket lies above the value);
* numeric features: ``modelops_server_feature_offset_total{model,version,feature}``, the summed
  ``v - edges[0]`` of the values above the first edge, which gives the window's exact mean
  (a shift too small to move values across an edge still moves it).

Infinite values count in their bucket but add nothing to a distance, the offset or the
histogram's ``_sum``, so the counters stay finite. All counters only grow, so Prometheus'
``increase()`` and the operator's windowing treat them like the bucket counters.

Observation is vectorised (one ``searchsorted`` and ``bincount`` per feature and request), because
calling ``Histogram.observe`` per value would dominate the latency of large batches.
"""

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelops.api import artifact as contract
from modelops.runtimes.server.model import FloatArray, ObjectArray

#: The ``category`` label of values not among a feature's reference categories.
OTHER_CATEGORY = "__other__"
FEATURE_VALUE = "modelops_server_feature_value"
FEATURE_CATEGORY = "modelops_server_feature_category"
FEATURE_MISSING = "modelops_server_feature_missing"
FEATURE_OUT_OF_RANGE = "modelops_server_feature_out_of_range"
FEATURE_OFFSET = "modelops_server_feature_offset"
FEATURE_EXACT = "modelops_server_feature_exact"
FEATURE_BELOW_VALUE = "modelops_server_feature_below_value"
# Latency buckets around the 10 ms p99 target, with room for slow outliers.
_DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    """All metrics of one server; label values ``model`` and ``version`` are fixed per process."""

    def __init__(self, registry: CollectorRegistry, *, model: str, version: str) -> None:
        self.model = model
        self.version = version
        self.requests = Counter(
            "modelops_server_requests",
            "HTTP requests handled, by endpoint and status code.",
            ["model", "version", "endpoint", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "modelops_server_request_duration_seconds",
            "Time to handle an HTTP request, from routing to the response being built.",
            ["model", "version", "endpoint"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.model_ready = Gauge(
            "modelops_server_model_ready",
            "1 when the model is loaded and serving, 0 while loading or after a refused load.",
            ["model", "version"],
            registry=registry,
        )
        self.artifact_verified = Gauge(
            "modelops_server_artifact_verified",
            "1 when the artifact matched its digest and manifest, 0 otherwise.",
            ["model", "version"],
            registry=registry,
        )
        self.load_failures = Counter(
            "modelops_server_model_load_failures",
            "Refused model loads, by reason: retired, missing_file, unreadable_file, "
            "digest_mismatch, invalid_artifact, unsupported_format, internal_error.",
            ["model", "version", "reason"],
            registry=registry,
        )
        self.features = FeatureCollector(model=model, version=version)
        registry.register(self.features)
        self.model_ready.labels(model, version).set(0)
        self.artifact_verified.labels(model, version).set(0)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one handled request and its duration."""
        self.requests.labels(self.model, self.version, endpoint, str(status)).inc()
        self.request_duration.labels(self.model, self.version, endpoint).observe(seconds)

    def loaded(self, reference: contract.ReferenceStats, served: Iterable[str]) -> None:
        """Record a successful load and start exporting the served features' distributions."""
        self.features.configure(reference, served)
        self.artifact_verified.labels(self.model, self.version).set(1)
        self.model_ready.labels(self.model, self.version).set(1)

    def load_failed(self, reason: str) -> None:
        """Record a refused load; the model stays not ready and the artifact unverified."""
        self.load_failures.labels(self.model, self.version, reason).inc()


@dataclass
class _NumericFeature:
    edges: FloatArray
    # counts[i]: values in (edges[i-1], edges[i]]; the last entry counts values > edges[-1].
    counts: npt.NDArray[np.int64]
    total: float = 0.0
    missing: int = 0
    below: float = 0.0
    above: float = 0.0
    offset: float = 0.0
    # Exact features only: each bucket's training value (NaN for the empty outer buckets),
    # and per bucket the count of values equal to it.
    values: FloatArray | None = None
    exact: npt.NDArray[np.int64] | None = None
    below_value: npt.NDArray[np.int64] | None = None


@dataclass
class _CategoricalFeature:
    index: dict[str, int]
    categories: tuple[str, ...]
    # One count per category, then OTHER_CATEGORY.
    counts: npt.NDArray[np.int64]
    missing: int = 0


class FeatureCollector(Collector):
    """Per-feature live distributions with the reference bins (see the module docstring).

    Exports nothing until :meth:`configure` is called with the verified reference statistics:
    a server that never loaded a model has no distribution to report.
    """

    def __init__(self, *, model: str, version: str) -> None:
        self._model = model
        self._version = version
        self._lock = threading.Lock()
        self._numeric: dict[str, _NumericFeature] = {}
        self._categorical: dict[str, _CategoricalFeature] = {}

    def configure(self, reference: contract.ReferenceStats, served: Iterable[str]) -> None:
        """Create zeroed series for every feature in ``served`` (the model's inputs).

        Reference statistics of columns the model does not take are not exported: requests
        never carry them, so their series would stay at zero forever.
        """
        wanted = frozenset(served)
        numeric: dict[str, _NumericFeature] = {}
        categorical: dict[str, _CategoricalFeature] = {}
        for feature in reference.features:
            if feature.name not in wanted:
                continue
            if isinstance(feature, contract.NumericReference):
                edges = np.array(feature.bin_edges, dtype=np.float64)
                state = _NumericFeature(
                    edges=edges, counts=np.zeros(len(edges) + 1, dtype=np.int64)
                )
                if _is_exact(feature):
                    assert feature.bin_means is not None
                    state.values = np.array(
                        [np.nan if m is None else m for m in feature.bin_means], dtype=np.float64
                    )
                    state.exact = np.zeros(len(edges) + 1, dtype=np.int64)
                    state.below_value = np.zeros(len(edges) + 1, dtype=np.int64)
                numeric[feature.name] = state
            else:
                categories = tuple(feature.categories)
                categorical[feature.name] = _CategoricalFeature(
                    index={category: i for i, category in enumerate(categories)},
                    categories=categories,
                    counts=np.zeros(len(categories) + 1, dtype=np.int64),
                )
        with self._lock:
            self._numeric, self._categorical = numeric, categorical

    def observe(self, columns: Mapping[str, FloatArray | ObjectArray]) -> None:
        """Add one request's validated feature values to the distributions.

        A NaN numeric value or an empty category is missing: it counts in the feature's
        missing counter and in no bucket (``searchsorted`` would put NaN past every edge,
        into ``+Inf``), and adds nothing to the histogram's sum.
        """
        with self._lock:
            for name, numeric in self._numeric.items():
                column = np.asarray(columns[name], dtype=np.float64)
                missing = np.isnan(column)
                values = column[~missing] if missing.any() else column
                numeric.missing += int(column.size - values.size)
                # side="left" puts a value equal to an edge into that edge's bucket: `le` is <=.
                buckets = np.searchsorted(numeric.edges, values, side="left")
                numeric.counts += np.bincount(buckets, minlength=len(numeric.counts))
                # +inf and -inf together would make the sum NaN, forever.
                numeric.total += _distance(values)
                if numeric.edges.size:
                    numeric.below += _distance(numeric.edges[0] - values[buckets == 0])
                    last = numeric.edges.size
                    numeric.above += _distance(values[buckets == last] - numeric.edges[-1])
                    numeric.offset += _distance(values[buckets > 0] - numeric.edges[0])
                if (
                    numeric.values is not None
                    and numeric.exact is not None
                    and numeric.below_value is not None
                ):
                    # The outer buckets' value is NaN: no comparison holds there.
                    own = numeric.values[buckets]
                    size = len(numeric.exact)
                    numeric.exact += np.bincount(buckets[values == own], minlength=size)
                    numeric.below_value += np.bincount(buckets[values < own], minlength=size)
            for name, categorical in self._categorical.items():
                other = len(categorical.categories)
                texts = columns[name]
                codes = np.fromiter(
                    (categorical.index.get(value, other) for value in texts),
                    dtype=np.intp,
                    count=len(texts),
                )
                present = np.fromiter((value != "" for value in texts), bool, count=len(texts))
                categorical.missing += int(present.size - np.count_nonzero(present))
                categorical.counts += np.bincount(codes[present], minlength=len(categorical.counts))

    def describe(self) -> Iterable[Metric]:
        """Name the families up front so the registry can reject a duplicate collector."""
        return [
            self._histogram_family(),
            self._category_family(),
            self._missing_family(),
            self._out_of_range_family(),
            self._offset_family(),
            self._exact_family(),
            self._below_value_family(),
        ]

    def collect(self) -> Iterable[Metric]:
        """Expose the current counts; buckets are cumulative as the exposition format wants."""
        histograms = self._histogram_family()
        categories = self._category_family()
        missing = self._missing_family()
        out_of_range = self._out_of_range_family()
        offset = self._offset_family()
        exact = self._exact_family()
        below_value = self._below_value_family()
        with self._lock:
            for name, numeric in self._numeric.items():
                cumulative = np.cumsum(numeric.counts).tolist()
                # repr() round-trips a float exactly, so `le` parses back to the reference edge.
                bounds = [repr(edge) for edge in numeric.edges.tolist()] + ["+Inf"]
                histograms.add_metric(
                    [self._model, self._version, name],
                    buckets=list(zip(bounds, cumulative, strict=True)),
                    sum_value=numeric.total,
                )
                missing.add_metric([self._model, self._version, name], numeric.missing)
                out_of_range.add_metric([self._model, self._version, name, "below"], numeric.below)
                out_of_range.add_metric([self._model, self._version, name, "above"], numeric.above)
                offset.add_metric([self._model, self._version, name], numeric.offset)
                if numeric.exact is not None and numeric.below_value is not None:
                    for bound, at, below in zip(
                        bounds, numeric.exact.tolist(), numeric.below_value.tolist(), strict=True
                    ):
                        exact.add_metric([self._model, self._version, name, bound], at)
                        below_value.add_metric([self._model, self._version, name, bound], below)
            for name, categorical in self._categorical.items():
                labels: Sequence[str] = (*categorical.categories, OTHER_CATEGORY)
                for category, count in zip(labels, categorical.counts.tolist(), strict=True):
                    categories.add_metric([self._model, self._version, name, category], count)
                missing.add_metric([self._model, self._version, name], categorical.missing)
        return [histograms, categories, missing, out_of_range, offset, exact, below_value]

    @staticmethod
    def _histogram_family() -> HistogramMetricFamily:
        return HistogramMetricFamily(
            FEATURE_VALUE,
            "Values of a numeric input feature; the le bounds are the training reference bin "
            "edges of reference.json.",
            labels=["model", "version", "feature"],
        )

    @staticmethod
    def _category_family() -> CounterMetricFamily:
        return CounterMetricFamily(
            FEATURE_CATEGORY,
            "Values of a categorical input feature by reference category; __other__ counts "
            "categories not seen in training.",
            labels=["model", "version", "feature", "category"],
        )

    @staticmethod
    def _missing_family() -> CounterMetricFamily:
        return CounterMetricFamily(
            FEATURE_MISSING,
            "Missing values of an input feature (NaN, or an empty category); they are in no "
            "bucket of the feature's distribution.",
            labels=["model", "version", "feature"],
        )

    @staticmethod
    def _out_of_range_family() -> CounterMetricFamily:
        return CounterMetricFamily(
            FEATURE_OUT_OF_RANGE,
            "Summed distance of numeric feature values beyond the outer reference bin edges: "
            "side=below sums first edge minus value over the first bucket, side=above value "
            "minus last edge over the last bucket.",
            labels=["model", "version", "feature", "side"],
        )

    @staticmethod
    def _offset_family() -> CounterMetricFamily:
        return CounterMetricFamily(
            FEATURE_OFFSET,
            "Summed value minus first reference bin edge over the numeric feature values above "
            "that edge; with the other counters it gives the exact mean of the values.",
            labels=["model", "version", "feature"],
        )

    @staticmethod
    def _exact_family() -> CounterMetricFamily:
        return CounterMetricFamily(
            FEATURE_EXACT,
            "Values of a numeric feature with few distinct training values that equal the "
            "training value of their bucket (le as in the feature's histogram).",
            labels=["model", "version", "feature", "le"],
        )

    @staticmethod
    def _below_value_family() -> CounterMetricFamily:
        return CounterMetricFamily(
            FEATURE_BELOW_VALUE,
            "Values of a numeric feature with few distinct training values that lie below the "
            "training value of their bucket (le as in the feature's histogram).",
            labels=["model", "version", "feature", "le"],
        )


def _is_exact(feature: contract.NumericReference) -> bool:
    """Every non-empty bucket holds one training value, its bin mean (see the module doc)."""
    non_empty = sum(1 for count in feature.counts if count > 0)
    return (
        feature.bin_means is not None
        and feature.distinct is not None
        and feature.distinct == non_empty
    )


def _distance(values: FloatArray) -> float:
    """Sum of the finite values; an infinite value has no usable distance to add."""
    return float(np.sum(values[np.isfinite(values)]))
