"""Decoding Open Inference Protocol v2 requests into a :class:`FeatureBatch`, encoding responses.

This is the hot path, so the structure of a request (a few small dicts) is checked with plain
code and the data arrays are converted by numpy in one call each; nothing walks numeric data
element by element in Python.

Two request styles are accepted (docs/server.md):

* one 2-D numeric tensor ``[N, n_features]`` whose columns follow the model's feature order
  (any tensor name; only for models whose features are all numeric);
* one 1-D tensor ``[N]`` per feature, named after the feature: numeric datatypes for numeric
  features, ``BYTES`` (JSON strings) for categorical ones.

Either style may carry its data in JSON (``data``) or with the binary tensor data extension
that tritonclient and the KServe client use by default: the body is a JSON header of
``Inference-Header-Content-Length`` bytes followed by the raw tensors, each input saying its
size in ``parameters.binary_data_size`` (little-endian values, row-major; ``BYTES`` elements
as a 4-byte little-endian length and the UTF-8 bytes). Outputs are returned the same way when
the request asks for it (``parameters.binary_data_output`` or an output's
``parameters.binary_data``).

Floating-point data may hold NaN (a missing value; the JSON ``NaN`` literal or a binary NaN)
and is passed on as is; infinities are refused. Every problem raises :class:`BadRequestError`
(400) or, for too many rows, :class:`PayloadTooLargeError` (413), with a message that names the
input and the rule.
"""

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
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

#: The HTTP header that says how many bytes of the body are the JSON header (binary extension).
HEADER_LENGTH = "Inference-Header-Content-Length"

#: Little-endian numpy dtypes of the numeric OIP datatypes, for binary tensor data.
_DTYPES: Mapping[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "INT8": "i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "UINT8": "u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
    }.items()
}
INTEGER_DATATYPES = frozenset(name for name, dtype in _DTYPES.items() if dtype.kind in "iu")
FLOAT_DATATYPES = frozenset(name for name, dtype in _DTYPES.items() if dtype.kind == "f")
NUMERIC_DATATYPES = INTEGER_DATATYPES | FLOAT_DATATYPES
_NUMERIC_LIST = "FP32, FP64, INT32, INT64 (or another OIP numeric type)"
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True)
class DecodedRequest:
    """A validated inference request."""

    batch: FeatureBatch
    request_id: str | None
    #: Names of the outputs the client asked for, or None for all of them.
    requested_outputs: frozenset[str] | None
    #: Names of the outputs to send as binary tensor data rather than in JSON.
    binary_outputs: frozenset[str]


@dataclass(frozen=True)
class EncodedResponse:
    """A response body: ``header`` is the JSON document; ``binary``, if not empty, the raw
    output tensors that follow it (then ``HEADER_LENGTH`` says where the JSON ends)."""

    header: bytes
    binary: bytes


