"""Training, evaluation and reference statistics of the trainer, on the bundled datasets and on
small hand-made tables. Pure computations: no files are written here.
"""

import numpy as np
import pytest
from scipy import stats

from modelops import datasets
from modelops.api.artifact import NumericReference
from modelops.runtimes.trainer.dataset import read_csv
from modelops.runtimes.trainer.linear import encode, fit, predict_labels, predict_scores
from modelops.runtimes.trainer.metrics import classification_metrics, regression_metrics
from modelops.runtimes.trainer.reference import histogram, numeric_reference, reference_stats
from modelops.runtimes.trainer.run import evaluate
from modelops.runtimes.trainer.schema import DatasetSchema, load_schema
from modelops.runtimes.trainer.settings import Hyperparameters
from modelops.runtimes.trainer.split import split
from modelops.runtimes.trainer.validation import Table, validate


def bundled(name: str) -> tuple[DatasetSchema, Table]:
    dataset_schema = load_schema(str(datasets.path(f"{name}.schema.json")))
    table = read_csv(datasets.path(f"{name}.csv").read_bytes())
    return dataset_schema, validate(table, dataset_schema)


def fit_and_evaluate(name: str, seed: int) -> dict[str, float]:
    dataset_schema, table = bundled(name)
    labels = table.categorical.get(dataset_schema.target)
    train, test = split(labels, table.rows, 0.2, seed)
    model = fit(dataset_schema, table.take(train), Hyperparameters())
    return evaluate(model, table.take(test))


def test_bundled_iris_is_the_real_data() -> None:
    _, table = bundled("iris")
    assert table.rows == 150
    assert sorted(np.unique(table.categorical["species"], return_counts=True)[1]) == [50] * 3
    assert table.numeric["sepal_length"].sum() == pytest.approx(876.5)
    assert table.numeric["petal_width"].sum() == pytest.approx(179.9)


def test_iris_reaches_090_accuracy_on_the_held_out_split() -> None:
    metrics = fit_and_evaluate("iris", seed=0)
    assert metrics["accuracy"] >= 0.9
    assert set(metrics) == {"accuracy", "f1", "auc"}
    assert metrics["auc"] > 0.95


def test_iris_accuracy_is_not_a_lucky_seed() -> None:
    accuracies = [fit_and_evaluate("iris", seed)["accuracy"] for seed in range(5)]
    assert min(accuracies) >= 0.9
    assert np.mean(accuracies) >= 0.93


def test_diabetes_regression_explains_half_the_variance() -> None:
    metrics = fit_and_evaluate("diabetes", seed=0)
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert metrics["r2"] > 0.4
    assert metrics["mae"] < metrics["rmse"] < 60


def test_split_is_stratified_and_seeded() -> None:
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 1, dtype=np.str_)
    train, test = split(labels, len(labels), 0.2, seed=3)
    assert [int(np.count_nonzero(labels[test] == c)) for c in "abc"] == [10, 6, 0]
    assert sorted([*train, *test]) == list(range(len(labels)))
    again, _ = split(labels, len(labels), 0.2, seed=3)
    other, _ = split(labels, len(labels), 0.2, seed=4)
    assert train.tolist() == again.tolist()
    assert train.tolist() != other.tolist()


def test_regression_split_holds_out_the_fraction() -> None:
    train, test = split(None, 10, 0.25, seed=0)
    assert (len(train), len(test)) == (7, 3)  # 2.5 rounds half up


def table(**columns: list[float] | list[str]) -> Table:
    numeric = {k: np.array(v, dtype=float) for k, v in columns.items() if isinstance(v[0], float)}
    categorical = {
        k: np.array(v, dtype=np.str_) for k, v in columns.items() if isinstance(v[0], str)
    }
    return Table(numeric=numeric, categorical=categorical, rows=len(next(iter(columns.values()))))


