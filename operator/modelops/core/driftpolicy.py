"""DriftPolicy decisions: live feature counts in; status, events and retrain runs out.

One reconcile of a policy, every ``spec.interval``::

    k8s.scrape.collect ──▶ Collected ──window()──▶ Observed ──reconcile()──▶ Decision
        (Model, version,       (raw series)   (reference and     (Plan: status, events,
         reference, scrapes,                   window counts,     retrain TrainingRun;
         retrain runs)                         or a Problem)      the evaluation for metrics)

:func:`window` turns what was collected into the counts of the last window: the serving pods'
cumulative counters go through a per-policy :class:`~modelops.core.drift.Windower` held by
:class:`Windows` (operator memory), while a Prometheus query already answers with the
window's increase. :func:`reconcile` judges the window (``modelops.core.drift.evaluate``),
applies the hysteresis of ``spec.consecutiveWindows`` and decides on retraining.

Decisions that need care:

- **Hysteresis lives in the status.** ``status.consecutiveDrifted`` / ``consecutiveClean``
  count verdicts in a row (a window with too little data counts neither way) and, with the
  ``DriftDetected`` condition, are the whole state of :class:`~modelops.core.drift.Hysteresis`.
  An operator restart therefore neither drops a firing alert nor restarts a streak. They
  reset when the watched version changes: a new version has its own training data.
- **DriftDetected is Unknown until it is known**: True after ``consecutiveWindows`` drifted
  windows in a row, False after as many clean ones, Unknown before either happened for the
  watched version.
- **Nothing to evaluate is not a crash**: a missing Model, version or reference, unreachable
  pods or Prometheus make ``Ready`` False with a reason from :data:`PROBLEM_REASONS`, keep the
  last verdict, and the policy is looked at again after ``spec.interval``.
- **Retraining never storms**: a run is created only while drift is firing, on a window with
  a verdict, when fewer than ``maxConcurrent`` runs of this policy are unfinished and the
  last one started at least ``cooldown`` ago. The last start is the later of
  ``status.lastRetrain`` and the newest run's creation, so a status write lost after the run
  was created still holds the cooldown.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from modelops import api
from modelops.api.v1alpha1.driftpolicy import TOP_FEATURES_MAX_ITEMS
from modelops.core import builders, conditions, naming
from modelops.core.drift import (
    DriftConfig,
    Evaluation,
    FeatureDrift,
    FeatureOverride,
    FeatureReference,
    Hysteresis,
    PodScrape,
    Windower,
    buckets_from_le,
    evaluate,
    parse_reference,
)
from modelops.core.drift.selection import Correction, Method, MethodChoice
from modelops.core.plan import EventSpec, Obj, ObjectRef, Plan, StatusPatch

OTHER_CATEGORY: Final = "__other__"
"""The ``category`` label the model server gives values outside the reference categories
(``docs/server.md``); its count is the trailing bucket of a categorical window."""

TOP_FEATURES: Final = TOP_FEATURES_MAX_ITEMS

# Why a policy could not evaluate; the Ready condition's reason. The set is closed so that
# the failure counter can start every reason at zero (Prometheus' increase() misses the first
# increment of a series that appears with the value 1).
MODEL_NOT_FOUND: Final = "ModelNotFound"
NO_PRODUCTION_VERSION: Final = "NoProductionVersion"
VERSION_NOT_FOUND: Final = "VersionNotFound"
NO_REFERENCE_STATISTICS: Final = "NoReferenceStatistics"
NO_READY_PODS: Final = "NoReadyPods"
REFERENCE_UNAVAILABLE: Final = "ReferenceUnavailable"
INVALID_REFERENCE: Final = "InvalidReference"
SCRAPE_FAILED: Final = "ScrapeFailed"
PROMETHEUS_QUERY_FAILED: Final = "PrometheusQueryFailed"
SOURCE_MISMATCH: Final = "SourceMismatch"
INVALID_POLICY: Final = "InvalidPolicy"
PROBLEM_REASONS: Final = (
    MODEL_NOT_FOUND,
    NO_PRODUCTION_VERSION,
    VERSION_NOT_FOUND,
    NO_REFERENCE_STATISTICS,
    NO_READY_PODS,
    REFERENCE_UNAVAILABLE,
    INVALID_REFERENCE,
    SCRAPE_FAILED,
    PROMETHEUS_QUERY_FAILED,
    SOURCE_MISMATCH,
    INVALID_POLICY,
)

_CORRECTIONS: Final[Mapping[api.Correction, Correction]] = {
    api.Correction.NONE: "none",
    api.Correction.BONFERRONI: "bonferroni",
    api.Correction.BH: "fdr",
}
_FINISHED: Final = frozenset({api.TrainingRunPhase.SUCCEEDED, api.TrainingRunPhase.FAILED})
_TRUE, _FALSE, _UNKNOWN = (
    api.ConditionStatus.TRUE,
    api.ConditionStatus.FALSE,
    api.ConditionStatus.UNKNOWN,
)


# -- what was collected ---------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSeries:
    """The feature distributions one pod exports, or a Prometheus query returns.

    ``buckets`` maps a numeric feature to its histogram, ``le`` bound (``math.inf`` for
    ``+Inf``) → cumulative count; ``categories`` maps a categorical feature to category →
    count, :data:`OTHER_CATEGORY` included. ``missing`` maps a feature to its count of missing
    values, and ``out_of_range`` a numeric feature to ``side`` (``below``/``above``) → summed
    distance beyond the outer bin edge, and ``offset`` a numeric feature to the summed
    distance above its first edge. ``exact`` maps a numeric feature with few distinct values
    to ``le`` → count of values equal to that bucket's training value, ``below_value`` to ``le``
    → count of values below it. Servers older than these counters export none of them: such
    features count no missing value and no distance, have no offset, and all their values
    count as equal to their bucket's training value.
    """

    buckets: Mapping[str, Mapping[float, float]]
    categories: Mapping[str, Mapping[str, float]]
    missing: Mapping[str, float] = field(default_factory=dict)
    out_of_range: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    offset: Mapping[str, float] = field(default_factory=dict)
    exact: Mapping[str, Mapping[float, float]] = field(default_factory=dict)
    below_value: Mapping[str, Mapping[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class PodSeries:
    """One pod's scrape: its series and its start time (seconds since the epoch, from the
    pod's ``status.startTime``; None if unknown)."""

    series: FeatureSeries
    started_at: float | None = None


