"""The examples under ``examples/``: each training script, run as a TrainingRun's pod runs it,
writes an artifact the real server program serves with predictions equal to the framework's.

The script runs as a separate process with the ``MODELOPS_TRAINER_*`` environment the operator
gives a training pod; the served answers (tritonclient against ``python -m
modelops.runtimes.server``) are compared with the predictions of the same model refit here from
the script's own ``fit`` (deterministic: same data, same hyperparameters, same model). Their
manifests must be valid API objects naming images that ``examples/Containerfile`` builds.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
import yaml

from modelops import api
from modelops.api import artifact as contract
from tests.unit.test_server_protocol_process import server_process

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
DATASETS = REPO / "operator" / "modelops" / "datasets"


def example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / name / "train.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_run(name: str) -> dict[str, Any]:
    documents: list[dict[str, Any]] = list(
        yaml.safe_load_all((EXAMPLES / name / "model.yaml").read_text())
    )
    (run,) = (d for d in documents if d["kind"] == "TrainingRun")
    return run


def train(name: str, tmp_path: Path) -> contract.TrainingResult:
    """Run the example's script like the operator's training pod would."""
    spec = training_run(name)["spec"]
    dataset = DATASETS / spec["dataset"]["uri"].rsplit("/", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")}
    env |= {
        "MODELOPS_TRAINER_DATASET": str(dataset),
        "MODELOPS_TRAINER_DATASET_URI": spec["dataset"]["uri"],
        "MODELOPS_TRAINER_DATASET_DIGEST": spec["dataset"].get("digest", ""),
        "MODELOPS_TRAINER_OUTPUT_DIR": str(tmp_path / "artifact"),
        "MODELOPS_TRAINER_OUTPUT_URI": f"pvc://models/{name}",
        "MODELOPS_TRAINER_HYPERPARAMETERS": json.dumps(spec.get("hyperparameters", {})),
        "MODELOPS_TRAINER_TERMINATION_LOG": str(tmp_path / "termination-log"),
    }
    if "schema" in spec["dataset"]:
        env["MODELOPS_TRAINER_SCHEMA"] = json.dumps(spec["dataset"]["schema"])
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name / "train.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = contract.parse_termination_message((tmp_path / "termination-log").read_text())
    assert isinstance(result, contract.TrainingResult), result
    assert result.artifact.format == "onnx/v1"
    assert result.artifact.uri == f"pvc://models/{name}"
    return result


def served(tmp_path: Path, digest: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    with server_process(tmp_path, digest) as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        try:
            tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
            tensor.set_data_from_numpy(rows.astype(np.float64))
            answer = client.infer("iris", [tensor])
            outputs = {o["name"] for o in client.get_model_metadata("iris")["outputs"]}
            return {name: answer.as_numpy(name) for name in outputs}
        finally:
            client.close()


def test_sklearn_iris_example_serves_the_pipelines_predictions(tmp_path: Path) -> None:
    module = example("sklearn-iris")
    result = train("sklearn-iris", tmp_path)
    assert result.metrics["accuracy"] > 0.9
    x, y, _ = module.load(str(DATASETS / "iris.csv"), "species")
    pipeline, _, x_test, _ = module.fit(
        x, y, training_run("sklearn-iris")["spec"]["hyperparameters"]
    )
    answer = served(tmp_path, result.artifact.digest, x_test)
    assert [label.decode() for label in answer["predict"]] == pipeline.predict(x_test).tolist()
    np.testing.assert_allclose(answer["predict_proba"], pipeline.predict_proba(x_test), atol=1e-5)


def test_lightgbm_diabetes_example_serves_the_boosters_predictions(tmp_path: Path) -> None:
    module = example("lightgbm-diabetes")
    result = train("lightgbm-diabetes", tmp_path)
    assert result.metrics["rmse"] < 80
    x, y, _ = module.load(str(DATASETS / "diabetes.csv"), "progression")
    spec = training_run("lightgbm-diabetes")["spec"]
    booster, _, x_test, _ = module.fit(x, y, spec["hyperparameters"])
    answer = served(tmp_path, result.artifact.digest, x_test)
    # The graph computes in float32: values near 150 agree to float32 precision.
    np.testing.assert_allclose(answer["predict"], booster.predict(x_test), rtol=1e-5)


@pytest.mark.parametrize("name", ["sklearn-iris", "lightgbm-diabetes"])
def test_example_manifests_are_valid_and_name_a_built_image(name: str) -> None:
    documents = list(yaml.safe_load_all((EXAMPLES / name / "model.yaml").read_text()))
    for document in documents:
        getattr(api, document["kind"]).model_validate(document)
    image = training_run(name)["spec"]["image"]
    assert image == f"ghcr.io/modelops/example-{name}:0.1.0"
    assert f"AS {name}\n" in (EXAMPLES / "Containerfile").read_text()
