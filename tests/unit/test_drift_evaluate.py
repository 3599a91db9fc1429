"""evaluate(): per-feature verdicts, corrections, dataset drift, insufficient data, parsing."""

import math
from collections.abc import Mapping

import numpy as np
import pytest

from modelops.core.drift import (
    DriftConfig,
    FeatureOverride,
    FeatureReference,
    bin_counts,
    evaluate,
    parse_reference,
)
from modelops.core.drift.stats import chi2

DECILES = np.linspace(0.1, 0.9, 9)
CATEGORIES = ("a", "b", "c", "d")
CATEGORY_P = np.array([0.4, 0.3, 0.2, 0.1])


def make_reference(
    rng: np.random.Generator,
    rows: int,
    n_numeric: int,
    n_categorical: int,
    quantiles: np.ndarray = DECILES,
) -> tuple[list[FeatureReference], list[np.ndarray]]:
    """Numeric N(0, 1) features binned at the given quantiles plus categorical features."""
    values = rng.normal(size=(rows, n_numeric))
    edges = [np.quantile(values[:, j], quantiles) for j in range(n_numeric)]
    counts = bin_counts(values, edges)
    features = [FeatureReference.numeric(f"x{j}", edges[j], counts[j]) for j in range(n_numeric)]
    for j in range(n_categorical):
        drawn = rng.multinomial(rows, CATEGORY_P)
        features.append(FeatureReference.categorical(f"c{j}", CATEGORIES, drawn))
    return features, edges


def make_window(
    rng: np.random.Generator,
    features: list[FeatureReference],
    edges: list[np.ndarray],
    rows: int,
    shift: Mapping[str, float],
) -> dict[str, np.ndarray]:
    numeric = [f for f in features if f.kind == "numeric"]
    values = rng.normal(size=(rows, len(numeric)))
    for j, feature in enumerate(numeric):
        values[:, j] += shift.get(feature.name, 0.0)
    window = dict(zip((f.name for f in numeric), bin_counts(values, edges), strict=True))
    for feature in features:
        if feature.kind == "categorical":
            window[feature.name] = rng.multinomial(rows, CATEGORY_P)
    return window


# The trainer's layout: quantiles 0, 0.1, …, 1, so the outer edges are the training minimum and
# maximum and the last reference bucket is empty.
WITH_MIN_MAX = np.linspace(0.0, 1.0, 11)


@pytest.mark.parametrize("quantiles", [DECILES, WITH_MIN_MAX], ids=["deciles", "min-max"])
@pytest.mark.parametrize(
    ("reference_rows", "numeric_method", "categorical_method"),
    [(5000, "wasserstein", "js"), (800, "ks", "chi2")],
)
def test_two_sigma_shift_in_one_feature_of_ten(
    reference_rows: int, numeric_method: str, categorical_method: str, quantiles: np.ndarray
) -> None:
    rng = np.random.default_rng(11)
    features, edges = make_reference(
        rng, reference_rows, n_numeric=8, n_categorical=2, quantiles=quantiles
    )
    window = make_window(rng, features, edges, rows=5000, shift={"x3": 2.0})

    result = evaluate(features, window)

    assert not result.insufficient_data
    assert [f.name for f in result.drifted_features] == ["x3"]
    assert result.drifted_share == pytest.approx(0.1)
    assert result.dataset_drift is False
    assert result.verdict is False
    assert result.samples == 5000
    methods = {f.name: f.method for f in result.features}
    assert {methods[f"x{j}"] for j in range(8)} == {numeric_method}
    assert {methods["c0"], methods["c1"]} == {categorical_method}


