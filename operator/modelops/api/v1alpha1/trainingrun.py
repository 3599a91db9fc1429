"""TrainingRun: one training execution, run as a Kubernetes Job."""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from modelops.api.meta import (
    API_VERSION,
    DNS_LABEL_MAX_LENGTH,
    DNS_LABEL_PATTERN,
    ApiModel,
    ConditionDoc,
    DnsLabel,
    DnsSubdomain,
    FreeForm,
    Metrics,
    ModelReference,
    NameRule,
    ObjectMeta,
    ObjectStatus,
    Uri,
    VersionName,
    cel,
    kstatus_conditions,
    list_map,
    unique_by,
    validations,
)
from modelops.api.v1alpha1.common import (
    Artifact,
    CodeReference,
    Dataset,
    DatasetReference,
    EnvVar,
    ResourceRequirements,
    S3Uri,
    Storage,
    Toleration,
)

Argument = Annotated[str, StringConstraints(max_length=4096)]
LabelValue = Annotated[str, StringConstraints(max_length=63)]
RelativePath = Annotated[
    str,
    StringConstraints(
        max_length=1024, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"
    ),
]


class PvcOutput(ApiModel):
    """A PersistentVolumeClaim that receives the artifact directory."""

    claim_name: DnsSubdomain
    """Name of the PersistentVolumeClaim, in the TrainingRun's namespace."""

    path: RelativePath | None = None
    """Directory inside the claim: a relative path whose parts do not start with a dot (so it
    cannot leave the claim). Defaults to <model>/<TrainingRun name>, so runs never overwrite
    each other."""


class S3Output(ApiModel):
    """An S3 prefix that receives the artifact directory's objects."""

    uri: S3Uri
    """s3://<bucket>/<prefix>. The artifact goes to <uri>/<model>/<TrainingRun name>, so runs
    never overwrite each other; spec.storage.s3 says how to reach the server."""


_ONE_OUTPUT = cel(
    "has(self.pvc) != has(self.s3)",
    "output needs exactly one of pvc and s3",
    field_path=".pvc",
)


class Output(ApiModel):
    """Where the trained artifact is written: a PersistentVolumeClaim or an S3 prefix."""

    model_config = ConfigDict(json_schema_extra=validations(_ONE_OUTPUT))

    pvc: PvcOutput | None = None
    """Write the artifact directory to a PersistentVolumeClaim."""

    s3: S3Output | None = None
    """Upload the artifact directory to S3-compatible object storage (spec.storage.s3)."""

    @model_validator(mode="after")
    def _one_output(self) -> "Output":
        if (self.pvc is None) == (self.s3 is None):
            raise ValueError(_ONE_OUTPUT["message"])
        return self


_S3_NEEDS_STORAGE = cel(
    "has(self.storage) || (!has(self.output.s3) && !self.dataset.uri.startsWith('s3://'))",
    "storage.s3 is required for an s3:// dataset or output: it says how to reach the server",
    field_path=".storage",
)


class TrainingRunTemplate(ApiModel):
    """Everything that defines a training run except the Model it belongs to.

    A Model keeps one as its retraining template; a TrainingRun spec adds the Model reference.
    """

    model_config = ConfigDict(json_schema_extra=validations(_S3_NEEDS_STORAGE))

    image: str = Field(min_length=1, max_length=512)
    """Container image that runs the training; pin it by digest for reproducible runs."""

    command: list[Argument] | None = Field(default=None, max_length=64)
    """Entrypoint; unset uses the image's. The reference trainer runs as
    [python, -m, modelops.runtimes.trainer]."""

    args: list[Argument] | None = Field(default=None, max_length=64)
    """Arguments to the entrypoint."""

    env: Annotated[list[EnvVar], AfterValidator(unique_by("name"))] | None = Field(
        default=None, max_length=64, json_schema_extra=list_map("name")
    )
    """Environment variables for the training container."""

    resources: ResourceRequirements | None = None
    """CPU and memory for the training container."""

    node_selector: dict[str, LabelValue] | None = Field(default=None, max_length=32)
    """Node labels the training pod requires, as in a Pod spec."""

    tolerations: list[Toleration] | None = Field(default=None, max_length=32)
    """Taints the training pod tolerates, as in a Pod spec."""

    dataset: Dataset
    """The training data and the checks it must pass."""

    hyperparameters: FreeForm | None = Field(
        default=None, max_length=64, json_schema_extra={"maxProperties": 64}
    )
    """Parameters passed to the trainer as given (any JSON values); recorded in the registered
    version's provenance."""

    output: Output
    """Where the artifact directory is written."""

    storage: Storage | None = None
    """How the training pod reaches an s3:// dataset or output: endpoint, region, addressing
    and the Secret with the credentials."""

    backoff_limit: int = Field(default=0, ge=0, le=10)
    """How many times a failed training pod is retried. Training is rarely transient, so the
    default is no retry."""

    active_deadline_seconds: int | None = Field(default=None, ge=1, le=2_592_000)
    """Longest time the run may take, in seconds; the run fails once it is exceeded."""

    ttl_seconds_after_finished: int | None = Field(default=None, ge=0, le=2_592_000)
    """Seconds after the run finishes before its Job and pods (and their logs) are deleted.
    The TrainingRun, its result and the artifact stay. Unset keeps the Job."""

    suspend: bool = False
    """While true no training pod runs; set it back to false to start or continue."""

    register_version: bool = Field(default=True, alias="register")
    """Register the trained artifact as a ModelVersion when the run succeeds."""

    @model_validator(mode="after")
    def _s3_needs_storage(self) -> "TrainingRunTemplate":
        if self.storage is None and (
            self.output.s3 is not None or self.dataset.uri.startswith("s3://")
        ):
            raise ValueError(_S3_NEEDS_STORAGE["message"])
        return self