@dataclass(frozen=True)
class _Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    #: The JSON ``data``, or None when the tensor came as binary data in ``raw``.
    data: list[Any] | None
    raw: bytes


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Split a request body into its JSON header and the binary tensor data after it.

    ``header_length`` is the ``Inference-Header-Content-Length`` header, if the client sent
    one; without it the whole body is JSON.
    """
    if header_length is None:
        return body, b""
    if not header_length.isascii() or not header_length.isdigit():
        raise BadRequestError(
            f"{HEADER_LENGTH} must be a non-negative integer, got {header_length!r}"
        )
    length = int(header_length)
    if length > len(body):
        raise BadRequestError(
            f"{HEADER_LENGTH} is {length} but the request body has only {len(body)} bytes"
        )
    return body[:length], body[length:]


def parse_json(document: bytes) -> object:
    """Parse a JSON request header; any failure, including nesting too deep, is a 400.

    ``NaN`` (as Python's ``json`` writes a missing value) is accepted, like ``Infinity``,
    which the tensor decoder then refuses.
    """
    try:
        return json.loads(document)
    except ValueError as error:
        raise BadRequestError(f"Request body is not valid JSON: {error}") from None
    except RecursionError:
        raise BadRequestError("Request body is not valid JSON: it is nested too deeply") from None


def decode_request(
    payload: object,
    features: Sequence[FeatureSpec],
    outputs: Sequence[TensorSpec],
    max_batch_size: int,
    binary: bytes = b"",
) -> DecodedRequest:
    """Validate a parsed JSON request header against the model's inputs and outputs.

    ``binary`` is the binary tensor data that followed the JSON header, if any.
    """
    if not isinstance(payload, dict):
        raise BadRequestError("Request body must be a JSON object with 'inputs'")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError("Request 'id' must be a string")
    parameters = _parameters(payload, "Request")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequestError(
            "Request has no 'inputs': send one [N, n_features] tensor or one [N] tensor per feature"
        )
    tensors = []
    offset = 0
    for position, raw in enumerate(raw_inputs):
        tensor = _tensor(position, raw, binary, offset)
        offset += len(tensor.raw)
        tensors.append(tensor)
    if offset != len(binary):
        raise BadRequestError(
            f"The request has {len(binary)} bytes of binary data after the JSON header but its "
            f"inputs' 'binary_data_size' parameters add up to {offset}"
        )
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
    binary_default = _flag(parameters, "binary_data_output", "Request")
    requested, binary_outputs = _requested_outputs(payload.get("outputs"), outputs, binary_default)
    return DecodedRequest(
        batch=batch,
        request_id=request_id,
        requested_outputs=requested,
        binary_outputs=binary_outputs,
    )


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[TensorSpec],
    requested: frozenset[str] | None,
    binary: frozenset[str],
    results: Mapping[str, npt.NDArray[np.generic]],
) -> EncodedResponse:
    """Build the OIP v2 response; ``results`` holds one array per output name and the outputs
    named in ``binary`` go after the JSON header as binary tensor data."""
    body: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        body["id"] = request_id
    tensors = []
    chunks = []
    for spec in outputs:
        if requested is not None and spec.name not in requested:
            continue
        array = results[spec.name]
        tensor: dict[str, Any] = {
            "name": spec.name,
            "shape": list(array.shape),
            "datatype": spec.datatype,
        }
        if spec.name in binary:
            if spec.datatype == "BYTES":
                chunk = _bytes_data(array)
            else:
                chunk = np.ascontiguousarray(array, dtype=_DTYPES[spec.datatype]).tobytes()
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    body["outputs"] = tensors
    return EncodedResponse(header=json.dumps(body).encode(), binary=b"".join(chunks))


def _parameters(entry: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = entry.get("parameters")
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        raise BadRequestError(f"{what} 'parameters' must be a JSON object")
    return parameters


def _flag(parameters: dict[str, Any], key: str, what: str, default: bool = False) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise BadRequestError(f"{what} parameter {key!r} must be true or false, got {value!r}")
    return value


def _tensor(position: int, raw: object, binary: bytes, offset: int) -> _Tensor:
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
    size = _parameters(raw, f"Input {name!r}").get("binary_data_size")
    if size is None:
        data = raw.get("data")
        if not isinstance(data, list):
            raise BadRequestError(f"Input {name!r} has no 'data' list")
        return _Tensor(name=name, datatype=datatype, shape=tuple(shape), data=data, raw=b"")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequestError(
            f"Input {name!r} has an invalid 'binary_data_size' {size!r}: expected a "
            "non-negative integer"
        )
    if "data" in raw:
        raise BadRequestError(f"Input {name!r} has both 'data' and 'binary_data_size'")
    if offset + size > len(binary):
        raise BadRequestError(
            f"Input {name!r} has 'binary_data_size' {size} but only {len(binary) - offset} "
            "bytes of binary data are left after the JSON header"
        )
    chunk = binary[offset : offset + size]
    return _Tensor(name=name, datatype=datatype, shape=tuple(shape), data=None, raw=chunk)


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
    values = _numeric_json(tensor) if tensor.data is not None else _numeric_binary(tensor)
    floats = values.astype(np.float64, copy=False).reshape(-1)
    # NaN is a missing value and is passed on; an infinity is not a measurement.
    if values.dtype.kind == "f" and np.isinf(floats).any():
        raise BadRequestError(f"Input {tensor.name!r} contains infinite values")
    return floats


def _numeric_json(tensor: _Tensor) -> npt.NDArray[Any]:
    assert tensor.data is not None
    try:
        # No dtype: numpy infers it, so strings, booleans and nulls show up as a wrong kind
        # instead of being silently converted ("1.5" -> 1.5, true -> 1.0, null -> nan).
        values = np.asarray(tensor.data)
    except ValueError:
        raise BadRequestError(
            f"Input {tensor.name!r} has ragged nested 'data'; send it flat in row-major order"
        ) from None
    if values.dtype.kind not in "iuf" or _has_booleans(tensor.data, values):
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
    return values


def _has_booleans(data: list[Any], values: npt.NDArray[Any]) -> bool:
    """Whether JSON ``true``/``false`` hide among numbers, which numpy reads as 1 and 0.

    Only arrays holding a 0 or a 1 can have them, so most requests skip the walk over the
    element types.
    """
    if not ((values == 0) | (values == 1)).any():
        return False
    # numpy accepted the nesting, so every level is a list of lists down to the numbers.
    items: list[Any] = data
    while items and isinstance(items[0], list):
        items = list(chain.from_iterable(items))
    return bool in set(map(type, items))


def _numeric_binary(tensor: _Tensor) -> npt.NDArray[Any]:
    dtype = _DTYPES[tensor.datatype]
    expected = math.prod(tensor.shape)
    if len(tensor.raw) != expected * dtype.itemsize:
        raise BadRequestError(
            f"Input {tensor.name!r} has shape {list(tensor.shape)} ({expected} elements of "
            f"{dtype.itemsize} bytes) but 'binary_data_size' {len(tensor.raw)}"
        )
    return np.frombuffer(tensor.raw, dtype=dtype)


def _categorical(tensor: _Tensor) -> ObjectArray:
    if tensor.datatype != "BYTES":
        raise BadRequestError(
            f"Input {tensor.name!r} has datatype {tensor.datatype}: a categorical feature "
            "needs BYTES"
        )
    if tensor.data is None:
        values = _split_bytes(tensor)
    elif all(isinstance(value, str) for value in tensor.data):
        values = tensor.data
    else:
        raise BadRequestError(
            f"Input {tensor.name!r} has datatype BYTES but its data contains non-string values"
        )
    if len(values) != tensor.shape[0]:
        raise BadRequestError(
            f"Input {tensor.name!r} has shape {list(tensor.shape)} but {len(values)} data elements"
        )
    column = np.empty(len(values), dtype=np.object_)
    column[:] = values
    return column


def _split_bytes(tensor: _Tensor) -> list[str]:
    """The elements of a binary BYTES tensor: each a 4-byte little-endian length, then bytes."""
    raw = tensor.raw
    values = []
    position = 0
    while position < len(raw):
        if position + _LENGTH.size > len(raw):
            raise BadRequestError(
                f"Input {tensor.name!r} has binary BYTES data that ends inside an element length"
            )
        (length,) = _LENGTH.unpack_from(raw, position)
        position += _LENGTH.size
        if position + length > len(raw):
            raise BadRequestError(
                f"Input {tensor.name!r} has a binary BYTES element of {length} bytes but only "
                f"{len(raw) - position} bytes are left"
            )
        try:
            values.append(raw[position : position + length].decode())
        except UnicodeDecodeError:
            raise BadRequestError(
                f"Input {tensor.name!r} has a BYTES element that is not UTF-8 text"
            ) from None
        position += length
    return values


def _requested_outputs(
    raw: object, outputs: Sequence[TensorSpec], binary_default: bool
) -> tuple[frozenset[str] | None, frozenset[str]]:
    """The names of the requested outputs (None: all) and of those to send as binary."""
    if raw is None:
        everything = frozenset(spec.name for spec in outputs) if binary_default else frozenset()
        return None, everything
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
    binary = frozenset(
        entry["name"]
        for entry in raw
        if _flag(
            _parameters(entry, f"Output {entry['name']!r}"),
            "binary_data",
            f"Output {entry['name']!r}",
            binary_default,
        )
    )
    return names, binary


def _bytes_data(array: npt.NDArray[np.generic]) -> bytes:
    encoded = [str(value).encode() for value in array.ravel()]
    return b"".join(_LENGTH.pack(len(value)) + value for value in encoded)


def _names(features: Sequence[FeatureSpec]) -> str:
    return ", ".join(feature.name for feature in features)