@dataclass(frozen=True)
class Problem:
    """Why a policy could not be evaluated: the Ready condition's reason and message."""

    reason: str
    message: str


@dataclass(frozen=True)
class Collected:
    """What the collection step gathered for one reconcile.

    ``version`` is the watched version (see :func:`target_version`) and ``model_version`` its
    ModelVersion; ``reference`` the reference.json document the serving pods loaded. Exactly
    one of ``pods`` (scrapes of the ready serving pods, by pod name) or ``series`` (the
    window's increase, from Prometheus) is set when collection succeeded; otherwise
    ``problem`` says why it stopped. ``runs`` are the TrainingRuns this policy created.
    """

    model: api.Model | None = None
    version: str | None = None
    model_version: api.ModelVersion | None = None
    reference: Mapping[str, Any] | None = None
    pods: Mapping[str, PodSeries] | None = None
    series: FeatureSeries | None = None
    problem: Problem | None = None
    runs: tuple[api.TrainingRun, ...] = ()


@dataclass(frozen=True)
class Observed:
    """The input of :func:`reconcile`: either ``reference`` and the window's ``counts`` (per
    watched feature, in reference bucket order), or a ``problem``."""

    model: api.Model | None
    version: str | None
    reference: tuple[FeatureReference, ...] | None = None
    counts: Mapping[str, npt.NDArray[np.float64]] | None = None
    problem: Problem | None = None
    runs: tuple[api.TrainingRun, ...] = ()
    sources: int = 0
    """Pods that answered the scrape (0 for a Prometheus source)."""
    retrain_refused: str | None = None
    """Why a retrain must not start whatever the drift: a Quarantine reaches the data or
    image of the Model's spec.training (``core.quarantine.retrain_refused``)."""


@dataclass(frozen=True)
class Decision:
    """What :func:`reconcile` decided, and what the metrics export.

    ``evaluation`` is None when nothing was evaluated (then ``problem`` says why).
    ``firing`` is the DriftDetected state after this reconcile; ``retrain_run`` the name of
    the TrainingRun the plan creates, if any.
    """

    plan: Plan
    version: str | None
    evaluation: Evaluation | None
    firing: bool
    problem: Problem | None
    retrain_run: str | None = None


