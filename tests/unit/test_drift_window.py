"""Windower: increments of cumulative histogram counters from pods that restart, come and go."""

import numpy as np
import pytest

from modelops.core.drift import (
    DriftConfig,
    FeatureReference,
    PodScrape,
    Windower,
    buckets_from_le,
    evaluate,
)

BUCKETS = {"age": 3, "colour": 2}


def scrape(age: list[float], colour: list[float], started_at: float | None = None) -> PodScrape:
    return PodScrape({"age": age, "colour": colour}, started_at=started_at)


def window_counts(windower: Windower, now: float) -> tuple[list[float], list[float]]:
    counts = windower.counts(now)
    return counts["age"].tolist(), counts["colour"].tolist()


def test_first_scrape_of_an_old_pod_is_a_baseline() -> None:
    w = Windower(60.0, BUCKETS)
    w.observe(0.0, {"p1": scrape([10, 20, 30], [30, 30])})
    assert window_counts(w, 0.0) == ([0, 0, 0], [0, 0])
    w.observe(15.0, {"p1": scrape([11, 22, 33], [33, 33])})
    assert window_counts(w, 15.0) == ([1, 2, 3], [3, 3])
    w.observe(30.0, {"p1": scrape([12, 22, 33], [34, 33])})
    assert window_counts(w, 30.0) == ([2, 2, 3], [4, 3])


def test_a_pod_started_within_the_window_counts_in_full() -> None:
    w = Windower(60.0, BUCKETS)
    w.observe(100.0, {"new": scrape([1, 2, 3], [3, 3], started_at=50.0)})
    assert window_counts(w, 100.0) == ([1, 2, 3], [3, 3])
    # Started exactly one window ago: its counts may predate the window, so baseline.
    w.observe(100.0, {"old": scrape([5, 5, 5], [5, 10], started_at=40.0)})
    assert window_counts(w, 100.0) == ([1, 2, 3], [3, 3])


def test_increments_age_out() -> None:
    w = Windower(60.0, BUCKETS)
    w.observe(0.0, {"p1": scrape([0, 0, 0], [0, 0])})
    w.observe(10.0, {"p1": scrape([1, 0, 0], [1, 0])})
    w.observe(40.0, {"p1": scrape([1, 1, 0], [1, 1])})
    assert window_counts(w, 69.0) == ([1, 1, 0], [1, 1])
    assert window_counts(w, 70.0) == ([0, 1, 0], [0, 1])  # (10 > 70 - 60) no longer holds
    assert window_counts(w, 100.0) == ([0, 0, 0], [0, 0])


def test_counter_reset_counts_the_new_value_as_increase() -> None:
    w = Windower(300.0, BUCKETS)
    w.observe(0.0, {"p1": scrape([100, 100, 100], [150, 150])})
    w.observe(30.0, {"p1": scrape([110, 100, 100], [160, 150])})
    # The container restarted: counters start again from zero.
    w.observe(60.0, {"p1": scrape([2, 1, 0], [3, 0])})
    assert window_counts(w, 60.0) == ([12, 1, 0], [13, 0])
    w.observe(90.0, {"p1": scrape([3, 1, 1], [4, 1])})
    assert window_counts(w, 90.0) == ([13, 1, 1], [14, 1])


def test_reset_is_detected_per_pod_not_per_bucket() -> None:
    w = Windower(300.0, BUCKETS)
    w.observe(0.0, {"p1": scrape([0, 5, 0], [5, 0])})
    # After a restart one bucket is back below, another happens to be above its old value;
    # every counter is new, so everything counts in full.
    w.observe(30.0, {"p1": scrape([3, 1, 0], [1, 3])})
    assert window_counts(w, 30.0) == ([3, 1, 0], [1, 3])


def test_a_reused_pod_name_with_a_new_start_time_is_a_new_pod() -> None:
    w = Windower(300.0, BUCKETS)
    w.observe(0.0, {"db-0": scrape([1, 1, 1], [2, 1], started_at=-1000.0)})
    w.observe(30.0, {"db-0": scrape([4, 4, 4], [8, 4], started_at=20.0)})
    assert window_counts(w, 30.0) == ([4, 4, 4], [8, 4])


def test_pods_sum_and_leaving_pods_keep_their_increments() -> None:
    w = Windower(60.0, BUCKETS)
    w.observe(0.0, {"a": scrape([0, 0, 0], [0, 0]), "b": scrape([5, 5, 5], [10, 5])})
    w.observe(20.0, {"a": scrape([1, 0, 0], [1, 0]), "b": scrape([5, 7, 5], [11, 6])})
    assert window_counts(w, 20.0) == ([1, 2, 0], [2, 1])
    # b is gone (scaled down): what it contributed stays until it ages out.
    w.observe(40.0, {"a": scrape([2, 0, 0], [2, 0])})
    assert window_counts(w, 40.0) == ([2, 2, 0], [3, 1])
    assert w.pods == {"a", "b"}
    w.observe(80.0, {"a": scrape([2, 0, 0], [2, 0])})
    assert window_counts(w, 80.0) == ([1, 0, 0], [1, 0])
    assert w.pods == {"a"}  # b not seen for a whole window: forgotten


