"""The model server's Open Inference Protocol details, in process: the binary tensor data
extension, exact JSON errors, booleans and NaN in numeric tensors, HEAD on health endpoints.

Like ``test_server.py`` (whose artifacts and helpers these tests reuse), nothing is mocked: the
real application runs on 127.0.0.1 and the tests speak HTTP to it. The bodies with binary
tensor data are built by hand here, byte by byte as the extension specifies, so that a
mistake shared by the server and a client library cannot hide; the real clients are in
``test_server_protocol_process.py``.
"""

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import test_utils
from pydantic import ValidationError

from modelops.runtimes.server import codec
from modelops.runtimes.server.errors import BadRequestError
from modelops.runtimes.server.model import FeatureSpec, TensorSpec
from modelops.runtimes.server.settings import ServerSettings
from tests.unit.test_server import (
    MIXED,
    MIXED_REFERENCE,
    SIGMOID_1,
    make_settings,
    matrix,
    metric,
    run,
    tensor,
    write_artifact,
)

Client = test_utils.TestClient[Any, Any]
INFER = "/v2/models/iris/infer"
HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def classifier(tmp_path: Path) -> ServerSettings:
    return make_settings(tmp_path / "artifact", write_artifact(tmp_path / "artifact"))


@pytest.fixture
def mixed(tmp_path: Path) -> ServerSettings:
    return make_settings(tmp_path, write_artifact(tmp_path, MIXED, MIXED_REFERENCE))


def strings(*values: str) -> bytes:
    """A BYTES tensor as binary data: each element a 4-byte little-endian length, then UTF-8."""
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def unstrings(data: bytes) -> list[str]:
    values, position = [], 0
    while position < len(data):
        (length,) = struct.unpack_from("<I", data, position)
        values.append(data[position + 4 : position + 4 + length].decode())
        position += 4 + length
    return values


def binary_body(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    document = json.dumps(header).encode()
    return document + b"".join(chunks), {HEADER: str(len(document))}


def split_response(body: bytes, header_length: str) -> tuple[dict[str, Any], bytes]:
    length = int(header_length)
    document: dict[str, Any] = json.loads(body[:length])
    return document, body[length:]


# ---------------------------------------------------------------------------------------------
# Binary tensor data


def test_binary_inputs_and_a_binary_output(mixed: ServerSettings) -> None:
    size = np.array([0.0, 0.0, 0.0], dtype="<f4").tobytes()
    colour = strings("blue", "red", "grün")
    body, headers = binary_body(
        {
            "inputs": [
                {
                    "name": "size",
                    "shape": [3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(size)},
                },
                {
                    "name": "colour",
                    "shape": [3],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(colour)},
                },
            ],
            # One output binary, the other in JSON.
            "outputs": [
                {"name": "predict", "parameters": {"binary_data": True}},
                {"name": "predict_proba"},
            ],
        },
        size,
        colour,
    )

    async def scenario(client: Client) -> None:
        response = await client.post(INFER, data=body, headers=headers)
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "application/octet-stream"
        document, rest = split_response(await response.read(), response.headers[HEADER])
        predict, proba = document["outputs"]
        assert predict == {
            "name": "predict",
            "shape": [3],
            "datatype": "BYTES",
            "parameters": {"binary_data_size": len(rest)},
        }
        # "grün" is an unseen category: all-zero encoding, equal logits, the first class.
        assert unstrings(rest) == ["cold", "warm", "cold"]
        expected = [SIGMOID_1, 1 - SIGMOID_1, 1 - SIGMOID_1, SIGMOID_1, 0.5, 0.5]
        assert proba["data"] == pytest.approx(expected, rel=1e-12)

    registry = run(mixed, scenario)
    labels = {"feature": "colour", "model": "iris", "version": "v1"}
    assert metric(registry, "modelops_server_feature_category_total", category="red", **labels)
    assert metric(registry, "modelops_server_feature_value_count", feature="size") == 3