REGRESSION = DatasetSchema.model_validate(
    {
        "target": "y",
        "task": "regression",
        "columns": [
            {"name": "x", "type": "numeric", "maxNaNShare": 1},
            {"name": "colour", "type": "categorical", "allowed": ["blue", "red"]},
            {"name": "y", "type": "numeric"},
        ],
    }
)


def test_ridge_without_penalty_recovers_an_exact_linear_relation() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    colour = ["blue", "red", "blue", "red", "blue", "red"]
    y = [3 * v + (10.0 if c == "red" else 0.0) + 2 for v, c in zip(x, colour, strict=True)]
    data = table(x=x, colour=colour, y=y)
    model = fit(REGRESSION, data, Hyperparameters(l2=0.0))
    assert predict_scores(model, data)[:, 0] == pytest.approx(y)
    # The slope in original units is weight / scale.
    assert model.weights[0][0] / model.scale[0] == pytest.approx(3.0)


def test_encoding_of_missing_and_unseen_values() -> None:
    model = fit(
        REGRESSION, table(x=[1.0, 3.0], colour=["blue", "red"], y=[1.0, 2.0]), Hyperparameters()
    )
    encoded = encode(model, table(x=[float("nan"), 2.0], colour=["green", "red"], y=[0.0, 0.0]))
    # x: missing is the training mean (0 after standardising), 2.0 is the mean too.
    assert encoded.tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]


def test_classifier_outputs_probabilities_and_labels() -> None:
    dataset_schema, data = bundled("iris")
    model = fit(dataset_schema, data, Hyperparameters(epochs=50))
    probabilities = predict_scores(model, data)
    assert probabilities.shape == (150, 3)
    assert probabilities.sum(axis=1) == pytest.approx(np.ones(150))
    labels = predict_labels(model, data)
    assert labels.tolist() == [model.classes[i] for i in probabilities.argmax(axis=1)]  # type: ignore[index]


