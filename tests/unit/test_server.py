"""The reference model server, in process: artifact verification, the OIP v2 API, metrics.

Nothing is mocked: each test writes a small artifact into ``tmp_path`` (hand-written
``model.json`` and ``reference.json``, a manifest with real digests), starts the real aiohttp
application on 127.0.0.1 through aiohttp's test server and talks HTTP to it. Tests wait for the
model load by awaiting the loading task, never by sleeping.
"""

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import test_utils
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from modelops.api import artifact as contract
from modelops.runtimes.server import app as server_app
from modelops.runtimes.server import loader
from modelops.runtimes.server.settings import ServerSettings

# A 2-feature 2-class classifier whose outputs are easy to compute by hand: x1 and x2 are
# standardised to z = ((x1 - 1) / 2, (x2 - 2) / 4), logits = (z1 + z2 / 2, -z1 + z2 / 2 + 1).
# (x1, x2) = (3, 6) -> z = (1, 1) -> logits (1.5, 0.5) -> P(a) = 1 / (1 + e^-1).
# (x1, x2) = (1, 2) -> z = (0, 0) -> logits (0, 1)     -> P(b) = 1 / (1 + e^-1).
SIGMOID_1 = 1 / (1 + math.exp(-1))
CLASSIFIER: dict[str, Any] = {
    "format": "modelops-linear/v1",
    "task": "classification",
    "target": "label",
    "features": [{"name": "x1", "type": "numeric"}, {"name": "x2", "type": "numeric"}],
    "classes": ["a", "b"],
    "mean": [1.0, 2.0],
    "scale": [2.0, 4.0],
    "weights": [[1.0, -1.0], [0.5, 0.5]],
    "bias": [0.0, 1.0],
}
CLASSIFIER_REFERENCE: dict[str, Any] = {
    "rows": 4,
    "features": [
        {"name": "x1", "type": "numeric", "binEdges": [0.0, 1.0, 2.5], "counts": [1, 1, 1, 1]},
        {"name": "x2", "type": "numeric", "binEdges": [1.5, 3.0], "counts": [2, 1, 1]},
    ],
}