def _fixed(field: str, *, required: bool) -> dict[str, str]:
    """A transition rule that keeps ``field`` as it was when the TrainingRun was created.

    The Job is built from the spec once, so changing these afterwards could only make the
    TrainingRun lie about what ran.
    """
    if required:
        rule = f"self.{field} == oldSelf.{field}"
    else:
        rule = (
            f"has(self.{field}) == has(oldSelf.{field})"
            f" && (!has(self.{field}) || self.{field} == oldSelf.{field})"
        )
    return cel(
        rule,
        f"spec.{field} is immutable: create a new TrainingRun instead",
        field_path=f".{field}",
    )


class Trigger(ApiModel):
    """Why an automatic action created this run."""

    drift_policy: DnsLabel
    """Name of the DriftPolicy that requested the run."""

    reason: str = Field(min_length=1, max_length=1024)
    """Human-readable cause, for example 'dataset drift: 3 of 4 features drifted'."""

    evidence: dict[str, Annotated[str, StringConstraints(max_length=256)]] | None = Field(
        default=None, max_length=16
    )
    """Short key facts behind the decision, for example driftedShare: "0.75"."""


class TrainingRunSpec(TrainingRunTemplate):
    """The desired training run. Fields that shape the Job are fixed at creation."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            _S3_NEEDS_STORAGE,
            *(_fixed(field, required=True) for field in ("modelRef", "image", "dataset", "output")),
            *(
                _fixed(field, required=False)
                for field in (
                    "version",
                    "trigger",
                    "command",
                    "args",
                    "env",
                    "resources",
                    "nodeSelector",
                    "tolerations",
                    "hyperparameters",
                    "storage",
                )
            ),
        )
    )

    model_ref: ModelReference
    """The Model this run trains a version of."""

    version: VersionName | None = None
    """Version name for the registered ModelVersion (a DNS label of at most 22 characters).
    Defaults to the TrainingRun name without a leading '<model>-', shortened with a hash suffix
    if needed; the ModelVersion is named <model>-<version>."""

    trigger: Trigger | None = None
    """Set by modelops when an automatic action (a DriftPolicy retrain) created the run."""


class TrainingRunPhase(StrEnum):
    """Where a training run is in its life."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrainingRunResult(ApiModel):
    """What a successful training produced, as the trainer reported it.

    The operator fills it from the trainer's termination message
    (``modelops.api.artifact.TrainingResult``, see docs/contracts.md).
    """

    artifact: Artifact
    """The trained artifact."""

    metrics: Metrics | None = None
    """Evaluation metrics on held-out data, for example accuracy: 0.967."""

    reference_stats: Uri | None = None
    """Location of the per-feature reference histograms (reference.json) used for drift."""

    dataset: DatasetReference | None = None
    """The data actually trained on, with its digest."""

    code: CodeReference | None = None
    """The trainer code that ran."""


class Failure(ApiModel):
    """Why a run failed."""

    reason: str = Field(max_length=1024)
    """Machine-readable PascalCase cause, for example DatasetRejected or DeadlineExceeded."""

    message: str = Field(default="", max_length=32768)
    """Human-readable details, for example the trainer's error line."""


class TrainingRunStatus(ObjectStatus):
    """The observed state of a training run."""

    phase: TrainingRunPhase | None = None
    """Pending, Running, Suspended, Succeeded or Failed. Succeeded and Failed are final."""

    job_name: str | None = None
    """Name of the Job running the training."""

    start_time: AwareDatetime | None = None
    """When the training pod started."""

    completion_time: AwareDatetime | None = None
    """When the run reached Succeeded or Failed."""

    result: TrainingRunResult | None = None
    """The artifact, metrics and provenance the trainer reported."""

    model_version: str | None = None
    """Name of the ModelVersion registered from this run."""

    failure: Failure | None = None
    """Why the run failed, when it did."""


TRAININGRUN_CONDITIONS = (
    ConditionDoc(
        type="Succeeded",
        summary="The summary condition of a run; final once True or False.",
        true="Training finished and, when spec.register is true, the ModelVersion in "
        "status.modelVersion exists.",
        false="The run failed (the trainer exited non-zero or refused the dataset, the deadline "
        "passed, the result was invalid or registration failed); status.failure says why.",
        unknown="The run has not finished: it is pending, suspended or running.",
    ),
    ConditionDoc(
        type="Running",
        summary="Whether a training pod is running now.",
        true="The Job's training pod is running.",
        false="No training pod is running: the run is pending, suspended or finished.",
        unknown="The Job's state could not be observed.",
    ),
    *kstatus_conditions(
        reconciling="The run is pending or running.",
        stalled="The run failed: a finished run is never retried; create a new TrainingRun.",
    ),
)


NAME_RULE = NameRule(
    max_length=DNS_LABEL_MAX_LENGTH,
    pattern=DNS_LABEL_PATTERN,
    message=f"metadata.name must be a DNS label (lowercase letters, digits and '-') of at most"
    f" {DNS_LABEL_MAX_LENGTH} characters: the Job that runs the training gets the same name",
)


class TrainingRun(ApiModel):
    """One training execution: runs a trainer as a Job on a dataset, checks the data first,
    and registers the result as a ModelVersion."""

    api_version: Literal["modelops.dev/v1alpha1"] = API_VERSION
    kind: Literal["TrainingRun"] = "TrainingRun"
    metadata: ObjectMeta
    spec: TrainingRunSpec
    status: TrainingRunStatus = Field(default_factory=TrainingRunStatus)

    @model_validator(mode="after")
    def _check_name(self) -> "TrainingRun":
        NAME_RULE.check(self.metadata.name)
        return self