def test_same_distribution_does_not_drift() -> None:
    rng = np.random.default_rng(12)
    features, edges = make_reference(rng, 5000, n_numeric=8, n_categorical=2)
    resampled = make_window(rng, features, edges, rows=5000, shift={})
    identical = {f.name: f.counts for f in features}

    # Distances of a resample sit far below 0.1; p-value tests are covered by the
    # false-alarm rate below, since a resample legitimately fails them 5% of the time.
    for method in ("auto", "psi", "js"):
        result = evaluate(features, resampled, DriftConfig(method=method))
        assert result.drifted_features == (), method
        assert result.verdict is False

    for method in ("psi", "js", "chi2"):
        exact = evaluate(features, identical, DriftConfig(method=method))  # type: ignore[arg-type]
        assert all(f.score == 0.0 and not f.drifted for f in exact.features)
    overrides = {f"x{j}": FeatureOverride(method="ks") for j in range(8)}
    exact = evaluate(features, identical, DriftConfig(overrides=overrides))
    assert all(f.p_value == 1.0 for f in exact.features if f.method == "ks")


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_false_alarm_rate_of_p_value_tests_is_controlled(correction: str) -> None:
    # 400 windows of 10 features drawn from the reference distribution itself: the share of
    # windows with any drifted feature is the family-wise error rate, at most ~5%.
    rng = np.random.default_rng(14)
    shares = np.full(10, 0.1)
    features = [FeatureReference.numeric(f"x{j}", np.arange(9.0), [500] * 10) for j in range(10)]
    config = DriftConfig(method="chi2", correction=correction)  # type: ignore[arg-type]
    alarms = 0
    for _ in range(400):
        window = {f.name: rng.multinomial(5000, shares) for f in features}
        alarms += bool(evaluate(features, window, config).drifted_features)
    assert alarms / 400 <= 0.07


def simple_features() -> list[FeatureReference]:
    return [
        FeatureReference.numeric("age", [20.0, 40.0, 60.0], [100, 300, 400, 200]),
        FeatureReference.categorical("colour", ["red", "blue"], [500, 500]),
    ]


def test_insufficient_data_gives_no_verdicts() -> None:
    features = simple_features()
    window = {"age": [10, 10, 10, 10], "colour": [90, 10]}
    result = evaluate(features, window, DriftConfig(min_samples=41))
    assert result.insufficient_data
    assert result.samples == 40
    assert result.features == ()
    assert result.verdict is None
    assert result.dataset_drift is False
    assert evaluate(features, window, DriftConfig(min_samples=40)).verdict is True


def test_missing_feature_counts_as_empty_window() -> None:
    result = evaluate(simple_features(), {"age": [100, 300, 400, 200]})
    assert result.insufficient_data
    assert result.samples == 0


def test_dataset_drift_share_is_inclusive() -> None:
    features = [FeatureReference.categorical(name, ["x", "y"], [500, 500]) for name in "abcd"]
    drifted, clean = [900, 100], [500, 500]
    window = {"a": drifted, "b": drifted, "c": clean, "d": clean}
    result = evaluate(features, window, DriftConfig(method="psi"))
    assert result.drifted_share == 0.5
    assert result.dataset_drift is True
    assert evaluate(features, window, DriftConfig(dataset_drift_share=0.6)).dataset_drift is False


def find_counts_with_p_between(low: float, high: float) -> list[int]:
    """Current counts whose chi2 p-value against a 500/500 reference lies in [low, high]."""
    for first in range(500, 1000):
        counts = [first, 1000 - first]
        p = float(chi2([500, 500], counts).p_value)
        if low <= p <= high:
            return counts
    raise AssertionError("no such counts")


def test_corrections_change_p_value_verdicts() -> None:
    features = [FeatureReference.categorical(n, ["x", "y"], [500, 500]) for n in "abc"]
    # One feature at p ≈ 0.03: drifts alone, not once multiplied by 3 features.
    borderline = find_counts_with_p_between(0.02, 0.04)
    window = {"a": borderline, "b": [500, 500], "c": [505, 495]}
    config = DriftConfig(method="chi2", correction="none")

    raw = evaluate(features, window, config).features[0]
    assert raw.p_value is not None
    assert raw.drifted
    assert raw.adjusted_p_value == raw.p_value

    bonferroni_config = DriftConfig(method="chi2", correction="bonferroni")
    bonferroni = evaluate(features, window, bonferroni_config).features[0]
    assert bonferroni.p_value == raw.p_value
    assert bonferroni.adjusted_p_value == pytest.approx(3 * raw.p_value)
    assert not bonferroni.drifted

    fdr = evaluate(features, window, DriftConfig(method="chi2", correction="fdr")).features[0]
    assert fdr.adjusted_p_value == pytest.approx(3 * raw.p_value)  # smallest of 3: ·3/1
    assert not fdr.drifted


