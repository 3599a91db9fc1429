"""The ``onnx/v1`` predictor: a model exported to ONNX, run with onnxruntime on the CPU.

Imported only when an ``onnx/v1`` artifact is loaded, so a server without onnxruntime still
serves ``modelops-linear/v1``. The session is built from the verified bytes of the graph
(:attr:`loader.Artifact.graph`), never from the file again.

The features are those of ``reference.json``, in its order. The graph's inputs decide how a
validated batch is fed (docs/contracts.md, "onnx/v1"):

- **one tensor**: a single float or double input of shape ``[N, features]``; every feature is
  numeric and the columns are stacked in feature order (what ``skl2onnx.to_onnx(model, X)``
  makes of a numeric matrix);
- **one input per feature**: inputs named exactly like the features, ``[N, 1]`` each, float or
  double for a numeric feature and string for a categorical one (what skl2onnx makes of a
  ``ColumnTransformer`` over named columns).

Anything else is refused at load with the graph's inputs in the message. Outputs keep the names
of every format: a classifier's label (``predict``, as the string of the graph's label) and
probabilities (``predict_proba``, FP64 in the order of ``classes``, from a tensor or from
skl2onnx's ZipMap), a regressor's prediction (``predict``, FP64).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from modelops.api import artifact as contract
from modelops.runtimes.server import loader
from modelops.runtimes.server.model import (
    REGRESSION_OUTPUTS,
    FeatureBatch,
    FeatureSpec,
    TensorSpec,
    classification_outputs,
)

_FLOAT_TYPES: dict[str, type[Any]] = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_STRING_TYPE = "tensor(string)"


def _refuse(message: str) -> loader.ArtifactError:
    return loader.ArtifactError("invalid_artifact", f"Artifact file {message}")


@dataclass(frozen=True)
class _Input:
    """How one graph input is fed: its name, dtype, and the features it takes, in order."""

    name: str
    dtype: type[Any]
    features: tuple[str, ...]


@dataclass(frozen=True)
class OnnxPredictor:
    """An ``onnx/v1`` model: an onnxruntime session plus the mapping of features and outputs."""

    features: tuple[FeatureSpec, ...]
    outputs: tuple[TensorSpec, ...]
    session: ort.InferenceSession
    inputs: tuple[_Input, ...]
    task: Literal["classification", "regression"]
    classes: tuple[str, ...]
    # Names of the graph outputs read: (label, probabilities) or (prediction,).
    read: tuple[str, ...]

    @classmethod
    def build(cls, verified: loader.Artifact, document: contract.OnnxModel) -> "OnnxPredictor":
        """Start a session on the verified graph and match it to the features; raise
        :class:`loader.ArtifactError` (``invalid_artifact``) if they do not fit."""
        assert verified.graph is not None  # the loader reads the graph of every onnx/v1 model
        features = tuple(
            FeatureSpec(
                reference.name,
                reference.type,
                tuple(reference.categories) if reference.type == "categorical" else (),
            )
            for reference in verified.reference.features
        )
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's warnings are not ours
        try:
            session = ort.InferenceSession(
                verified.graph, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own, undocumented exception types
            raise _refuse(f"{document.file} is not a model onnxruntime can run: {error}") from None
        inputs = _match_inputs(document.file, session.get_inputs(), features)
        graph_outputs = [output.name for output in session.get_outputs()]
        if document.task == "classification":
            assert document.classes is not None  # validated by OnnxModel
            label = document.outputs.label or _nth(graph_outputs, 0, document.file)
            probabilities = document.outputs.probabilities or _nth(graph_outputs, 1, document.file)
            read: tuple[str, ...] = (label, probabilities)
            outputs = classification_outputs(len(document.classes))
        else:
            read = (document.outputs.prediction or _nth(graph_outputs, 0, document.file),)
            outputs = REGRESSION_OUTPUTS
        for name in read:
            if name not in graph_outputs:
                raise _refuse(
                    f"{document.file} has no output {name!r} (it has {', '.join(graph_outputs)})"
                )
        return cls(
            features=features,
            outputs=outputs,
            session=session,
            inputs=inputs,
            task=document.task,
            classes=tuple(document.classes or ()),
            read=read,
        )

    def predict(self, batch: FeatureBatch) -> dict[str, npt.NDArray[np.generic]]:
        """Run the graph on a validated batch; a missing categorical value is fed as ``""``."""
        feed: dict[str, npt.NDArray[Any]] = {}
        for graph_input in self.inputs:
            columns = [batch.columns[name] for name in graph_input.features]
            if graph_input.dtype is np.str_:
                feed[graph_input.name] = np.asarray(columns[0], dtype=np.str_).reshape(-1, 1)
            else:
                feed[graph_input.name] = np.column_stack(columns).astype(graph_input.dtype)
        results = self.session.run(list(self.read), feed)
        if self.task == "regression":
            prediction = np.asarray(results[0], dtype=np.float64).reshape(batch.rows, -1)
            return {"predict": prediction[:, 0]}
        labels = np.array(
            [contract.label_text(value) for value in np.asarray(results[0]).ravel()], object
        )
        return {"predict": labels, "predict_proba": self._probabilities(results[1], batch.rows)}

    def _probabilities(self, raw: object, rows: int) -> npt.NDArray[np.float64]:
        if isinstance(raw, list):  # skl2onnx's ZipMap: one {class: probability} per row
            index = {name: i for i, name in enumerate(self.classes)}
            table = np.zeros((rows, len(self.classes)), dtype=np.float64)
            for row, mapping in enumerate(raw):
                for key, value in mapping.items():
                    column = index.get(contract.label_text(key))
                    if column is None:
                        raise ValueError(
                            f"the model returned a probability for {key!r}, not a class"
                        )
                    table[row, column] = value
            return table
        table = np.asarray(raw, dtype=np.float64).reshape(rows, -1)
        if table.shape[1] != len(self.classes):
            raise ValueError(
                f"the model returned {table.shape[1]} probabilities per row for "
                f"{len(self.classes)} classes"
            )
        return table


def _nth(names: Sequence[str], index: int, file: str) -> str:
    if index >= len(names):
        raise _refuse(
            f"{file} has {len(names)} outputs; a classifier needs a label and probabilities"
        )
    return names[index]


def _match_inputs(
    file: str, graph_inputs: Sequence[Any], features: tuple[FeatureSpec, ...]
) -> tuple[_Input, ...]:
    described = ", ".join(f"{item.name} {item.type} {item.shape}" for item in graph_inputs)
    names = [feature.name for feature in features]
    if len(graph_inputs) == 1 and graph_inputs[0].type in _FLOAT_TYPES:
        (only,) = graph_inputs
        width = only.shape[-1] if len(only.shape) == 2 else None
        if isinstance(width, int) and width != len(features):
            raise _refuse(
                f"{file} takes {width} columns in {only.name}, the reference has "
                f"{len(features)} features ({', '.join(names)})"
            )
        categorical = [feature.name for feature in features if feature.kind == "categorical"]
        if categorical:
            raise _refuse(
                f"{file} takes one float tensor, but features {', '.join(categorical)} are "
                "categorical: export the model with one input per feature"
            )
        return (_Input(only.name, _FLOAT_TYPES[only.type], tuple(names)),)
    by_name = {item.name: item for item in graph_inputs}
    if set(by_name) != set(names):
        raise _refuse(
            f"{file} has inputs {described}: neither one float tensor of the {len(names)} "
            f"features nor one input per feature ({', '.join(names)})"
        )
    matched: list[_Input] = []
    for feature in features:
        item = by_name[feature.name]
        if feature.kind == "numeric" and item.type in _FLOAT_TYPES:
            matched.append(_Input(item.name, _FLOAT_TYPES[item.type], (feature.name,)))
        elif feature.kind == "categorical" and item.type == _STRING_TYPE:
            matched.append(_Input(item.name, np.str_, (feature.name,)))
        else:
            raise _refuse(
                f"{file} input {item.name} is {item.type}; the {feature.kind} feature needs "
                + ("tensor(float) or tensor(double)" if feature.kind == "numeric" else _STRING_TYPE)
            )
    return tuple(matched)
