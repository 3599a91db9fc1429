"""The data that crosses process boundaries between trainer, operator and server.

These are the pydantic models and digest helpers for everything `docs/contracts.md` specifies:
the artifact directory (`model.json`, `reference.json`, `manifest.json`), the artifact digest,
and the training result a training container writes to its termination message. The trainer
produces these documents, the operator reads the result and registers a ModelVersion, and the
model server loads and verifies the artifact; all three import the same models from here.

This module is pure: pydantic and the standard library only, so every runtime may import it.
The prediction math lives with each runtime; the model format is specified precisely enough
(see `LinearModel`) to implement it in a few lines of numpy.
"""

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MODEL_FORMAT: Final = "modelops-linear/v1"
"""The value of `model.json`'s `format` field, and of `artifact.format` in a training result,
for the reference trainer's linear models."""

ONNX_FORMAT: Final = "onnx/v1"
"""The format of a model exported to ONNX (any framework: scikit-learn through skl2onnx,
XGBoost, LightGBM, PyTorch), served with onnxruntime; `model.json` describes it (`OnnxModel`)."""

FORMATS: Final = (MODEL_FORMAT, ONNX_FORMAT)
"""Every artifact format the reference model server loads."""

MODEL_FILE = "model.json"
REFERENCE_FILE = "reference.json"
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
"""The default name of the ONNX graph in an `onnx/v1` artifact (`OnnxModel.file`)."""

RETIRED_MARKER = "RETIRED"
"""A file (an object, in S3) next to an artifact's manifest that marks its version retired: the
server refuses to load an artifact that has one (docs/server.md)."""

MAX_TERMINATION_MESSAGE_BYTES = 4096
"""Kubernetes truncates a container's termination message beyond this many bytes."""

DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"

Task = Literal["classification", "regression"]
FeatureType = Literal["numeric", "categorical"]


class ArtifactIntegrityError(ValueError):
    """An artifact does not match its digest: a file is missing, altered or unexpected."""


class _Document(BaseModel):
    """Base of the artifact files: a versioned format, so unknown fields are an error."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
    )


def label_text(value: object) -> str:
    """A class label as text, the way the data gave it: frameworks hand labels back as their own
    values (numpy strings or integers, bytes from ONNX string tensors)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _check_classes(task: Task, classes: list[str] | None) -> None:
    """A classifier has two or more distinct classes; a regressor has none."""
    if task == "classification":
        if classes is None or len(classes) < 2:
            raise ValueError("a classification model needs at least two classes")
        _unique(classes, "classes")
    elif classes is not None:
        raise ValueError("a regression model has no classes")


def _unique(values: list[str], what: str) -> list[str]:
    duplicates = sorted({value for value in values if values.count(value) > 1})
    if duplicates:
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")
    return values


# ---------------------------------------------------------------------------------------------
# model.json


class ModelFeature(_Document):
    """One input of the model, in the order the encoded input columns are laid out."""

    name: str = Field(min_length=1)
    type: FeatureType
    categories: list[str] | None = None
    """Categorical features only: one encoded column per category, in this order."""

    @model_validator(mode="after")
    def _categories_match_type(self) -> "ModelFeature":
        if self.type == "categorical":
            if not self.categories:
                raise ValueError(f"categorical feature {self.name!r} needs categories")
            _unique(self.categories, f"categories of {self.name!r}")
        elif self.categories is not None:
            raise ValueError(f"numeric feature {self.name!r} cannot have categories")
        return self

    @property
    def width(self) -> int:
        """How many encoded input columns this feature occupies."""
        return len(self.categories) if self.categories is not None else 1


