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
DRIFTPOLICY: Final = f"{DOMAIN}/driftpolicy"
"""On a TrainingRun created by a DriftPolicy's retrain action."""

MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "modelops"}
