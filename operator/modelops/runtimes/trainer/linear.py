"""The linear models: fitting them, and predicting with a `LinearModel` (`model.json`).

Classification is multinomial logistic regression (softmax) fitted by full-batch gradient
descent from all-zero weights; regression is ridge regression solved in closed form. Both
minimise the mean training loss plus `l2 / 2 * ||weights||^2` (the bias is not penalised), on
numeric features standardised with the training mean and standard deviation and categorical
features one-hot encoded. Neither draws random numbers, so a fit is a pure function of its
input.

Prediction implements the inference rules documented on `LinearModel`, and the trainer
evaluates the very model it writes through it.
"""

import numpy as np

from modelops.api.artifact import LinearModel, ModelFeature
from modelops.runtimes.trainer.errors import DatasetRefusedError, TrainerError
from modelops.runtimes.trainer.schema import DatasetSchema
from modelops.runtimes.trainer.settings import Hyperparameters
from modelops.runtimes.trainer.validation import MISSING_CATEGORY, FloatArray, Table, TextArray


def fit(schema: DatasetSchema, train: Table, hyperparameters: Hyperparameters) -> LinearModel:
    """Fit the model `schema.task` asks for on the training split.

    `schema` is a completed one (`modelops.runtimes.trainer.schema.complete`), so that its
    features are every column but the target, in the file's order.

    Numeric means and scales and the categories of features without `allowed` come from
    `train` only; the classes are the target's `allowed` values if declared, otherwise the
    distinct labels of `train`, sorted. Raises `DatasetRefusedError` (rule `learnable`) if a
    feature has no value at all in the training split.
    """
    features: list[ModelFeature] = []
    mean: list[float] = []
    scale: list[float] = []
    for column in schema.features:
        if column.is_numeric:
            values = train.numeric[column.name]
            present = values[~np.isnan(values)]
            if present.size == 0:
                raise _unlearnable(column.name)
            std = float(present.std())
            mean.append(float(present.mean()))
            # A constant column carries no information; scale 1 keeps it harmlessly at 0.
            scale.append(std if std > 0 else 1.0)
            features.append(ModelFeature(name=column.name, type="numeric"))
        else:
            texts = train.categorical[column.name]
            seen = sorted(set(texts.tolist()) - {MISSING_CATEGORY})
            if not seen:
                raise _unlearnable(column.name)
            categories = column.allowed if column.allowed is not None else seen
            features.append(
                ModelFeature(name=column.name, type="categorical", categories=categories)
            )

    # The shapes are only known once the encoding is fixed; a zero model gives them.
    if schema.task == "classification":
        labels = train.categorical[schema.target]
        classes = schema.target_column.allowed or sorted(set(labels.tolist()))
        outputs = len(classes)
    else:
        classes = None
        outputs = 1
    width = sum(feature.width for feature in features)
    blank = LinearModel(
        task=schema.task,
        target=schema.target,
        features=features,
        classes=classes,
        mean=mean,
        scale=scale,
        weights=[[0.0] * outputs for _ in range(width)],
        bias=[0.0] * outputs,
    )
    encoded = encode(blank, train)
    if classes is not None:
        onehot = (train.categorical[schema.target][:, None] == np.array(classes)[None, :]).astype(
            np.float64
        )
        weights, bias = _softmax_regression(encoded, onehot, hyperparameters)
    else:
        weights, bias = _ridge(encoded, train.numeric[schema.target], hyperparameters.l2)
    if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
        raise TrainerError(
            "training diverged: the weights are not finite numbers, lower learningRate"
        )
    return blank.model_copy(update={"weights": weights.tolist(), "bias": bias.tolist()})


def encode(model: LinearModel, table: Table) -> FloatArray:
    """The encoded input matrix of `table` for `model`: one row per row, one column per input.

    Missing numeric values encode as 0 (the training mean); missing or unseen categories as
    all zeros.
    """
    blocks: list[FloatArray] = []
    numeric_index = 0
    for feature in model.features:
        if feature.categories is None:
            values = table.numeric[feature.name]
            standard = (values - model.mean[numeric_index]) / model.scale[numeric_index]
            blocks.append(np.nan_to_num(standard, nan=0.0)[:, None])
            numeric_index += 1
        else:
            texts = table.categorical[feature.name]
            blocks.append((texts[:, None] == np.array(feature.categories)[None, :]).astype(float))
    return np.hstack(blocks)


def predict_scores(model: LinearModel, table: Table) -> FloatArray:
    """The model's outputs per row: class probabilities (rows sum to 1) or a single value."""
    scores = encode(model, table) @ np.array(model.weights) + np.array(model.bias)
    return _softmax(scores) if model.classes is not None else scores


def predict_labels(model: LinearModel, table: Table) -> TextArray:
    """The most probable class per row (the first on a tie). Classification models only."""
    if model.classes is None:
        raise ValueError("a regression model predicts values, not labels")
    best = np.argmax(predict_scores(model, table), axis=1)
    labels: TextArray = np.array(model.classes, dtype=np.str_)[best]
    return labels


def _softmax(scores: FloatArray) -> FloatArray:
    # Subtracting the row maximum changes nothing mathematically and avoids overflow.
    exponentials = np.exp(scores - scores.max(axis=1, keepdims=True))
    result: FloatArray = exponentials / exponentials.sum(axis=1, keepdims=True)
    return result


def _softmax_regression(
    encoded: FloatArray, onehot: FloatArray, hyperparameters: Hyperparameters
) -> tuple[FloatArray, FloatArray]:
    rows = encoded.shape[0]
    weights = np.zeros((encoded.shape[1], onehot.shape[1]))
    bias = np.zeros(onehot.shape[1])
    for _ in range(hyperparameters.epochs):
        error = (_softmax(encoded @ weights + bias) - onehot) / rows
        weights -= hyperparameters.learning_rate * (
            encoded.T @ error + hyperparameters.l2 * weights
        )
        bias -= hyperparameters.learning_rate * error.sum(axis=0)
    return weights, bias


def _ridge(encoded: FloatArray, target: FloatArray, l2: float) -> tuple[FloatArray, FloatArray]:
    # Minimising mean(½ residual²) + l2/2 ||w||² is least squares on the data stacked on
    # sqrt(l2 · rows) · I (intercept column excluded); lstsq also copes with the rank
    # deficiency one-hot columns plus an intercept have when l2 is 0.
    rows, width = encoded.shape
    design = np.hstack([encoded, np.ones((rows, 1))])
    penalty = np.hstack([np.sqrt(l2 * rows) * np.eye(width), np.zeros((width, 1))])
    solution = np.linalg.lstsq(
        np.vstack([design, penalty]), np.concatenate([target, np.zeros(width)]), rcond=None
    )[0]
    return solution[:width, None], solution[width:]


def _unlearnable(name: str) -> DatasetRefusedError:
    return DatasetRefusedError.one(
        f'column "{name}": no value in the training split to learn from', "learnable"
    )
