"""Train a LightGBM regressor on a CSV dataset and hand it to modelops as ONNX.

A TrainingRun runs this script in its own image (examples/Containerfile, target
lightgbm-diabetes). `sdk.context()` reads where the operator mounted the dataset and the output
directory; the booster is exported with onnxmltools and written with `sdk.write_artifact`;
`sdk.report` tells the operator the result, which registers a ModelVersion of format onnx/v1.

Outside a cluster: MODELOPS_TRAINER_DATASET=diabetes.csv MODELOPS_TRAINER_OUTPUT_DIR=out \
MODELOPS_TRAINER_TERMINATION_LOG=result.json python train.py
"""

import csv
import sys

import lightgbm
import numpy as np
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.model_selection import train_test_split

from modelops import sdk

# The newest opset onnxmltools 1.16 converts LightGBM to.
ONNX_OPSET = 15


def load(path: str, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The numeric feature columns and the numeric target column."""
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    names = [name for name in rows[0] if name != target]
    x = np.array([[float(row[name]) for name in names] for row in rows])
    y = np.array([float(row[target]) for row in rows])
    return x, y, names


def fit(x: np.ndarray, y: np.ndarray, hyperparameters: dict) -> tuple:
    """The fitted booster and the split; the same data and hyperparameters give the same model
    (deterministic, one thread: the tests refit it to compare the served predictions)."""
    seed = int(hyperparameters.get("seed", 0))
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=seed)
    model = lightgbm.LGBMRegressor(
        n_estimators=int(hyperparameters.get("trees", 100)),
        learning_rate=float(hyperparameters.get("learningRate", 0.05)),
        num_leaves=int(hyperparameters.get("leaves", 15)),
        random_state=seed,
        deterministic=True,
        force_row_wise=True,
        n_jobs=1,
        verbose=-1,
    )
    model.fit(x_train, y_train)
    return model, x_train, x_test, y_test


def main() -> int:
    run = sdk.context()
    target = (run.schema or {}).get("target", "progression")
    try:
        x, y, names = load(str(run.dataset), target)
    except (OSError, KeyError, ValueError) as error:
        sdk.fail(run, f"cannot read {run.dataset}: {error}")
        return 1
    model, x_train, x_test, y_test = fit(x, y, dict(run.hyperparameters))
    predicted = model.predict(x_test)
    metrics = {
        "rmse": root_mean_squared_error(y_test, predicted),
        "mae": mean_absolute_error(y_test, predicted),
    }
    graph = convert_lightgbm(
        model,
        initial_types=[("input", FloatTensorType([None, len(names)]))],
        target_opset=ONNX_OPSET,
    )
    artifact = sdk.write_artifact(
        run.output_dir,
        model=graph.SerializeToString(),
        task="regression",
        target=target,
        features=x_train,
        feature_names=names,
        opset=ONNX_OPSET,
    )
    sdk.report(artifact, run, metrics=metrics)
    print(f"wrote {artifact.digest} to {artifact.directory}: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