class LinearModel(_Document):
    """A trained linear model: the content of `model.json` (format `modelops-linear/v1`).

    Inference, for one row of raw feature values:

    1. Encode the features in the order of `features` into one vector `x`. A numeric feature
       becomes one column `(value - mean[j]) / scale[j]`, where `j` counts the numeric
       features only (the first numeric feature is `j = 0`, whatever categorical features
       come before it); a missing numeric value encodes as 0, i.e. the training mean. A
       categorical feature becomes `len(categories)` one-hot columns in the order of
       `categories`; an unseen or missing category encodes as all zeros.
    2. `z = x @ weights + bias`, where `weights` has one row per encoded column and one column
       per output.
    3. Classification: `softmax(z)` are the probabilities of `classes` (same order), the
       prediction is the class with the highest probability (the first on a tie).
       Regression: `z[0]` is the prediction.
    """

    format: Literal["modelops-linear/v1"] = MODEL_FORMAT
    task: Task
    target: str = Field(min_length=1)
    """Name of the predicted column in the training data (informational for inference)."""
    features: list[ModelFeature] = Field(min_length=1)
    classes: list[str] | None = None
    """Classification only: the labels, one per output column (at least two)."""
    mean: list[float]
    """One entry per numeric feature, in the order the numeric features appear in `features`."""
    scale: list[float]
    """One positive entry per numeric feature (a constant training column has scale 1)."""
    weights: list[list[float]]
    bias: list[float]

    @field_validator("features")
    @classmethod
    def _feature_names_unique(cls, features: list[ModelFeature]) -> list[ModelFeature]:
        _unique([feature.name for feature in features], "feature names")
        return features

    @field_validator("scale")
    @classmethod
    def _scale_positive(cls, scale: list[float]) -> list[float]:
        if any(value <= 0 for value in scale):
            raise ValueError("every scale must be positive")
        return scale

    @model_validator(mode="after")
    def _shapes_agree(self) -> "LinearModel":
        _check_classes(self.task, self.classes)
        numeric = sum(1 for feature in self.features if feature.type == "numeric")
        if len(self.mean) != numeric or len(self.scale) != numeric:
            raise ValueError(f"mean and scale need one entry per numeric feature ({numeric})")
        if len(self.weights) != self.encoded_width:
            raise ValueError(f"weights need one row per encoded column ({self.encoded_width})")
        if any(len(row) != self.outputs for row in self.weights) or len(self.bias) != (
            self.outputs
        ):
            raise ValueError(f"weights rows and bias need one entry per output ({self.outputs})")
        return self

    @property
    def encoded_width(self) -> int:
        """Length of the encoded input vector."""
        return sum(feature.width for feature in self.features)

    @property
    def outputs(self) -> int:
        """Number of output columns: one per class, or one for regression."""
        return len(self.classes) if self.classes is not None else 1


class OnnxOutputs(_Document):
    """Which outputs of the ONNX graph carry what; each defaults to the graph's outputs in order
    (skl2onnx: `output_label` then `output_probability` for a classifier, `variable` for a
    regressor)."""

    label: str | None = Field(default=None, min_length=1)
    """Classification: the output holding the predicted class of each row."""
    probabilities: str | None = Field(default=None, min_length=1)
    """Classification: the output holding one probability per class, either a `[N, classes]`
    tensor in the order of `classes` or a sequence of maps keyed by class (skl2onnx's ZipMap)."""
    prediction: str | None = Field(default=None, min_length=1)
    """Regression: the output holding the prediction (`[N]` or `[N, 1]`)."""


