"""Settings of the reference trainer, read from `MODELOPS_TRAINER_*` environment variables.

The operator configures a training Job through these variables; a human can pass the same
settings as command-line flags (see `modelops.runtimes.trainer.cli`), which take precedence.
"""

import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

import modelops
from modelops.api.artifact import DIGEST_PATTERN


class Hyperparameters(BaseModel):
    """Knobs of the training algorithm, given as one JSON object with these camelCase keys.

    Unknown keys are refused, so a misspelt hyperparameter fails the run instead of being
    silently ignored.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        use_attribute_docstrings=True,
    )

    learning_rate: float = Field(default=0.5, gt=0, alias="learningRate")
    """Step size of full-batch gradient descent (classification only)."""
    epochs: int = Field(default=500, ge=1, le=100_000)
    """Number of gradient-descent steps over the whole training split (classification only)."""
    l2: float = Field(default=0.001, ge=0)
    """L2 penalty: `l2 / 2 * ||weights||^2` is added to the mean training loss (bias exempt)."""
    bins: int = Field(default=20, ge=1, le=100)
    """Number of quantile bins of the numeric reference histograms. A feature with at most
    max(bins, 50) distinct values gets one bucket per value instead (docs/drift.md)."""


class TrainerSettings(BaseSettings):
    """Everything one training run needs to know, from `MODELOPS_TRAINER_<FIELD>` variables."""

    model_config = SettingsConfigDict(
        env_prefix="MODELOPS_TRAINER_",
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        use_attribute_docstrings=True,
    )

    dataset: Path
    """The dataset file to train on: CSV with a header row, UTF-8. Required."""
    dataset_uri: str | None = None
    """Where the dataset came from, recorded in the result; default `file://<dataset path>`."""
    dataset_digest: str | None = Field(default=None, pattern=DIGEST_PATTERN)
    """The `sha256:<hex>` digest the dataset file must have; a dataset with other content is
    refused. Unset accepts any content (its digest is recorded either way)."""
    dataset_schema: str | None = Field(default=None, validation_alias="MODELOPS_TRAINER_SCHEMA")
    """The dataset schema, as a JSON document or the path of a JSON file
    (variable `MODELOPS_TRAINER_SCHEMA`). Without one a permissive schema is inferred from the
    data, which validates almost nothing; a target of 20 or fewer distinct whole numbers then
    fails the run until the schema declares its task."""
    output_dir: Path
    """Directory the artifact is written to; created if missing. Required."""
    output_uri: str | None = None
    """How consumers address the output directory (e.g. `pvc://models/iris/iris-7`), recorded
    in the result; default `file://<output dir>`."""
    termination_log: Path = Path("/dev/termination-log")
    """Where the result (or the error) is written for the kubelet to pick up."""
    seed: int = Field(default=0, ge=0)
    """Seed of the train/test split; the same seed and data give byte-identical artifacts."""
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    """Share of the rows held out for evaluation (per class for classification)."""
    hyperparameters: Annotated[Hyperparameters, NoDecode] = Hyperparameters()
    """Training knobs as a JSON object, e.g. `{"learningRate": 0.5, "epochs": 500}`."""
    code_revision: str = Field(default=modelops.__version__, min_length=1)
    """Revision of the training code, recorded in the result; default the package version."""
    required_metrics: Annotated[list[str], NoDecode] = []
    """Metric names the run must produce, comma-separated (e.g. `accuracy,f1`); the run fails
    if one of them cannot be computed, so promotion gates can rely on it."""

    @field_validator("hyperparameters", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        # Decoded here rather than by the environment source, so that malformed JSON is a
        # validation error naming the field, like any other bad value.
        if isinstance(value, str):
            return json.loads(value)
        return value

    @field_validator("required_metrics", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def resolved_dataset_uri(self) -> str:
        """`dataset_uri`, or a `file://` URI of the dataset path."""
        return self.dataset_uri or self.dataset.resolve().as_uri()

    @property
    def resolved_output_uri(self) -> str:
        """`output_uri` without a trailing slash, or a `file://` URI of the output directory."""
        return (self.output_uri or self.output_dir.resolve().as_uri()).rstrip("/")
