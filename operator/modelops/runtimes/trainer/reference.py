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
from modelops.runtimes.trainer.validation import FloatArray, Table


def reference_stats(model: LinearModel, train: Table, bins: int) -> ReferenceStats:
    """Per-feature statistics of `train`, in the model's feature order.

    A numeric feature gets the `bins`-quantiles of its present values as bin edges (the exact
    minimum and maximum, linear interpolation in between rounded to 12 significant digits,
    repeated edges dropped) and the counts of present values per Prometheus-style bucket.
    A categorical feature gets the count of each of the model's categories (missing and unseen
    values are not counted).
    """
    features: list[FeatureReference] = []
    for feature in model.features:
        if feature.categories is None:
            edges, counts = histogram(train.numeric[feature.name], bins)
            features.append(NumericReference(name=feature.name, bin_edges=edges, counts=counts))
        else:
            texts = train.categorical[feature.name]
            features.append(
                CategoricalReference(
                    name=feature.name,
                    categories=feature.categories,
                    counts=[int(np.count_nonzero(texts == c)) for c in feature.categories],
                )
            )
    return ReferenceStats(rows=train.rows, features=features)


def histogram(values: FloatArray, bins: int) -> tuple[list[float], list[int]]:
    """Quantile bin edges of the present values, and the bucket counts of those values.

    `counts` has `len(edges) + 1` entries: values `<= edges[0]`, then one per interval
    `(edges[i-1], edges[i]]`, then values `> edges[-1]` (always 0 here, since the last edge is
    the maximum; live data fills it).
    """
    present = values[~np.isnan(values)]
    if present.size == 0:
        return [], [0]
    quantiles = np.quantile(present, np.linspace(0.0, 1.0, bins + 1))
    # Twelve significant digits remove interpolation noise (5.2700000000000005 becomes 5.27),
    # which keeps the `le` labels of the serving histograms readable. The outer edges stay
    # the exact minimum and maximum, and the clip keeps rounded inner edges between them, so
    # every training value stays inside.
    lowest, highest = quantiles[0], quantiles[-1]
    inner = np.clip([float(f"{q:.12g}") for q in quantiles[1:-1]], lowest, highest)
    edges = np.unique(np.concatenate([[lowest], inner, [highest]]))
    # side="left" puts a value equal to an edge into the bucket that edge closes, which is
    # Prometheus's `le` (less than or equal) semantics.
    buckets = np.searchsorted(edges, present, side="left")
    counts = np.bincount(buckets, minlength=len(edges) + 1)
    return [float(edge) for edge in edges], [int(count) for count in counts]
