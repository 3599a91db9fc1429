"""The model lifecycle interface, and the served model of every artifact format.

A served model is loaded once (``load``), reports whether it can serve (``ready``) and turns a
validated :class:`FeatureBatch` into named output arrays (``predict``). The data plane talks to
the :class:`ServedModel` protocol only; :class:`ArtifactServedModel` implements it for any
artifact: it verifies the artifact, then hands the verified documents to the
:class:`Predictor` of its format, ``modelops-linear/v1`` here (:class:`LinearPredictor`) or
``onnx/v1`` (:mod:`modelops.runtimes.server.onnx`, which needs onnxruntime).
"""

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from modelops.api import artifact as contract
from modelops.runtimes.server import loader

FloatArray = npt.NDArray[np.float64]
#: Categorical values arrive as an object array of ``str``.
ObjectArray = npt.NDArray[np.object_]


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature: its name, kind and, for a categorical feature, the known categories."""

    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class TensorSpec:
    """An output tensor as Open Inference Protocol metadata describes it (-1: any size)."""

    name: str
    datatype: Literal["FP64", "BYTES"]
    shape: tuple[int, ...]


@dataclass(frozen=True)
class FeatureBatch:
    """Validated input of one request: ``rows`` values per feature, by feature name.

    Numeric columns are finite float64 arrays, categorical columns object arrays of ``str``;
    every column has length ``rows`` and every feature of the model has a column.
    """

    rows: int
    columns: Mapping[str, FloatArray | ObjectArray]


class ModelNotLoadedError(RuntimeError):
    """Raised when a model is asked for something that needs a loaded artifact."""


class ServedModel(Protocol):
    """What the data plane needs from a model."""

    @property
    def ready(self) -> bool:
        """True once ``load`` has succeeded; never True after it failed."""

    @property
    def platform(self) -> str:
        """The artifact format, reported as ``platform`` in model metadata."""

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """The inputs, in the column order of a 2-D request tensor. Needs a loaded model."""

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The outputs ``predict`` returns, in response order. Needs a loaded model."""

    @property
    def reference(self) -> contract.ReferenceStats:
        """Training reference statistics of the inputs. Needs a loaded model."""

    async def load(self) -> None:
        """Load and verify the artifact; raise :class:`loader.ArtifactError` if refused."""

    def predict(self, batch: FeatureBatch) -> dict[str, npt.NDArray[np.generic]]:
        """Return one array per output name, each with ``batch.rows`` rows."""


class Predictor(Protocol):
    """A verified model of one format, ready to predict."""

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """The inputs, in the column order of a 2-D request tensor."""

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The outputs ``predict`` returns, in response order."""

    def predict(self, batch: FeatureBatch) -> dict[str, npt.NDArray[np.generic]]:
        """Return one array per output name, each with ``batch.rows`` rows."""


def classification_outputs(classes: int) -> tuple[TensorSpec, ...]:
    """The outputs of a classifier in every format: the label and one probability per class."""
    return (
        TensorSpec("predict", "BYTES", (-1,)),
        TensorSpec("predict_proba", "FP64", (-1, classes)),
    )


REGRESSION_OUTPUTS: tuple[TensorSpec, ...] = (TensorSpec("predict", "FP64", (-1,)),)
"""The output of a regressor in every format."""


class ArtifactServedModel:
    """The model of one artifact directory, whatever its format (docs/contracts.md).

    ``load`` verifies the artifact against its digest, then builds the predictor its
    ``model.json`` asks for; a format this server cannot run is refused like a tampered
    artifact (reason ``unsupported_format``), so the server stays live but never ready.
    """

    def __init__(self, artifact_dir: Path, expected_digest: str) -> None:
        self._artifact_dir = artifact_dir
        self._expected_digest = expected_digest
        self._loaded: tuple[loader.Artifact, Predictor] | None = None

    @property
    def ready(self) -> bool:
        """True once the artifact has been verified and loaded."""
        return self._loaded is not None

    @property
    def platform(self) -> str:
        """The artifact's format (``modelops-linear/v1`` or ``onnx/v1``)."""
        return self._require()[0].model.format

    @property
    def features(self) -> tuple[FeatureSpec, ...]:
        """The model's features, in the order of ``model.json`` (linear) or ``reference.json``."""
        return self._require()[1].features

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """``predict`` (and ``predict_proba`` for classification)."""
        return self._require()[1].outputs

    @property
    def reference(self) -> contract.ReferenceStats:
        """The artifact's ``reference.json``."""
        return self._require()[0].reference

    async def load(self) -> None:
        """Verify the artifact in a worker thread (hashing may take a while), then build the
        predictor (an ONNX session is built in the thread too).

        Raises :class:`loader.ArtifactError` when the artifact is retired, tampered with,
        incomplete, malformed or of a format this server cannot run; the model then stays not
        ready.
        """
        self._loaded = await asyncio.to_thread(self._load)

    def _load(self) -> tuple[loader.Artifact, Predictor]:
        verified = loader.load_artifact(self._artifact_dir, self._expected_digest)
        if isinstance(verified.model, contract.OnnxModel):
            try:
                from modelops.runtimes.server import onnx
            except ImportError as error:
                raise loader.ArtifactError(
                    "unsupported_format",
                    f"{verified.model.format} needs onnxruntime, which this server image lacks "
                    f"({error}); serve it with the server image that has it",
                ) from None
            return verified, onnx.OnnxPredictor.build(verified, verified.model)
        return verified, LinearPredictor.build(verified.model)

    def predict(self, batch: FeatureBatch) -> dict[str, npt.NDArray[np.generic]]:
        """Compute the outputs for a validated batch."""
        return self._require()[1].predict(batch)

    def _require(self) -> tuple[loader.Artifact, Predictor]:
        if self._loaded is None:
            raise ModelNotLoadedError(f"No model loaded from {self._artifact_dir}")
        return self._loaded