# One numeric and one categorical feature: the colour alone decides the class.
MIXED: dict[str, Any] = {
    "format": "modelops-linear/v1",
    "task": "classification",
    "target": "label",
    "features": [
        {"name": "size", "type": "numeric"},
        {"name": "colour", "type": "categorical", "categories": ["blue", "red"]},
    ],
    "classes": ["cold", "warm"],
    "mean": [0.0],
    "scale": [1.0],
    "weights": [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
    "bias": [0.0, 0.0],
}
MIXED_REFERENCE: dict[str, Any] = {
    "rows": 2,
    "features": [
        {"name": "size", "type": "numeric", "binEdges": [0.0], "counts": [1, 1]},
        {"name": "colour", "type": "categorical", "categories": ["blue", "red"], "counts": [1, 1]},
    ],
}

# y = 2 * x + 1 on the raw value (mean 0, scale 1).
REGRESSOR: dict[str, Any] = {
    "format": "modelops-linear/v1",
    "task": "regression",
    "target": "y",
    "features": [{"name": "x", "type": "numeric"}],
    "mean": [0.0],
    "scale": [1.0],
    "weights": [[2.0]],
    "bias": [1.0],
}
REGRESSOR_REFERENCE: dict[str, Any] = {
    "rows": 1,
    "features": [{"name": "x", "type": "numeric", "binEdges": [0.0], "counts": [1, 0]}],
}


def write_artifact(
    directory: Path,
    model: dict[str, Any] = CLASSIFIER,
    reference: dict[str, Any] = CLASSIFIER_REFERENCE,
) -> str:
    """Write an artifact directory as a trainer would; return its digest."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        contract.MODEL_FILE: json.dumps(model).encode(),
        contract.REFERENCE_FILE: json.dumps(reference).encode(),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    manifest = contract.manifest_bytes(files)
    (directory / contract.MANIFEST_FILE).write_bytes(manifest)
    return contract.sha256_digest(manifest)


def make_settings(directory: Path, digest: str, **overrides: Any) -> ServerSettings:
    return ServerSettings(
        model_name="iris",
        model_version="v1",
        artifact_dir=directory,
        artifact_digest=digest,
        **overrides,
    )


@asynccontextmanager
async def serving(
    settings: ServerSettings, registry: CollectorRegistry
) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    """Run the server on 127.0.0.1 and yield a client once the model load has finished."""
    app = server_app.create_app(settings, registry)
    async with test_utils.TestClient(test_utils.TestServer(app, host="127.0.0.1")) as client:
        await app[server_app.LOADING].wait()
        yield client


Scenario = Callable[[test_utils.TestClient[Any, Any]], Awaitable[None]]


def run(settings: ServerSettings, scenario: Scenario) -> CollectorRegistry:
    """Serve ``settings``, play ``scenario`` against it, return the registry for assertions."""
    registry = CollectorRegistry()

    async def main() -> None:
        async with serving(settings, registry) as client:
            await scenario(client)

    asyncio.run(main())
    return registry


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    """The value of one sample in the text exposition, as a scraper would see it."""
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def matrix(rows: list[list[float]], datatype: str = "FP32") -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(rows[0])],
                "datatype": datatype,
                "data": [value for row in rows for value in row],
            }
        ]
    }


@pytest.fixture
def classifier(tmp_path: Path) -> ServerSettings:
    return make_settings(tmp_path / "artifact", write_artifact(tmp_path / "artifact"))


# ---------------------------------------------------------------------------------------------
# Settings


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("MODELOPS_SERVER_") or key == "POD_IP":
            monkeypatch.delenv(key)
    digest = "sha256:" + "0" * 64
    monkeypatch.setenv("MODELOPS_SERVER_MODEL_NAME", "iris")
    monkeypatch.setenv("MODELOPS_SERVER_MODEL_VERSION", "v7")
    monkeypatch.setenv("MODELOPS_SERVER_ARTIFACT_DIR", str(tmp_path))
    monkeypatch.setenv("MODELOPS_SERVER_ARTIFACT_DIGEST", digest)
    monkeypatch.setenv("MODELOPS_SERVER_RETIRED", "true")
    settings = ServerSettings()
    assert (settings.model_name, settings.model_version) == ("iris", "v7")
    assert settings.artifact_dir == tmp_path
    assert settings.artifact_digest == digest
    assert settings.retired is True
    assert (settings.host, settings.port) == ("0.0.0.0", 8080)
    assert (settings.max_batch_size, settings.max_body_bytes) == (1024, 1024 * 1024)

    monkeypatch.setenv("POD_IP", "10.0.0.9")  # no longer read: port-forward dials loopback
    assert ServerSettings().host == "0.0.0.0"
    monkeypatch.setenv("MODELOPS_SERVER_HOST", "127.0.0.1")
    assert ServerSettings().host == "127.0.0.1"


def test_settings_refuse_a_malformed_digest(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="artifact_digest"):
        make_settings(tmp_path, "md5:abc")


# ---------------------------------------------------------------------------------------------
# Loading and verifying the artifact


def test_load_artifact_returns_the_verified_documents(tmp_path: Path) -> None:
    digest = write_artifact(tmp_path)
    (tmp_path / "notes.txt").write_text("not listed in the manifest, so not part of it")
    verified = loader.load_artifact(tmp_path, digest)
    assert verified.digest == digest
    assert isinstance(verified.model, contract.LinearModel)
    assert [feature.name for feature in verified.model.features] == ["x1", "x2"]
    assert [feature.name for feature in verified.reference.features] == ["x1", "x2"]


def test_tampered_file_is_refused_naming_the_file_and_digests(tmp_path: Path) -> None:
    digest = write_artifact(tmp_path)
    listed = json.loads((tmp_path / "manifest.json").read_bytes())["files"]["model.json"]
    tampered = dict(CLASSIFIER, bias=[5.0, 1.0])
    (tmp_path / "model.json").write_text(json.dumps(tampered))
    with pytest.raises(loader.ArtifactError) as refused:
        loader.load_artifact(tmp_path, digest)
    assert refused.value.reason == "digest_mismatch"
    message = str(refused.value)
    assert "model.json" in message
    assert listed in message
    assert contract.sha256_digest(json.dumps(tampered).encode()) in message


def test_wrong_expected_digest_is_refused(tmp_path: Path) -> None:
    write_artifact(tmp_path)
    expected = "sha256:" + "f" * 64
    with pytest.raises(loader.ArtifactError, match=f"manifest.json .*expected {expected}") as e:
        loader.load_artifact(tmp_path, expected)
    assert e.value.reason == "digest_mismatch"


@pytest.mark.parametrize("name", ["manifest.json", "reference.json"])
def test_missing_file_is_refused(tmp_path: Path, name: str) -> None:
    digest = write_artifact(tmp_path)
    (tmp_path / name).unlink()
    with pytest.raises(loader.ArtifactError, match=name) as refused:
        loader.load_artifact(tmp_path, digest)
    assert refused.value.reason == "missing_file"


def test_retired_marker_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    digest = write_artifact(tmp_path)
    (tmp_path / "RETIRED").write_text("retired by modelops at 2026-11-28T07:00:00Z\n")
    with pytest.raises(loader.ArtifactError, match="RETIRED: retired by modelops") as refused:
        loader.load_artifact(tmp_path, digest)
    assert refused.value.reason == "retired"


def test_model_feature_without_reference_statistics_is_refused(tmp_path: Path) -> None:
    reference = dict(CLASSIFIER_REFERENCE, features=CLASSIFIER_REFERENCE["features"][:1])
    digest = write_artifact(tmp_path, reference=reference)
    with pytest.raises(loader.ArtifactError, match="statistics for feature 'x2'") as refused:
        loader.load_artifact(tmp_path, digest)
    assert refused.value.reason == "invalid_artifact"


def test_model_that_breaks_the_contract_is_refused(tmp_path: Path) -> None:
    digest = write_artifact(tmp_path, model=dict(CLASSIFIER, weights=[[1.0, -1.0]]))
    with pytest.raises(loader.ArtifactError, match=r"model\.json is invalid") as refused:
        loader.load_artifact(tmp_path, digest)
    assert refused.value.reason == "invalid_artifact"


# ---------------------------------------------------------------------------------------------
# Health and metadata


def test_health_and_metadata(classifier: ServerSettings) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert (await client.get(path)).status == 200
        for path in ("/v2/models/iris/ready", "/v2/models/iris/versions/v1/ready"):
            response = await client.get(path)
            assert response.status == 200
            assert await response.json() == {"name": "iris", "ready": True}

        server = await (await client.get("/v2")).json()
        assert server == {
            "name": "modelops-server",
            "version": "0.1.0",
            "extensions": ["binary_tensor_data"],
        }

        for path in ("/v2/models/iris", "/v2/models/iris/versions/v1"):
            response = await client.get(path)
            assert response.status == 200
            assert await response.json() == {
                "name": "iris",
                "versions": ["v1"],
                "platform": "modelops-linear/v1",
                "inputs": [
                    {"name": "x1", "datatype": "FP64", "shape": [-1]},
                    {"name": "x2", "datatype": "FP64", "shape": [-1]},
                ],
                "outputs": [
                    {"name": "predict", "datatype": "BYTES", "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
                ],
            }

    run(classifier, scenario)


def test_reference_endpoint_returns_the_verified_reference(classifier: ServerSettings) -> None:
    expected = json.loads((classifier.artifact_dir / "reference.json").read_text())

    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        response = await client.get("/v2/models/iris/versions/v1/reference")
        assert response.status == 200
        assert await response.json() == expected
        assert (await client.get("/v2/models/iris/versions/v9/reference")).status == 404

    run(classifier, scenario)


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/v2/models/mnist", 404, "Model 'mnist' is not served here"),
        ("GET", "/v2/models/iris/versions/v2", 404, "has no version 'v2'"),
        ("GET", "/v2/models/iris/versions/v2/ready", 404, "has no version 'v2'"),
        ("POST", "/v2/models/iris/versions/v2/infer", 404, "has no version 'v2'"),
        ("POST", "/v2/models/mnist/infer", 404, "Model 'mnist' is not served here"),
        ("GET", "/v1/models/iris", 404, "Not Found"),
        ("GET", "/v2/models/iris/infer", 405, "Method Not Allowed"),
    ],
)
def test_unknown_models_versions_and_routes(
    classifier: ServerSettings, method: str, path: str, status: int, message: str
) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        response = await client.request(method, path, json=matrix([[1, 2]]))
        assert response.status == status
        assert message in (await response.json())["error"]

    run(classifier, scenario)


# ---------------------------------------------------------------------------------------------
# Inference


def test_infer_with_one_2d_tensor(classifier: ServerSettings) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        body = matrix([[3, 6], [1, 2]]) | {"id": "request-1"}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status == 200
        result = await response.json()
        assert result["model_name"] == "iris"
        assert result["model_version"] == "v1"
        assert result["id"] == "request-1"
        predict, proba = result["outputs"]
        assert predict == {"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}
        assert proba["name"] == "predict_proba"
        assert proba["shape"] == [2, 2]
        assert proba["datatype"] == "FP64"
        expected = [SIGMOID_1, 1 - SIGMOID_1, 1 - SIGMOID_1, SIGMOID_1]
        assert proba["data"] == pytest.approx(expected, rel=1e-12)

    run(classifier, scenario)


def test_infer_with_one_tensor_per_feature_on_the_versioned_path(
    classifier: ServerSettings,
) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        body = {
            "inputs": [
                # Order does not matter: inputs are matched to features by name.
                {"name": "x2", "shape": [2], "datatype": "INT64", "data": [6, 2]},
                {"name": "x1", "shape": [2], "datatype": "FP64", "data": [3.0, 1.0]},
            ],
            "outputs": [{"name": "predict"}],
        }
        response = await client.post("/v2/models/iris/versions/v1/infer", json=body)
        assert response.status == 200
        result = await response.json()
        assert "id" not in result
        assert result["outputs"] == [
            {"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}
        ]

    run(classifier, scenario)


def test_infer_categorical_features_as_bytes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, write_artifact(tmp_path, MIXED, MIXED_REFERENCE))

    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        body = {
            "inputs": [
                {"name": "size", "shape": [3], "datatype": "FP32", "data": [0, 0, 0]},
                {
                    "name": "colour",
                    "shape": [3],
                    "datatype": "BYTES",
                    "data": ["blue", "red", "green"],
                },
            ]
        }
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status == 200
        predict, proba = (await response.json())["outputs"]
        # An unseen category encodes as all zeros: equal logits, the first class on a tie.
        assert predict["data"] == ["cold", "warm", "cold"]
        expected = [SIGMOID_1, 1 - SIGMOID_1, 1 - SIGMOID_1, SIGMOID_1, 0.5, 0.5]
        assert proba["data"] == pytest.approx(expected, rel=1e-12)

    registry = run(settings, scenario)
    family = "modelops_server_feature_category_total"
    for category, count in [("blue", 1), ("red", 1), ("__other__", 1)]:
        labels = {"feature": "colour", "category": category, "model": "iris", "version": "v1"}
        assert metric(registry, family, **labels) == count


def test_infer_regression(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, write_artifact(tmp_path, REGRESSOR, REGRESSOR_REFERENCE))

    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        body = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [0.5, -1]}]}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status == 200
        assert (await response.json())["outputs"] == [
            {"name": "predict", "shape": [2], "datatype": "FP64", "data": [2.0, -1.0]}
        ]
        # Finite inputs, but 2 * 1e308 overflows float64: JSON cannot carry the result.
        body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1e308]}]}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status == 400
        assert "outputs overflow" in (await response.json())["error"]

    registry = run(settings, scenario)
    # The refused request is not in the feature distribution.
    assert metric(registry, "modelops_server_feature_value_count", feature="x") == 2


def tensor(name: str, shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


X2 = tensor("x2", [1], "FP64", [1.0])

INVALID_REQUESTS: list[tuple[str, Any, str]] = [
    ("not an object", [1, 2], "must be a JSON object"),
    ("no inputs", {}, "has no 'inputs'"),
    ("empty inputs", {"inputs": []}, "has no 'inputs'"),
    ("input not an object", {"inputs": [3]}, "Input 0 must be a JSON object"),
    ("no name", {"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}, "no 'name'"),
    ("no datatype", {"inputs": [{"name": "x1", "shape": [1], "data": [1]}]}, "no 'datatype'"),
    ("no shape", {"inputs": [{"name": "x1", "datatype": "FP64", "data": [1]}]}, "invalid 'shape'"),
    ("negative shape", {"inputs": [tensor("x1", [-1], "FP64", [1])]}, "invalid 'shape'"),
    ("no data", {"inputs": [{"name": "x1", "shape": [1], "datatype": "FP64"}]}, "no 'data' list"),
    (
        "shape product differs from data length",
        {"inputs": [tensor("input-0", [2, 2], "FP64", [1, 2, 3])]},
        "shape [2, 2] (4 elements) but 3 data elements",
    ),
    (
        "wrong feature count",
        {"inputs": [tensor("input-0", [1, 3], "FP64", [1, 2, 3])]},
        "the model expects [N, 2] with columns x1, x2",
    ),
    (
        "three dimensions",
        {"inputs": [tensor("input-0", [1, 1, 2], "FP64", [1, 2])]},
        "send either one [N, n_features] tensor or one [N] tensor per feature",
    ),
    (
        "2-D tensor next to another",
        {"inputs": [tensor("input-0", [1, 2], "FP64", [1, 2]), X2]},
        "send either one [N, n_features] tensor",
    ),
    (
        "bytes for a numeric feature",
        {"inputs": [tensor("x1", [1], "BYTES", ["1.0"]), X2]},
        "Input 'x1' has datatype BYTES: a numeric feature needs FP32, FP64, INT32, INT64",
    ),
    (
        "unknown datatype",
        {"inputs": [tensor("input-0", [1, 2], "FP128", [1, 2])]},
        "datatype FP128",
    ),
    ("unknown feature", {"inputs": [tensor("x3", [1], "FP64", [1]), X2]}, "Unknown input 'x3'"),
    ("missing feature", {"inputs": [X2]}, "Missing input for feature(s) x1"),
    ("duplicate feature", {"inputs": [X2, X2]}, "Input 'x2' is given more than once"),
    (
        "batch sizes differ",
        {"inputs": [tensor("x1", [2], "FP64", [1, 2]), X2]},
        "different batch sizes: 'x1' has 2 rows, 'x2' has 1",
    ),
    (
        "string in a numeric tensor",
        {"inputs": [tensor("input-0", [1, 2], "FP64", ["a", 1])]},
        "contains non-numeric values",
    ),
    (
        "boolean in a numeric tensor",
        {"inputs": [tensor("input-0", [1, 2], "FP64", [True, False])]},
        "contains non-numeric values",
    ),
    (
        "null in a numeric tensor",
        {"inputs": [tensor("input-0", [1, 2], "FP64", [None, 1])]},
        "contains non-numeric values",
    ),
    (
        "fraction in an integer tensor",
        {"inputs": [tensor("input-0", [1, 2], "INT32", [1.5, 1])]},
        "datatype INT32 but its data contains non-integer values",
    ),
    (
        "ragged nested data",
        {"inputs": [tensor("input-0", [2, 2], "FP64", [[1, 2], [3]])]},
        "ragged nested 'data'",
    ),
    ("id not a string", matrix([[1, 2]]) | {"id": 7}, "'id' must be a string"),
    ("unknown output", matrix([[1, 2]]) | {"outputs": [{"name": "logits"}]}, "Unknown output"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [pytest.param(body, message, id=case) for case, body, message in INVALID_REQUESTS],
)
def test_invalid_request_is_400_naming_the_problem(
    classifier: ServerSettings, body: Any, message: str
) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status == 400
        assert message in (await response.json())["error"]

    run(classifier, scenario)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"inputs": [', "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (
            b'{"inputs": [{"name": "in", "shape": [1, 2], "datatype": "FP64",'
            b' "data": [1, Infinity]}]}',
            "Input 'in' contains infinite values",
        ),
    ],
)
def test_unparseable_or_non_finite_body_is_400(
    classifier: ServerSettings, raw: bytes, message: str
) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        response = await client.post("/v2/models/iris/infer", data=raw)
        assert response.status == 400
        assert message in (await response.json())["error"]

    run(classifier, scenario)


def test_categorical_inputs_must_be_bytes_and_per_feature(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, write_artifact(tmp_path, MIXED, MIXED_REFERENCE))
    size = tensor("size", [1], "FP64", [1.0])
    cases = [
        ({"inputs": [size, tensor("colour", [1], "INT32", [1])]}, "categorical feature needs"),
        ({"inputs": [size, tensor("colour", [1], "BYTES", [1])]}, "contains non-string values"),
        ({"inputs": [size, tensor("colour", [1], "BYTES", ["a", "b"])]}, "2 data elements"),
        ({"inputs": [tensor("in", [1, 2], "FP64", [1, 2])]}, "has categorical features"),
    ]

    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        for body, message in cases:
            response = await client.post("/v2/models/iris/infer", json=body)
            assert response.status == 400
            assert message in (await response.json())["error"]

    run(settings, scenario)


def test_too_large_batch_and_body_are_413(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, write_artifact(tmp_path), max_batch_size=2, max_body_bytes=300
    )

    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        response = await client.post("/v2/models/iris/infer", json=matrix([[1, 2]] * 3))
        assert response.status == 413
        assert "3 rows, more than the maximum batch size 2" in (await response.json())["error"]

        body = matrix([[1, 2]]) | {"id": "x" * 300}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status == 413
        assert "larger than the maximum of 300 bytes" in (await response.json())["error"]

        # Both limits are inclusive.
        response = await client.post("/v2/models/iris/infer", json=matrix([[1, 2]] * 2))
        assert response.status == 200

    run(settings, scenario)


def test_empty_batch_gives_empty_outputs(classifier: ServerSettings) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        body = {"inputs": [tensor("input-0", [0, 2], "FP64", [])]}
        response = await client.post("/v2/models/iris/infer", json=body)
        assert response.status == 200
        predict, proba = (await response.json())["outputs"]
        assert (predict["shape"], predict["data"]) == ([0], [])
        assert (proba["shape"], proba["data"]) == ([0, 2], [])

    run(classifier, scenario)


# ---------------------------------------------------------------------------------------------
# Refusing to serve


def refused_scenario(reason_in_error: str) -> Scenario:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        assert (await client.get("/v2/health/live")).status == 200
        response = await client.get("/v2/health/ready")
        assert response.status == 503
        assert await response.json() == {"ready": False}
        response = await client.get("/v2/models/iris/ready")
        assert response.status == 503
        assert await response.json() == {"name": "iris", "ready": False}
        for response in (
            await client.post("/v2/models/iris/infer", json=matrix([[1, 2]])),
            await client.get("/v2/models/iris"),
        ):
            assert response.status == 503
            error = (await response.json())["error"]
            assert f"Model 'iris' version 'v1' is not ready: {reason_in_error}" in error

    return scenario


def assert_refused(registry: CollectorRegistry, reason: str) -> None:
    labels = {"model": "iris", "version": "v1"}
    assert metric(registry, "modelops_server_model_ready", **labels) == 0
    assert metric(registry, "modelops_server_artifact_verified", **labels) == 0
    failures = "modelops_server_model_load_failures_total"
    assert metric(registry, failures, reason=reason, **labels) == 1
    # No model, no reference: no feature series.
    assert metric(registry, "modelops_server_feature_value_count") is None


def test_tampered_artifact_is_never_ready(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    digest = write_artifact(tmp_path)
    (tmp_path / "reference.json").write_text(json.dumps(MIXED_REFERENCE))
    registry = run(make_settings(tmp_path, digest), refused_scenario("the artifact was refused"))
    assert_refused(registry, "digest_mismatch")
    assert f"Artifact file {tmp_path / 'reference.json'} has digest sha256:" in caplog.text


def test_wrong_digest_is_never_ready(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_artifact(tmp_path)
    registry = run(
        make_settings(tmp_path, "sha256:" + "0" * 64), refused_scenario("the artifact was refused")
    )
    assert_refused(registry, "digest_mismatch")
    assert "Refused to load model iris version v1" in caplog.text


def test_retired_marker_is_never_ready(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    digest = write_artifact(tmp_path)
    (tmp_path / "RETIRED").write_text("")
    registry = run(make_settings(tmp_path, digest), refused_scenario("the artifact was refused"))
    assert_refused(registry, "retired")
    assert f"Artifact directory {tmp_path} holds RETIRED" in caplog.text


def test_retired_setting_is_never_ready(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(tmp_path, write_artifact(tmp_path), retired=True)
    registry = run(settings, refused_scenario("the version is retired"))
    assert_refused(registry, "retired")
    assert "MODELOPS_SERVER_RETIRED=true" in caplog.text


# ---------------------------------------------------------------------------------------------
# Metrics


def test_feature_histograms_use_the_reference_bin_edges(classifier: ServerSettings) -> None:
    x1_values = [-1.0, 0.0, 1.0, 2.0, 2.5, 9.0]
    x2_values = [1.5, 1.5, 2.0, 3.0, 3.5, 4.0]

    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        rows = [[x1, x2] for x1, x2 in zip(x1_values, x2_values, strict=True)]
        for chunk in (rows[:2], rows[2:]):
            assert (await client.post("/v2/models/iris/infer", json=matrix(chunk))).status == 200
        # A refused request does not count.
        assert (await client.post("/v2/models/iris/infer", json={"inputs": [X2]})).status == 400

        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")

    registry = run(classifier, scenario)
    text = generate_latest(registry).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    histogram = families["modelops_server_feature_value"]
    assert histogram.type == "histogram"
    buckets: dict[str, dict[str, float]] = {}
    for sample in histogram.samples:
        if sample.name.endswith("_bucket"):
            buckets.setdefault(sample.labels["feature"], {})[sample.labels["le"]] = sample.value
    # Cumulative `le` buckets; a value equal to an edge falls into that edge's bucket.
    assert buckets["x1"] == {"0.0": 2, "1.0": 3, "2.5": 5, "+Inf": 6}
    assert buckets["x2"] == {"1.5": 2, "3.0": 4, "+Inf": 6}
    for name, edges in (("x1", [0.0, 1.0, 2.5]), ("x2", [1.5, 3.0])):
        les = [float(le) for le in buckets[name]]
        assert les == [*edges, math.inf]
    labels = {"model": "iris", "version": "v1"}
    assert metric(registry, "modelops_server_feature_value_count", feature="x1", **labels) == 6
    assert metric(registry, "modelops_server_feature_value_sum", feature="x1", **labels) == 13.5
    assert metric(registry, "modelops_server_feature_value_sum", feature="x2", **labels) == 15.5


def test_request_metrics_count_by_endpoint_and_status(classifier: ServerSettings) -> None:
    async def scenario(client: test_utils.TestClient[Any, Any]) -> None:
        for _ in range(3):
            await client.post("/v2/models/iris/infer", json=matrix([[1, 2]]))
        await client.post("/v2/models/iris/infer", json={})
        await client.get("/v2/health/ready")

    registry = run(classifier, scenario)
    requests = "modelops_server_requests_total"
    labels = {"model": "iris", "version": "v1"}
    assert metric(registry, requests, endpoint="infer", status="200", **labels) == 3
    assert metric(registry, requests, endpoint="infer", status="400", **labels) == 1
    assert metric(registry, requests, endpoint="ready", status="200", **labels) == 1
    duration = "modelops_server_request_duration_seconds_count"
    assert metric(registry, duration, endpoint="infer", **labels) == 4
    assert metric(registry, "modelops_server_model_ready", **labels) == 1
    assert metric(registry, "modelops_server_artifact_verified", **labels) == 1


def test_metrics_stay_on_the_injected_registry(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, write_artifact(tmp_path))
    # Two servers in one process would collide on a global registry.
    first, second = CollectorRegistry(), CollectorRegistry()
    server_app.create_app(settings, first)
    server_app.create_app(settings, second)
    assert metric(first, "modelops_server_model_ready", model="iris") == 0


# ---------------------------------------------------------------------------------------------
# The program


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def wait_until(condition: Callable[[], bool], server: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``condition`` until it holds; fail with the server's log if it exits or 30 s pass."""
    deadline = time.monotonic() + 30
    while not condition():
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)  # poll interval: the loop waits for the condition, not for the sleep