def test_a_pod_missing_one_scrape_is_not_double_counted() -> None:
    w = Windower(600.0, BUCKETS)
    w.observe(0.0, {"a": scrape([0, 0, 0], [0, 0], started_at=-5.0)})
    w.observe(30.0, {})  # a timed out
    w.observe(60.0, {"a": scrape([4, 0, 0], [2, 2], started_at=-5.0)})
    assert window_counts(w, 60.0) == ([4, 0, 0], [2, 2])


def test_a_forgotten_pod_comes_back_as_a_baseline() -> None:
    w = Windower(60.0, BUCKETS)
    w.observe(0.0, {"a": scrape([0, 0, 0], [0, 0], started_at=0.0)})
    w.observe(100.0, {})
    assert w.pods == frozenset()
    w.observe(110.0, {"a": scrape([50, 0, 0], [25, 25], started_at=0.0)})
    assert window_counts(w, 110.0) == ([0, 0, 0], [0, 0])


def test_memory_is_bounded_by_the_window() -> None:
    w = Windower(60.0, BUCKETS)
    for step in range(1000):
        value = float(step)
        w.observe(step * 15.0, {"a": scrape([value, 0, 0], [value, 0])})
    # Reaching into the state on purpose: bounded memory is part of the contract.
    assert len(w._increments) <= 60 / 15 + 1
    assert window_counts(w, 999 * 15.0) == ([4, 0, 0], [4, 0])


def test_invalid_scrapes_change_nothing() -> None:
    w = Windower(60.0, BUCKETS)
    w.observe(10.0, {"a": scrape([0, 0, 0], [0, 0])})
    with pytest.raises(ValueError, match="backwards"):
        w.observe(5.0, {"a": scrape([1, 0, 0], [1, 0])})
    with pytest.raises(ValueError, match="no histogram for feature colour"):
        w.observe(20.0, {"a": scrape([1, 0, 0], [1, 0]), "b": PodScrape({"age": [1, 0, 0]})})
    with pytest.raises(ValueError, match="expected 3"):
        w.observe(20.0, {"a": scrape([1, 0], [1, 0])})
    with pytest.raises(ValueError, match="invalid counters"):
        w.observe(20.0, {"a": scrape([1, -1, 0], [1, 0])})
    assert window_counts(w, 20.0) == ([0, 0, 0], [0, 0])
    assert w.pods == {"a"}
    w.observe(20.0, {"a": scrape([1, 0, 0], [1, 0])})
    assert window_counts(w, 20.0) == ([1, 0, 0], [1, 0])


def test_unwatched_features_are_ignored() -> None:
    w = Windower(60.0, {"age": 3})
    w.observe(0.0, {"a": scrape([1, 1, 1], [1, 1], started_at=0.0)})
    assert set(w.counts(0.0)) == {"age"}


def test_constructor_checks() -> None:
    with pytest.raises(ValueError, match="positive"):
        Windower(0.0, BUCKETS)
    with pytest.raises(ValueError, match="at least one bucket"):
        Windower(60.0, {"age": 0})
    assert Windower(90.0, BUCKETS).window_seconds == 90.0


def test_buckets_from_le() -> None:
    np.testing.assert_array_equal(buckets_from_le([3, 5, 5, 9]), [3, 2, 0, 4])
    with pytest.raises(ValueError, match="non-decreasing"):
        buckets_from_le([3, 2, 9])
    with pytest.raises(ValueError, match="non-empty"):
        buckets_from_le([])


def test_windowed_counts_feed_evaluate() -> None:
    # The operator's loop in miniature: reference → Windower → evaluate.
    reference = [
        FeatureReference.numeric("age", [30.0, 50.0], [300, 400, 300]),
        FeatureReference.categorical("colour", ["red", "blue"], [500, 500]),
    ]
    w = Windower(600.0, {f.name: f.window_buckets for f in reference})
    w.observe(0.0, {"a": PodScrape({"age": [0, 0, 0], "colour": [0, 0, 0]}, started_at=-30.0)})
    w.observe(60.0, {"a": PodScrape({"age": [30, 40, 30], "colour": [50, 40, 10]})})
    result = evaluate(reference, w.counts(60.0), DriftConfig(min_samples=100))
    assert result.samples == 100
    assert not result.insufficient_data
    assert [f.name for f in result.features] == ["age", "colour"]