# -- pure helpers used by the collection step -----------------------------------------------


def target_version(policy: api.DriftPolicy, model: api.Model | None) -> str | None:
    """The version whose traffic is watched: ``spec.version``, else the Model's production
    version; None when neither is known."""
    if policy.spec.version:
        return policy.spec.version
    return model.status.production_version if model is not None else None


def interval_seconds(policy: api.DriftPolicy) -> float:
    """``spec.interval`` in seconds."""
    return api.parse_duration(policy.spec.interval).total_seconds()


def window_seconds(policy: api.DriftPolicy) -> float:
    """``spec.window`` in seconds."""
    return api.parse_duration(policy.spec.window).total_seconds()


def drift_config(spec: api.DriftPolicySpec) -> DriftConfig:
    """The statistics' configuration a policy spec asks for."""
    distance, p_value = spec.thresholds.distance, spec.thresholds.p_value
    thresholds: dict[Method, float] = {
        "psi": distance,
        "js": distance,
        "wasserstein": distance,
        "ks": p_value,
        "chi2": p_value,
    }
    overrides = {
        o.name: FeatureOverride(
            method=_method_choice(o.method) if o.method is not None else None,
            threshold=o.threshold,
        )
        for o in spec.per_feature or ()
    }
    return DriftConfig(
        method=_method_choice(spec.method),
        thresholds=thresholds,
        correction=_CORRECTIONS[spec.correction],
        dataset_drift_share=spec.dataset_drift_share,
        min_samples=spec.min_samples,
        features=tuple(spec.features) if spec.features is not None else None,
        overrides=overrides,
    )


def _method_choice(method: api.DriftMethod) -> MethodChoice:
    # The API enum's values are exactly the statistics' method names.
    choice: MethodChoice = method.value
    return choice


def series_counts(
    series: FeatureSeries, reference: Sequence[FeatureReference]
) -> dict[str, npt.NDArray[np.float64]]:
    """Per-bucket counts of every reference feature ``series`` carries, in reference bucket
    order (a categorical feature gets its trailing :data:`OTHER_CATEGORY` bucket), followed by
    the feature's extra counters (:data:`~modelops.core.drift.WINDOW_EXTRAS`): the full window
    vector of :attr:`~modelops.core.drift.FeatureReference.window_size` entries.

    Features the series lacks are left out. Raises :class:`ValueError` when a histogram's
    ``le`` bounds are not the reference bin edges, or a category is not a reference one: the
    series were produced with another reference (another version's pods).
    """
    out: dict[str, npt.NDArray[np.float64]] = {}
    for feature in reference:
        if feature.kind == "numeric":
            histogram = series.buckets.get(feature.name)
            if histogram is None:
                continue
            assert feature.edges is not None
            expected = [*feature.edges.tolist(), math.inf]
            bounds = sorted(histogram)
            if bounds != expected:
                raise ValueError(
                    f"Feature {feature.name} is exported with buckets le={_bounds(bounds)}, "
                    f"but its reference has bin edges {_bounds(expected)}"
                )
            # Prometheus' increase() extrapolates each bucket series on its own, which can
            # leave the cumulative counts a rounding error out of order.
            cumulative = np.maximum.accumulate([histogram[b] for b in bounds])
            sides = series.out_of_range.get(feature.name, {})
            extras = np.array(
                [
                    series.missing.get(feature.name, 0.0),
                    sides.get("below", 0.0),
                    sides.get("above", 0.0),
                    series.offset.get(feature.name, 0.0),
                ]
            )
            buckets = buckets_from_le(cumulative)
            vector = [buckets, extras]
            if feature.exact:
                exact = series.exact.get(feature.name)
                below = series.below_value.get(feature.name, {})
                if exact is None:
                    vector += [buckets, np.zeros(buckets.size)]
                else:
                    vector.append(np.array([exact.get(b, 0.0) for b in bounds]))
                    vector.append(np.array([below.get(b, 0.0) for b in bounds]))
            out[feature.name] = np.concatenate(vector)
        else:
            counts = series.categories.get(feature.name)
            if counts is None:
                continue
            assert feature.categories is not None
            unknown = set(counts) - set(feature.categories) - {OTHER_CATEGORY}
            if unknown:
                raise ValueError(
                    f"Feature {feature.name} is exported with categories "
                    f"{', '.join(sorted(unknown))} that its reference does not have"
                )
            ordered = [*feature.categories, OTHER_CATEGORY]
            window = [counts.get(c, 0.0) for c in ordered]
            window.append(series.missing.get(feature.name, 0.0))
            out[feature.name] = np.array(window, dtype=np.float64)
    return out


