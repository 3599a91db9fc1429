"""Quarantine: a dataset or training image declared tainted, and every version it reached."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from modelops.api.meta import (
    API_VERSION,
    ApiModel,
    ConditionDoc,
    Digest,
    ObjectMeta,
    ObjectStatus,
    VersionName,
    cel,
    validations,
)

AFFECTED_MAX_ITEMS = 100


class QuarantineSpec(ApiModel):
    """What is tainted, and why. Exactly one of datasetDigest and imageDigest. Immutable:
    declare another Quarantine instead; delete this one to lift it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "has(self.datasetDigest) != has(self.imageDigest)",
                "spec: set exactly one of datasetDigest and imageDigest",
            ),
            cel("self == oldSelf", "spec is immutable: declare another Quarantine instead"),
        )
    )

    dataset_digest: Digest | None = None
    """sha256:<64 hex digits> of the tainted training data: every ModelVersion whose
    spec.provenance.dataset.digest is this one is quarantined, and so is every version trained
    from a quarantined one (spec.provenance.parentVersion)."""

    image_digest: Digest | None = None
    """sha256:<64 hex digits> of a tainted training image: every ModelVersion whose
    spec.provenance.image is pinned by this digest (repo@sha256:…) is quarantined, with its
    descendants."""

    reason: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    """Why the data or image is tainted, for example 'label poisoning found in batch 2026-11'.
    Shown in every Event, condition and CloudEvent the quarantine causes."""

    @model_validator(mode="after")
    def _one_digest(self) -> "QuarantineSpec":
        if (self.dataset_digest is None) == (self.image_digest is None):
            raise ValueError("spec: set exactly one of datasetDigest and imageDigest")
        return self


class AffectedVersion(ApiModel):
    """One ModelVersion the quarantine reaches."""

    namespace: str = Field(max_length=63)
    """The version's namespace."""

    model: str = Field(max_length=63)
    """Its Model."""

    version: VersionName
    """The version (spec.version)."""

    via: Annotated[str, StringConstraints(max_length=80)]
    """How it is reached: 'dataset', 'image', or 'parent <version>' for a descendant."""


class QuarantineStatus(ObjectStatus):
    """What the quarantine reaches now."""

    declared_by: Annotated[str, StringConstraints(max_length=512)] | None = None
    """The user who created the Quarantine, as the API server recorded it (annotation
    modelops.dev/declared-by)."""

    affected_count: int | None = Field(default=None, ge=0)
    """ModelVersions quarantined by this declaration, in every namespace modelops watches."""

    affected: list[AffectedVersion] | None = Field(default=None, max_length=AFFECTED_MAX_ITEMS)
    """The quarantined versions, at most 100 (affectedCount has them all); list them all with
    kubectl get mv -A -l modelops.dev/quarantined=true."""


QUARANTINE_CONDITIONS = (
    ConditionDoc(
        type="Ready",
        summary="Whether modelops enforces the quarantine.",
        true="Every ModelVersion it reaches is marked quarantined (label "
        "modelops.dev/quarantined=true, condition Quarantined) and out of production.",
        false="Not used.",
        unknown="modelops has not seen the Quarantine yet.",
    ),
)


class Quarantine(ApiModel):
    """A dataset or training image declared tainted (cluster-scoped). modelops quarantines
    every ModelVersion trained on it and their descendants: they are taken out of production,
    cannot be pinned or promoted, and are not retrained from. Deleting the Quarantine lifts it
    without serving anything again by itself."""

    api_version: Literal["modelops.dev/v1alpha1"] = API_VERSION
    kind: Literal["Quarantine"] = "Quarantine"
    metadata: ObjectMeta
    spec: QuarantineSpec
    status: QuarantineStatus = Field(default_factory=QuarantineStatus)