def test_program_serves_and_drains_in_flight_requests_on_sigterm(tmp_path: Path) -> None:
    artifact_dir = tmp_path / "artifact"
    port = free_port()
    env = {
        **os.environ,
        "MODELOPS_SERVER_HOST": "127.0.0.1",
        "MODELOPS_SERVER_PORT": str(port),
        "MODELOPS_SERVER_MODEL_NAME": "iris",
        "MODELOPS_SERVER_MODEL_VERSION": "v1",
        "MODELOPS_SERVER_ARTIFACT_DIR": str(artifact_dir),
        "MODELOPS_SERVER_ARTIFACT_DIGEST": write_artifact(artifact_dir),
    }
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"

    def ready() -> bool:
        try:
            return http("GET", f"{base}/v2/health/ready")[0] == 200
        except (ConnectionError, urllib.error.URLError):
            return False  # not listening yet

    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "modelops.runtimes.server"], env=env, stderr=log
        )
        try:
            wait_until(ready, server, log_path)
            status, result = http("POST", f"{base}/v2/models/iris/infer", matrix([[3, 6]]))
            assert status == 200
            assert result["outputs"][0]["data"] == ["a"]

            # An in-flight request: headers and part of the body before SIGTERM, the rest after.
            body = json.dumps(matrix([[1, 2]])).encode()
            with closing(socket.create_connection(("127.0.0.1", port), timeout=10)) as in_flight:
                in_flight.sendall(
                    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: server\r\n"
                    b"Content-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
                )
                # One event loop handles both connections in order: once a request sent later
                # has been answered, the first one's handler is running and awaiting its body.
                assert http("GET", f"{base}/v2/health/live")[0] == 200
                server.send_signal(signal.SIGTERM)
                wait_until(lambda: "Received SIGTERM" in log_path.read_text(), server, log_path)
                in_flight.sendall(body[10:])
                response = b""
                while chunk := in_flight.recv(65536):
                    response += chunk
            head, _, payload = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), response
            assert json.loads(payload)["outputs"][0]["data"] == ["b"]

            assert server.wait(timeout=30) == 0
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()
    output = log_path.read_text()
    assert f"Loaded model iris version v1 from {artifact_dir} (digest sha256:" in output
    assert f"Serving model iris version v1 on http://127.0.0.1:{port}" in output
    assert "Received SIGTERM" in output
    assert "Stopped serving model iris version v1" in output


def test_program_refuses_invalid_settings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_SERVER_")}
    result = subprocess.run(
        [sys.executable, "-m", "modelops.runtimes.server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "Invalid server settings" in result.stderr
    assert "model_name" in result.stderr