def _bounds(bounds: Sequence[float]) -> str:
    shown = ", ".join("+Inf" if math.isinf(b) else repr(b) for b in bounds[:12])
    return f"[{shown}{', …' if len(bounds) > 12 else ''}]"


class Windows:
    """The live-data windows of the policies the operator evaluates, in operator memory.

    One :class:`~modelops.core.drift.Windower` per policy key, replaced by a fresh one when
    the watched version, the window length or the watched features change (its counters
    belong to one reference). After an operator restart the windows start empty and the first
    scrape of pods older than the window is only a baseline, so the first window after a
    restart may report InsufficientData.

    Not thread-safe for one key; the work queue never reconciles one policy twice at once.
    """

    def __init__(self) -> None:
        self._windows: dict[Hashable, tuple[Hashable, Windower]] = {}

    def counts(
        self,
        key: Hashable,
        version: str,
        reference: Sequence[FeatureReference],
        window_seconds: float,
        pods: Mapping[str, PodSeries],
        now: float,
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Feed this interval's pod scrapes into ``key``'s window and return its counts.

        Raises :class:`ValueError`, before any state changes, when a pod's series do not fit
        the reference (see :func:`series_counts`) or lack a watched feature.
        """
        buckets = tuple((f.name, f.window_size) for f in reference)
        signature = (version, window_seconds, buckets)
        scrapes = {
            pod: PodScrape(_pod_counts(pod, scrape.series, reference), scrape.started_at)
            for pod, scrape in pods.items()
        }
        entry = self._windows.get(key)
        if entry is None or entry[0] != signature:
            entry = (signature, Windower(window_seconds, dict(buckets)))
            self._windows[key] = entry
        windower = entry[1]
        windower.observe(now, scrapes)
        return windower.counts(now)

    def forget(self, key: Hashable) -> None:
        """Drop the window of a deleted policy."""
        self._windows.pop(key, None)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._windows


def _pod_counts(
    pod: str, series: FeatureSeries, reference: Sequence[FeatureReference]
) -> dict[str, npt.NDArray[np.float64]]:
    try:
        counts = series_counts(series, reference)
    except ValueError as e:
        raise ValueError(f"Pod {pod}: {e}") from None
    missing = [f.name for f in reference if f.name not in counts]
    if missing:
        raise ValueError(
            f"Pod {pod} exports no distribution for feature {', '.join(missing)}; "
            "list the features the model takes in spec.features"
        )
    return counts


# -- collection → observation ---------------------------------------------------------------


def window(
    policy: api.DriftPolicy, collected: Collected, windows: Windows, *, now: datetime
) -> Observed:
    """Turn what was collected into the reference and the counts of the last window.

    Pod scrapes go through ``windows`` (keyed by the policy's namespace and name); a
    Prometheus answer is already a window. Missing objects and unusable data become a
    :class:`Problem`, checked in the order a person would fix them.
    """
    model, version = collected.model, collected.version
    observed = Observed(model=model, version=version, runs=collected.runs)
    problem = _missing(policy, collected) or collected.problem
    if problem is not None:
        return _with(observed, problem=problem)
    assert version is not None
    assert collected.reference is not None
    try:
        reference = parse_reference(collected.reference)
    except ValueError as e:
        return _with(
            observed,
            problem=Problem(
                INVALID_REFERENCE, f"The reference statistics of version {version} are invalid: {e}"
            ),
        )
    names = {f.name for f in reference}
    unknown = [n for n in policy.spec.features or () if n not in names]
    if unknown:
        return _with(
            observed,
            problem=Problem(
                INVALID_POLICY,
                f"spec.features names {', '.join(unknown)}, which the reference statistics of "
                f"version {version} do not have",
            ),
        )
    watched = [
        f for f in reference if policy.spec.features is None or f.name in policy.spec.features
    ]
    try:
        if collected.series is not None:
            counts = series_counts(collected.series, watched)
            sources = 0
        else:
            pods = collected.pods or {}
            counts = windows.counts(
                _key(policy),
                version,
                watched,
                window_seconds(policy),
                pods,
                now.timestamp(),
            )
            sources = len(pods)
    except ValueError as e:
        return _with(observed, problem=Problem(SOURCE_MISMATCH, str(e)))
    return Observed(
        model=model,
        version=version,
        reference=reference,
        counts=counts,
        runs=collected.runs,
        sources=sources,
    )


def _with(observed: Observed, *, problem: Problem) -> Observed:
    return Observed(
        model=observed.model, version=observed.version, problem=problem, runs=observed.runs
    )


def _missing(policy: api.DriftPolicy, collected: Collected) -> Problem | None:
    model_name = policy.spec.model_ref.name
    if collected.model is None:
        return Problem(MODEL_NOT_FOUND, f"Model {model_name} does not exist")
    if collected.version is None:
        return Problem(
            NO_PRODUCTION_VERSION,
            f"Model {model_name} has no production version yet and spec.version is not set",
        )
    if collected.model_version is None:
        name = naming.model_version_name(model_name, collected.version)
        return Problem(VERSION_NOT_FOUND, f"ModelVersion {name} does not exist")
    if collected.model_version.spec.reference_stats is None:
        return Problem(
            NO_REFERENCE_STATISTICS,
            f"Version {collected.version} of Model {model_name} has no reference statistics "
            "(spec.referenceStats) to compare live data with",
        )
    return None


# -- the decision ---------------------------------------------------------------------------


def reconcile(policy: api.DriftPolicy, observed: Observed, *, now: datetime) -> Decision:
    """Decide the status, events and retrain run for one evaluation of ``policy``.

    With a problem only ``Ready`` changes (False, with the problem's reason); the last
    verdict, its counters and DriftDetected stay, so an unreachable source neither raises nor
    clears an alert. Otherwise the window is evaluated; a policy the reference cannot satisfy
    (a method that does not fit a feature, say) is the problem ``InvalidPolicy``.
    """
    now = now.astimezone(UTC).replace(microsecond=0)
    interval = interval_seconds(policy)
    if observed.problem is not None:
        return _blocked(policy, observed.problem, observed.version, now, interval)
    assert observed.reference is not None
    assert observed.counts is not None
    assert observed.version is not None
    assert observed.model is not None
    try:
        evaluation = evaluate(observed.reference, observed.counts, drift_config(policy.spec))
    except ValueError as e:
        return _blocked(policy, Problem(INVALID_POLICY, str(e)), observed.version, now, interval)
    return _evaluated(policy, observed, evaluation, now, interval)


def _evaluated(
    policy: api.DriftPolicy,
    observed: Observed,
    evaluation: Evaluation,
    now: datetime,
    interval: float,
) -> Decision:
    assert observed.version is not None
    assert observed.model is not None
    spec, status = policy.spec, policy.status
    version, gen = observed.version, policy.metadata.generation or 0
    same_version = status.version == version
    previous = conditions.find_condition(status.conditions, "DriftDetected")
    was_firing = same_version and previous is not None and previous.status is _TRUE
    established = same_version and previous is not None and previous.status is not _UNKNOWN
    drifted = (status.consecutive_drifted or 0) if same_version else 0
    clean = (status.consecutive_clean or 0) if same_version else 0

    verdict = evaluation.verdict
    state = Hysteresis(was_firing, clean if was_firing else drifted).step(
        verdict, spec.consecutive_windows
    )
    if verdict is True:
        drifted, clean = drifted + 1, 0
    elif verdict is False:
        drifted, clean = 0, clean + 1
    firing = state.firing

    new = status.model_copy(deep=True)
    new.observed_generation = gen
    new.version = version
    new.last_evaluation = now
    new.samples = evaluation.samples
    new.consecutive_drifted = drifted
    new.consecutive_clean = clean
    cleared: list[str] = []
    if evaluation.insufficient_data:
        new.dataset_drift = new.drifted_share = new.top_features = None
        cleared = ["datasetDrift", "driftedShare", "topFeatures"]
    else:
        new.dataset_drift = evaluation.dataset_drift
        new.drifted_share = _round(evaluation.drifted_share)
        new.top_features = [_feature_status(f) for f in top_features(evaluation)]

    model_name = spec.model_ref.name
    summary = _summary(evaluation, version, observed.sources)
    put = _conditions_setter(new, gen, now)
    put("Ready", _TRUE, "Evaluated", summary)
    if evaluation.insufficient_data:
        put(
            "InsufficientData",
            _TRUE,
            "TooFewSamples",
            f"The last window had {evaluation.samples} predictions, fewer than "
            f"spec.minSamples ({evaluation.min_samples}); the drift verdict is unchanged",
        )
    else:
        put("InsufficientData", _FALSE, "EnoughSamples", f"{evaluation.samples} predictions")
    needed = spec.consecutive_windows
    if firing:
        put(
            "DriftDetected",
            _TRUE,
            "Drifted",
            _firing_message(version, verdict, drifted, clean, needed, evaluation),
        )
    elif established or clean >= needed:
        put("DriftDetected", _FALSE, "NoDrift", _quiet_message(version, drifted, clean, needed))
    else:
        put(
            "DriftDetected",
            _UNKNOWN,
            "AwaitingVerdict",
            f"Version {version}: {drifted} drifted and {clean} clean windows in a row so far; "
            f"{needed} in a row decide",
        )

    events: list[EventSpec] = []
    if status.version is not None and not same_version:
        events.append(
            EventSpec(
                "Normal",
                "VersionChanged",
                f"Watching version {version} of Model {model_name} (was {status.version})",
            )
        )
    if firing and not was_firing:
        events.append(
            EventSpec(
                "Warning",
                "DriftDetected",
                f"Version {version} of Model {model_name} drifted in {needed} windows in a row: "
                f"{_drifted_count(evaluation)}",
            )
        )
    elif was_firing and not firing:
        events.append(
            EventSpec(
                "Normal",
                "DriftResolved",
                f"Version {version} of Model {model_name} was clean in {needed} windows in a row",
            )
        )

    create: tuple[Obj, ...] = ()
    retrain_name: str | None = None
    if firing and verdict is not None:
        run, why_not = decide_retrain(
            policy,
            observed.model,
            observed.runs,
            evaluation,
            version,
            now,
            refused=observed.retrain_refused,
        )
        if run is not None:
            create = (run,)
            retrain_name = run["metadata"]["name"]
            new.last_retrain = api.LastRetrain(time=now, training_run=retrain_name)
            events.append(
                EventSpec(
                    "Normal",
                    "RetrainStarted",
                    f"Created TrainingRun {retrain_name} to retrain Model {model_name}",
                )
            )
        elif why_not is not None and not was_firing:
            # Said once, when drift starts: repeating it every window would flood the events.
            events.append(EventSpec("Warning", "RetrainSkipped", why_not))

    body = new.to_dict()
    body.update(dict.fromkeys(cleared))
    return Decision(
        plan=Plan(
            create=create,
            status=(StatusPatch(_ref(policy), body),),
            events=tuple(events),
            requeue_after=interval,
        ),
        version=version,
        evaluation=evaluation,
        firing=firing,
        problem=None,
        retrain_run=retrain_name,
    )


def _blocked(
    policy: api.DriftPolicy,
    problem: Problem,
    version: str | None,
    now: datetime,
    interval: float,
) -> Decision:
    status, gen = policy.status, policy.metadata.generation or 0
    new = status.model_copy(deep=True)
    new.observed_generation = gen
    previous = conditions.find_condition(status.conditions, "Ready")
    put = _conditions_setter(new, gen, now)
    put("Ready", _FALSE, problem.reason, problem.message)
    for condition_type in ("DriftDetected", "InsufficientData"):
        existing = conditions.find_condition(new.conditions, condition_type)
        if existing is None:
            put(condition_type, _UNKNOWN, "NotEvaluated", "No window has been evaluated yet")
        else:
            # Kept as they are, but computed against this generation's spec now.
            put(condition_type, existing.status, existing.reason, existing.message)
    events: tuple[EventSpec, ...] = ()
    if previous is None or previous.reason != problem.reason:
        events = (EventSpec("Warning", problem.reason, problem.message),)
    firing = status.version == version and conditions.is_condition_true(
        status.conditions, "DriftDetected"
    )
    return Decision(
        plan=Plan(
            status=(StatusPatch(_ref(policy), new.to_dict()),),
            events=events,
            requeue_after=interval,
        ),
        version=version,
        evaluation=None,
        firing=firing,
        problem=problem,
    )


_Put = Callable[[str, api.ConditionStatus, str, str], None]


def _conditions_setter(status: api.DriftPolicyStatus, gen: int, now: datetime) -> _Put:
    """A function that sets one condition of ``status`` (in place) for this reconcile."""

    def put(condition_type: str, value: api.ConditionStatus, reason: str, message: str) -> None:
        status.conditions = conditions.set_condition(
            status.conditions,
            condition_type,
            value,
            reason=reason,
            message=message,
            observed_generation=gen,
            now=now,
        )

    return put


def _summary(evaluation: Evaluation, version: str, sources: int) -> str:
    pods = f" from {sources} pod{'s' if sources != 1 else ''}" if sources else ""
    head = (
        f"Compared {evaluation.samples} predictions{pods} of version {version} with its "
        "training data"
    )
    if evaluation.insufficient_data:
        return f"{head}: too few for a verdict (spec.minSamples {evaluation.min_samples})"
    return f"{head}: {_drifted_count(evaluation)}"


def _drifted_count(evaluation: Evaluation) -> str:
    drifted = evaluation.drifted_features
    text = f"{len(drifted)} of {len(evaluation.features)} features drifted"
    if drifted:
        names = [f.name for f in sorted(drifted, key=severity, reverse=True)]
        shown = ", ".join(names[:5])
        text += f" ({shown}{f' and {len(names) - 5} more' if len(names) > 5 else ''})"
    return text


def _firing_message(
    version: str,
    verdict: bool | None,
    drifted: int,
    clean: int,
    needed: int,
    evaluation: Evaluation,
) -> str:
    if verdict is True:
        return (
            f"Version {version} drifted in {drifted} windows in a row; last window: "
            f"{_drifted_count(evaluation)}"
        )
    if verdict is False:
        return (
            f"Version {version} has drifted; {clean} of the {needed} clean windows in a row "
            "needed to clear so far"
        )
    return f"Version {version} has drifted; the last window had too few predictions to tell"


def _quiet_message(version: str, drifted: int, clean: int, needed: int) -> str:
    if drifted:
        return (
            f"Version {version} drifted in {drifted} of the {needed} windows in a row needed "
            "to fire"
        )
    return f"Version {version} was clean in the last {clean} windows with a verdict"


# -- top features ---------------------------------------------------------------------------


def severity(feature: FeatureDrift) -> float:
    """How far a feature is past its threshold: above 1 means drifted.

    ``score / threshold`` for distances, ``threshold / p`` (corrected p) for tests, so both
    grow with the evidence of drift and features of different methods can be ranked together.
    """
    if feature.adjusted_p_value is None:
        return feature.score / feature.threshold
    return feature.threshold / max(feature.adjusted_p_value, 1e-300)


def top_features(evaluation: Evaluation) -> list[FeatureDrift]:
    """The evaluation's features, worst first, at most :data:`TOP_FEATURES`: drifted ones
    first (a feature drifted by its missing share alone may have a score on the clean side),
    then by :func:`severity`, then name."""
    ranked = sorted(evaluation.features, key=lambda f: (not f.drifted, -severity(f), f.name))
    return ranked[:TOP_FEATURES]


def reported_score(feature: FeatureDrift) -> float:
    """The number compared with the threshold: the distance, or the corrected p-value."""
    return feature.score if feature.adjusted_p_value is None else feature.adjusted_p_value


def _feature_status(feature: FeatureDrift) -> api.FeatureDrift:
    return api.FeatureDrift(
        name=feature.name,
        method=api.DriftMethod(feature.method),
        score=_round(reported_score(feature)),
        threshold=feature.threshold,
        drifted=feature.drifted,
        missing_share=_share_if_any(feature.missing_share, feature),
        reference_missing_share=_share_if_any(feature.reference_missing_share, feature),
    )


def _share_if_any(share: float, feature: FeatureDrift) -> float | None:
    """A missing share for the status, left out when neither side has missing values."""
    if feature.missing_share == 0 and feature.reference_missing_share == 0:
        return None
    return _round(share)


def _round(value: float) -> float:
    # Four significant digits: readable in kubectl, and p-values keep their magnitude.
    return float(f"{value:.4g}")


# -- retraining -----------------------------------------------------------------------------


def decide_retrain(
    policy: api.DriftPolicy,
    model: api.Model,
    runs: Sequence[api.TrainingRun],
    evaluation: Evaluation,
    version: str,
    now: datetime,
    *,
    refused: str | None = None,
) -> tuple[Obj | None, str | None]:
    """Whether a drifting policy starts a retrain now.

    Returns the TrainingRun to create, or None and why not (None when retraining is simply
    not configured). ``runs`` are the TrainingRuns labelled with this policy; the caller has
    established that drift is firing. ``refused``: why the training data or image may not be
    used (a Quarantine reaches it).
    """
    action = policy.spec.actions.retrain
    if action is None or not action.enabled:
        return None, None
    model_name = policy.spec.model_ref.name
    if model.spec.training is None:
        return None, (
            f"Not retraining Model {model_name}: it has no spec.training template to create "
            "a TrainingRun from"
        )
    if refused is not None:
        return None, f"Not retraining Model {model_name}: {refused}"
    unfinished = sorted(_name(r) for r in runs if r.status.phase not in _FINISHED)
    if len(unfinished) >= action.max_concurrent:
        return None, (
            f"Not retraining Model {model_name}: {len(unfinished)} retrain runs are unfinished "
            f"({', '.join(unfinished)}), spec.actions.retrain.maxConcurrent is "
            f"{action.max_concurrent}"
        )
    last = last_retrain(policy, runs)
    cooldown = api.parse_duration(action.cooldown)
    if last is not None and now < last + cooldown:
        return None, (
            f"Not retraining Model {model_name} until "
            f"{(last + cooldown).isoformat().replace('+00:00', 'Z')}: the last retrain started "
            f"at {last.isoformat().replace('+00:00', 'Z')} (cooldown {action.cooldown})"
        )
    return build_retrain_run(policy, model, evaluation, version, now), None


def last_retrain(policy: api.DriftPolicy, runs: Sequence[api.TrainingRun]) -> datetime | None:
    """When this policy last started a retrain: the later of ``status.lastRetrain.time`` and
    the newest of ``runs``' creation times."""
    times = [r.metadata.creation_timestamp for r in runs if r.metadata.creation_timestamp]
    if policy.status.last_retrain is not None:
        times.append(policy.status.last_retrain.time)
    return max(times) if times else None


def build_retrain_run(
    policy: api.DriftPolicy,
    model: api.Model,
    evaluation: Evaluation,
    version: str,
    now: datetime,
) -> Obj:
    """The TrainingRun a retrain starts: the Model's ``spec.training`` with its ``modelRef``,
    the drift evidence in ``spec.trigger``, labelled with the policy (which counts it for
    ``maxConcurrent``) and owned by the Model, so it goes when the Model goes."""
    assert model.spec.training is not None
    model_name = policy.spec.model_ref.name
    policy_name = _name(policy)
    drifted = [f.name for f in sorted(evaluation.drifted_features, key=severity, reverse=True)]
    spec = model.spec.training.to_dict()
    spec["modelRef"] = {"name": model_name}
    spec["trigger"] = {
        "driftPolicy": policy_name,
        "reason": f"Dataset drift of version {version}: {_drifted_count(evaluation)}"[:1024],
        "evidence": {
            "version": version,
            "driftedShare": f"{evaluation.drifted_share:.4g}",
            "samples": str(evaluation.samples),
            "driftedFeatures": ",".join(drifted)[:256],
            "window": policy.spec.window,
        },
    }
    return {
        "apiVersion": api.API_VERSION,
        "kind": "TrainingRun",
        "metadata": {
            "name": naming.retrain_run_name(model_name, now),
            "namespace": policy.metadata.namespace,
            "labels": builders.child_labels(model_name, driftpolicy=policy_name),
            "ownerReferences": [builders.owner_reference(model, controller=False)],
        },
        "spec": spec,
    }


def _key(policy: api.DriftPolicy) -> tuple[str, str]:
    return (policy.metadata.namespace or "", _name(policy))


def _name(obj: api.DriftPolicy | api.TrainingRun) -> str:
    assert obj.metadata.name is not None
    return obj.metadata.name


def _ref(policy: api.DriftPolicy) -> ObjectRef:
    return ObjectRef(
        policy.api_version, policy.kind, policy.metadata.namespace or "", _name(policy)
    )
