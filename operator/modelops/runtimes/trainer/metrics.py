"""Evaluation metrics on the held-out split.

Classification: `accuracy`, `f1` (macro average over the classes that occur in the truth or
the predictions, as scikit-learn computes it) and `auc` (one-vs-rest ROC AUC, macro average
over the classes that have both positive and negative rows in the split; absent if none
has). Regression: `rmse`, `mae` and `r2` (absent when the held-out target is constant, where
it is undefined).
"""

import numpy as np
from numpy.typing import NDArray

from modelops.runtimes.trainer.validation import FloatArray, TextArray


def classification_metrics(
    truth: TextArray, predicted: TextArray, probabilities: FloatArray, classes: list[str]
) -> dict[str, float]:
    """Metrics of class predictions; `probabilities` has one column per entry of `classes`."""
    metrics = {"accuracy": float(np.mean(truth == predicted))}
    f1_scores = []
    for label in sorted(set(truth.tolist()) | set(predicted.tolist())):
        true_positive = int(np.count_nonzero((truth == label) & (predicted == label)))
        wrong = int(np.count_nonzero((truth == label) != (predicted == label)))
        f1_scores.append(2 * true_positive / (2 * true_positive + wrong))
    metrics["f1"] = float(np.mean(f1_scores))
    auc_scores = [
        _auc(truth == label, probabilities[:, index])
        for index, label in enumerate(classes)
        if 0 < np.count_nonzero(truth == label) < len(truth)
    ]
    if auc_scores:
        metrics["auc"] = float(np.mean(auc_scores))
    return metrics


def regression_metrics(truth: FloatArray, predicted: FloatArray) -> dict[str, float]:
    """Metrics of value predictions."""
    residuals = truth - predicted
    metrics = {
        "rmse": float(np.sqrt(np.mean(residuals**2))),
        "mae": float(np.mean(np.abs(residuals))),
    }
    spread = float(np.sum((truth - truth.mean()) ** 2))
    if spread > 0:
        metrics["r2"] = 1.0 - float(np.sum(residuals**2)) / spread
    return metrics


def _auc(positive: NDArray[np.bool_], scores: FloatArray) -> float:
    """ROC AUC as the Mann-Whitney statistic: P(score of a positive > score of a negative),
    ties counting one half, computed from average ranks."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # The average 1-based rank of each distinct score, then of each row.
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2)[inverse]
    positives = int(np.count_nonzero(positive))
    negatives = len(positive) - positives
    rank_sum = float(ranks[positive].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
