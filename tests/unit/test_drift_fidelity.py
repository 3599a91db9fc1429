"""The production path on raw values: trainer reference → server counters → operator verdicts.

Each test trains a reference with the trainer's own code, feeds live values through the model
server's FeatureCollector, reads its /metrics page back the way the operator scrapes it, and
evaluates — so every representation change (tails, bin means, missing counters) is checked end
to end, without a cluster.
"""

from collections.abc import Mapping

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from scipy import stats as scipy_stats

from modelops.api import artifact as contract
from modelops.core import driftpolicy as dp
from modelops.core.drift import (
    MISSING_SHARE_MIN_CHANGE,
    DriftConfig,
    Evaluation,
    FeatureDrift,
    evaluate,
    missing_share_drifted,
    parse_reference,
    window_counts,
)
from modelops.k8s import scrape
from modelops.runtimes.server.metrics import ServerMetrics
from modelops.runtimes.trainer.reference import numeric_reference

BINS = 20


def production_evaluate(
    reference: Mapping[str, np.ndarray],
    current: Mapping[str, np.ndarray],
    config: DriftConfig | None = None,
) -> Evaluation:
    """Evaluate ``current`` against ``reference`` (raw numeric columns, NaN = missing)."""
    stats = contract.ReferenceStats(
        rows=len(next(iter(reference.values()))),
        features=[numeric_reference(name, values, BINS) for name, values in reference.items()],
    )
    document = stats.model_dump(mode="json", by_alias=True)
    registry = CollectorRegistry()
    metrics = ServerMetrics(registry, model="m", version="v1")
    metrics.loaded(stats, list(reference))
    metrics.features.observe(dict(current))
    series = scrape.parse_metrics(generate_latest(registry).decode(), "m", "v1")
    features = parse_reference(document)
    counts = dp.series_counts(series, features)
    # The batch counters give the same vectors as the server's online ones.
    batch = window_counts(np.column_stack(list(current.values())), features)
    for name, vector in counts.items():
        np.testing.assert_allclose(batch[name], vector, rtol=1e-9, atol=1e-9)
    return evaluate(features, counts, config)


def one(evaluation: Evaluation) -> FeatureDrift:
    (feature,) = evaluation.features
    return feature


