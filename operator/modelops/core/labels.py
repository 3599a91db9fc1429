"""Label and annotation keys the operator puts on the objects it creates (``modelops.dev/…``)."""

from typing import Final

DOMAIN: Final = "modelops.dev"
MODEL: Final = f"{DOMAIN}/model"
"""On every child: the Model it belongs to."""
VERSION: Final = f"{DOMAIN}/version"
"""On serving children and ModelVersions: the version (``spec.version``) they serve or record."""
TRAININGRUN: Final = f"{DOMAIN}/trainingrun"
"""On a training Job and its pods, and on the ModelVersion it registered."""
ROLE: Final = f"{DOMAIN}/role"
"""On serving Deployments: ``production``, ``canary`` or ``candidate`` (a replacement rolling
out without canary settings). Not on their pods, so a promotion does not restart them."""
RETIRED: Final = f"{DOMAIN}/retired"
"""On a retired ModelVersion, so ``kubectl get mv -l modelops.dev/retired=true`` finds them."""
APPROVED: Final = f"{DOMAIN}/approved"
"""Set to ``"true"`` on a ModelVersion by a person allowed to approve promotions."""
QUARANTINED: Final = f"{DOMAIN}/quarantined"
"""On a ModelVersion a Quarantine reaches (``"true"``), so ``kubectl get mv -A -l
modelops.dev/quarantined=true`` lists them and admission refuses to pin them; removed when
the Quarantine is lifted."""
DRIFTPOLICY: Final = f"{DOMAIN}/driftpolicy"
"""On a TrainingRun created by a DriftPolicy's retrain action."""

MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "modelops"}

# -- lineage: "which versions were trained on X?" as a label selector ------------------------
DATASET_DIGEST: Final = f"{DOMAIN}/dataset-digest"
"""On a registered ModelVersion: the digest of its training data as :func:`digest_value`."""
IMAGE_DIGEST: Final = f"{DOMAIN}/image-digest"
"""On a registered ModelVersion trained by an image pinned by digest (``repo@sha256:…``): that
digest as :func:`digest_value`. An image named by tag only has no digest to record."""
PARENT_VERSION: Final = f"{DOMAIN}/parent-version"
"""On a registered ModelVersion: the version that served production when it was trained."""

# -- approvals: stamped by the API server (manifests/admission/approval_record.yaml) -----------
APPROVED_BY: Final = f"{DOMAIN}/approved-by"
"""Annotation: the user whose request set :data:`APPROVED` to ``"true"``."""
APPROVED_AT: Final = f"{DOMAIN}/approved-at"
"""Annotation: when that request was made (RFC 3339, UTC)."""

# -- quarantine: stamped by the API server (manifests/admission/quarantine_record_*.yaml) -------
DECLARED_BY: Final = f"{DOMAIN}/declared-by"
"""Annotation on a Quarantine: the user whose request created it."""

DIGEST_HEX_CHARS: Final = 56
"""Hex digits of a sha256 digest kept in a label value: ``sha256-`` and 56 digits fill the 63
characters a label value may have (224 bits, far beyond any accidental collision)."""


def digest_value(digest: str) -> str:
    """The label value for a ``sha256:<64 hex>`` digest: ``sha256-<first 56 hex digits>``
    (a label value may not contain ``:`` and has at most 63 characters)."""
    algorithm, _, hex_digits = digest.partition(":")
    return f"{algorithm}-{hex_digits[:DIGEST_HEX_CHARS]}"


def image_digest(image: str) -> str | None:
    """The ``sha256:…`` digest an image reference is pinned by, or None for a tag only."""
    _, at, digest = image.rpartition("@")
    return digest if at and digest.startswith("sha256:") and len(digest) == 71 else None
