"""Pieces every child object shares: owner references, labels, restricted pod security, storage.

Each child kind is assembled in the module that decides about it (``trainingrun.build_job``,
``model.build_deployment`` …) from these pieces, so that security and labelling are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelops import api
from modelops.core import labels

Obj = dict[str, Any]

# Restricted Pod Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
# for every pod modelops creates. 65532 is the conventional "nonroot" uid of distroless images.
NONROOT_UID = 65532
POD_SECURITY_CONTEXT: Obj = {
    "runAsNonRoot": True,
    "runAsUser": NONROOT_UID,
    "runAsGroup": NONROOT_UID,
    "fsGroup": NONROOT_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: Obj = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}
SCRATCH_VOLUME: Obj = {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
SCRATCH_MOUNT: Obj = {"name": "scratch", "mountPath": "/tmp"}


def owner_reference(owner: Any, *, controller: bool = True) -> Obj:
    """An owner reference to an API object (a parsed modelops kind): garbage collection removes
    the child with its owner, and ``controller`` marks the one owner that manages it."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": controller,
        "blockOwnerDeletion": controller,
    }


def child_labels(model: str, **extra: str) -> dict[str, str]:
    """The labels of every object created for ``model``; ``extra`` adds keys under our domain."""
    out = {"app.kubernetes.io/name": "modelops", labels.MODEL: model, **labels.MANAGED_BY}
    out.update({f"{labels.DOMAIN}/{k}": v for k, v in extra.items()})
    return out


@dataclass(frozen=True)
class StorageLocation:
    """Where a ``pvc://claim/path`` URI lives: a claim and a path inside it."""

    claim: str
    path: str

    def uri(self) -> str:
        """The ``pvc://`` URI of this location."""
        return f"pvc://{self.claim}/{self.path}".rstrip("/")


def parse_pvc_uri(uri: str) -> StorageLocation | None:
    """Split a ``pvc://<claim>/<path>`` URI; None for any other scheme."""
    if not uri.startswith("pvc://"):
        return None
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    return StorageLocation(claim, path.strip("/"))


def pvc_volume(name: str, claim: str, *, read_only: bool) -> Obj:
    """A pod volume for a PersistentVolumeClaim."""
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}


S3_CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
"""The keys of a ``spec.storage.s3.credentialsSecret``, passed under the same names."""


def storage_env(storage: api.Storage | None) -> list[Obj]:
    """The environment ``modelops.storage`` reads in a pod that moves data to or from S3. The
    credentials are ``secretKeyRef``s: the kubelet reads the Secret, the operator never does."""
    if storage is None:
        return []
    s3 = storage.s3
    env: list[Obj] = []
    if s3.endpoint:
        env.append({"name": "MODELOPS_S3_ENDPOINT", "value": s3.endpoint})
    env.append({"name": "MODELOPS_S3_REGION", "value": s3.region})
    env.append({"name": "MODELOPS_S3_PATH_STYLE", "value": "true" if s3.path_style else "false"})
    if s3.credentials_secret:
        env.extend(
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": s3.credentials_secret, "key": key}},
            }
            for key in S3_CREDENTIAL_KEYS
        )
    return env


def is_s3_uri(uri: str) -> bool:
    """Whether ``uri`` names an object or prefix in S3."""
    return uri.startswith("s3://")


def container_statuses(pod: Obj) -> list[Obj]:
    """The statuses of a pod's init containers, then of its containers."""
    status = pod.get("status", {})
    return [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]