def test_distance_features_are_not_corrected() -> None:
    features = simple_features()
    window = {"age": [100, 300, 400, 200], "colour": [650, 350]}
    config = DriftConfig(
        overrides={"age": FeatureOverride(method="ks"), "colour": FeatureOverride(method="js")}
    )
    by_name = {f.name: f for f in evaluate(features, window, config).features}
    assert by_name["colour"].p_value is None
    assert by_name["colour"].adjusted_p_value is None
    assert by_name["colour"].drifted  # JS of 50/50 vs 65/35 ≈ 0.106 ≥ 0.1
    # The only p-value feature: no correction by default, and Bonferroni with m = 1 would
    # leave it alone too.
    assert by_name["age"].adjusted_p_value == by_name["age"].p_value


def test_overrides_and_thresholds() -> None:
    features = simple_features()
    window = {"age": [100, 300, 400, 200], "colour": [650, 350]}
    config = DriftConfig(
        method="psi",
        thresholds={"psi": 0.2},
        overrides={"colour": FeatureOverride(threshold=0.05)},
        features=("colour",),
    )
    result = evaluate(features, window, config)
    (colour,) = result.features
    assert colour.method == "psi"
    assert colour.threshold == 0.05
    assert colour.drifted
    assert DriftConfig(thresholds={"psi": 0.2}).thresholds["js"] == 0.1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DriftConfig(overrides={"colour": FeatureOverride(method="ks")}), "ordered buckets"),
        (DriftConfig(overrides={"nope": FeatureOverride()}), "no feature named nope"),
        (DriftConfig(features=("age", "nope")), "no feature named nope"),
        (DriftConfig(features=()), "selects no features"),
        (
            DriftConfig(overrides={"age": FeatureOverride(method="ks", threshold=2.0)}),
            "at most 1",
        ),
    ],
)
def test_rejects_invalid_policies(config: DriftConfig, message: str) -> None:
    window = {"age": [100, 300, 400, 200], "colour": [500, 500]}
    with pytest.raises(ValueError, match=message):
        evaluate(simple_features(), window, config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "kl"}, "Unknown drift method"),
        ({"thresholds": {"kl": 0.1}}, "unknown methods"),
        ({"thresholds": {"js": 0.0}}, "positive"),
        ({"correction": "holm"}, "Unknown correction"),
        ({"dataset_drift_share": 0.0}, "share"),
        ({"min_samples": 0}, "at least 1"),
    ],
)
def test_rejects_invalid_configs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftConfig(**kwargs)  # type: ignore[arg-type]


def test_rejects_bad_current_counts() -> None:
    with pytest.raises(ValueError, match=r"expected 8 \(or 4 without the missing"):
        evaluate(simple_features(), {"age": [1, 2, 3], "colour": [1, 1]})
    with pytest.raises(ValueError, match="non-negative"):
        evaluate(simple_features(), {"age": [1, 2, 3, -4], "colour": [1, 1]})


