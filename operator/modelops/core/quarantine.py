"""Tainted data: which ModelVersions a Quarantine reaches, and the Quarantine's own status.

A Quarantine names a dataset digest or a training-image digest. It reaches every ModelVersion
whose provenance records that digest (``spec.provenance.dataset.digest``; the digest an image
reference is pinned by in ``spec.provenance.image``), and every version trained from a reached
one (``spec.provenance.parentVersion``, within its Model), however many generations down.
Provenance is part of an immutable spec, so the answer only changes when Quarantines or
versions come and go. What the Model does about it is in ``core.model``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from modelops import api
from modelops.core import conditions, labels
from modelops.core.plan import ObjectRef, Plan, StatusPatch

QUARANTINED: Literal["Quarantined"] = "Quarantined"
"""The ModelVersion condition type (True while quarantined, False with reason Lifted after)."""
LIFTED = "Lifted"


@dataclass(frozen=True)
class Taint:
    """One Quarantine, as the decisions need it."""

    name: str
    what: Literal["dataset", "image"]
    digest: str
    reason: str
    declared_by: str | None = None

    @classmethod
    def of(cls, quarantine: api.Quarantine) -> Taint:
        spec = quarantine.spec
        what: Literal["dataset", "image"] = "dataset" if spec.dataset_digest else "image"
        digest = spec.dataset_digest or spec.image_digest
        assert digest is not None, "admission requires one of the two digests"
        declared_by = (quarantine.metadata.annotations or {}).get(labels.DECLARED_BY)
        return cls(quarantine.metadata.name or "", what, digest, spec.reason, declared_by)

    def describe(self) -> str:
        """``dataset sha256:0123456789ab… is quarantined (Quarantine q1: reason)``."""
        return (
            f"{self.what} {self.digest[:19]}… is quarantined (Quarantine {self.name}: "
            f"{self.reason})"
        )


@dataclass(frozen=True)
class Verdict:
    """Why one version is quarantined: the Quarantine, and how it reaches the version
    (``dataset``, ``image``, or ``parent <version>`` for a descendant)."""

    taint: Taint
    via: str

    def describe(self) -> str:
        if self.via.startswith("parent "):
            return f"trained from quarantined version {self.via[7:]}: {self.taint.describe()}"
        return f"trained on {self.taint.describe()}"

    @property
    def reason(self) -> str:
        """The condition reason: DatasetQuarantined, ImageQuarantined or ParentQuarantined."""
        if self.via.startswith("parent "):
            return "ParentQuarantined"
        return "DatasetQuarantined" if self.via == "dataset" else "ImageQuarantined"


def taints(quarantines: Iterable[api.Quarantine]) -> tuple[Taint, ...]:
    """The Quarantines in force, by name (so the first match is stable)."""
    return tuple(
        sorted(
            (Taint.of(q) for q in quarantines if not q.metadata.deletion_timestamp),
            key=lambda t: t.name,
        )
    )


def reached(versions: Iterable[api.ModelVersion], taints: Sequence[Taint]) -> dict[str, Verdict]:
    """The versions of one Model that ``taints`` reach, by ``spec.version``."""
    by_version = {mv.spec.version: mv for mv in versions}
    out: dict[str, Verdict] = {}
    if not taints:
        return out
    for version, mv in by_version.items():
        provenance = mv.spec.provenance
        if provenance is None:
            continue
        dataset = provenance.dataset.digest if provenance.dataset else None
        image = labels.image_digest(provenance.image) if provenance.image else None
        for taint in taints:
            if (taint.what == "dataset" and taint.digest == dataset) or (
                taint.what == "image" and taint.digest == image
            ):
                out[version] = Verdict(taint, taint.what)
                break
    # Descendants, however deep: a version trained from a reached one is reached.
    changed = True
    while changed:
        changed = False
        for version, mv in sorted(by_version.items()):
            parent = mv.spec.provenance.parent_version if mv.spec.provenance else None
            if version not in out and parent in out:
                assert parent is not None
                out[version] = Verdict(out[parent].taint, f"parent {parent}")
                changed = True
    return out


def retrain_refused(
    model: api.Model, versions: Iterable[api.ModelVersion], taints: Sequence[Taint]
) -> str | None:
    """Why the Model's ``spec.training`` must not be retrained from now, or None.

    Refused when the template pins a tainted dataset or image digest, or names (without a
    digest) the dataset location a quarantined version was trained from: that data has to be
    replaced, and the new data pinned by its digest, before a retrain may read it."""
    training = model.spec.training
    if training is None or not taints:
        return None
    image = labels.image_digest(training.image)
    for taint in taints:
        if taint.what == "dataset" and taint.digest == training.dataset.digest:
            return f"spec.training.dataset is the {taint.describe()}"
        if taint.what == "image" and taint.digest == image:
            return f"spec.training.image is the {taint.describe()}"
    if training.dataset.digest is None:
        by_version = {mv.spec.version: mv for mv in versions}
        for version, verdict in sorted(reached(by_version.values(), taints).items()):
            provenance = by_version[version].spec.provenance
            dataset = provenance.dataset if provenance else None
            if verdict.via == "dataset" and dataset and dataset.uri == training.dataset.uri:
                return (
                    f"spec.training.dataset {training.dataset.uri} held the "
                    f"{verdict.taint.describe()}; pin the replacement data by "
                    "spec.training.dataset.digest to retrain"
                )
    return None


def ever_quarantined(mv: api.ModelVersion) -> bool:
    """Whether the version carries the Quarantined condition (now, or lifted): such a version
    is never picked by automatic promotion again; a person pins or promotes it."""
    return conditions.find_condition(mv.status.conditions, QUARANTINED) is not None


def reconcile(
    quarantine: api.Quarantine,
    versions: Iterable[api.ModelVersion],
    *,
    now: datetime,
) -> Plan:
    """The Quarantine's status: who declared it and which versions it reaches, in every
    namespace watched. The versions themselves are marked by their Models' reconciles."""
    taint = Taint.of(quarantine)
    by_model: dict[tuple[str, str], list[api.ModelVersion]] = {}
    for mv in versions:
        by_model.setdefault((mv.metadata.namespace or "", mv.spec.model_ref.name), []).append(mv)
    affected = [
        api.AffectedVersion(namespace=ns, model=model, version=version, via=verdict.via)
        for (ns, model), mvs in sorted(by_model.items())
        for version, verdict in sorted(reached(mvs, (taint,)).items())
    ]
    gen = quarantine.metadata.generation or 0
    status = quarantine.status.model_copy(deep=True)
    status.declared_by = taint.declared_by
    status.affected_count = len(affected)
    status.affected = affected[: api.AFFECTED_MAX_ITEMS] or None
    status.conditions = conditions.set_condition(
        status.conditions,
        "Ready",
        api.ConditionStatus.TRUE,
        reason="Enforced",
        message=f"{len(affected)} ModelVersion(s) quarantined",
        observed_generation=gen,
        now=now,
    )
    status.observed_generation = gen
    ref = ObjectRef(quarantine.api_version, quarantine.kind, "", quarantine.metadata.name or "")
    return Plan(status=(StatusPatch(ref, status.to_dict()),))
