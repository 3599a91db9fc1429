"""One drift evaluation: reference histograms + current window counts + policy → verdicts.

:func:`evaluate` is pure: it takes the reference histograms of a model version, the bucket
counts observed in the current window (see :class:`modelops.core.drift.window.Windower`) and a
:class:`DriftConfig`, and returns an :class:`Evaluation`. Invalid input — a policy naming a
feature the reference lacks, a method that does not apply to a feature, counts of the wrong
length — raises :class:`ValueError` with a message meant for a condition or an Event.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, get_args

import numpy as np
import numpy.typing as npt

from modelops.core.drift import stats
from modelops.core.drift.binning import validate_edges
from modelops.core.drift.selection import (
    CORRECTIONS,
    DEFAULT_CORRECTION,
    DEFAULT_DATASET_DRIFT_SHARE,
    DEFAULT_THRESHOLDS,
    METHODS,
    NUMERIC_ONLY_METHODS,
    Correction,
    FeatureKind,
    Method,
    MethodChoice,
    adjust_p_values,
    is_p_value_method,
    select_method,
)

DEFAULT_MIN_SAMPLES = 100
"""Smallest current window (per feature) that gets a verdict.

None of the peers sets one (Evidently, alibi-detect: none; NannyML only warns below 6 reference
chunks). 100 keeps the asymptotic tests honest on the default decile bins: ten buckets then
expect about ten observations each, above the usual five-per-cell rule for chi-squared, and the
asymptotic Kolmogorov p-value is within about 10% (relative, on the conservative side) of the
finite-sample one at that size."""

_KINDS: tuple[FeatureKind, ...] = get_args(FeatureKind)
_CHOICES: tuple[MethodChoice, ...] = get_args(MethodChoice)


def _frozen_array(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.array(values, dtype=np.float64)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class FeatureReference:
    """The training-time histogram of one feature, as in ``reference.json``.

    Numeric features have ``edges`` and ``len(edges) + 1`` counts with the ``le`` bucket
    semantics of ``docs/contracts.md``; categorical features have ``categories`` and one count
    per category. Counts must be finite and non-negative. A feature never observed in training
    (all values missing) has all-zero counts — and, if numeric, no edges and a single bucket;
    it has no distribution to compare with and :func:`evaluate` does not judge it.
    """

    name: str
    kind: FeatureKind
    counts: npt.NDArray[np.float64]
    edges: npt.NDArray[np.float64] | None = None
    categories: tuple[str, ...] | None = None
    missing: float = 0.0
    means: npt.NDArray[np.float64] | None = None
    std: float | None = None
    distinct: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Feature {self.name} has unknown type {self.kind!r}")
        counts = _frozen_array(self.counts)
        object.__setattr__(self, "counts", counts)
        if self.kind == "numeric":
            if self.edges is None or self.categories is not None:
                raise ValueError(f"Numeric feature {self.name} needs bin edges and no categories")
            # A copy: freezing must not make the caller's own array read-only.
            name = f"Bin edges of feature {self.name}"
            edges = validate_edges(self.edges, name, allow_empty=True).copy()
            edges.flags.writeable = False
            object.__setattr__(self, "edges", edges)
            expected = edges.size + 1
        else:
            if self.categories is None or self.edges is not None:
                raise ValueError(
                    f"Categorical feature {self.name} needs categories and no bin edges"
                )
            categories = tuple(self.categories)
            if len(set(categories)) != len(categories):
                raise ValueError(f"Categories of feature {self.name} must be unique")
            object.__setattr__(self, "categories", categories)
            expected = len(categories)
        if counts.shape != (expected,):
            raise ValueError(
                f"Feature {self.name} has {counts.size} reference counts, expected {expected}"
            )
        if not np.all(np.isfinite(counts)) or np.any(counts < 0):
            raise ValueError(
                f"Reference counts of feature {self.name} must be finite and non-negative"
            )
        if not math.isfinite(self.missing) or self.missing < 0:
            raise ValueError(f"Missing count of feature {self.name} must be finite, non-negative")
        if self.std is not None and not (math.isfinite(self.std) and self.std >= 0):
            raise ValueError(f"Standard deviation of feature {self.name} must be finite, >= 0")
        if self.distinct is not None and self.distinct < 0:
            raise ValueError(f"Distinct count of feature {self.name} must be non-negative")
        if self.means is not None:
            self._check_means(counts)

    def _check_means(self, counts: npt.NDArray[np.float64]) -> None:
        if self.kind != "numeric" or self.edges is None or self.means is None:
            raise ValueError(f"Only numeric feature {self.name} can have bin means")
        means = _frozen_array(self.means)
        if means.shape != counts.shape:
            raise ValueError(f"Feature {self.name} needs one bin mean per bucket")
        if np.any(np.isnan(means) != (counts == 0)):
            raise ValueError(f"Feature {self.name} needs a bin mean exactly for non-empty bins")
        lower = np.concatenate(([-np.inf], self.edges))
        upper = np.concatenate((self.edges, [np.inf]))
        present = ~np.isnan(means)
        if np.any((means[present] <= lower[present]) | (means[present] > upper[present])):
            raise ValueError(f"A bin mean of feature {self.name} lies outside its bin")
        if counts[0] > 0 or counts[-1] > 0:
            raise ValueError(
                f"Feature {self.name} has bin means, so its outer buckets must be empty"
            )
        object.__setattr__(self, "means", means)

    @classmethod
    def numeric(
        cls,
        name: str,
        edges: npt.ArrayLike,
        counts: npt.ArrayLike,
        *,
        missing: float = 0.0,
        means: npt.ArrayLike | None = None,
        std: float | None = None,
        distinct: int | None = None,
    ) -> "FeatureReference":
        """Build a numeric feature reference from its bin edges and bucket counts.

        ``means`` (NaN for an empty bucket), ``std`` and ``distinct`` are the optional summary
        statistics of the second reference format; with ``means`` the first and last buckets
        must be empty (they count values beyond the training range).
        """
        return cls(
            name,
            "numeric",
            np.asarray(counts, dtype=np.float64),
            edges=np.asarray(edges),
            missing=missing,
            means=None if means is None else np.asarray(means, dtype=np.float64),
            std=std,
            distinct=distinct,
        )

    @classmethod
    def categorical(
        cls, name: str, categories: Sequence[str], counts: npt.ArrayLike, *, missing: float = 0.0
    ) -> "FeatureReference":
        """Build a categorical feature reference from its categories and their counts."""
        return cls(
            name,
            "categorical",
            np.asarray(counts, dtype=np.float64),
            categories=tuple(categories),
            missing=missing,
        )

    @property
    def n_buckets(self) -> int:
        """Number of reference buckets (numeric) or categories (categorical)."""
        return int(self.counts.size)

    @property
    def window_buckets(self) -> int:
        """Number of buckets of this feature in a serving window: the reference's, plus, for a
        categorical feature, the trailing bucket of values outside the reference categories
        (the server's ``__other__`` series)."""
        return self.n_buckets + (1 if self.kind == "categorical" else 0)

    @property
    def exact(self) -> bool:
        """True for a numeric feature whose every non-empty reference bucket holds one value
        (at most as many distinct values as buckets): its bin means are those exact values,
        and the window also counts, per bucket, the live values equal to them."""
        return (
            self.means is not None
            and self.distinct is not None
            and self.distinct == int(np.count_nonzero(self.counts))
        )

    @property
    def window_size(self) -> int:
        """Length of this feature's full window vector: :attr:`window_buckets` counts, then the
        extra counters (:data:`WINDOW_EXTRAS`), then for an :attr:`exact` feature, per bucket,
        the count of live values equal to the bucket's reference value, then per bucket the
        count of those below it."""
        exact = 2 * self.n_buckets if self.exact else 0
        return self.window_buckets + len(WINDOW_EXTRAS[self.kind]) + exact

    @property
    def total(self) -> float:
        """Number of reference observations (missing values are not counted)."""
        return float(self.counts.sum())

    @property
    def missing_share(self) -> float:
        """Share of missing values among the reference rows (0 without any)."""
        rows = self.total + self.missing
        return self.missing / rows if rows > 0 else 0.0


WINDOW_EXTRAS: Mapping[FeatureKind, tuple[str, ...]] = MappingProxyType(
    {"numeric": ("missing", "below", "above", "offset"), "categorical": ("missing",)}
)
"""The counters that follow the bucket counts in a feature's window vector, in order:
``missing`` counts missing values (NaN, or an empty category); ``below`` and ``above`` sum how
far values lie below ``edges[0]`` and above ``edges[-1]`` (``edge - v`` and ``v - edge``), which
places the out-of-range mass for the Wasserstein distance; ``offset`` sums ``v - edges[0]``
over the values above ``edges[0]``, which with the others gives the window's exact mean. All
are monotone counters (sums of non-negative terms), so they window like the bucket counts."""


def parse_reference(document: Mapping[str, Any]) -> tuple[FeatureReference, ...]:
    """Read the ``features`` of a ``reference.json`` document (``docs/contracts.md``).

    Raises :class:`ValueError` naming the first offending feature; feature names must be unique.
    """
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise ValueError("Reference document has no features list")
    result: list[FeatureReference] = []
    for index, item in enumerate(features):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise ValueError(f"Reference feature #{index} has no name")
        name, kind = item["name"], item.get("type")
        missing = _optional_number(item, "missing", name) or 0.0
        if kind == "numeric":
            edges = _numbers(item, "binEdges", name)
            means = item.get("binMeans")
            if means is not None:
                means = _numbers(item, "binMeans", name, allow_null=True)
            distinct = _optional_number(item, "distinct", name)
            result.append(
                FeatureReference.numeric(
                    name,
                    edges,
                    _numbers(item, "counts", name),
                    missing=missing,
                    means=means,
                    std=_optional_number(item, "std", name),
                    distinct=None if distinct is None else int(distinct),
                )
            )
        elif kind == "categorical":
            categories = item.get("categories")
            if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
                raise ValueError(f"Feature {name} has no list of string categories")
            counts = _numbers(item, "counts", name)
            result.append(FeatureReference.categorical(name, categories, counts, missing=missing))
        else:
            raise ValueError(f"Feature {name} has unknown type {kind!r}")
    names = [f.name for f in result]
    if len(set(names)) != len(names):
        raise ValueError("Reference feature names must be unique")
    return tuple(result)


def _is_number(value: Any) -> bool:
    # bool is an int subclass, and JSON true/false in a count list is a broken document.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(
    item: Mapping[str, Any], key: str, name: str, *, allow_null: bool = False
) -> list[float]:
    values = item.get(key)
    if not isinstance(values, list) or not all(
        _is_number(v) or (allow_null and v is None) for v in values
    ):
        raise ValueError(f"Feature {name} has no list of numbers in {key}")
    return [math.nan if v is None else float(v) for v in values]