def test_binary_data_output_returns_every_output_binary(classifier: ServerSettings) -> None:
    data = np.array([[3, 6], [1, 2]], dtype="<i8").tobytes()
    body, headers = binary_body(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 2],
                    "datatype": "INT64",
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "parameters": {"binary_data_output": True},
        },
        data,
    )

    async def scenario(client: Client) -> None:
        response = await client.post(INFER, data=body, headers=headers)
        assert response.status == 200, await response.text()
        document, rest = split_response(await response.read(), response.headers[HEADER])
        sizes = [output["parameters"]["binary_data_size"] for output in document["outputs"]]
        assert all("data" not in output for output in document["outputs"])
        assert sizes == [len(strings("a", "b")), 4 * 8]
        assert sum(sizes) == len(rest)
        assert unstrings(rest[: sizes[0]]) == ["a", "b"]
        probabilities = np.frombuffer(rest[sizes[0] :], dtype="<f8")
        expected = [SIGMOID_1, 1 - SIGMOID_1, 1 - SIGMOID_1, SIGMOID_1]
        assert probabilities.tolist() == pytest.approx(expected, rel=1e-12)

    run(classifier, scenario)


def test_json_request_gets_exact_json_response(classifier: ServerSettings) -> None:
    async def scenario(client: Client) -> None:
        response = await client.post(INFER, json=matrix([[3, 6]]))
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert HEADER not in response.headers

    run(classifier, scenario)


FP64_2 = np.array([1.0, 2.0], dtype="<f8").tobytes()


def binary_input(name: str, shape: list[int], datatype: str, size: Any) -> dict[str, Any]:
    return {
        "name": name,
        "shape": shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }


INVALID_BINARY: list[tuple[str, bytes, dict[str, str], str]] = [
    ("header length not a number", b"{}", {HEADER: "ten"}, "must be a non-negative integer"),
    ("header length negative", b"{}", {HEADER: "-1"}, "must be a non-negative integer"),
    ("header length past the body", b"{}", {HEADER: "3"}, "the request body has only 2 bytes"),
    (
        "binary data no input claims",
        *binary_body({"inputs": [tensor("input-0", [1, 2], "FP64", [1, 2])]}, b"\x00" * 4),
        "4 bytes of binary data after the JSON header but its inputs' 'binary_data_size' "
        "parameters add up to 0",
    ),
    (
        "binary data shorter than its size",
        *binary_body({"inputs": [binary_input("input-0", [1, 2], "FP64", 17)]}, FP64_2),
        "'binary_data_size' 17 but only 16 bytes",
    ),
    (
        "size does not match the shape",
        *binary_body({"inputs": [binary_input("input-0", [1, 2], "FP32", 16)]}, FP64_2),
        "(2 elements of 4 bytes) but 'binary_data_size' 16",
    ),
    (
        "size not an integer",
        *binary_body({"inputs": [binary_input("input-0", [1, 2], "FP64", "16")]}, FP64_2),
        "invalid 'binary_data_size' '16'",
    ),
    (
        "both data and binary",
        *binary_body(
            {"inputs": [binary_input("input-0", [1, 2], "FP64", 16) | {"data": [1, 2]}]},
            FP64_2,
        ),
        "has both 'data' and 'binary_data_size'",
    ),
    (
        "parameters not an object",
        json.dumps(
            {"inputs": [tensor("input-0", [1, 2], "FP64", [1, 2])], "parameters": 1}
        ).encode(),
        {},
        "Request 'parameters' must be a JSON object",
    ),
    (
        "binary_data not a boolean",
        json.dumps(
            matrix([[1, 2]]) | {"outputs": [{"name": "predict", "parameters": {"binary_data": 1}}]}
        ).encode(),
        {},
        "Output 'predict' parameter 'binary_data' must be true or false",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [pytest.param(body, h, message, id=case) for case, body, h, message in INVALID_BINARY],
)
def test_invalid_binary_request_is_400(
    classifier: ServerSettings, body: bytes, headers: dict[str, str], message: str
) -> None:
    async def scenario(client: Client) -> None:
        response = await client.post(INFER, data=body, headers=headers)
        assert response.status == 400
        assert message in (await response.json())["error"]

    run(classifier, scenario)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack("<I", 5) + b"red", "element of 5 bytes but only 3 bytes are left"),
        (strings("red") + b"\x01\x00", "ends inside an element length"),
        (struct.pack("<I", 2) + b"\xff\xfe", "is not UTF-8 text"),
        (strings("red", "blue"), "shape [1] but 2 data elements"),
    ],
)
def test_invalid_binary_bytes_tensor_is_400(
    mixed: ServerSettings, data: bytes, message: str
) -> None:
    size = np.array([1.0], dtype="<f8").tobytes()
    body, headers = binary_body(
        {
            "inputs": [
                binary_input("size", [1], "FP64", len(size)),
                binary_input("colour", [1], "BYTES", len(data)),
            ]
        },
        size,
        data,
    )

    async def scenario(client: Client) -> None:
        response = await client.post(INFER, data=body, headers=headers)
        assert response.status == 400
        assert message in (await response.json())["error"]

    run(mixed, scenario)


