"""ONNX models through the SDK and the reference server: framework predictions, V2 answers.

Each test trains a real scikit-learn model, exports it with skl2onnx, writes the artifact with
``modelops.sdk`` (as a user's training script would) and serves it with the real server: in
process over HTTP on 127.0.0.1, or as the ``python -m modelops.runtimes.server`` program asked
by tritonclient. The V2 answers must equal the framework's own predictions on the same rows,
to float32 tolerance (skl2onnx computes in float32).
"""

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from aiohttp import test_utils
from prometheus_client import CollectorRegistry
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelops import sdk
from modelops.api import artifact as contract
from modelops.runtimes.server import app as server_app
from modelops.runtimes.server import loader
from modelops.runtimes.server.settings import ServerSettings
from modelops.runtimes.trainer.reference import numeric_reference
from tests.unit.test_server import metric
from tests.unit.test_server_protocol_process import server_process

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SPECIES = np.array(["setosa", "versicolor", "virginica"])
TOLERANCE = 1e-5


def iris_artifact(directory: Path) -> tuple[Any, np.ndarray, sdk.Artifact]:
    """A scaler + logistic regression pipeline on iris with text labels, as an artifact."""
    x, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(x, SPECIES[y])
    graph = to_onnx(pipeline, x[:1].astype(np.float32), target_opset=17)
    written = sdk.write_artifact(
        directory,
        model=graph.SerializeToString(),
        task="classification",
        target="species",
        features=x,
        feature_names=IRIS_FEATURES,
        classes=pipeline.classes_,
        opset=17,
    )
    return pipeline, x, written


def settings(written: sdk.Artifact) -> ServerSettings:
    return ServerSettings(
        model_name="iris",
        model_version="v1",
        artifact_dir=written.directory,
        artifact_digest=written.digest,
    )


def serve(
    served: ServerSettings, requests: list[tuple[str, str, Any]]
) -> tuple[list[tuple[int, Any]], CollectorRegistry]:
    """Answer ``(method, path, body)`` requests with the real application: (status, json) of
    each, and the server's metrics registry."""
    registry = CollectorRegistry()
    answers: list[tuple[int, Any]] = []

    async def main() -> None:
        app = server_app.create_app(served, registry)
        async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
            await app[server_app.LOADING].wait()
            for method, path, body in requests:
                response = await client.request(method, path, json=body)
                answers.append((response.status, await response.json()))

    asyncio.run(main())
    return answers, registry


def outputs(answer: Any) -> dict[str, Any]:
    return {output["name"]: output for output in answer["outputs"]}


def test_sklearn_classifier_answers_like_the_framework(tmp_path: Path) -> None:
    pipeline, x, written = iris_artifact(tmp_path / "artifact")
    rows = x[::7]
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    ((meta_status, metadata), (status, answer)), registry = serve(
        settings(written),
        [("GET", "/v2/models/iris", None), ("POST", "/v2/models/iris/infer", body)],
    )
    assert meta_status == 200
    assert metadata["platform"] == "onnx/v1"
    assert [item["name"] for item in metadata["inputs"]] == IRIS_FEATURES
    assert metadata["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]
    assert status == 200, answer
    result = outputs(answer)
    assert result["predict"]["data"] == pipeline.predict(rows).tolist()
    np.testing.assert_allclose(
        np.array(result["predict_proba"]["data"]).reshape(len(rows), 3),
        pipeline.predict_proba(rows),
        atol=TOLERANCE,
    )
    # The features went into the drift histograms like any served model's.
    observed = metric(registry, "modelops_server_feature_value_count", feature="petal_length")
    assert observed == len(rows)


def test_mixed_pipeline_with_one_input_per_feature(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    size = rng.normal(10, 3, 300)
    colour = rng.choice(["blue", "red", "green"], 300)
    label = np.where((colour == "red") | (size > 12), "warm", "cold")
    frame = {"size": size, "colour": colour}
    pipeline = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), ["size"]), ("cat", OneHotEncoder(), ["colour"])]
        ),
        LogisticRegression(),
    )
    import pandas as pd  # scikit-learn's ColumnTransformer selects named columns from a frame

    data = pd.DataFrame(frame)
    pipeline.fit(data, label)
    graph = to_onnx(
        pipeline,
        initial_types=[
            ("size", FloatTensorType([None, 1])),
            ("colour", StringTensorType([None, 1])),
        ],
        target_opset=17,
    )
    written = sdk.write_artifact(
        tmp_path / "artifact",
        model=graph.SerializeToString(),
        task="classification",
        target="label",
        features=data,
        categorical=["colour"],
        classes=pipeline.classes_,
    )
    reference = contract.ReferenceStats.model_validate_json(
        (tmp_path / "artifact" / contract.REFERENCE_FILE).read_bytes()
    )
    assert [feature.type for feature in reference.features] == ["numeric", "categorical"]
    rows = data.iloc[:12]
    body = {
        "inputs": [
            {"name": "size", "shape": [12], "datatype": "FP64", "data": rows["size"].tolist()},
            {"name": "colour", "shape": [12], "datatype": "BYTES", "data": rows["colour"].tolist()},
        ]
    }
    ((status, answer),), _ = serve(settings(written), [("POST", "/v2/models/iris/infer", body)])
    assert status == 200, answer
    result = outputs(answer)
    assert result["predict"]["data"] == pipeline.predict(rows).tolist()
    np.testing.assert_allclose(
        np.array(result["predict_proba"]["data"]).reshape(12, 2),
        pipeline.predict_proba(rows),
        atol=TOLERANCE,
    )


