"""Contender "ours": modelops.core.drift from raw rows, binning included (project venv).

The measured work is what the operator's pipeline does with these rows, end to end:

1. reference histograms — per feature, ``numeric_reference(name, column, BINS)`` from the
   trainer (quantile edges between values, tails, bin means, std, distinct and missing
   counts), read back with ``parse_reference`` as the operator does;
2. binning the current window — ``window_counts`` over all columns at once: the ``le`` bucket
   counts plus the missing, out-of-range, offset and exact-value counters (the serving pods'
   Prometheus counters do this online);
3. ``evaluate`` three times over the same counts: ``auto`` with the default config (the
   headline verdicts: Evidently's choice, Bonferroni), ``ks`` and ``js``, to set beside the
   scipy loop's three statistics.

All three steps count in the measured time. ``window_s`` is the part the operator repeats for
every window — steps 2 and 3 for ``auto`` only — since a model version's reference histograms
are computed once, at training.
"""

import argparse
from importlib.metadata import version
from typing import Any, NamedTuple

import numpy as np
from dataset import FloatArray, Meta, load
from measure import Breakdown, measured_main

from modelops.api import artifact as contract
from modelops.core.drift import DriftConfig, Evaluation, evaluate, parse_reference, window_counts
from modelops.runtimes.trainer.reference import numeric_reference
from modelops.runtimes.trainer.settings import Hyperparameters

BINS = Hyperparameters().bins
"""The trainer's default (``settings.py``)."""

CONFIGS = {
    "ours": DriftConfig(),
    "ours-ks": DriftConfig(method="ks"),
    "ours-js": DriftConfig(method="js"),
}


class Inputs(NamedTuple):
    """The loaded arrays and their description."""

    reference: FloatArray
    current: FloatArray
    meta: Meta


def drift(
    reference: FloatArray, current: FloatArray, names: tuple[str, ...], breakdown: Breakdown
) -> dict[str, Evaluation]:
    """Reference histograms, binning of ``current`` and one evaluation per entry of CONFIGS."""
    with breakdown.phase("reference histograms"):
        stats = contract.ReferenceStats(
            rows=reference.shape[0],
            features=[
                numeric_reference(name, reference[:, j], BINS) for j, name in enumerate(names)
            ],
        )
        references = parse_reference(stats.model_dump(mode="json", by_alias=True))
    with breakdown.phase("bin current"):
        window = window_counts(current, references)
    evaluations = {}
    for column, config in CONFIGS.items():
        with breakdown.phase(f"evaluate {column}"):
            evaluations[column] = evaluate(references, window, config)
    return evaluations


def prepare(args: argparse.Namespace) -> Inputs:
    """Load the data and run the whole pipeline once on a small slice."""
    reference, current, meta = load(args.data)
    rows, width = args.warmup_rows, 2
    drift(reference[:rows, :width], current[:rows, :width], meta.names[:width], Breakdown())
    return Inputs(reference, current, meta)


def run(inputs: Inputs, args: argparse.Namespace, breakdown: Breakdown) -> dict[str, Any]:
    """The measured work; returns one verdict column per evaluation."""
    evaluations = drift(inputs.reference, inputs.current, inputs.meta.names, breakdown)
    columns = {}
    for column, evaluation in evaluations.items():
        features = evaluation.features
        columns[column] = {
            "verdicts": [f.drifted for f in features],
            # What is compared with the threshold: the distance, or the corrected p-value.
            "scores": [
                f.score if f.adjusted_p_value is None else f.adjusted_p_value for f in features
            ],
            "statistics": [f.score for f in features],
            "methods": [f.method for f in features],
            "thresholds": [f.threshold for f in features],
        }
    # The operator's recurring cost: the reference histograms come with the model version.
    window = breakdown.seconds["bin current"] + breakdown.seconds["evaluate ours"]
    return {"columns": columns, "correction": CONFIGS["ours"].correction, "window_s": window}


def versions() -> dict[str, str]:
    """The packages doing the work."""
    return {"modelops-operator": version("modelops-operator"), "numpy": np.__version__}


if __name__ == "__main__":
    measured_main(__doc__ or "", prepare, run, versions)
