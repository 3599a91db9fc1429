"""ModelVersion: an immutable, auditable record of one trained artifact."""

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from modelops.api.meta import (
    API_VERSION,
    ApiModel,
    ConditionDoc,
    FreeForm,
    Metrics,
    ModelReference,
    ObjectMeta,
    ObjectStatus,
    Uri,
    VersionName,
    cel,
    kstatus_conditions,
    validations,
)
from modelops.api.v1alpha1.common import Artifact, CodeReference, DatasetReference


class TrainingRunReference(ApiModel):
    """The TrainingRun that produced a version."""

    name: str = Field(max_length=63)
    """Name of the TrainingRun."""

    uid: str | None = Field(default=None, max_length=36)
    """UID of the TrainingRun, which tells it apart from a later run with the same name."""


class Provenance(ApiModel):
    """Where a version came from: the run, image, data, code and parameters behind it."""

    training_run: TrainingRunReference | None = None
    """The TrainingRun that produced the artifact; unset for versions trained elsewhere."""

    image: str | None = Field(default=None, max_length=512)
    """The training image, ideally pinned by digest."""

    dataset: DatasetReference | None = None
    """The training data, with its digest."""

    code: CodeReference | None = None
    """The training code."""

    parameters: FreeForm | None = Field(
        default=None, max_length=64, json_schema_extra={"maxProperties": 64}
    )
    """Hyperparameters the artifact was trained with, as given (any JSON values)."""

    parent_version: VersionName | None = None
    """The version that was in production when this one was trained, for example when a
    DriftPolicy asked for a retrain."""


class ModelVersionSpec(ApiModel):
    """The record of one trained artifact. It cannot change once created: register a new
    version instead."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "spec is immutable: register a new ModelVersion instead",
            ),
        )
    )

    model_ref: ModelReference
    """The Model this is a version of."""

    version: VersionName
    """Version name, unique within the Model: a DNS label of at most 22 characters, for example
    v3 or 7. The ModelVersion must be named <model>-<version>."""

    artifact: Artifact
    """The trained artifact: where it is, its digest and its format."""

    metrics: Metrics | None = None
    """Evaluation metrics, for example accuracy: 0.967. Promotion gates compare these."""

    reference_stats: Uri | None = None
    """Location of the per-feature reference histograms (reference.json) that drift is measured
    against. Without it a DriftPolicy cannot watch this version."""

    provenance: Provenance | None = None
    """How the artifact was produced."""

    def key_metric(self, preferred: Sequence[str] = ()) -> str | None:
        """Return the metric shown in ``kubectl get`` as ``name=value``, or None if none.

        The first name in ``preferred`` (the Model's gate metrics) that this version has wins;
        otherwise the alphabetically first metric, so the choice is stable.
        """
        if not self.metrics:
            return None
        name = next((m for m in preferred if m in self.metrics), min(self.metrics))
        return f"{name}={self.metrics[name]:.4g}"


class ModelVersionPhase(StrEnum):
    """Where a version is in its life. Retired is final."""

    REGISTERED = "Registered"
    CANARY = "Canary"
    SERVING = "Serving"
    RETIRED = "Retired"


class ModelVersionStatus(ObjectStatus):
    """The observed state of a version."""

    phase: ModelVersionPhase | None = None
    """Registered (not served), Canary (serving part of the traffic), Serving (production) or
    Retired (never served again)."""

    served_since: AwareDatetime | None = None
    """When the version last started serving (as canary or production)."""

    retired_at: AwareDatetime | None = None
    """When the version was retired."""

    retired_reason: Annotated[str, StringConstraints(max_length=1024)] | None = None
    """Why the version was retired, for example 'retention: older than 720h'."""

    key_metric: Annotated[str, StringConstraints(max_length=128)] | None = None
    """The metric kubectl get shows, as name=value: the Model's first promotion gate metric, or
    else the alphabetically first metric."""


MODELVERSION_CONDITIONS = (
    ConditionDoc(
        type="Ready",
        summary="Whether the version is a settled record that can be (or is) served.",
        true="The version is registered and, when served, serves (reason Registered, Canary, "
        "Serving); a retired version is a final record and is Ready with reason Retired.",
        false="The version's rollout failed (reason RolloutFailed, for example the artifact "
        "digest did not match), or a Quarantine reaches it (reason Quarantined): automatic "
        "promotion never picks it again.",
        unknown="Its Model has not reconciled it yet.",
    ),
    ConditionDoc(
        type="Quarantined",
        summary="Whether a Quarantine reaches the version (its training data or image is "
        "declared tainted, or it was trained from a version that is).",
        true="Quarantined: never served, pinned or promoted while the Quarantine stands "
        "(reason DatasetQuarantined, ImageQuarantined or ParentQuarantined; the message names "
        "the Quarantine).",
        false="The Quarantine was lifted (reason Lifted): the version may be pinned again, but "
        "automatic promotion never picks it.",
        unknown="Not used; a version never quarantined has no such condition.",
    ),
    *kstatus_conditions(
        reconciling="Never set on a version: its rollout is reported on the Model.",
        stalled="The version's rollout failed, or it is quarantined; it stays registered as a "
        "record.",
    ),
)

ROOT_VALIDATIONS = (
    cel(
        "self.metadata.name == self.spec.modelRef.name + '-' + self.spec.version",
        "metadata.name must be <spec.modelRef.name>-<spec.version>: one object per version"
        " of a model",
        field_path=".metadata.name",
    ),
)


class ModelVersion(ApiModel):
    """One trained artifact of a Model with its metrics and provenance. Immutable: created by
    modelops from a successful TrainingRun, or by you for a model trained elsewhere."""

    api_version: Literal["modelops.dev/v1alpha1"] = API_VERSION
    kind: Literal["ModelVersion"] = "ModelVersion"
    metadata: ObjectMeta
    spec: ModelVersionSpec
    status: ModelVersionStatus = Field(default_factory=ModelVersionStatus)

    @model_validator(mode="after")
    def _check_name(self) -> "ModelVersion":
        expected = f"{self.spec.model_ref.name}-{self.spec.version}"
        if self.metadata.name is not None and self.metadata.name != expected:
            raise ValueError(ROOT_VALIDATIONS[0]["message"] + f" ({expected})")
        return self
