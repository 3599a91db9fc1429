"""Decoding Open Inference Protocol v2 requests into a :class:`FeatureBatch`, encoding responses.

This is the hot path, so the structure of a request (a few small dicts) is checked with plain
code and the data arrays are converted by numpy in one call each; nothing walks numeric data
element by element in Python.

Two request styles are accepted (docs/server.md):

* one 2-D numeric tensor ``[N, n_features]`` whose columns follow the model's feature order
  (any tensor name; only for models whose features are all numeric);
* one 1-D tensor ``[N]`` per feature, named after the feature: numeric datatypes for numeric
  features, ``BYTES`` (JSON strings) for categorical ones.

Every problem raises :class:`BadRequestError` (400) or, for too many rows,
:class:`PayloadTooLargeError` (413), with a message that names the input and the rule.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelops.runtimes.server.errors import BadRequestError, PayloadTooLargeError
from modelops.runtimes.server.model import (
    FeatureBatch,
    FeatureSpec,
    FloatArray,
    ObjectArray,
    TensorSpec,
)

INTEGER_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
NUMERIC_DATATYPES = INTEGER_DATATYPES | FLOAT_DATATYPES
_NUMERIC_LIST = "FP32, FP64, INT32, INT64 (or another OIP numeric type)"


@dataclass(frozen=True)
class DecodedRequest:
    """A validated inference request."""

    batch: FeatureBatch
    request_id: str | None
    #: Names of the outputs the client asked for, or None for all of them.
    requested_outputs: frozenset[str] | None


@dataclass(frozen=True)
class _Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]


def decode_request(
    payload: object,
    features: Sequence[FeatureSpec],
    outputs: Sequence[TensorSpec],
    max_batch_size: int,
) -> DecodedRequest:
    """Validate a parsed JSON request body against the model's inputs and outputs."""
    if not isinstance(payload, dict):
        raise BadRequestError("Request body must be a JSON object with 'inputs'")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError("Request 'id' must be a string")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequestError(
            "Request has no 'inputs': send one [N, n_features] tensor or one [N] tensor per feature"
        )
    tensors = [_tensor(position, raw) for position, raw in enumerate(raw_inputs)]
    for tensor in tensors:
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and len(tensors) > 1):
            raise BadRequestError(
                f"Input {tensor.name!r} has shape {list(tensor.shape)}: send either one "
                "[N, n_features] tensor or one [N] tensor per feature"
            )
        if tensor.shape[0] > max_batch_size:
            raise PayloadTooLargeError(
                f"Input {tensor.name!r} has {tensor.shape[0]} rows, more than the maximum batch "
                f"size {max_batch_size}"
            )
    if len(tensors) == 1 and len(tensors[0].shape) == 2:
        batch = _decode_matrix(tensors[0], features)
    else:
        batch = _decode_columns(tensors, features)
    return DecodedRequest(
        batch=batch,
        request_id=request_id,
        requested_outputs=_requested_outputs(payload.get("outputs"), outputs),
    )


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[TensorSpec],
    requested: frozenset[str] | None,
    results: Mapping[str, npt.NDArray[np.generic]],
) -> dict[str, Any]:
    """Build the OIP v2 response body; ``results`` holds one array per output name."""
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        body["id"] = request_id
    body["outputs"] = [
        {
            "name": spec.name,
            "shape": list(results[spec.name].shape),
            "datatype": spec.datatype,
            "data": results[spec.name].ravel().tolist(),
        }
        for spec in outputs
        if requested is None or spec.name in requested
    ]
    return body


