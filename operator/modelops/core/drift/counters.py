"""Raw numeric values → the full window vector the model server's counters give a feature.

:func:`window_counts` is the batch equivalent of the server's per-feature counters (see
``docs/drift.md``): the ``le`` bucket counts of :func:`~modelops.core.drift.bin_counts`
followed by the extra counters of :data:`~modelops.core.drift.WINDOW_EXTRAS` — missing
values, the distances beyond the outer edges and the offset above the first edge, then for a
feature with few distinct values the per-bucket counts of values equal to and below the
training value.
Tests, benchmarks and offline comparisons use it to go through the production representation
without a server.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from modelops.core.drift.binning import bin_counts
from modelops.core.drift.evaluate import FeatureReference

_BLOCK_ROWS = 4096


def window_counts(
    values: npt.ArrayLike, references: Sequence[FeatureReference]
) -> dict[str, npt.NDArray[np.float64]]:
    """Window vectors of the columns of ``values`` (``(n_rows, n_features)``), one per
    numeric reference, in column order. NaN is missing; infinite values count in their bucket
    but add no distance or offset, as on the server."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != len(references):
        raise ValueError(f"values must have one column per reference, got shape {array.shape}")
    edges = []
    for feature in references:
        if feature.kind != "numeric" or feature.edges is None or feature.edges.size == 0:
            raise ValueError(f"Feature {feature.name} has no bin edges to count values with")
        edges.append(feature.edges)
    counts = bin_counts(array, edges)
    first = np.array([e[0] for e in edges])
    last = np.array([e[-1] for e in edges])
    missing = np.zeros(len(edges))
    below = np.zeros(len(edges))
    above = np.zeros(len(edges))
    offset = np.zeros(len(edges))
    with np.errstate(invalid="ignore"):
        for start in range(0, array.shape[0], _BLOCK_ROWS):
            block = array[start : start + _BLOCK_ROWS]
            missing += np.count_nonzero(np.isnan(block), axis=0)
            if np.isinf(block).any():
                # Infinite values count in their bucket but add no distance.
                block = np.where(np.isinf(block), np.nan, block)
            # fmin/fmax skip NaN, so missing values add nothing either.
            from_first = block - first
            below -= np.sum(np.fmin(from_first, 0.0), axis=0)
            offset += np.sum(np.fmax(from_first, 0.0), axis=0)
            above += np.sum(np.fmax(block - last, 0.0), axis=0)
    result: dict[str, npt.NDArray[np.float64]] = {}
    for j, feature in enumerate(references):
        extras = np.array([missing[j], below[j], above[j], offset[j]])
        vector: list[npt.NDArray[np.float64]] = [counts[j].astype(np.float64), extras]
        if feature.exact:
            assert feature.means is not None
            column = array[:, j]
            column = column[~np.isnan(column)]
            buckets = np.searchsorted(edges[j], column, side="left")
            own = feature.means[buckets]
            size = feature.n_buckets
            vector.append(np.bincount(buckets[column == own], minlength=size).astype(np.float64))
            vector.append(np.bincount(buckets[column < own], minlength=size).astype(np.float64))
        result[feature.name] = np.concatenate(vector)
    return result
