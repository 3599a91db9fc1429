"""Model: the logical model and its policies for training, serving and retention."""

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
    DNS_1035_LABEL_PATTERN,
    MODEL_NAME_MAX_LENGTH,
    ApiModel,
    ConditionDoc,
    DnsLabel,
    Duration,
    HttpUrl,
    MetricName,
    NameRule,
    ObjectMeta,
    ObjectStatus,
    VersionName,
    cel,
    kstatus_conditions,
    list_map,
    unique_by,
    validations,
)
from modelops.api.v1alpha1.common import DatasetReference, ResourceRequirements, Storage
from modelops.api.v1alpha1.trainingrun import Argument, TrainingRunTemplate

DEFAULT_SERVER_IMAGE = "ghcr.io/modelops/server:0.1.0"
DEFAULT_SERVER_COMMAND = ("python", "-m", "modelops.runtimes.server")
HISTORY_MAX_ITEMS = 20


class ModelCard(ApiModel):
    """Model-card facts for the people who use the model's predictions."""

    intended_use: str | None = Field(default=None, max_length=8192)
    """What the model is for, and for whom."""

    limitations: str | None = Field(default=None, max_length=8192)
    """Known weaknesses, biases and situations where the model should not be used."""


class Promotion(StrEnum):
    """Who decides which version serves production."""

    MANUAL = "Manual"
    AUTOMATIC = "Automatic"


_GATE_HAS_BOUND = cel("has(self.min) || has(self.max)", "a gate needs min, max or both")
_GATE_ORDERED = cel(
    "!has(self.min) || !has(self.max) || self.min <= self.max",
    "gate min must not be greater than max",
    field_path=".min",
)


class Gate(ApiModel):
    """A bound on one ModelVersion metric that a version must meet to be promoted."""

    model_config = ConfigDict(json_schema_extra=validations(_GATE_HAS_BOUND, _GATE_ORDERED))

    metric: MetricName
    """Name of a metric in the ModelVersion's spec.metrics, for example accuracy. A version
    without the metric does not pass."""

    min: float | None = None
    """The metric must be at least this."""

    max: float | None = None
    """The metric must be at most this."""

    @model_validator(mode="after")
    def _check_bounds(self) -> "Gate":
        if self.min is None and self.max is None:
            raise ValueError(_GATE_HAS_BOUND["message"])
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(_GATE_ORDERED["message"])
        return self


class Canary(ApiModel):
    """How a new version is tried on part of the traffic before it takes over."""

    replicas_percent: int = Field(default=10, ge=1, le=99)
    """Share of the serving replicas, in percent (1 to 99), that run the new version while it
    is canary; at least one replica. The stable Service spreads requests over all replicas, so
    this is also roughly its share of the traffic."""

    min_ready_seconds: int = Field(default=60, ge=0, le=86_400)
    """How long the canary must stay available before it is promoted."""


_PIN_EXCLUDES_AUTOMATIC = cel(
    "!has(self.version) || self.promotion != 'Automatic'",
    "serving.version pins the production version and cannot be combined with promotion: Automatic",
    field_path=".version",
)
_GATES_NEED_AUTOMATIC = cel(
    "!has(self.gates) || self.promotion == 'Automatic'",
    "serving.gates apply only to promotion: Automatic",
    field_path=".gates",
)
_RUNTIME_OR_IMAGE = cel(
    "!has(self.runtime) || !has(self.image)",
    "serving.runtime and serving.image are exclusive: a runtime brings its own image",
    field_path=".runtime",
)
_APPROVAL_NEEDS_AUTOMATIC = cel(
    "!self.requireApproval || self.promotion == 'Automatic'",
    "serving.requireApproval applies only to promotion: Automatic",
    field_path=".requireApproval",
)