# ---------------------------------------------------------------------------------------------
# Errors: exact JSON, parser failures


def test_every_error_is_exact_json(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, write_artifact(tmp_path), max_body_bytes=200)

    async def scenario(client: Client) -> None:
        responses = [
            await client.post(INFER, data=b"{"),  # 400
            await client.get("/v2/models/mnist"),  # 404 from the data plane
            await client.get("/nowhere"),  # 404 from the router
            await client.get(INFER),  # 405
            await client.post(INFER, data=b"[" * 300),  # 413
        ]
        for response, status in zip(responses, [400, 404, 404, 405, 413], strict=True):
            assert response.status == status
            # Not "application/json; charset=utf-8": the KServe client shows nothing then.
            assert response.headers["Content-Type"] == "application/json"
            assert isinstance((await response.json())["error"], str)

    run(settings, scenario)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 2000 + b"]" * 2000, "nested too deeply"),
        (b'{"inputs": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001, "nested too deeply"),
        (b'{"inputs": [1,]}', "not valid JSON"),
        # Python refuses to convert integers of more than 4300 digits (CVE-2020-10735).
        (b'{"inputs": [' + b"1" * 5000 + b"]}", "not valid JSON"),
    ],
)
def test_parser_failures_are_400(classifier: ServerSettings, raw: bytes, message: str) -> None:
    async def scenario(client: Client) -> None:
        response = await client.post(INFER, data=raw)
        assert response.status == 400
        assert message in (await response.json())["error"]

    registry = run(classifier, scenario)
    labels = {"endpoint": "infer", "model": "iris", "version": "v1"}
    assert metric(registry, "modelops_server_requests_total", status="500", **labels) is None


@pytest.mark.parametrize(
    ("datatype", "shape", "data"),
    [
        ("FP32", [1, 2], [1.5, True]),
        ("FP64", [1, 2], [[0.0, False]]),
        ("INT32", [1, 2], [3, True]),
        ("INT64", [2, 2], [[1, 2], [False, 4]]),
    ],
)
def test_booleans_in_a_numeric_tensor_are_400(
    classifier: ServerSettings, datatype: str, shape: list[int], data: list[Any]
) -> None:
    # numpy alone reads [1.5, true] as [1.5, 1.0]; the protocol has BOOL for booleans.
    async def scenario(client: Client) -> None:
        body = {"inputs": [tensor("input-0", shape, datatype, data)]}
        response = await client.post(INFER, json=body)
        assert response.status == 400
        assert "contains non-numeric values" in (await response.json())["error"]

    run(classifier, scenario)


def test_zeros_and_ones_are_numbers(classifier: ServerSettings) -> None:
    async def scenario(client: Client) -> None:
        response = await client.post(INFER, json=matrix([[1, 0], [0.0, 1.0]]))
        assert response.status == 200

    run(classifier, scenario)


