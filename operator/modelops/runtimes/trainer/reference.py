"""Reference statistics of the training data: the input of drift detection (`reference.json`).

They are computed over the training split (the data the model actually learnt from) and over
the features only, never the target, which is not an input at serving time.
"""

import numpy as np

from modelops.api.artifact import (
    CategoricalReference,
    FeatureReference,
    LinearModel,
    NumericReference,
    ReferenceStats,
)
from modelops.runtimes.trainer.validation import MISSING_CATEGORY, FloatArray, Table

EXACT_VALUES = 50
"""A numeric feature with at most this many distinct values (or `bins`, if larger) gets one
bucket per value: its exact value frequencies, like a category's, so tests on it match the
raw-data ones (measured in `benchmarks/drift/fidelity.md`: 40 bins left KS on a 32-valued iris
column short of the raw test; a bucket per value is exact). It bounds such a feature to 52
buckets, whose series the server doubles with its at-value and below-value counters."""


def reference_stats(model: LinearModel, train: Table, bins: int) -> ReferenceStats:
    """Per-feature statistics of `train`, in the model's feature order.

    A numeric feature gets :func:`numeric_reference`. A categorical feature gets the count of
    each of the model's categories and of missing values (unseen values are not counted).
    """
    features: list[FeatureReference] = []
    for feature in model.features:
        if feature.categories is None:
            features.append(numeric_reference(feature.name, train.numeric[feature.name], bins))
        else:
            texts = train.categorical[feature.name]
            features.append(
                CategoricalReference(
                    name=feature.name,
                    categories=feature.categories,
                    counts=[int(np.count_nonzero(texts == c)) for c in feature.categories],
                    missing=int(np.count_nonzero(texts == MISSING_CATEGORY)),
                )
            )
    return ReferenceStats(rows=train.rows, features=features)


def numeric_reference(name: str, values: FloatArray, bins: int) -> NumericReference:
    """The reference of one numeric column: :func:`histogram` plus its summary statistics.

    A bucket holding a single distinct value gets that exact value as its mean, so a feature
    with at most `bins` distinct values lists its values exactly in `binMeans` (the server
    counts live values equal to them; see `docs/drift.md`).
    """
    ordered = np.sort(values[~np.isnan(values)])
    edges, counts, sums = _histogram(ordered, bins)
    ends = np.cumsum(counts)
    means: list[float | None] = []
    for i, (total, count) in enumerate(zip(sums, counts, strict=True)):
        if count == 0:
            means.append(None)
            continue
        lowest, highest = ordered[ends[i] - count], ordered[ends[i] - 1]
        if lowest == highest:
            means.append(float(lowest))
            continue
        # Float rounding can put the mean of equal values a hair outside their bucket.
        lower = edges[i - 1] if 0 < i <= len(edges) else -np.inf
        upper = edges[i] if i < len(edges) else np.inf
        means.append(float(min(max(total / count, np.nextafter(lower, np.inf)), upper)))
    distinct = int(np.count_nonzero(np.diff(ordered))) + 1 if ordered.size else 0
    return NumericReference(
        name=name,
        bin_edges=edges,
        counts=counts,
        missing=int(values.size - ordered.size),
        bin_means=means,
        std=float(np.std(ordered)) if ordered.size else None,
        distinct=distinct,
    )


def histogram(values: FloatArray, bins: int) -> tuple[list[float], list[int]]:
    """Bin edges of the present values and the bucket counts of those values.

    Edges never sit on a training value, so a small shift of data that piles up on a few values
    (integers, rounded measurements) moves no value across an edge unless it moves past the
    next value: each edge is the midpoint between two neighbouring distinct values.

    - With at most `max(bins, EXACT_VALUES)` distinct values, every value gets its own bucket
      (the edges are the midpoints between consecutive values), so a discrete feature keeps
      its exact frequencies.
    - Otherwise the inner edges follow the `bins`-quantiles (linear interpolation): each
      quantile is moved to the midpoint between the largest value at or below it and the next
      distinct value (repeated edges dropped).
    - The outer edges lie half a neighbouring gap beyond the minimum and the maximum (half
      of `max(1, |value|)` for a constant column). The first and last buckets (`<= edges[0]`,
      `> edges[-1]`) are then empty in the reference and count live values below and above
      the training range.

    `counts` has `len(edges) + 1` entries with Prometheus's `le` semantics. Edges are rounded
    to 12 significant digits when that keeps them strictly between the same two values, which
    keeps the `le` labels of the serving histograms readable. One sort of the column does all
    the work.
    """
    edges, counts, _ = _histogram(np.sort(values[~np.isnan(values)]), bins)
    return edges, counts


def _histogram(ordered: FloatArray, bins: int) -> tuple[list[float], list[int], list[float]]:
    """:func:`histogram` of sorted present values, plus the sum of the values in each bucket."""
    n = ordered.size
    if n == 0:
        return [], [0], [0.0]
    first, last = float(ordered[0]), float(ordered[-1])
    if first == last:
        width = max(1.0, abs(first))
        lower_values = np.array([first - width, first])
        upper_values = np.array([first, first + width])
    else:
        changes = np.flatnonzero(np.diff(ordered)) + 1  # index of each new distinct value
        if changes.size + 1 <= max(bins, EXACT_VALUES):
            # Every neighbouring pair of distinct values gets an edge between them.
            below, above = ordered[changes - 1], ordered[changes]
        else:
            # numpy's default (linear) quantiles, from the sorted values directly.
            position = np.linspace(0.0, 1.0, bins + 1)[1:-1] * (n - 1)
            low = np.floor(position).astype(np.intp)
            high = np.minimum(low + 1, n - 1)
            quantiles = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
            # The first value above each quantile and the value just before it.
            index = np.unique(np.searchsorted(ordered, quantiles, side="right"))
            index = index[(index > 0) & (index < n)]
            below, above = ordered[index - 1], ordered[index]
        first_gap = float(ordered[changes[0]]) - first
        last_gap = last - float(ordered[changes[-1] - 1])
        lower_values = np.concatenate(([first - first_gap], below, [last]))
        upper_values = np.concatenate(([first], above, [last + last_gap]))
    midpoints = lower_values + (upper_values - lower_values) / 2.0
    rounded = np.array([float(f"{m:.12g}") for m in midpoints])
    keep = (rounded > lower_values) & (rounded < upper_values)
    edges = np.where(keep, rounded, midpoints)
    # side="right" counts the values at or below each edge: Prometheus's `le` semantics.
    at_or_below = np.searchsorted(ordered, edges, side="right")
    bounds = np.concatenate(([0], at_or_below, [n]))
    cumulative = np.concatenate(([0.0], np.cumsum(ordered)))
    counts = np.diff(bounds)
    sums = cumulative[bounds[1:]] - cumulative[bounds[:-1]]
    return [float(e) for e in edges], [int(c) for c in counts], [float(t) for t in sums]