def _tensor(position: int, raw: object) -> _Tensor:
    if not isinstance(raw, dict):
        raise BadRequestError(f"Input {position} must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequestError(f"Input {position} has no 'name'")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequestError(f"Input {name!r} has no 'datatype'")
    shape = raw.get("shape")
    # bool is an int subclass: reject it explicitly, JSON true is not a dimension.
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequestError(
            f"Input {name!r} has an invalid 'shape' {shape!r}: expected a list of "
            "non-negative integers"
        )
    data = raw.get("data")
    if not isinstance(data, list):
        raise BadRequestError(f"Input {name!r} has no 'data' list")
    return _Tensor(name=name, datatype=datatype, shape=tuple(shape), data=data)


def _decode_matrix(tensor: _Tensor, features: Sequence[FeatureSpec]) -> FeatureBatch:
    rows, width = tensor.shape
    if width != len(features):
        raise BadRequestError(
            f"Input {tensor.name!r} has shape {list(tensor.shape)}: the model expects "
            f"[N, {len(features)}] with columns {_names(features)}"
        )
    categorical = [feature.name for feature in features if feature.kind == "categorical"]
    if categorical:
        raise BadRequestError(
            f"The model has categorical features ({', '.join(categorical)}): send one [N] "
            "tensor per feature, categorical ones as BYTES"
        )
    matrix = _numeric(tensor).reshape(rows, width)
    return FeatureBatch(
        rows=rows,
        columns={feature.name: matrix[:, j] for j, feature in enumerate(features)},
    )


def _decode_columns(tensors: Sequence[_Tensor], features: Sequence[FeatureSpec]) -> FeatureBatch:
    # decode_request has checked that every tensor is 1-D.
    by_name = {feature.name: feature for feature in features}
    columns: dict[str, FloatArray | ObjectArray] = {}
    rows: int | None = None
    first = ""
    for tensor in tensors:
        feature = by_name.get(tensor.name)
        if feature is None:
            raise BadRequestError(
                f"Unknown input {tensor.name!r}: the model's features are {_names(features)}, "
                "or send a single [N, n_features] tensor"
            )
        if tensor.name in columns:
            raise BadRequestError(f"Input {tensor.name!r} is given more than once")
        if rows is None:
            rows, first = tensor.shape[0], tensor.name
        elif tensor.shape[0] != rows:
            raise BadRequestError(
                f"Inputs have different batch sizes: {first!r} has {rows} rows, "
                f"{tensor.name!r} has {tensor.shape[0]}"
            )
        if feature.kind == "numeric":
            columns[tensor.name] = _numeric(tensor)
        else:
            columns[tensor.name] = _categorical(tensor)
    missing = [feature.name for feature in features if feature.name not in columns]
    if missing:
        raise BadRequestError(f"Missing input for feature(s) {', '.join(missing)}")
    assert rows is not None  # at least one tensor was decoded
    return FeatureBatch(rows=rows, columns=columns)


def _numeric(tensor: _Tensor) -> FloatArray:
    if tensor.datatype not in NUMERIC_DATATYPES:
        raise BadRequestError(
            f"Input {tensor.name!r} has datatype {tensor.datatype}: a numeric feature needs "
            f"{_NUMERIC_LIST}"
        )
    try:
        # No dtype: numpy infers it, so strings, booleans and nulls show up as a wrong kind
        # instead of being silently converted ("1.5" -> 1.5, true -> 1.0, null -> nan).
        values = np.asarray(tensor.data)
    except ValueError:
        raise BadRequestError(
            f"Input {tensor.name!r} has ragged nested 'data'; send it flat in row-major order"
        ) from None
    if values.dtype.kind not in "iuf":
        raise BadRequestError(
            f"Input {tensor.name!r} has datatype {tensor.datatype} but its data contains "
            "non-numeric values"
        )
    if values.dtype.kind == "f" and tensor.datatype in INTEGER_DATATYPES:
        raise BadRequestError(
            f"Input {tensor.name!r} has datatype {tensor.datatype} but its data contains "
            "non-integer values"
        )
    expected = math.prod(tensor.shape)
    if values.size != expected:
        raise BadRequestError(
            f"Input {tensor.name!r} has shape {list(tensor.shape)} ({expected} elements) but "
            f"{values.size} data elements"
        )
    floats = values.astype(np.float64, copy=False).reshape(-1)
    if values.dtype.kind == "f" and not np.isfinite(floats).all():
        raise BadRequestError(f"Input {tensor.name!r} contains NaN or infinite values")
    return floats


def _categorical(tensor: _Tensor) -> ObjectArray:
    if tensor.datatype != "BYTES":
        raise BadRequestError(
            f"Input {tensor.name!r} has datatype {tensor.datatype}: a categorical feature "
            "needs BYTES"
        )
    if not all(isinstance(value, str) for value in tensor.data):
        raise BadRequestError(
            f"Input {tensor.name!r} has datatype BYTES but its data contains non-string values"
        )
    if len(tensor.data) != tensor.shape[0]:
        raise BadRequestError(
            f"Input {tensor.name!r} has shape {list(tensor.shape)} but {len(tensor.data)} "
            "data elements"
        )
    column = np.empty(len(tensor.data), dtype=np.object_)
    column[:] = tensor.data
    return column


def _requested_outputs(raw: object, outputs: Sequence[TensorSpec]) -> frozenset[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in raw
    ):
        raise BadRequestError("Request 'outputs' must be a list of objects with a 'name'")
    names = frozenset(entry["name"] for entry in raw)
    unknown = sorted(names - {spec.name for spec in outputs})
    if unknown:
        raise BadRequestError(
            f"Unknown output(s) {', '.join(unknown)}: the model's outputs are "
            f"{', '.join(spec.name for spec in outputs)}"
        )
    return names


def _names(features: Sequence[FeatureSpec]) -> str:
    return ", ".join(feature.name for feature in features)
