"""Train a scikit-learn pipeline on a CSV dataset and hand it to modelops as ONNX.

A TrainingRun runs this script in its own image (Containerfile here). The operator mounts the
dataset and the output directory and says where they are in MODELOPS_TRAINER_* variables;
`sdk.context()` reads them. The model is exported with skl2onnx and written with
`sdk.write_artifact` (the ONNX graph, model.json, reference statistics, manifest with digests),
and `sdk.report` tells the operator the result, which registers a ModelVersion of format
onnx/v1 that the reference server serves with onnxruntime.

Outside a cluster: MODELOPS_TRAINER_DATASET=iris.csv MODELOPS_TRAINER_OUTPUT_DIR=out \
MODELOPS_TRAINER_TERMINATION_LOG=result.json python train.py
"""

import csv
import sys

import numpy as np
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelops import sdk

ONNX_OPSET = 17


def load(path: str, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The numeric feature columns and the target column (labels kept as written)."""
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    names = [name for name in rows[0] if name != target]
    x = np.array([[float(row[name]) for name in names] for row in rows])
    y = np.array([row[target] for row in rows])
    return x, y, names


def fit(x: np.ndarray, y: np.ndarray, hyperparameters: dict) -> tuple:
    """The fitted pipeline and the split; the same data and hyperparameters give the same
    model (the tests refit it to compare the served predictions with the framework's)."""
    seed = int(hyperparameters.get("seed", 0))
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=seed, stratify=y
    )
    pipeline = make_pipeline(
        StandardScaler(), LogisticRegression(C=float(hyperparameters.get("C", 1.0)))
    )
    pipeline.fit(x_train, y_train)
    return pipeline, x_train, x_test, y_test


def main() -> int:
    run = sdk.context()
    target = (run.schema or {}).get("target", "species")
    try:
        x, y, names = load(str(run.dataset), target)
    except (OSError, KeyError, ValueError) as error:
        sdk.fail(run, f"cannot read {run.dataset}: {error}")
        return 1
    pipeline, x_train, x_test, y_test = fit(x, y, dict(run.hyperparameters))
    predicted = pipeline.predict(x_test)
    metrics = {
        "accuracy": accuracy_score(y_test, predicted),
        "f1": f1_score(y_test, predicted, average="macro"),
    }
    graph = to_onnx(pipeline, x_train[:1].astype(np.float32), target_opset=ONNX_OPSET)
    artifact = sdk.write_artifact(
        run.output_dir,
        model=graph.SerializeToString(),
        task="classification",
        target=target,
        features=x_train,
        feature_names=names,
        classes=pipeline.classes_,
        opset=ONNX_OPSET,
    )
    sdk.report(artifact, run, metrics=metrics)
    print(f"wrote {artifact.digest} to {artifact.directory}: {metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