# ---------------------------------------------------------------------------------------------
# NaN: a missing value reaches the model


FEATURES = (FeatureSpec("x1", "numeric"), FeatureSpec("x2", "numeric"))
OUTPUTS = (TensorSpec("predict", "FP64", (-1,)),)


def test_json_nan_literal_is_decoded_as_nan() -> None:
    # Python's json writes a missing float as the bare literal NaN.
    raw = json.dumps(
        {"inputs": [tensor("x1", [2], "FP64", [math.nan, 1.0]), tensor("x2", [2], "FP32", [2, 3])]}
    ).encode()
    assert b"NaN" in raw
    decoded = codec.decode_request(codec.parse_json(raw), FEATURES, OUTPUTS, 10)
    x1 = decoded.batch.columns["x1"]
    assert math.isnan(x1[0])
    assert x1[1] == 1.0


def test_binary_nan_is_decoded_as_nan_and_infinity_is_refused() -> None:
    data = np.array([[np.nan, 1.0], [2.0, np.nan]], dtype="<f4").tobytes()
    payload = {"inputs": [binary_input("input-0", [2, 2], "FP32", len(data))]}
    decoded = codec.decode_request(payload, FEATURES, OUTPUTS, 10, data)
    x1, x2 = decoded.batch.columns["x1"], decoded.batch.columns["x2"]
    assert [math.isnan(v) for v in [*x1, *x2]] == [True, False, False, True]

    infinite = np.array([1.0, 2.0, np.inf, 3.0], dtype="<f4").tobytes()
    with pytest.raises(BadRequestError, match="Input 'input-0' contains infinite values"):
        codec.decode_request(payload, FEATURES, OUTPUTS, 10, infinite)


def test_nan_passes_the_decoder_over_http(classifier: ServerSettings) -> None:
    # Whether a model predicts from a missing value is the model's decision; the protocol layer
    # must hand it over. modelops-linear/v1 imputes the training mean, so the request succeeds
    # and the missing value is counted for drift, in no bucket.
    raw = json.dumps(matrix([[math.nan, 6.0]])).encode()

    async def scenario(client: Client) -> None:
        response = await client.post(INFER, data=raw)
        assert response.status == 200, await response.text()
        metrics = await (await client.get("/metrics")).text()
        missing = [
            line
            for line in metrics.splitlines()
            if line.startswith("modelops_server_feature_missing_total") and 'feature="x1"' in line
        ]
        assert missing, metrics
        assert float(missing[0].split()[-1]) == 1.0

    run(classifier, scenario)


# ---------------------------------------------------------------------------------------------
# HEAD


def test_head_on_health_endpoints(classifier: ServerSettings) -> None:
    paths = ["/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready"]

    async def scenario(client: Client) -> None:
        for path in [*paths, "/v2/models/iris/versions/v1/ready"]:
            response = await client.head(path)
            assert response.status == 200, path
            assert await response.read() == b""
        assert (await client.head("/v2/models/mnist/ready")).status == 404

    registry = run(classifier, scenario)
    labels = {"model": "iris", "version": "v1", "status": "200"}
    assert metric(registry, "modelops_server_requests_total", endpoint="live", **labels) == 1


# ---------------------------------------------------------------------------------------------
# Settings


def test_timeouts_have_documented_defaults_and_must_be_positive(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "sha256:" + "0" * 64)
    assert settings.header_timeout_seconds == 10
    assert settings.body_timeout_seconds == 30
    assert settings.idle_timeout_seconds == 30
    docs = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    for name, default in [("HEADER", 10), ("BODY", 30), ("IDLE", 30)]:
        assert f"| `MODELOPS_SERVER_{name}_TIMEOUT_SECONDS` | `{default}` |" in docs
    for field in ("header_timeout_seconds", "body_timeout_seconds", "idle_timeout_seconds"):
        with pytest.raises(ValidationError, match=field):
            make_settings(tmp_path, "sha256:" + "0" * 64, **{field: 0})
