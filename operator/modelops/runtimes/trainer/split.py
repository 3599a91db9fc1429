"""The deterministic train/test split."""

import numpy as np
from numpy.typing import NDArray

from modelops.runtimes.trainer.errors import DatasetRefusedError

IndexArray = NDArray[np.intp]


def split(
    labels: NDArray[np.str_] | None, rows: int, test_fraction: float, seed: int
) -> tuple[IndexArray, IndexArray]:
    """Split row indices into (train, test), both ascending.

    With `labels` (classification) the split is stratified: each class holds out
    `round(test_fraction * class size)` of its rows, but always keeps at least one for
    training. Without (regression) `round(test_fraction * rows)` rows are held out, at least
    one, leaving at least one for training. Which rows are held out depends only on the data
    order, the labels, `test_fraction` and `seed`.

    Raises `DatasetRefusedError` (rule `split`) when either side would be empty.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(rows)
        held = min(max(_rounded(test_fraction * rows), 1), rows - 1)
        test = order[:held]
    else:
        # Classes are visited in sorted order so that the random stream, and thus the split,
        # does not depend on which class happens to come first in the file.
        parts = []
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            shuffled = rng.permutation(members)
            parts.append(shuffled[: min(_rounded(test_fraction * len(members)), len(members) - 1)])
        test = np.concatenate(parts)
    test = np.sort(test).astype(np.intp)
    train = np.setdiff1d(np.arange(rows, dtype=np.intp), test, assume_unique=True)
    if len(test) == 0 or len(train) == 0:
        raise DatasetRefusedError.one(
            f"{rows} rows are too few to split at test fraction {test_fraction}", "split"
        )
    return train, test


def _rounded(value: float) -> int:
    """Round half up: Python's `round` rounds half to even, which surprises in a split size."""
    return int(np.floor(value + 0.5))
