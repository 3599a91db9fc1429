"""Drift statistics, windowing and hysteresis: pure functions over histogram counts.

The operator's drift loop uses this package in four steps, all without I/O or clocks:

1. :func:`parse_reference` reads a model version's ``reference.json`` into
   :class:`FeatureReference` objects (bin edges or categories, and counts).
2. A :class:`Windower` takes the per-pod histogram counters of each scrape
   (:class:`PodScrape`) and gives the counts observed in the last window.
3. :func:`evaluate` judges those counts against the reference under a :class:`DriftConfig`
   and returns an :class:`Evaluation` with per-feature :class:`FeatureDrift` verdicts.
4. :class:`Hysteresis` turns successive dataset verdicts into the DriftDetected state.

The statistics themselves (:mod:`modelops.core.drift.stats`) work on count arrays of shape
``(..., n_buckets)``, and :func:`bin_counts` bins raw values the way the serving histograms
do. Semantics, formulas and the sources of every default are in ``docs/drift.md``.
"""

from modelops.core.drift.binning import bin_counts
from modelops.core.drift.counters import window_counts
from modelops.core.drift.evaluate import (
    DEFAULT_MIN_SAMPLES,
    MISSING_SHARE_MIN_CHANGE,
    WINDOW_EXTRAS,
    DriftConfig,
    Evaluation,
    FeatureDrift,
    FeatureOverride,
    FeatureReference,
    evaluate,
    missing_share_drifted,
    parse_reference,
)
from modelops.core.drift.hysteresis import Hysteresis
from modelops.core.drift.selection import (
    DEFAULT_CORRECTION,
    DEFAULT_DATASET_DRIFT_SHARE,
    DEFAULT_THRESHOLDS,
    Correction,
    FeatureKind,
    Method,
    MethodChoice,
    adjust_p_values,
    select_method,
)
from modelops.core.drift.window import PodScrape, Windower, buckets_from_le

__all__ = [
    "DEFAULT_CORRECTION",
    "DEFAULT_DATASET_DRIFT_SHARE",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_THRESHOLDS",
    "MISSING_SHARE_MIN_CHANGE",
    "WINDOW_EXTRAS",
    "Correction",
    "DriftConfig",
    "Evaluation",
    "FeatureDrift",
    "FeatureKind",
    "FeatureOverride",
    "FeatureReference",
    "Hysteresis",
    "Method",
    "MethodChoice",
    "PodScrape",
    "Windower",
    "adjust_p_values",
    "bin_counts",
    "buckets_from_le",
    "evaluate",
    "missing_share_drifted",
    "parse_reference",
    "select_method",
    "window_counts",
]