def test_regressor_through_the_server_program_and_tritonclient(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    model = GradientBoostingRegressor(n_estimators=30, random_state=0).fit(x, y)
    graph = to_onnx(model, x[:1].astype(np.float32), target_opset=17)
    written = sdk.write_artifact(
        tmp_path / "artifact",
        model=graph.SerializeToString(),
        task="regression",
        target="progression",
        features=x,
    )
    with server_process(tmp_path, written.digest) as server:
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        try:
            assert client.get_model_metadata("iris")["platform"] == "onnx/v1"
            tensor = triton.InferInput("input-0", [20, x.shape[1]], "FP32")
            tensor.set_data_from_numpy(x[:20].astype(np.float32))
            answer = client.infer("iris", [tensor]).as_numpy("predict")
        finally:
            client.close()
    # float32 trees: the same split decisions, sums to float32 precision of values near 100.
    np.testing.assert_allclose(answer, model.predict(x[:20]), rtol=1e-5)


def test_tampered_graph_is_refused_before_loading(tmp_path: Path) -> None:
    _, _, written = iris_artifact(tmp_path / "artifact")
    graph = written.directory / contract.ONNX_FILE
    graph.write_bytes(graph.read_bytes() + b"\0")
    with pytest.raises(loader.ArtifactError) as refused:
        loader.load_artifact(written.directory, written.digest)
    assert refused.value.reason == "digest_mismatch"
    assert "model.onnx" in str(refused.value)
    ((status, answer),), _ = serve(settings(written), [("GET", "/v2/models/iris/ready", None)])
    assert status == 503, answer


def test_graph_that_fits_no_feature_layout_is_refused(tmp_path: Path) -> None:
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x[:, :3], SPECIES[y])
    graph = to_onnx(model, x[:1, :3].astype(np.float32), target_opset=17)
    written = sdk.write_artifact(  # four features described, the graph takes three
        tmp_path / "artifact",
        model=graph.SerializeToString(),
        task="classification",
        target="species",
        features=x,
        feature_names=IRIS_FEATURES,
        classes=model.classes_,
    )
    with pytest.raises(loader.ArtifactError) as refused:
        asyncio.run(_load(written))
    assert refused.value.reason == "invalid_artifact"
    assert "takes 3 columns" in str(refused.value)
    assert "4 features" in str(refused.value)


async def _load(written: sdk.Artifact) -> None:
    from modelops.runtimes.server.model import ArtifactServedModel

    await ArtifactServedModel(written.directory, written.digest).load()