def _optional_number(item: Mapping[str, Any], key: str, name: str) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise ValueError(f"Feature {name} has a non-number {key}")
    return float(value)


@dataclass(frozen=True)
class FeatureOverride:
    """Per-feature settings that take precedence over :class:`DriftConfig`'s defaults.

    A threshold is read in the terms of the feature's method: a p-value level for ``ks`` and
    ``chi2``, a distance for the others.
    """

    method: MethodChoice | None = None
    threshold: float | None = None


def _default_thresholds() -> Mapping[Method, float]:
    return DEFAULT_THRESHOLDS


def _no_overrides() -> Mapping[str, FeatureOverride]:
    return MappingProxyType({})


@dataclass(frozen=True)
class DriftConfig:
    """How to judge drift; the defaults are the peers' (sources in ``docs/drift.md``).

    ``thresholds`` may name only some methods; the others keep :data:`DEFAULT_THRESHOLDS`.
    ``features`` restricts the evaluation to the named features (default: all of the
    reference). ``dataset_drift_share`` is the share of judged features that must drift for
    the dataset to drift. ``min_samples`` is the smallest current window, per feature, that
    gets a verdict.
    """

    method: MethodChoice = "auto"
    thresholds: Mapping[Method, float] = field(default_factory=_default_thresholds)
    correction: Correction = DEFAULT_CORRECTION
    dataset_drift_share: float = DEFAULT_DATASET_DRIFT_SHARE
    min_samples: int = DEFAULT_MIN_SAMPLES
    features: tuple[str, ...] | None = None
    overrides: Mapping[str, FeatureOverride] = field(default_factory=_no_overrides)

    def __post_init__(self) -> None:
        if self.method not in _CHOICES:
            raise ValueError(f"Unknown drift method {self.method!r}; expected one of {_CHOICES}")
        unknown = set(self.thresholds) - set(METHODS)
        if unknown:
            raise ValueError(f"Thresholds name unknown methods: {sorted(unknown)}")
        merged = MappingProxyType({**DEFAULT_THRESHOLDS, **self.thresholds})
        for method, value in merged.items():
            _check_threshold(method, value, "Threshold")
        object.__setattr__(self, "thresholds", merged)
        if self.correction not in CORRECTIONS:
            raise ValueError(
                f"Unknown correction {self.correction!r}; expected one of {CORRECTIONS}"
            )
        if not 0.0 < self.dataset_drift_share <= 1.0:
            raise ValueError(
                f"Dataset drift share must be in (0, 1], got {self.dataset_drift_share}"
            )
        if self.min_samples < 1:
            raise ValueError(f"Minimum samples must be at least 1, got {self.min_samples}")
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        for name, override in self.overrides.items():
            if override.method is not None and override.method not in _CHOICES:
                raise ValueError(f"Feature {name} asks for unknown method {override.method!r}")
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))


