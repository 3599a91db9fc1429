"""Contender "scipy loop": the plain per-feature loop over raw columns (project venv).

For each feature, on the raw reference and current columns:

- ``scipy.stats.ks_2samp`` (default ``method='auto'``): drifted when the Bonferroni-corrected
  p-value ``min(1, p * n_features) <= 0.05``, like ours (column ``scipy-ks``); the same p-values
  uncorrected, ``p <= 0.05``, as Evidently's K-S test would judge them (``scipy-ks-plain``);
- ``scipy.stats.wasserstein_distance`` divided by ``max(std(reference), 0.001)`` (Evidently's
  normed Wasserstein), drifted at ``>= 0.1`` (``scipy-wasserstein``);
- ``scipy.spatial.distance.jensenshannon`` (natural log) of the two histograms over the
  reference deciles (``np.quantile``; ``le`` buckets with open outer buckets, as ours), drifted
  at ``>= 0.1`` (``scipy-js``).
"""

import argparse
from typing import Any, NamedTuple

import numpy as np
import scipy
from dataset import FloatArray, Meta, load
from measure import Breakdown, measured_main
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance

ALPHA = 0.05
DISTANCE_THRESHOLD = 0.1
STD_FLOOR = 0.001
QUANTILES = np.linspace(0.0, 1.0, 11)


class Inputs(NamedTuple):
    """The loaded arrays and their description."""

    reference: FloatArray
    current: FloatArray
    meta: Meta


def _histogram(values: FloatArray, edges: FloatArray) -> FloatArray:
    """Counts per ``le`` bucket: ``v <= e[0]``, ``(e[i-1], e[i]]``, ``v > e[-1]``."""
    buckets = np.searchsorted(edges, values, side="left")
    return np.bincount(buckets, minlength=edges.size + 1).astype(np.float64)


def loop(reference: FloatArray, current: FloatArray, breakdown: Breakdown) -> dict[str, Any]:
    """The three statistics for every column; returns the verdict columns."""
    features = reference.shape[1]
    p_values, ks_d, wasserstein, js = [], [], [], []
    for j in range(features):
        ref, cur = reference[:, j], current[:, j]
        with breakdown.phase("ks_2samp"):
            test = ks_2samp(ref, cur)
            p_values.append(float(test.pvalue))
            ks_d.append(float(test.statistic))
        with breakdown.phase("wasserstein_distance"):
            norm = max(float(np.std(ref)), STD_FLOOR)
            wasserstein.append(float(wasserstein_distance(ref, cur)) / norm)
        with breakdown.phase("jensenshannon"):
            edges = np.quantile(ref, QUANTILES)
            js.append(float(jensenshannon(_histogram(ref, edges), _histogram(cur, edges))))
    corrected = [min(1.0, p * features) for p in p_values]
    return {
        "scipy-ks": {
            "verdicts": [p <= ALPHA for p in corrected],
            "scores": corrected,
            "statistics": ks_d,
            "methods": ["ks"] * features,
        },
        "scipy-ks-plain": {
            "verdicts": [p <= ALPHA for p in p_values],
            "scores": p_values,
            "statistics": ks_d,
            "methods": ["ks"] * features,
        },
        "scipy-wasserstein": {
            "verdicts": [w >= DISTANCE_THRESHOLD for w in wasserstein],
            "scores": wasserstein,
            "methods": ["wasserstein"] * features,
        },
        "scipy-js": {
            "verdicts": [d >= DISTANCE_THRESHOLD for d in js],
            "scores": js,
            "methods": ["js"] * features,
        },
    }


def prepare(args: argparse.Namespace) -> Inputs:
    """Load the data and run the loop once on a small slice."""
    reference, current, meta = load(args.data)
    rows, width = args.warmup_rows, 2
    loop(reference[:rows, :width], current[:rows, :width], Breakdown())
    return Inputs(reference, current, meta)


def run(inputs: Inputs, args: argparse.Namespace, breakdown: Breakdown) -> dict[str, Any]:
    """The measured work."""
    return {"columns": loop(inputs.reference, inputs.current, breakdown)}


def versions() -> dict[str, str]:
    """The packages doing the work."""
    return {"scipy": scipy.__version__, "numpy": np.__version__}


if __name__ == "__main__":
    measured_main(__doc__ or "", prepare, run, versions)