@dataclass(frozen=True)
class LinearPredictor:
    """A ``modelops-linear/v1`` model (docs/contracts.md), its arrays built once so that
    ``predict`` only does arithmetic.

    Numeric features are standardised with ``mean``/``scale`` and categorical features one-hot
    encoded (an unknown category encodes as all zeros); ``logits = X @ weights + bias``.
    Missing values are imputed the way ``model.json`` specifies: a NaN numeric value encodes
    as 0 (the training mean, after standardisation) and an empty category as all zeros, so a
    row with missing values still gets a prediction.
    Classification applies a softmax and outputs the most probable class (``predict``, BYTES)
    and the probabilities (``predict_proba``, ``[N, classes]``); regression outputs the single
    column (``predict``, FP64). All arithmetic is float64. Outputs may be inf or NaN when
    finite inputs overflow; the data plane refuses such a request.
    """

    features: tuple[FeatureSpec, ...]
    outputs: tuple[TensorSpec, ...]
    numeric_names: tuple[str, ...]
    numeric_columns: npt.NDArray[np.intp]
    mean: FloatArray
    scale: FloatArray
    # (feature name, first encoded column, category -> offset within the one-hot block)
    categorical: tuple[tuple[str, int, dict[str, int]], ...]
    weights: FloatArray
    bias: FloatArray
    classes: ObjectArray | None

    @classmethod
    def build(cls, document: contract.LinearModel) -> "LinearPredictor":
        features = tuple(
            FeatureSpec(feature.name, feature.type, tuple(feature.categories or ()))
            for feature in document.features
        )
        numeric_names: list[str] = []
        numeric_columns: list[int] = []
        categorical: list[tuple[str, int, dict[str, int]]] = []
        column = 0
        for feature in features:
            if feature.kind == "numeric":
                numeric_names.append(feature.name)
                numeric_columns.append(column)
                column += 1
            else:
                index = {category: i for i, category in enumerate(feature.categories)}
                categorical.append((feature.name, column, index))
                column += len(feature.categories)
        classes = None
        outputs = REGRESSION_OUTPUTS
        if document.classes is not None:
            classes = np.array(document.classes, dtype=np.object_)
            outputs = classification_outputs(len(document.classes))
        return cls(
            features=features,
            outputs=outputs,
            numeric_names=tuple(numeric_names),
            numeric_columns=np.array(numeric_columns, dtype=np.intp),
            mean=np.array(document.mean, dtype=np.float64),
            scale=np.array(document.scale, dtype=np.float64),
            categorical=tuple(categorical),
            weights=np.array(document.weights, dtype=np.float64),
            bias=np.array(document.bias, dtype=np.float64),
            classes=classes,
        )

    def predict(self, batch: FeatureBatch) -> dict[str, npt.NDArray[np.generic]]:
        """Compute the outputs for a validated batch (see the class docstring)."""
        loaded = self
        encoded = np.zeros((batch.rows, loaded.weights.shape[0]), dtype=np.float64)
        if loaded.numeric_names:
            numeric = np.column_stack(
                [batch.columns[name] for name in loaded.numeric_names]
            ).astype(np.float64, copy=False)
            standardised = (numeric - loaded.mean) / loaded.scale
            # A missing (NaN) value encodes as 0, the training mean, as model.json specifies;
            # the decoder decides whether a request may carry NaN at all.
            encoded[:, loaded.numeric_columns] = np.where(np.isnan(numeric), 0.0, standardised)
        for name, offset, index in loaded.categorical:
            codes = np.fromiter(
                (index.get(value, -1) for value in batch.columns[name]),
                dtype=np.intp,
                count=batch.rows,
            )
            known = codes >= 0
            encoded[np.flatnonzero(known), offset + codes[known]] = 1.0
        # Extreme finite inputs can overflow to inf/NaN; callers check the outputs are finite,
        # so numpy's warning would only add noise to the log.
        with np.errstate(over="ignore", invalid="ignore"):
            logits = encoded @ loaded.weights + loaded.bias
            if loaded.classes is None:
                return {"predict": logits[:, 0]}
            # Subtracting the row maximum keeps exp() from overflowing (softmax is
            # shift-invariant).
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = exp / exp.sum(axis=1, keepdims=True)
        labels = loaded.classes[np.argmax(probabilities, axis=1)]
        return {"predict": labels, "predict_proba": probabilities}