def with_missing(values: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    out = values.copy()
    out[rng.random(out.size) < share] = np.nan
    return out


def test_five_percent_missing_gets_a_verdict_and_no_false_alarm() -> None:
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(20):
        reference = with_missing(rng.normal(size=2000), 0.05, rng)
        current = with_missing(rng.normal(size=2000), 0.05, rng)
        evaluation = production_evaluate({"x": reference}, {"x": current})
        assert not evaluation.insufficient_data
        feature = one(evaluation)
        assert feature.samples == 2000  # missing values count as observed rows
        assert feature.reference_missing_share == pytest.approx(0.05, abs=0.02)
        assert feature.missing_share == pytest.approx(0.05, abs=0.02)
        alarms += feature.drifted
    assert alarms <= 1


def test_a_shift_in_the_missing_share_is_drift() -> None:
    rng = np.random.default_rng(12)
    reference = with_missing(rng.normal(size=2000), 0.05, rng)
    current = with_missing(rng.normal(size=2000), 0.25, rng)
    feature = one(production_evaluate({"x": reference}, {"x": current}))
    assert feature.missing_drifted
    assert feature.drifted
    # The present values are unchanged: the distribution test alone finds nothing.
    assert feature.score < feature.threshold


def test_a_window_of_only_missing_values_is_missing_drift() -> None:
    rng = np.random.default_rng(3)
    feature = one(
        production_evaluate({"x": rng.normal(size=1000)}, {"x": np.full(500, np.nan)}),
    )
    assert feature.samples == 500
    assert feature.missing_share == 1.0
    assert feature.missing_drifted
    assert feature.drifted


def test_missing_share_check_needs_both_significance_and_size() -> None:
    # 1% → 3% on 100k rows is significant but below the minimum change.
    assert not missing_share_drifted((99_000, 1_000), (97_000, 3_000), 0.05)
    # 0% → 20% on 50 rows is large and significant.
    assert missing_share_drifted((50, 0), (40, 10), 0.05)
    # 10% → 16% on 100 rows is large but not significant.
    assert MISSING_SHARE_MIN_CHANGE < 0.06
    assert not missing_share_drifted((90, 10), (84, 16), 0.05)
    assert not missing_share_drifted((100, 0), (100, 0), 0.05)


@pytest.mark.parametrize("sigmas", [1.0, 1000.0])
def test_wasserstein_sees_how_far_out_the_outliers_are(sigmas: float) -> None:
    rng = np.random.default_rng(4)
    reference = rng.gamma(2.0, size=5000)
    current = rng.gamma(2.0, size=5000)
    outliers = rng.random(current.size) < 0.05
    current[outliers] = reference.max() + sigmas * reference.std()
    feature = one(production_evaluate({"x": reference}, {"x": current}))
    assert feature.method == "wasserstein"
    raw = scipy_stats.wasserstein_distance(reference, current) / np.std(reference)
    # The out-of-range mass sits where the values are, so the binned distance tracks the raw
    # one at 1 sigma and at 1000 sigma alike (midpoints gave the same score for both).
    assert feature.score == pytest.approx(raw, rel=0.05)


def test_wasserstein_with_bin_means_matches_raw_data_on_a_skewed_feature() -> None:
    rng = np.random.default_rng(5)
    reference = rng.gamma(2.0, size=20_000)
    current = rng.gamma(2.0, size=20_000) + 0.12 * np.sqrt(2.0)
    feature = one(production_evaluate({"x": reference}, {"x": current}))
    raw = scipy_stats.wasserstein_distance(reference, current) / np.std(reference)
    # Bucket midpoints read this shift 13-21% low; bin means and the window's exact mean
    # (the offset counter) leave a sub-percent error.
    assert feature.score == pytest.approx(raw, rel=0.01)
    assert raw > 0.1
    assert feature.drifted


def test_values_below_the_training_minimum_have_their_own_bucket() -> None:
    rng = np.random.default_rng(6)
    reference = rng.uniform(0.0, 1.0, size=5000)
    current = rng.uniform(0.0, 1.0, size=5000)
    current[:250] = -5.0
    feature = one(production_evaluate({"x": reference}, {"x": current}))
    raw = scipy_stats.wasserstein_distance(reference, current) / np.std(reference)
    assert feature.score == pytest.approx(raw, rel=0.05)
    assert feature.drifted


@pytest.mark.parametrize("method", ["ks", "wasserstein", "psi", "js"])
def test_a_tiny_shift_of_integer_data_with_many_values_is_not_drift(method: str) -> None:
    rng = np.random.default_rng(7)
    # About 100 distinct values: quantile buckets, whose edges sit between the integers.
    reference = rng.poisson(200, size=5000).astype(np.float64)
    current = rng.poisson(200, size=5000).astype(np.float64) + 0.001
    config = DriftConfig(method=method)  # type: ignore[arg-type]
    assert not one(production_evaluate({"x": reference}, {"x": current}, config)).drifted
    shifted = rng.poisson(215, size=5000).astype(np.float64)
    assert one(production_evaluate({"x": reference}, {"x": shifted}, config)).drifted


def test_a_tiny_shift_of_integer_data_with_few_values_reads_like_raw_data() -> None:
    rng = np.random.default_rng(7)
    # About 35 distinct values: a bucket per value, with at-value and below-value counts.
    reference = rng.poisson(20, size=5000).astype(np.float64)
    current = rng.poisson(20, size=5000).astype(np.float64) + 0.001
    distance = one(production_evaluate({"x": reference}, {"x": current}))
    assert distance.method == "wasserstein"
    raw_distance = scipy_stats.wasserstein_distance(reference, current) / np.std(reference)
    assert distance.score == pytest.approx(raw_distance, rel=0.01)
    assert not distance.drifted
    # K-S on raw data sees every point mass move off its value, and so does ours.
    ks = one(production_evaluate({"x": reference}, {"x": current}, DriftConfig(method="ks")))
    assert ks.score == pytest.approx(scipy_stats.ks_2samp(reference, current).statistic)


def test_auto_counts_distinct_values_not_non_empty_buckets() -> None:
    rng = np.random.default_rng(8)
    # 95% zeros and a tail of 30 distinct values: few non-empty quantile buckets, yet a
    # numeric column for Evidently (more than 5 distinct values) → Wasserstein, not JS.
    reference = np.where(rng.random(5000) < 0.95, 0.0, rng.integers(1, 31, size=5000))
    feature = one(production_evaluate({"x": reference}, {"x": reference.copy()}))
    assert feature.method == "wasserstein"
    small = one(production_evaluate({"x": reference[:500]}, {"x": reference[:500].copy()}))
    assert small.method == "ks"
    few = np.where(rng.random(5000) < 0.5, 0.0, 1.0)
    assert one(production_evaluate({"x": few}, {"x": few.copy()})).method == "js"


def test_an_old_reference_without_the_new_fields_still_evaluates() -> None:
    document = {
        "rows": 200,
        "features": [
            {
                "name": "x",
                "type": "numeric",
                "binEdges": [0.0, 1.0, 2.0],
                "counts": [50, 50, 100, 0],
            }
        ],
    }
    features = parse_reference(document)
    assert features[0].means is None
    evaluation = evaluate(features, {"x": [50, 50, 100, 0]})
    assert evaluation.verdict is False
    # A newer server adds missing and distance counters; they are read, not refused.
    evaluation = evaluate(features, {"x": [50, 50, 100, 0, 40, 0, 5.0, 210.0]})
    assert one(evaluation).missing_drifted
    assert evaluation.verdict is True


def test_a_shift_to_values_training_never_had_is_drift_for_a_discrete_feature() -> None:
    rng = np.random.default_rng(9)
    binary = (rng.random(2000) < 0.3).astype(np.float64)
    same = (rng.random(2000) < 0.3).astype(np.float64)
    assert not one(production_evaluate({"x": binary}, {"x": same})).drifted
    # Every value moves off 0 and 1 without crossing an edge: a new category for Evidently.
    moved = one(production_evaluate({"x": binary}, {"x": same + 0.05}))
    assert moved.method == "js"
    assert moved.drifted


def test_ks_on_integer_pixels_sees_a_shift_that_crosses_no_edge() -> None:
    rng = np.random.default_rng(10)
    reference = rng.choice(17, size=400, p=np.r_[0.6, np.full(16, 0.025)]).astype(np.float64)
    current = rng.choice(17, size=400, p=np.r_[0.6, np.full(16, 0.025)]).astype(np.float64)
    assert not one(production_evaluate({"x": reference}, {"x": current})).drifted
    shifted = one(production_evaluate({"x": reference}, {"x": current + 0.3}))
    assert shifted.method == "ks"
    raw = scipy_stats.ks_2samp(reference, current + 0.3)
    assert shifted.score == pytest.approx(raw.statistic)
    assert shifted.drifted


@pytest.mark.parametrize("values", ["continuous", "few"])
def test_batch_counters_match_the_server_with_infinite_and_missing_values(values: str) -> None:
    rng = np.random.default_rng(11)
    if values == "continuous":
        reference, current = rng.normal(size=500), rng.normal(size=500) * 3
    else:
        reference = rng.integers(0, 4, 500).astype(np.float64)
        current = rng.integers(-1, 6, 500).astype(np.float64) * 0.5
    current[:3] = [np.inf, -np.inf, np.nan]
    # production_evaluate asserts that window_counts equals the server's counters.
    feature = one(production_evaluate({"x": reference}, {"x": current}))
    assert feature.samples == 500


def test_value_counts_a_little_above_their_bucket_count_are_clipped_not_refused() -> None:
    # Prometheus' increase() extrapolates each series alone: 50.4 "at" values in a bucket of 50.
    features = parse_reference(
        {
            "rows": 100,
            "features": [
                {
                    "name": "x",
                    "type": "numeric",
                    "binEdges": [-0.5, 0.5, 1.5],
                    "counts": [0, 50, 50, 0],
                    "binMeans": [None, 0.0, 1.0, None],
                    "std": 0.5,
                    "distinct": 2,
                }
            ],
        }
    )
    window = [0, 50, 50, 0, 0, 0, 0, 25.0, 0, 50.4, 50.2, 0, 0, 0.3, 0.1, 0]
    feature = one(evaluate(features, {"x": window}, DriftConfig(method="ks")))
    assert feature.score == pytest.approx(0.0)
    assert not feature.drifted