def test_parse_reference_document() -> None:
    document = {
        "rows": 120,
        "features": [
            {
                "name": "sepal_length",
                "type": "numeric",
                "binEdges": [5.0, 6.0],
                "counts": [40, 50, 30],
            },
            {
                "name": "colour",
                "type": "categorical",
                "categories": ["blue", "red"],
                "counts": [60, 60],
            },
        ],
    }
    sepal, colour = parse_reference(document)
    assert sepal.kind == "numeric"
    assert sepal.edges is not None
    np.testing.assert_array_equal(sepal.edges, [5.0, 6.0])
    np.testing.assert_array_equal(sepal.counts, [40, 50, 30])
    assert colour.categories == ("blue", "red")
    assert colour.n_buckets == 2
    with pytest.raises(ValueError, match="read-only"):
        sepal.counts[0] = 1.0


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ({"name": "x", "type": "numeric", "binEdges": [1.0], "counts": [1, 2, 3]}, "expected 2"),
        (
            {"name": "x", "type": "numeric", "binEdges": [2.0, 1.0], "counts": [1, 2, 3]},
            "increasing",
        ),
        ({"name": "x", "type": "numeric", "counts": [1, 2]}, "binEdges"),
        ({"name": "x", "type": "numeric", "binEdges": [1.0], "counts": [0, -1]}, "non-negative"),
        ({"name": "x", "type": "numeric", "binEdges": [1.0], "counts": [True, 2]}, "numbers"),
        (
            {"name": "x", "type": "categorical", "categories": ["a", "a"], "counts": [1, 2]},
            "unique",
        ),
        ({"name": "x", "type": "text", "counts": [1]}, "unknown type"),
        ({"type": "numeric"}, "no name"),
    ],
)
def test_parse_reference_rejects(feature: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_reference({"features": [feature]})


def test_parse_reference_rejects_duplicates_and_empty() -> None:
    feature = {"name": "x", "type": "categorical", "categories": ["a"], "counts": [1]}
    with pytest.raises(ValueError, match="unique"):
        parse_reference({"features": [feature, feature]})
    with pytest.raises(ValueError, match="no features"):
        parse_reference({"features": []})


def test_scores_are_finite_numbers() -> None:
    rng = np.random.default_rng(13)
    features, edges = make_reference(rng, 3000, n_numeric=3, n_categorical=1)
    window = make_window(rng, features, edges, rows=700, shift={"x0": 0.3})
    for method in ("psi", "js", "chi2"):
        result = evaluate(features, window, DriftConfig(method=method))
        assert all(math.isfinite(f.score) for f in result.features)


def test_policy_errors_surface_while_data_is_short() -> None:
    config = DriftConfig(overrides={"colour": FeatureOverride(method="wasserstein")})
    with pytest.raises(ValueError, match="ordered buckets"):
        evaluate(simple_features(), {}, config)


def test_reference_arrays_are_copied_not_frozen_in_place() -> None:
    edges = np.array([1.0, 2.0])
    feature = FeatureReference.numeric("x", edges, [1, 2, 3])
    edges[0] = 0.0  # the caller's array stays writable, and the reference unchanged
    assert feature.edges is not None
    assert feature.edges[0] == 1.0


def test_features_never_observed_in_training_are_not_judged() -> None:
    document = {
        "features": [
            {"name": "empty", "type": "numeric", "binEdges": [], "counts": [0]},
            {"name": "blank", "type": "categorical", "categories": [], "counts": []},
            {"name": "colour", "type": "categorical", "categories": ["a", "b"], "counts": [5, 5]},
        ]
    }
    features = parse_reference(document)
    window = {"empty": [0], "blank": [0], "colour": [50, 50]}
    result = evaluate(features, window, DriftConfig(min_samples=10))
    assert result.unjudged == ("empty", "blank")
    assert [f.name for f in result.features] == ["colour"]
    assert result.samples == 100
    with pytest.raises(ValueError, match="No selected feature was observed"):
        evaluate(features, window, DriftConfig(features=("empty",)))


def test_categories_outside_the_reference_count_as_drift() -> None:
    (colour,) = [FeatureReference.categorical("colour", ["red", "blue"], [500, 500])]
    assert colour.window_buckets == 3
    # A quarter of live values are colours training never saw (the server's __other__).
    window = {"colour": [375, 375, 250]}
    for method in ("psi", "js", "chi2"):
        config = DriftConfig(method=method)
        (result,) = evaluate([colour], window, config).features
        assert result.drifted, method
    (clean,) = evaluate([colour], {"colour": [500, 500, 0]}).features
    assert not clean.drifted
    with pytest.raises(ValueError, match="expected 4"):
        evaluate([colour], {"colour": [1, 1, 1, 1, 1]})
