"""Types that more than one kind uses: artifacts, datasets, code references, pod settings."""

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, model_validator

from modelops.api.meta import (
    ApiModel,
    Digest,
    DnsSubdomain,
    HttpUrl,
    Quantity,
    Uri,
    cel,
    list_map,
    unique_by,
    validations,
)

Category = Annotated[str, StringConstraints(max_length=253)]
ArtifactFormat = Annotated[
    str, StringConstraints(max_length=63, pattern=r"^[a-z0-9][-a-z0-9._]*(/[-a-z0-9._]+)?$")
]


class Artifact(ApiModel):
    """A trained model stored as one directory, pinned by the digest of its manifest."""

    uri: Uri
    """Location of the artifact directory: pvc://<claim>/<path>, file:///<path>, s3://,
    gs:// or http(s)://. The reference trainer and server support pvc:// and file://."""

    digest: Digest
    """sha256:<64 hex digits> of the directory's manifest.json. The manifest lists the digest of
    every other file, so this one value pins the whole artifact; the server refuses to serve
    an artifact that does not match."""

    format: ArtifactFormat
    """Format of the model file, for example modelops-linear/v1 (the reference trainer's)."""


S3Uri = Annotated[
    str,
    StringConstraints(max_length=1024, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?$"),
]
Region = Annotated[str, StringConstraints(max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")]


class S3Storage(ApiModel):
    """An S3-compatible object store (AWS S3, or any server that speaks its API)."""

    endpoint: HttpUrl | None = None
    """The server's URL, for example http://minio.storage:9000. Unset: AWS S3."""

    region: Region = "us-east-1"
    """The region requests are signed for."""

    path_style: bool = False
    """Address objects as <endpoint>/<bucket>/<key> (most self-hosted servers) instead of
    <bucket>.<endpoint>/<key>."""

    credentials_secret: DnsSubdomain | None = None
    """A Secret in the same namespace with the keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    It is given only to the pods that move data (training, the serving pod's artifact download,
    retirement), as environment variables; the operator never reads it. Unset: anonymous
    requests."""


class Storage(ApiModel):
    """How pods reach datasets and artifacts that are not on a PersistentVolumeClaim."""

    s3: S3Storage
    """Settings for s3:// URIs."""


class DatasetReference(ApiModel):
    """A dataset, optionally pinned by the digest of its content."""

    uri: Uri
    """Location of the dataset: pvc://<claim>/<path>, file:///<path>, s3://, gs:// or
    http(s)://. The reference trainer reads CSV files from pvc:// and file://."""

    digest: Digest | None = None
    """sha256:<64 hex digits> of the dataset file. When set, training refuses a dataset whose
    content differs."""


class ColumnType(StrEnum):
    """How a dataset column is interpreted."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class Task(StrEnum):
    """The kind of prediction a model makes."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


_COLUMN_ORDERED = cel(
    "!has(self.min) || !has(self.max) || self.min <= self.max",
    "column min must not be greater than max",
    field_path=".min",
)
_COLUMN_BOUNDS_NUMERIC = cel(
    "self.type != 'categorical' || (!has(self.min) && !has(self.max))",
    "column min and max apply only to numeric columns",
)
_COLUMN_ALLOWED_CATEGORICAL = cel(
    "self.type == 'categorical' || !has(self.allowed)",
    "column allowed applies only to categorical columns",
    field_path=".allowed",
)


class Column(ApiModel):
    """Expectations on one dataset column, checked before training starts."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            _COLUMN_ORDERED, _COLUMN_BOUNDS_NUMERIC, _COLUMN_ALLOWED_CATEGORICAL
        )
    )

    name: str = Field(min_length=1, max_length=253)
    """Column name as in the dataset header."""

    type: ColumnType
    """numeric (every present value is a finite number) or categorical (any text)."""

    min: float | None = None
    """Smallest allowed value (numeric columns)."""

    max: float | None = None
    """Largest allowed value (numeric columns)."""

    max_nan_share: float | None = Field(default=None, ge=0, le=1, alias="maxNaNShare")
    """Largest allowed share of missing values (empty, NaN, NA or null), from 0 to 1. Unset
    allows none. The target may never have missing values."""

    allowed: Annotated[list[Category], AfterValidator(unique_by())] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """The only values a categorical column may take; also the order of its one-hot encoding
    (for the target: of the classes)."""

    @model_validator(mode="after")
    def _check_bounds(self) -> "Column":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(_COLUMN_ORDERED["message"])
        if self.type is ColumnType.CATEGORICAL and (self.min is not None or self.max is not None):
            raise ValueError(_COLUMN_BOUNDS_NUMERIC["message"])
        if self.type is not ColumnType.CATEGORICAL and self.allowed is not None:
            raise ValueError(_COLUMN_ALLOWED_CATEGORICAL["message"])
        return self


_TARGET_DECLARED = cel(
    "self.columns.exists(c, c.name == self.target"
    " && c.type == (self.task == 'classification' ? 'categorical' : 'numeric'))",
    "schema.target must name one of schema.columns: a categorical one for classification,"
    " a numeric one for regression",
    field_path=".target",
)


class DatasetSchema(ApiModel):
    """What the training data must look like; the trainer refuses data that does not match,
    before training, naming the column and the rule."""

    model_config = ConfigDict(json_schema_extra=validations(_TARGET_DECLARED))

    target: str = Field(min_length=1, max_length=253)
    """Name of the column to predict; it must be one of columns."""

    task: Task
    """classification (categorical target) or regression (numeric target). Class labels are
    kept exactly as the data writes them: 0, 01 and 1.0 are three different classes."""

    columns: Annotated[list[Column], AfterValidator(unique_by("name"))] = Field(
        min_length=2, max_length=256, json_schema_extra=list_map("name")
    )
    """The target and the features, in order. Columns of the data not listed here are
    features too, with a type inferred from the data (numeric if every present value is a
    number, categorical otherwise) and missing values allowed."""

    min_rows: int = Field(default=1, ge=1, le=1_000_000_000)
    """Smallest number of data rows the dataset must have."""

    @model_validator(mode="after")
    def _check_target(self) -> "DatasetSchema":
        wanted = ColumnType.CATEGORICAL if self.task is Task.CLASSIFICATION else ColumnType.NUMERIC
        if not any(c.name == self.target and c.type is wanted for c in self.columns):
            raise ValueError(_TARGET_DECLARED["message"])
        return self


class Dataset(DatasetReference):
    """The data a training run reads, and the checks it must pass first."""

    data_schema: DatasetSchema | None = Field(default=None, alias="schema")
    """Expected shape of the data. Without it the reference trainer infers a permissive one
    (the last column is the target) that checks types only, and fails a run whose target holds
    20 or fewer distinct whole numbers, which may be class labels or quantities: declare
    schema.task for such data."""


class CodeReference(ApiModel):
    """The source code a model was trained with."""

    repo: Annotated[str, StringConstraints(max_length=2048)] | None = None
    """Repository URL, for example https://github.com/example/models."""

    revision: Annotated[str, StringConstraints(max_length=253)] | None = None
    """Commit, tag or version of the code."""


class ResourceRequirements(ApiModel):
    """CPU, memory and other resources for a container, as in a Pod spec."""

    requests: dict[str, Quantity] | None = Field(default=None, max_length=16)
    """Resources the scheduler reserves, for example cpu: 500m, memory: 256Mi."""

    limits: dict[str, Quantity] | None = Field(default=None, max_length=16)
    """Upper bounds the container may not exceed."""


class EnvVar(ApiModel):
    """An environment variable for the training container."""

    name: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
    """Variable name."""

    value: str = Field(max_length=32768)
    """Variable value. Stored in plain text: pass credentials through a Secret mounted by your
    own image instead."""


class TolerationOperator(StrEnum):
    """How a toleration matches a taint's value."""

    EXISTS = "Exists"
    EQUAL = "Equal"


class TaintEffect(StrEnum):
    """The effect of a taint."""

    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


_EXISTS_HAS_NO_VALUE = cel(
    "self.operator != 'Exists' || !has(self.value)",
    "toleration value must be empty when operator is Exists",
    field_path=".value",
)
_NO_KEY_NEEDS_EXISTS = cel(
    "has(self.key) || self.operator == 'Exists'",
    "a toleration without key must use operator Exists",
    field_path=".operator",
)


class Toleration(ApiModel):
    """Lets the training pod run on nodes with a matching taint, as in a Pod spec."""

    model_config = ConfigDict(
        json_schema_extra=validations(_EXISTS_HAS_NO_VALUE, _NO_KEY_NEEDS_EXISTS)
    )

    key: str | None = Field(default=None, max_length=316)
    """Taint key to match; empty with operator Exists matches every taint."""

    operator: TolerationOperator = TolerationOperator.EQUAL
    """Equal matches the taint's value, Exists any value."""

    value: str | None = Field(default=None, max_length=63)
    """Taint value to match with operator Equal."""

    effect: TaintEffect | None = None
    """Taint effect to match; unset matches every effect."""

    toleration_seconds: int | None = Field(default=None, ge=0)
    """How long the pod stays on a node tainted NoExecute; unset means forever."""

    @model_validator(mode="after")
    def _check_operator(self) -> "Toleration":
        if self.operator is TolerationOperator.EXISTS and self.value is not None:
            raise ValueError(_EXISTS_HAS_NO_VALUE["message"])
        if self.key is None and self.operator is not TolerationOperator.EXISTS:
            raise ValueError(_NO_KEY_NEEDS_EXISTS["message"])
        return self