def test_classification_metrics_by_hand() -> None:
    truth = np.array(["a", "a", "b", "b", "c"], dtype=np.str_)
    predicted = np.array(["a", "b", "b", "b", "a"], dtype=np.str_)
    probabilities = np.array(
        [[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.6, 0.1, 0.3]]
    )
    metrics = classification_metrics(truth, predicted, probabilities, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    # Per class F1: a = 2·1/(2·1+1+1) = 0.5, b = 2·2/(2·2+1+0) = 0.8, c = 0.
    assert metrics["f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    expected_auc = []
    for index, label in enumerate("abc"):
        positive = truth == label
        u = stats.mannwhitneyu(
            probabilities[positive, index], probabilities[~positive, index]
        ).statistic
        expected_auc.append(u / (positive.sum() * (~positive).sum()))
    assert metrics["auc"] == pytest.approx(np.mean(expected_auc))


def test_auc_is_absent_when_no_class_has_both_sides() -> None:
    truth = np.array(["a", "a"], dtype=np.str_)
    metrics = classification_metrics(truth, truth, np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"])
    assert set(metrics) == {"accuracy", "f1"}


def test_regression_metrics_by_hand() -> None:
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert metrics == pytest.approx({"rmse": np.sqrt(4 / 3), "mae": 2 / 3, "r2": 1 - 4 / 2})
    assert "r2" not in regression_metrics(np.array([1.0, 1.0]), np.array([1.0, 2.0]))


def brute_force_counts(values: list[float], edges: list[float]) -> list[int]:
    """Prometheus `le` buckets, de-cumulated, counted one value at a time."""
    bounds = [*edges, float("inf")]
    counts = [0] * len(bounds)
    for value in values:
        counts[next(i for i, bound in enumerate(bounds) if value <= bound)] += 1
    return counts


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(list(np.random.default_rng(1).normal(size=200)), id="continuous"),
        pytest.param([1.0] * 50 + [2.0] * 30 + [3.0] * 5, id="ties"),
        pytest.param([4.2] * 10, id="constant"),
    ],
)
def test_histogram_uses_le_buckets(values: list[float]) -> None:
    edges, counts = histogram(np.array(values), bins=10)
    assert edges == sorted(set(edges))
    # The outer buckets lie beyond the training range: empty in the reference.
    assert edges[0] < min(values)
    assert edges[-1] > max(values)
    assert counts[0] == counts[-1] == 0
    assert len(counts) == len(edges) + 1
    assert sum(counts) == len(values)
    assert counts == brute_force_counts(values, edges)
    # No training value sits on an edge.
    assert not set(edges) & set(values)


def test_histogram_gives_each_value_of_a_discrete_feature_its_own_bucket() -> None:
    values = np.array([0.0] * 70 + [1.0] * 20 + [2.0] * 7 + [5.0] * 3)
    edges, counts = histogram(values, bins=10)
    assert edges == [-0.5, 0.5, 1.5, 3.5, 6.5]
    assert counts == [0, 70, 20, 7, 3, 0]


def test_histogram_edges_of_integers_sit_between_values() -> None:
    values = np.random.default_rng(3).poisson(20, size=2000).astype(np.float64)
    edges, counts = histogram(values, bins=10)
    assert len(edges) >= 8
    assert all(edge % 1 != 0 for edge in edges)
    # A shift far smaller than the gap between values moves no value into another bucket.
    assert brute_force_counts(list(values + 0.001), edges) == counts


def test_histogram_ignores_missing_values() -> None:
    assert histogram(np.array([np.nan, 1.0, 2.0]), bins=4) == ([0.5, 1.5, 2.5], [0, 1, 1, 0])
    assert histogram(np.array([np.nan]), bins=4) == ([], [0])


def test_numeric_reference_records_means_spread_distinct_values_and_missing() -> None:
    values = np.array([1.0, 1.0, 2.0, 4.0, np.nan, 10.0])
    feature = numeric_reference("x", values, bins=2)
    assert feature.missing == 1
    assert feature.distinct == 4
    assert feature.std == pytest.approx(np.std([1.0, 1.0, 2.0, 4.0, 10.0]))
    # Few values: one bucket each, whose mean is the exact value.
    assert feature.bin_edges == [0.5, 1.5, 3.0, 7.0, 13.0]
    assert feature.counts == [0, 2, 1, 1, 1, 0]
    assert feature.bin_means == [None, 1.0, 2.0, 4.0, 10.0, None]
    # Many values: quantile buckets, whose means are the means of their values.
    spread = np.arange(100.0) ** 2
    wide = numeric_reference("y", spread, bins=2)
    assert wide.bin_edges == [-0.5, 2450.5, 9899.5]
    assert wide.counts == [0, 50, 50, 0]
    assert wide.bin_means == [None, np.mean(spread[:50]), np.mean(spread[50:]), None]


def test_reference_covers_features_not_target() -> None:
    dataset_schema, data = bundled("iris")
    model = fit(dataset_schema, data, Hyperparameters(epochs=1))
    reference = reference_stats(model, data, bins=10)
    assert reference.rows == 150
    assert [f.name for f in reference.features] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    for feature in reference.features:
        assert isinstance(feature, NumericReference)
        assert sum(feature.counts) == 150
        # Iris has at most 43 values per column: one bucket each.
        assert feature.distinct is not None
        assert len(feature.bin_edges) == feature.distinct + 1
        assert feature.missing == 0
        assert feature.distinct > 5


def test_reference_counts_categories() -> None:
    data = table(x=[1.0, 2.0, 3.0], colour=["red", "red", ""], y=[1.0, 2.0, 3.0])
    model = fit(REGRESSION, data, Hyperparameters())
    colour = reference_stats(model, data, bins=10).features[1]
    assert colour.model_dump(by_alias=True) == {
        "name": "colour",
        "type": "categorical",
        "categories": ["blue", "red"],
        "counts": [0, 2],
        "missing": 1,
    }