class Serving(ApiModel):
    """Which version serves production and how a new one rolls out."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            _PIN_EXCLUDES_AUTOMATIC,
            _GATES_NEED_AUTOMATIC,
            _APPROVAL_NEEDS_AUTOMATIC,
            _RUNTIME_OR_IMAGE,
        )
    )

    version: VersionName | None = None
    """Pin production to this version (a ModelVersion's spec.version), the GitOps way to promote
    and roll back. With promotion Manual and no pin, nothing is served."""

    promotion: Promotion = Promotion.MANUAL
    """Manual: production is what serving.version says. Automatic: the newest registered
    version that passes every gate (and is approved, if required) is promoted."""

    gates: Annotated[list[Gate], AfterValidator(unique_by("metric"))] | None = Field(
        default=None, max_length=16, json_schema_extra=list_map("metric")
    )
    """Metric bounds a version must meet for automatic promotion, at most one per metric."""

    require_approval: bool = False
    """Automatic promotion also waits for the label modelops.dev/approved=true on the
    ModelVersion, so a person signs off every promotion."""

    replicas: int = Field(default=1, ge=1, le=100)
    """Number of serving pods for the production version."""

    resources: ResourceRequirements | None = None
    """CPU and memory for each serving container."""

    runtime: DnsLabel | None = None
    """The serving runtime, by name, from the operator's runtime table (docs/formats.md). Unset:
    the first runtime that loads the version's artifact format, the reference server for
    modelops-linear/v1 and onnx/v1."""

    image: str | None = Field(default=None, min_length=1, max_length=512)
    """A model server image of your own instead of a runtime: it is given every version whatever
    its format, so it must load them. Unset: the runtime's image."""

    command: list[Argument] | None = Field(default=None, min_length=1, max_length=64)
    """Model server entrypoint. Unset: the runtime's command, or the entrypoint of image."""

    args: list[Argument] | None = Field(default=None, max_length=64)
    """Arguments to the server entrypoint."""

    canary: Canary | None = None
    """Roll a new version out as a canary first. Unset replaces production at once (still
    waiting for the new version to be available)."""

    progress_deadline_seconds: int = Field(default=600, ge=30, le=86_400)
    """How long a rollout may take to become available before it counts as failed."""

    rollback: bool = True
    """On a failed rollout, go back to the previous production version (and record it in
    status.history)."""

    @model_validator(mode="after")
    def _check_promotion(self) -> "Serving":
        automatic = self.promotion is Promotion.AUTOMATIC
        if self.version is not None and automatic:
            raise ValueError(_PIN_EXCLUDES_AUTOMATIC["message"])
        if self.gates is not None and not automatic:
            raise ValueError(_GATES_NEED_AUTOMATIC["message"])
        if self.require_approval and not automatic:
            raise ValueError(_APPROVAL_NEEDS_AUTOMATIC["message"])
        if self.runtime is not None and self.image is not None:
            raise ValueError(_RUNTIME_OR_IMAGE["message"])
        return self


_RETENTION_HAS_LIMIT = cel(
    "has(self.keepLast) || has(self.maxAge)",
    "retention needs keepLast, maxAge or both",
    field_path=".keepLast",
)


class Retention(ApiModel):
    """When versions that are not serving are retired. A retired version stays as a record
    but is never served again; serving and canary versions are never retired."""

    model_config = ConfigDict(json_schema_extra=validations(_RETENTION_HAS_LIMIT))

    keep_last: int | None = Field(default=None, ge=0, le=1000)
    """Keep this many of the newest non-serving versions; retire older ones."""

    max_age: Duration | None = None
    """Retire non-serving versions registered longer ago than this Go duration, for example
    720h (30 days)."""

    delete_artifacts: bool = False
    """Also delete the artifact directory of a retired version. Off by default because it
    destroys data that cannot be recovered."""

    @model_validator(mode="after")
    def _check_policy(self) -> "Retention":
        if self.keep_last is None and self.max_age is None:
            raise ValueError(_RETENTION_HAS_LIMIT["message"])
        return self


HeaderValue = Annotated[str, StringConstraints(max_length=1024)]


class Sink(ApiModel):
    """An HTTP endpoint that receives CloudEvents."""

    url: HttpUrl
    """Where events are POSTed, as CloudEvents in structured JSON mode."""

    headers: dict[str, HeaderValue] | None = Field(default=None, max_length=16)
    """Extra HTTP headers. They are stored in plain text in the Model: do not put credentials
    here."""


class Notifications(ApiModel):
    """Where changes of the served version are announced."""

    sinks: Annotated[list[Sink], AfterValidator(unique_by("url"))] = Field(
        min_length=1, max_length=8, json_schema_extra=list_map("url")
    )
    """Endpoints that receive an event on every promotion, rollback and retirement."""


class ModelSpec(ApiModel):
    """The desired state of a model: what it is, how it is trained, served and retired."""

    description: str | None = Field(default=None, max_length=4096)
    """What the model predicts. Use metadata labels (team, task, …) for discovery."""

    owner: str | None = Field(default=None, max_length=253)
    """Team or person responsible for the model, for example ml-platform@example.com."""

    model_card: ModelCard | None = None
    """Model-card facts: intended use and limitations."""

    training: TrainingRunTemplate | None = None
    """Template for TrainingRuns created on the model's behalf (DriftPolicy retrains): a
    TrainingRun spec without modelRef, version and trigger."""

    serving: Serving | None = None
    """How the model is served. Unset: the model is a registry entry only."""

    storage: Storage | None = None
    """How serving pods (an init step downloads and verifies the artifact) and retirement Jobs
    reach versions whose artifact is in S3 (an s3:// URI): endpoint, region, addressing and
    the Secret with the credentials."""

    retention: Retention | None = None
    """When non-serving versions are retired. Unset: versions are kept forever."""

    notifications: Notifications | None = None
    """Where serving changes are announced."""


class HistoryKind(StrEnum):
    """What happened to the served version."""

    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    RETIRED = "Retired"
    QUARANTINED = "Quarantined"


class HistoryEntry(ApiModel):
    """One change of the served version."""

    time: AwareDatetime
    """When it happened."""

    kind: HistoryKind
    """Promoted, RolledBack, Retired, or Quarantined (production taken off a quarantined
    version: to its newest clean version, or to nothing)."""

    from_: VersionName | None = Field(default=None, alias="from")
    """The version that served production before; unset for the first promotion."""

    to: VersionName | None = None
    """The version that serves production after; unset when a retirement left none."""

    reason: str = Field(default="", max_length=1024)
    """Why, for example 'gates passed: accuracy=0.967' or 'rollout failed: not available
    after 600s'."""

    generation: int | None = Field(default=None, ge=0)
    """The Model's metadata.generation when it happened. A rollback keeps a pinned version
    from being rolled out again only under the generation it failed at: any edit of the Model
    retries it."""

    approved_by: str | None = Field(default=None, max_length=512)
    """For a promotion: who approved the promoted version (its modelops.dev/approved-by
    annotation, which the API server stamps with the approving user); unset when the version
    carried no approval."""


class ServedDataset(DatasetReference):
    """The training data of a version the model serves, from the version's provenance."""

    version: VersionName
    """The served version trained on this data."""


QUARANTINED_MAX_ITEMS = 500


class ModelStatus(ObjectStatus):
    """The observed state of a model."""

    production_version: VersionName | None = None
    """The version serving production traffic."""

    canary_version: VersionName | None = None
    """The version being tried as canary, if any."""

    endpoint: str | None = Field(default=None, max_length=2048)
    """In-cluster URL of the stable Service, which always reaches the served versions."""

    datasets: list[ServedDataset] | None = Field(default=None, max_length=4)
    """The training data of each version that serves (production first, then a canary or a
    replacement rolling out), so the data behind live predictions is one kubectl get away.
    Versions without a recorded dataset are left out."""

    history: list[HistoryEntry] | None = Field(default=None, max_length=HISTORY_MAX_ITEMS)
    """The most recent changes of the served version, oldest first, at most 20."""

    quarantined_versions: list[VersionName] | None = Field(
        default=None, max_length=QUARANTINED_MAX_ITEMS
    )
    """The versions a Quarantine reaches now (see the Quarantine kind), sorted; they are never
    served while it stands."""


MODEL_CONDITIONS = (
    ConditionDoc(
        type="Ready",
        summary="The summary condition: is the model served as its spec asks?",
        true="The spec is reconciled and, if spec.serving is set, the production version is "
        "available through the stable Service (also during a canary).",
        false="Serving is asked for but no version is available: none selected (promotion "
        "Manual without serving.version, or no version passes the gates), the selected version "
        "does not exist or is retired, or its rollout failed with nothing to roll back to.",
        unknown="The model has not been reconciled yet, or its first rollout is in progress.",
    ),
    ConditionDoc(
        type="Progressing",
        summary="Whether a rollout is under way.",
        true="A new version is rolling out (canary or replacement) and has not yet been "
        "promoted or given up.",
        false="No rollout is in progress.",
        unknown="The rollout's state could not be observed.",
    ),
    ConditionDoc(
        type="Degraded",
        summary="Whether something needs attention although the model may still serve.",
        true="The last rollout failed (and was rolled back if spec.serving.rollback), the "
        "production version lost available replicas, or a Quarantine took production off a "
        "version (reason Quarantined, or VersionQuarantined for a pinned one).",
        false="The last rollout succeeded and the production version is fully available.",
        unknown="Not determined yet.",
    ),
    *kstatus_conditions(
        reconciling="A rollout is under way (the same as Progressing).",
        stalled="The selected version cannot be served until the spec or the version changes: "
        "its rollout failed, it is retired, or its artifact cannot be served.",
    ),
)

NAME_RULE = NameRule(
    max_length=MODEL_NAME_MAX_LENGTH,
    pattern=DNS_1035_LABEL_PATTERN,
    message=f"metadata.name must start with a letter, contain only lowercase letters, digits"
    f" and '-', and be at most {MODEL_NAME_MAX_LENGTH} characters: it names the model's"
    f" Service and prefixes the names of its versions' Deployments, which must fit in 63",
)


class Model(ApiModel):
    """A machine-learning model and its policies: how it is trained, which version serves,
    how new versions are promoted, and when old ones are retired."""

    api_version: Literal["modelops.dev/v1alpha1"] = API_VERSION
    kind: Literal["Model"] = "Model"
    metadata: ObjectMeta
    spec: ModelSpec
    status: ModelStatus = Field(default_factory=ModelStatus)

    @model_validator(mode="after")
    def _check_name(self) -> "Model":
        NAME_RULE.check(self.metadata.name)
        return self