def test_model_json_names_a_file_the_manifest_lacks(tmp_path: Path) -> None:
    directory = tmp_path / "artifact"
    iris_artifact(directory)
    document = json.loads((directory / contract.MODEL_FILE).read_bytes())
    document["file"] = "other.onnx"
    files = {
        contract.ONNX_FILE: (directory / contract.ONNX_FILE).read_bytes(),
        contract.MODEL_FILE: json.dumps(document).encode(),
        contract.REFERENCE_FILE: (directory / contract.REFERENCE_FILE).read_bytes(),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    manifest = contract.manifest_bytes(files)
    (directory / contract.MANIFEST_FILE).write_bytes(manifest)
    with pytest.raises(loader.ArtifactError, match=r"does not list other\.onnx"):
        loader.load_artifact(directory, contract.sha256_digest(manifest))


# ---------------------------------------------------------------------------------------------
# The SDK


def test_sdk_reference_is_the_reference_trainers(tmp_path: Path) -> None:
    _, x, written = iris_artifact(tmp_path / "artifact")
    reference = contract.ReferenceStats.model_validate_json(
        (written.directory / contract.REFERENCE_FILE).read_bytes()
    )
    assert reference.rows == len(x)
    assert reference.features[2] == numeric_reference("petal_length", x[:, 2], sdk.DEFAULT_BINS)
    # The whole artifact verifies against the digest the SDK returned.
    contract.verify_artifact(written.directory, written.digest)


def test_sdk_refuses_to_overwrite_a_different_artifact(tmp_path: Path) -> None:
    iris_artifact(tmp_path / "artifact")
    x, _ = load_iris(return_X_y=True)
    with pytest.raises(Exception, match="already holds a different artifact"):
        sdk.write_artifact(
            tmp_path / "artifact",
            model=b"other",
            task="regression",
            target="y",
            features=x,
        )


def test_sdk_context_and_report_give_the_operators_result(tmp_path: Path) -> None:
    dataset = tmp_path / "iris.csv"
    dataset.write_text("a,b\n1,2\n")
    log = tmp_path / "termination-log"
    run = sdk.context(
        {
            "MODELOPS_TRAINER_DATASET": str(dataset),
            "MODELOPS_TRAINER_DATASET_URI": "pvc://data/iris.csv",
            "MODELOPS_TRAINER_OUTPUT_DIR": str(tmp_path / "artifact"),
            "MODELOPS_TRAINER_OUTPUT_URI": "pvc://models/iris/iris-3",
            "MODELOPS_TRAINER_HYPERPARAMETERS": '{"C": 0.5}',
            "MODELOPS_TRAINER_TERMINATION_LOG": str(log),
        }
    )
    assert run.hyperparameters == {"C": 0.5}
    _, _, written = iris_artifact(run.output_dir)
    sdk.report(written, run, metrics={"accuracy": 0.97})
    result = contract.parse_termination_message(log.read_text())
    assert isinstance(result, contract.TrainingResult)
    assert result.artifact.uri == "pvc://models/iris/iris-3"
    assert result.artifact.digest == written.digest
    assert result.artifact.format == "onnx/v1"
    assert result.reference_stats == "pvc://models/iris/iris-3/reference.json"
    assert result.dataset.digest == contract.sha256_digest(dataset.read_bytes())
    assert result.metrics == {"accuracy": 0.97}

    sdk.fail(run, "the labels\nare empty")
    failure = contract.parse_termination_message(log.read_text())
    assert failure == contract.TrainingFailure(error="the labels are empty")


def test_sdk_context_names_a_missing_variable() -> None:
    with pytest.raises(KeyError, match="MODELOPS_TRAINER_DATASET"):
        sdk.context({"MODELOPS_TRAINER_OUTPUT_DIR": "/out"})


def test_sdk_refuses_a_dataset_other_than_the_pinned_one(tmp_path: Path) -> None:
    dataset = tmp_path / "data.csv"
    dataset.write_text("a\n1\n")
    run = sdk.TrainingContext(
        dataset=dataset,
        output_dir=tmp_path / "artifact",
        dataset_uri="pvc://data/data.csv",
        dataset_digest="sha256:" + "0" * 64,
        termination_log=tmp_path / "log",
    )
    _, _, written = iris_artifact(run.output_dir)
    with pytest.raises(ValueError, match="the run expects sha256:0000"):
        sdk.report(written, run, metrics={})