class OnnxModel(_Document):
    """The content of `model.json` in an `onnx/v1` artifact: the graph is in `file`.

    The features are those of `reference.json`, in its order; the graph takes them either as
    one `[N, features]` float tensor (all features numeric, in that order) or as one `[N, 1]`
    input per feature named like it (float or double for a numeric feature, string for a
    categorical one). Classification returns the label and the probabilities of `classes`,
    regression the prediction, under the same output names as every format (`predict`,
    `predict_proba`). `modelops.sdk` writes this document.
    """

    format: Literal["onnx/v1"] = ONNX_FORMAT
    task: Task
    target: str = Field(min_length=1)
    """Name of the predicted column in the training data (informational for inference)."""
    classes: list[str] | None = None
    """Classification only: the labels, as given in the training data, in the order of the
    probability columns (at least two)."""
    file: str = Field(default=ONNX_FILE, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    """The ONNX graph, a file of the artifact directory listed in `manifest.json`."""
    outputs: OnnxOutputs = OnnxOutputs()
    opset: int | None = Field(default=None, ge=1)
    """The ONNX opset the graph was exported with (informational)."""

    @model_validator(mode="after")
    def _classes_match_task(self) -> "OnnxModel":
        _check_classes(self.task, self.classes)
        if self.file in (MODEL_FILE, REFERENCE_FILE, MANIFEST_FILE):
            raise ValueError(f"file cannot be {self.file}")
        return self


ModelDocument = Annotated[LinearModel | OnnxModel, Field(discriminator="format")]
"""`model.json`, whichever format it describes."""


# ---------------------------------------------------------------------------------------------
# reference.json


def _is_none(value: object) -> bool:
    """Optional fields a document leaves out stay out when it is dumped again, so a reference
    written before they existed round-trips to the same bytes."""
    return value is None


class NumericReference(_Document):
    """Reference histogram of a numeric feature, bucketed like a Prometheus histogram.

    `counts[0]` counts values `<= bin_edges[0]`, `counts[i]` values in
    `(bin_edges[i-1], bin_edges[i]]`, and `counts[-1]` values `> bin_edges[-1]`: the buckets
    `le=edge` for each edge plus `le="+Inf"`, after de-cumulating. Missing values are not
    counted in `counts`; `missing` counts them (absent: not recorded, read as 0). An empty
    `bin_edges` (no value observed) leaves the single `+Inf` bucket.

    The optional fields (written by trainers since the second reference format, see
    `docs/contracts.md`) keep what the bucket counts alone lose: `bin_means` is the mean of the
    reference values in each bucket (`None` for an empty bucket), `std` the population
    standard deviation and `distinct` the number of distinct values of the present values.
    A reference without them is still valid; drift evaluation then falls back to bucket
    midpoints and non-empty buckets (see `docs/drift.md`).
    """

    name: str = Field(min_length=1)
    type: Literal["numeric"] = "numeric"
    bin_edges: list[float] = Field(alias="binEdges")
    counts: list[Annotated[int, Field(ge=0)]]
    missing: Annotated[int, Field(ge=0)] | None = Field(default=None, exclude_if=_is_none)
    bin_means: list[float | None] | None = Field(
        default=None, alias="binMeans", exclude_if=_is_none
    )
    std: Annotated[float, Field(ge=0)] | None = Field(default=None, exclude_if=_is_none)
    distinct: Annotated[int, Field(ge=0)] | None = Field(default=None, exclude_if=_is_none)

    @model_validator(mode="after")
    def _buckets_agree(self) -> "NumericReference":
        edges = self.bin_edges
        if any(lower >= upper for lower, upper in itertools.pairwise(edges)):
            raise ValueError(f"bin edges of {self.name!r} must be strictly ascending")
        if len(self.counts) != len(edges) + 1:
            raise ValueError(f"{self.name!r} needs len(binEdges) + 1 counts")
        if self.bin_means is not None:
            if len(self.bin_means) != len(self.counts):
                raise ValueError(f"{self.name!r} needs one bin mean per count")
            for i, (mean, count) in enumerate(zip(self.bin_means, self.counts, strict=True)):
                if (mean is None) != (count == 0):
                    raise ValueError(f"{self.name!r} needs a bin mean for each non-empty bin only")
                lower = edges[i - 1] if 0 < i <= len(edges) else -math.inf
                upper = edges[i] if i < len(edges) else math.inf
                if mean is not None and not lower < mean <= upper:
                    raise ValueError(f"bin mean {i} of {self.name!r} lies outside its bin")
        return self


class CategoricalReference(_Document):
    """Reference frequencies of a categorical feature: `counts[i]` rows had `categories[i]`,
    and `missing` rows had no value (absent: not recorded, read as 0)."""

    name: str = Field(min_length=1)
    type: Literal["categorical"] = "categorical"
    categories: list[str]
    counts: list[Annotated[int, Field(ge=0)]]
    missing: Annotated[int, Field(ge=0)] | None = Field(default=None, exclude_if=_is_none)

    @model_validator(mode="after")
    def _counts_agree(self) -> "CategoricalReference":
        _unique(self.categories, f"categories of {self.name!r}")
        if len(self.counts) != len(self.categories):
            raise ValueError(f"{self.name!r} needs one count per category")
        return self


FeatureReference = Annotated[NumericReference | CategoricalReference, Field(discriminator="type")]


class ReferenceStats(_Document):
    """The content of `reference.json`: per-feature statistics of the training data."""

    rows: int = Field(ge=0)
    """Number of rows the statistics were computed over."""
    features: list[FeatureReference]

    @field_validator("features")
    @classmethod
    def _feature_names_unique(cls, features: list[FeatureReference]) -> list[FeatureReference]:
        _unique([feature.name for feature in features], "feature names")
        return features


# ---------------------------------------------------------------------------------------------
# manifest.json and digests

_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class Manifest(_Document):
    """The content of `manifest.json`: the digest of every other file of the artifact."""

    files: dict[str, Annotated[str, Field(pattern=DIGEST_PATTERN)]]

    @field_validator("files")
    @classmethod
    def _plain_file_names(cls, files: dict[str, str]) -> dict[str, str]:
        # A manifest names files inside one directory; a path would let it point elsewhere.
        for name in files:
            if not _FILE_NAME.match(name) or name == MANIFEST_FILE:
                raise ValueError(f"manifest cannot list {name!r}")
        return files


def canonical_json(document: Any) -> bytes:
    """Serialise JSON-compatible data to its one canonical byte form.

    Keys sorted, no whitespace, UTF-8, no trailing newline; NaN and infinities are refused.
    Equal data always gives equal bytes, which is what makes digests of JSON files stable.
    """
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def dump_document(document: BaseModel) -> bytes:
    """Canonical bytes of a contract document: field aliases, absent optional fields omitted."""
    return canonical_json(document.model_dump(mode="json", by_alias=True, exclude_none=True))


def sha256_digest(data: bytes) -> str:
    """The digest of `data` in the form used everywhere in the contract: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_bytes(files: Mapping[str, bytes]) -> bytes:
    """The exact bytes of `manifest.json` for an artifact made of `files` (name → content)."""
    manifest = Manifest(files={name: sha256_digest(data) for name, data in files.items()})
    return dump_document(manifest)


def verify_manifest(data: bytes, digest: str) -> Manifest:
    """Check the bytes of `manifest.json` against the artifact digest and parse them.

    Raises `ArtifactIntegrityError` if the bytes do not hash to `digest` or are not a manifest.
    """
    actual = sha256_digest(data)
    if actual != digest:
        raise ArtifactIntegrityError(f"{MANIFEST_FILE} has digest {actual}, expected {digest}")
    try:
        return Manifest.model_validate_json(data)
    except ValueError as error:
        raise ArtifactIntegrityError(f"{MANIFEST_FILE} is not a valid manifest: {error}") from None


def verify_artifact(directory: Path, digest: str) -> Manifest:
    """Verify a whole artifact directory against its digest; return the verified manifest.

    Checks `manifest.json` against `digest`, then every listed file against the manifest.
    Files not listed in the manifest are ignored (they are not part of the artifact). Raises
    `ArtifactIntegrityError` naming the first file that is missing or altered; a successful
    return means every listed file had, when it was read, exactly the bytes that were digested.
    """
    try:
        manifest = verify_manifest((directory / MANIFEST_FILE).read_bytes(), digest)
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"{MANIFEST_FILE} is missing in {directory}") from None
    for name, expected in sorted(manifest.files.items()):
        try:
            actual = sha256_digest((directory / name).read_bytes())
        except FileNotFoundError:
            raise ArtifactIntegrityError(f"{name} is missing in {directory}") from None
        if actual != expected:
            raise ArtifactIntegrityError(f"{name} has digest {actual}, expected {expected}")
    return manifest


# ---------------------------------------------------------------------------------------------
# training result (termination message)


class _Message(BaseModel):
    """Base of the termination message documents.

    Any training image may write them, including users' own, so unknown fields are ignored
    rather than refused: a newer trainer stays readable by an older operator.
    """

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
    )


class ResultArtifact(_Message):
    """Where the artifact directory is and which bytes it must hold."""

    uri: str = Field(min_length=1)
    """`pvc://<claim>/<path>` or `file:///<absolute path>`."""
    digest: str = Field(pattern=DIGEST_PATTERN)
    """`sha256:` + hex sha256 of the exact bytes of `manifest.json`."""
    format: str = Field(min_length=1)
    """Format of the model file, e.g. `modelops-linear/v1` (`MODEL_FORMAT`)."""


class ResultDataset(_Message):
    """The dataset the model was trained on."""

    uri: str = Field(min_length=1)
    digest: str = Field(pattern=DIGEST_PATTERN)
    """`sha256:` + hex sha256 of the exact bytes of the dataset file."""


class ResultCode(_Message):
    """The training code that produced the model."""

    revision: str = Field(min_length=1)


class TrainingResult(_Message):
    """The termination message of a successful training run."""

    artifact: ResultArtifact
    metrics: dict[str, float]
    """Metrics on the held-out split, by name (`accuracy`, `f1`, `rmse`, …)."""
    reference_stats: str = Field(alias="referenceStats", min_length=1)
    """URI of `reference.json` inside the artifact."""
    dataset: ResultDataset
    code: ResultCode


class TrainingFailure(_Message):
    """The termination message of a failed training run."""

    error: str
    """One line saying what failed (for a refused dataset: which column and which rule)."""


def parse_termination_message(message: str) -> TrainingResult | TrainingFailure:
    """Parse a training container's termination message.

    A document with an `error` key is a failure, any other one must be a result. Raises
    `ValueError` (a pydantic `ValidationError`) when the message is neither, e.g. because the
    container wrote something else or Kubernetes truncated it.
    """
    document = json.loads(message)
    if isinstance(document, dict) and "error" in document:
        return TrainingFailure.model_validate(document)
    return TrainingResult.model_validate(document)
