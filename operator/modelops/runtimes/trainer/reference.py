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
    """The reference of one numeric column: :func:`histogram` plus its summary statistics."""
    present = values[~np.isnan(values)]
    edges, counts = histogram(present, bins)
    buckets = np.searchsorted(edges, present, side="left")
    sums = np.bincount(buckets, weights=present, minlength=len(counts))
    means: list[float | None] = []
    for i, (total, count) in enumerate(zip(sums.tolist(), counts, strict=True)):
        if count == 0:
            means.append(None)
            continue
        # Float rounding can put the mean of equal values a hair outside their bucket.
        lower = edges[i - 1] if 0 < i <= len(edges) else -np.inf
        upper = edges[i] if i < len(edges) else np.inf
        means.append(float(min(max(total / count, np.nextafter(lower, np.inf)), upper)))
    return NumericReference(
        name=name,
        bin_edges=edges,
        counts=counts,
        missing=int(values.size - present.size),
        bin_means=means,
        std=float(np.std(present)) if present.size else None,
        distinct=int(np.unique(present).size),
    )


def histogram(values: FloatArray, bins: int) -> tuple[list[float], list[int]]:
    """Bin edges of the present values and the bucket counts of those values.

    Edges never sit on a training value, so a small shift of data that piles up on a few values
    (integers, rounded measurements) moves no value across an edge unless it moves past the
    next value: each edge is the midpoint between two neighbouring distinct values.

    - With at most `bins` distinct values, every value gets its own bucket (the edges are the
      midpoints between consecutive values), so a discrete feature keeps its exact frequencies.
    - Otherwise the inner edges follow the `bins`-quantiles: each quantile is moved to the
      midpoint between the largest value at or below it and the next distinct value (repeated
      edges dropped).
    - The outer edges lie half a neighbouring gap beyond the minimum and the maximum (half
      of `max(1, |value|)` for a constant column). The first and last buckets (`<= edges[0]`,
      `> edges[-1]`) are then empty in the reference and count live values below and above
      the training range.

    `counts` has `len(edges) + 1` entries with Prometheus's `le` semantics. Edges are rounded
    to 12 significant digits when that keeps them strictly between the same two values, which
    keeps the `le` labels of the serving histograms readable.
    """
    present = values[~np.isnan(values)]
    if present.size == 0:
        return [], [0]
    distinct = np.unique(present)
    if distinct.size == 1:
        value, width = float(distinct[0]), max(1.0, abs(float(distinct[0])))
        lower_values, upper_values = (
            np.array([value - width, value]),
            np.array([value, value + width]),
        )
    else:
        if distinct.size <= bins:
            below = np.arange(distinct.size - 1)
        else:
            quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
            index = np.searchsorted(distinct, quantiles, side="right") - 1
            below = np.unique(np.clip(index, 0, distinct.size - 2))
        first_gap = distinct[1] - distinct[0]
        last_gap = distinct[-1] - distinct[-2]
        lower_values = np.concatenate(([distinct[0] - first_gap], distinct[below], [distinct[-1]]))
        upper_values = np.concatenate(
            ([distinct[0]], distinct[below + 1], [distinct[-1] + last_gap])
        )
    midpoints = lower_values + (upper_values - lower_values) / 2.0
    rounded = np.array([float(f"{m:.12g}") for m in midpoints])
    keep = (rounded > lower_values) & (rounded < upper_values)
    edges = np.where(keep, rounded, midpoints)
    # side="left" puts a value equal to an edge into the bucket that edge closes, which is
    # Prometheus's `le` (less than or equal) semantics.
    buckets = np.searchsorted(edges, present, side="left")
    counts = np.bincount(buckets, minlength=len(edges) + 1)
    return [float(edge) for edge in edges], [int(count) for count in counts]
