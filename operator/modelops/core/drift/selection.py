"""Which test judges a feature, with what threshold, and how p-values are corrected.

The ``auto`` rule reproduces Evidently's default test choice (``_get_default_stattest`` in
``evidently/legacy/calculations/stattests/registry.py``) on binned data; the thresholds are the
peers' defaults. Sources and deviations are listed in ``docs/drift.md``.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

Method = Literal["psi", "ks", "js", "wasserstein", "chi2"]
"""A concrete drift method. ``auto`` (see :data:`MethodChoice`) resolves to one of these."""

MethodChoice = Literal["auto", "psi", "ks", "js", "wasserstein", "chi2"]
"""What a policy may ask for: a concrete method or ``auto``."""

FeatureKind = Literal["numeric", "categorical"]

Correction = Literal["none", "bonferroni", "fdr"]
"""Multiple-testing correction over the p-value features of one evaluation.

``none`` compares raw p-values (Evidently); ``bonferroni`` multiplies them by the number of
tests (alibi-detect's default); ``fdr`` is Benjamini-Hochberg (alibi-detect's other option).
"""

METHODS: tuple[Method, ...] = get_args(Method)
CORRECTIONS: tuple[Correction, ...] = get_args(Correction)

P_VALUE_METHODS: frozenset[Method] = frozenset({"ks", "chi2"})
"""Methods that produce a p-value and drift when it is at or below the threshold; the others
are distances and drift when the score is at or above it."""

NUMERIC_ONLY_METHODS: frozenset[Method] = frozenset({"ks", "wasserstein"})
"""Methods that need ordered buckets; categories have no order."""

DEFAULT_THRESHOLDS: Mapping[Method, float] = MappingProxyType(
    {
        # Evidently: StatTest.default_threshold = 0.05 (K-S, chi-squared), 0.1 for PSI,
        # Jensen-Shannon and normed Wasserstein; NannyML's constant JS threshold is 0.1 too;
        # alibi-detect's p_val is 0.05.
        "ks": 0.05,
        "chi2": 0.05,
        "psi": 0.1,
        "js": 0.1,
        "wasserstein": 0.1,
    }
)

DEFAULT_CORRECTION: Correction = "none"
"""Evidently's: raw p-values. Measured in ``benchmarks/drift/fidelity.md``: on top of the 50%
share rule, Bonferroni (alibi-detect's default) and Benjamini-Hochberg only removed power —
dataset-level false alarms were zero with every correction — while per-feature false alarms
without a correction stayed below Evidently's."""

DEFAULT_DATASET_DRIFT_SHARE = 0.5
"""Evidently: dataset drift when at least half of the columns drift."""

# Evidently's two cut-offs: above this many reference rows the p-value tests are replaced by
# distances (p-values become significant for negligible differences on large samples,
# evidentlyai/evidently#50), and at most this many distinct values make a numeric column
# "discrete".
LARGE_REFERENCE_ROWS = 1000
FEW_VALUES = 5


def is_p_value_method(method: Method) -> bool:
    """Return True for methods judged by p-value (``p <= threshold``), False for distances."""
    return method in P_VALUE_METHODS


def select_method(
    kind: FeatureKind, reference_counts: npt.ArrayLike, *, distinct: int | None = None
) -> Method:
    """Resolve ``auto`` for one feature from its reference histogram, as Evidently does.

    ===================================  ====================  ====================
    feature                              reference <= 1000     reference > 1000
    ===================================  ====================  ====================
    numeric, more than 5 values          ks                    wasserstein
    numeric, at most 5 values            chi2                  js
    categorical                          chi2                  js
    ===================================  ====================  ====================

    The reference size is the feature's reference count total (missing values are not
    counted, as Evidently drops them before choosing). The number of distinct values of a
    numeric feature is ``distinct``, the exact count the trainer records in ``reference.json``;
    a reference without it (older format) falls back to the number of non-empty reference
    buckets, which undercounts a skewed column whose values pile into few buckets. Unlike
    Evidently, current data does not count, so the method of a feature does not change from
    window to window. Evidently's Z-test for two values is covered by ``chi2``: on two buckets the
    homogeneity test is the same test (``chi2 = z^2``, same p-value).
    """
    counts = np.asarray(reference_counts, dtype=np.float64)
    large = float(counts.sum()) > LARGE_REFERENCE_ROWS
    values = np.count_nonzero(counts) if distinct is None else distinct
    if kind == "numeric" and values > FEW_VALUES:
        return "wasserstein" if large else "ks"
    return "js" if large else "chi2"


def adjust_p_values(p_values: npt.ArrayLike, correction: Correction) -> npt.NDArray[np.float64]:
    """Return p-values adjusted for testing them together, capped at 1.

    ``bonferroni``: ``min(1, p · m)``; comparing it with ``alpha`` is the ``p <= alpha / m``
    rule. ``fdr``: Benjamini-Hochberg adjusted p-values ``min_{j >= i} p_(j) · m / j`` over the
    ascending order (``scipy.stats.false_discovery_control(method='bh')``); comparing them with
    ``q`` selects exactly the hypotheses the step-up procedure rejects at level ``q``. ``m``
    counts only non-NaN p-values; NaN stays NaN.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    valid = ~np.isnan(p)
    m = int(np.count_nonzero(valid))
    adjusted = p.copy()
    if correction == "none" or m == 0:
        return adjusted
    if correction == "bonferroni":
        adjusted[valid] = np.minimum(p[valid] * m, 1.0)
        return adjusted
    if correction == "fdr":
        tested = p[valid]
        order = np.argsort(tested, kind="stable")
        scaled = tested[order] * m / np.arange(1, m + 1)
        # Running minimum from the largest p-value down keeps the adjusted values monotone.
        monotone = np.minimum.accumulate(scaled[::-1])[::-1]
        result = np.empty(m)
        result[order] = np.minimum(monotone, 1.0)
        adjusted[valid] = result
        return adjusted
    raise ValueError(f"Unknown correction {correction!r}; expected one of {CORRECTIONS}")