def _check_threshold(method: Method, value: float, what: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} for {method} must be a positive number, got {value}")
    if is_p_value_method(method) and value > 1:
        raise ValueError(f"{what} for {method} is a p-value level and must be at most 1")


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict on one feature.

    ``score`` is the distance for distance methods and the test statistic (K-S ``D``,
    chi-squared) for p-value methods. ``p_value`` is the raw p-value and ``adjusted_p_value``
    the one after the multiple-testing correction, which is what ``threshold`` is compared
    with; both are None for distance methods. ``samples`` is the feature's current window
    total, missing values included.

    ``missing_share`` and ``reference_missing_share`` are the shares of missing values in the
    window and in the reference; ``missing_drifted`` says the share changed (see
    :func:`missing_share_drifted`). ``drifted`` is True when the distribution of the present
    values drifted or the missing share did.
    """

    name: str
    method: Method
    score: float
    p_value: float | None
    adjusted_p_value: float | None
    threshold: float
    drifted: bool
    samples: int
    missing_share: float = 0.0
    reference_missing_share: float = 0.0
    missing_drifted: bool = False


@dataclass(frozen=True)
class Evaluation:
    """The outcome of one evaluation.

    ``unjudged`` names the selected features with no reference observations, which are never
    judged and do not count in the share. ``samples`` is the smallest current window total over
    the judged features. When it is below ``min_samples``, ``insufficient_data`` is True and
    there are no verdicts: ``features`` is empty, ``dataset_drift`` False and ``drifted_share``
    0 — the window says nothing either way (see :attr:`verdict`).
    """

    features: tuple[FeatureDrift, ...]
    unjudged: tuple[str, ...]
    samples: int
    min_samples: int
    insufficient_data: bool
    drifted_share: float
    dataset_drift: bool
    dataset_drift_share: float

    @property
    def verdict(self) -> bool | None:
        """Dataset drift as True/False, or None when the window had too little data."""
        return None if self.insufficient_data else self.dataset_drift

    @property
    def drifted_features(self) -> tuple[FeatureDrift, ...]:
        """The features that drifted, in evaluation order."""
        return tuple(f for f in self.features if f.drifted)


def evaluate(
    reference: Sequence[FeatureReference],
    current: Mapping[str, npt.ArrayLike],
    config: DriftConfig | None = None,
) -> Evaluation:
    """Judge the current window against the reference.

    ``current`` maps feature names to the window's bucket counts, in the reference's bucket
    order. A categorical feature may have one more, trailing, count: values outside the
    reference categories (the server's ``__other__``), compared with a reference count of 0.
    A judged feature missing from ``current`` counts as an empty window, which makes the whole
    evaluation ``insufficient_data`` rather than judging the other features alone; names in
    ``current`` that are not judged are ignored.

    Per feature the method is the override's, else the policy's; ``auto`` resolves with
    :func:`~modelops.core.drift.selection.select_method`. Distance methods drift when
    ``score >= threshold``; p-value methods when the corrected p-value ``<= threshold``, the
    correction running over all p-value features of this evaluation. The dataset drifts when
    ``drifted / judged >= dataset_drift_share`` (Evidently's rule).
    """
    config = config or DriftConfig()
    selected = _selected_features(reference, config)
    features = [feature for feature in selected if feature.total > 0]
    unjudged = tuple(feature.name for feature in selected if feature.total <= 0)
    if not features:
        raise ValueError("No selected feature was observed in the training data")
    # Methods and thresholds first: a policy error is reported even while data is short.
    methods = [_method_for(feature, config) for feature in features]
    thresholds = [_threshold_for(f, m, config) for f, m in zip(features, methods, strict=True)]
    windows = [_current_window(feature, current) for feature in features]
    totals = [round(float(w.counts.sum() + w.missing)) for w in windows]
    samples = min(totals)
    if samples < config.min_samples:
        return Evaluation(
            features=(),
            unjudged=unjudged,
            samples=samples,
            min_samples=config.min_samples,
            insufficient_data=True,
            drifted_share=0.0,
            dataset_drift=False,
            dataset_drift_share=config.dataset_drift_share,
        )

    scored = [_score(f, m, w) for f, m, w in zip(features, methods, windows, strict=True)]
    raw_p = np.array([p if p is not None else np.nan for _, p in scored])
    adjusted = adjust_p_values(raw_p, config.correction)
    missing_alpha = config.thresholds["chi2"]

    results: list[FeatureDrift] = []
    for i, feature in enumerate(features):
        score, p_value = scored[i]
        if p_value is None:
            adjusted_p = None
            drifted = score >= thresholds[i]
        else:
            adjusted_p = float(adjusted[i])
            drifted = adjusted_p <= thresholds[i]
        window = windows[i]
        missing_drifted = missing_share_drifted(
            (feature.total, feature.missing),
            (float(window.counts.sum()), window.missing),
            missing_alpha,
        )
        results.append(
            FeatureDrift(
                name=feature.name,
                method=methods[i],
                score=score,
                p_value=p_value,
                adjusted_p_value=adjusted_p,
                threshold=thresholds[i],
                drifted=drifted or missing_drifted,
                samples=totals[i],
                missing_share=window.missing / totals[i],
                reference_missing_share=feature.missing_share,
                missing_drifted=missing_drifted,
            )
        )
    share = sum(r.drifted for r in results) / len(results)
    return Evaluation(
        features=tuple(results),
        unjudged=unjudged,
        samples=samples,
        min_samples=config.min_samples,
        insufficient_data=False,
        drifted_share=share,
        dataset_drift=share >= config.dataset_drift_share,
        dataset_drift_share=config.dataset_drift_share,
    )


def _selected_features(
    reference: Sequence[FeatureReference], config: DriftConfig
) -> list[FeatureReference]:
    by_name = {feature.name: feature for feature in reference}
    if len(by_name) != len(reference):
        raise ValueError("Reference feature names must be unique")
    if not by_name:
        raise ValueError("The reference has no features")
    unknown = (set(config.features or ()) | set(config.overrides)) - set(by_name)
    if unknown:
        raise ValueError(f"The reference has no feature named {', '.join(sorted(unknown))}")
    if config.features is None:
        return list(reference)
    if not config.features:
        raise ValueError("The policy selects no features")
    return [by_name[name] for name in dict.fromkeys(config.features)]


@dataclass(frozen=True)
class _Window:
    """One feature's current window: bucket counts and the extra counters (WINDOW_EXTRAS)."""

    counts: npt.NDArray[np.float64]
    missing: float = 0.0
    below: float = 0.0
    above: float = 0.0
    offset: float | None = None
    # Exact features only: per bucket, the values equal to the bucket's reference value, and
    # those below it.
    exact: npt.NDArray[np.float64] | None = None
    below_value: npt.NDArray[np.float64] | None = None


def _current_window(feature: FeatureReference, current: Mapping[str, npt.ArrayLike]) -> _Window:
    if feature.name not in current:
        return _Window(np.zeros(feature.n_buckets))
    values = np.asarray(current[feature.name], dtype=np.float64)
    if values.shape not in {
        (feature.n_buckets,),
        (feature.window_buckets,),
        (feature.window_size,),
    }:
        raise ValueError(
            f"Feature {feature.name} has {values.size} current counts, "
            f"expected {feature.window_size} (or {feature.window_buckets} without the "
            "missing and out-of-range counters)"
        )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"Current counts of feature {feature.name} must be finite, non-negative")
    if values.size < feature.window_size:
        return _Window(values)
    counts = values[: feature.window_buckets]
    names = WINDOW_EXTRAS[feature.kind]
    end = feature.window_buckets + len(names)
    extras = dict(zip(names, values[feature.window_buckets : end], strict=True))
    exact = below_value = None
    if feature.exact:
        # Prometheus' increase() extrapolates every series on its own, so these can exceed
        # their bucket's count by a little; a pod's own counters never do.
        exact = np.minimum(values[end : end + feature.n_buckets], counts)
        below_value = np.minimum(values[end + feature.n_buckets :], counts - exact)
    return _Window(
        counts,
        missing=float(extras["missing"]),
        below=float(extras.get("below", 0.0)),
        above=float(extras.get("above", 0.0)),
        offset=float(extras["offset"]) if "offset" in extras else None,
        exact=exact,
        below_value=below_value,
    )


MISSING_SHARE_MIN_CHANGE = 0.05
"""Smallest change of a feature's missing-value share that counts as drift (absolute, in
share units). Large windows make the proportion test significant for changes too small to
matter, the reason Evidently replaces p-value tests by distances above 1000 rows; this floor
keeps the per-feature false-alarm rate of the missing-share check near zero at any window size
(measured in ``benchmarks/drift/results.md``)."""


def missing_share_drifted(
    reference: tuple[float, float], current: tuple[float, float], alpha: float
) -> bool:
    """Whether the share of missing values changed between reference and current.

    Both arguments are ``(present, missing)`` counts. The share drifted when a chi-squared
    homogeneity test of the 2 x 2 table rejects at ``alpha`` (the policy's chi-squared level)
    and the shares differ by at least :data:`MISSING_SHARE_MIN_CHANGE`. Without any missing
    value on either side nothing is compared.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref[1] + cur[1] <= 0 or ref.sum() <= 0 or cur.sum() <= 0:
        return False
    change = abs(cur[1] / cur.sum() - ref[1] / ref.sum())
    if change < MISSING_SHARE_MIN_CHANGE:
        return False
    return bool(stats.chi2(ref, cur).p_value <= alpha)


def _method_for(feature: FeatureReference, config: DriftConfig) -> Method:
    override = config.overrides.get(feature.name)
    choice = override.method if override and override.method else config.method
    if choice == "auto":
        return select_method(feature.kind, feature.counts, distinct=feature.distinct)
    if feature.kind == "categorical" and choice in NUMERIC_ONLY_METHODS:
        raise ValueError(
            f"Method {choice} needs ordered buckets and cannot judge categorical "
            f"feature {feature.name}"
        )
    return choice


def _threshold_for(feature: FeatureReference, method: Method, config: DriftConfig) -> float:
    override = config.overrides.get(feature.name)
    if override is None or override.threshold is None:
        return config.thresholds[method]
    _check_threshold(method, override.threshold, f"Threshold of feature {feature.name}")
    return override.threshold


def _score(
    feature: FeatureReference, method: Method, window: _Window
) -> tuple[float, float | None]:
    counts = window.counts
    if counts.sum() <= 0:
        # Every value of the window was missing: no distribution to compare, no evidence of
        # a change in it; the missing-share check judges this window.
        return 0.0, (1.0 if is_p_value_method(method) else None)
    if window.exact is not None:
        return _score_exact(feature, method, window)
    # The trailing "other" bucket of a categorical window was never seen in the reference.
    ref = np.pad(feature.counts, (0, counts.size - feature.counts.size))
    if method == "psi":
        return float(stats.psi(ref, counts)), None
    if method == "js":
        return float(stats.jensen_shannon(ref, counts)), None
    if method == "wasserstein":
        return _wasserstein(feature, ref, window), None
    test = stats.ks(ref, counts) if method == "ks" else stats.chi2(ref, counts)
    return float(test.statistic), float(test.p_value)


def _wasserstein(feature: FeatureReference, ref: npt.NDArray[np.float64], window: _Window) -> float:
    """The normed Wasserstein distance with the best positions the counters allow.

    An older reference (no bin means) places every bucket at its midpoint on both sides
    (:func:`stats.bucket_points`). With bin means, the reference's mass sits at its bin means,
    and the window's at its own estimated positions (:func:`_window_points`); the reference
    standard deviation is the trainer's exact one.
    """
    assert feature.edges is not None  # numeric-only, checked in _method_for
    counts = window.counts
    if feature.means is None:
        points = stats.bucket_points(feature.edges)
        return float(stats.wasserstein(ref, counts, points, reference_std=feature.std))
    ref_points = np.where(
        np.isnan(feature.means), stats.bucket_points(feature.edges), feature.means
    )
    std = feature.std if feature.std is not None else _weighted_std(ref, ref_points)
    return stats.wasserstein_between(
        ref, ref_points, counts, _window_points(feature, ref_points, window), reference_std=std
    )


def _weighted_std(weights: npt.NDArray[np.float64], points: npt.NDArray[np.float64]) -> float:
    share = weights / weights.sum()
    mean = float(np.sum(share * points))
    return float(np.sqrt(np.sum(share * (points - mean) ** 2)))


def _window_points(
    feature: FeatureReference, ref_points: npt.NDArray[np.float64], window: _Window
) -> npt.NDArray[np.float64]:
    """Where the window's mass sits in each bucket.

    The outer buckets (beyond the training range) sit at the mean of the window's values
    there, from the summed distances beyond the edge. The inner buckets start at the
    reference positions and move together by the one amount that makes the window's mean
    exact (from the ``offset`` counter), each kept inside its bucket: a shift smaller than a
    bucket moves no value across an edge but still moves the mean, and this keeps it visible.
    """
    assert feature.edges is not None
    edges = feature.edges
    counts = window.counts
    points = ref_points.copy()
    if counts[0] > 0:
        points[0] = edges[0] - window.below / counts[0]
    if counts[-1] > 0:
        points[-1] = edges[-1] + window.above / counts[-1]
    inner = counts[1:-1]
    inner_total = float(inner.sum())
    if window.offset is not None and inner_total > 0:
        # offset = Σ over values above edges[0] of (v - edges[0]), last bucket included.
        last = window.above + counts[-1] * (edges[-1] - edges[0])
        inner_sum = window.offset - last + inner_total * edges[0]
        delta = (inner_sum - float(np.sum(inner * ref_points[1:-1]))) / inner_total
        points[1:-1] = np.clip(ref_points[1:-1] + delta, edges[:-1], edges[1:])
    return points


def _score_exact(
    feature: FeatureReference, method: Method, window: _Window
) -> tuple[float, float | None]:
    """Score a feature with few distinct values from its exact-value counts.

    The window's values equal to a reference value sit at it; the others ("off" values: in a
    bucket but not at its value, or beyond the range) are a category of their own for the
    category methods (chi-squared, Jensen-Shannon, PSI: Evidently's view of a column with few
    values). For KS and Wasserstein they sit below or above their bucket's value as counted
    (:func:`_off_points`): both empirical CDFs are then exact just below, at and just above
    every reference value, so KS equals the raw-data statistic, and a shift to values training
    never had is seen even when it crosses no edge.
    """
    assert window.exact is not None
    assert feature.means is not None
    present = feature.counts > 0
    values = feature.means[present]
    ref = feature.counts[present]
    exact = window.exact[present]
    if method in ("psi", "js", "chi2"):
        ref_categories = np.append(ref, 0.0)
        cur_categories = np.append(exact, float(window.counts.sum() - exact.sum()))
        if method == "psi":
            return float(stats.psi(ref_categories, cur_categories)), None
        if method == "js":
            return float(stats.jensen_shannon(ref_categories, cur_categories)), None
        test = stats.chi2(ref_categories, cur_categories)
        return float(test.statistic), float(test.p_value)
    cur_points, cur_counts = _off_points(feature, window)
    if method == "wasserstein":
        std = feature.std if feature.std is not None else _weighted_std(ref, values)
        distance = stats.wasserstein_between(ref, values, cur_counts, cur_points, reference_std=std)
        return distance, None
    test = stats.ks_between(ref, values, cur_counts, cur_points)
    return float(test.statistic), float(test.p_value)


def _off_points(
    feature: FeatureReference, window: _Window
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Positions and counts of an exact feature's window: per bucket, its values below, at
    and above the bucket's reference value, and the outer buckets.

    Values at the reference value sit on it. The outer buckets sit at their mean from the
    summed distances. Values below (above) a bucket's value sit the same fraction ``f`` of the
    way from the value to the bucket's lower (upper) edge in every bucket; ``f`` is the one
    that makes the window's mean exact (from the ``offset`` counter), kept in ``(0, 1]``.
    """
    assert feature.edges is not None
    assert feature.means is not None
    assert window.exact is not None
    assert window.below_value is not None
    edges = feature.edges
    counts = window.counts
    inner = slice(1, -1)
    values = feature.means[inner]
    at = window.exact[inner]
    below = window.below_value[inner]
    above = counts[inner] - at - below
    down = values - edges[:-1]  # room below each value, inside its bucket
    up = edges[1:] - values
    fraction = 0.5
    if window.offset is not None:
        last = window.above + counts[-1] * (edges[-1] - edges[0])
        inner_sum = window.offset - last + float(counts[inner].sum()) * edges[0]
        spread = float(np.sum(above * up) - np.sum(below * down))
        residual = inner_sum - float(np.sum(counts[inner] * values))
        if spread != 0:
            fraction = residual / spread
    fraction = min(max(fraction, 1e-6), 1.0)
    lowest = edges[0] - window.below / counts[0] if counts[0] > 0 else edges[0]
    highest = edges[-1] + window.above / counts[-1] if counts[-1] > 0 else edges[-1]
    points = np.concatenate(
        ([lowest], values - fraction * down, values, values + fraction * up, [highest])
    )
    weights = np.concatenate(([counts[0]], below, at, above, [counts[-1]]))
    return points, weights
