"""A volume provisioner for the local control plane: every claim binds to a host directory.

Pods that mount a PersistentVolumeClaim cannot be scheduled until the claim is bound, and a
control plane without a cloud has nothing that binds it. For each pending claim of the
``local`` StorageClass (the default one the harness installs) this creates a ``hostPath``
PersistentVolume under ``--root``, pre-bound to the claim; the controller-manager's volume
binder then completes the binding as it would on any cluster. Each real node's kubelet mounts
that directory into the pods (the nodes share the host's filesystem), so what a training pod
writes is what a serving pod reads, on either node.

Volumes are kept when claims go away (reclaim policy Retain): nothing a test wrote is deleted
behind its back, and the state directory is removed as a whole when the cluster goes down.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

PROVISIONER = "harness.modelops.dev/local"
STORAGE_CLASS = "local"
log = logging.getLogger("harness.provisioner")


def volume_name(namespace: str, claim: str, uid: str) -> str:
    """Deterministic PV name for a claim (PV names are cluster-wide, so include the namespace)."""
    digest = hashlib.sha256(f"{namespace}/{claim}/{uid}".encode()).hexdigest()[:10]
    return f"pv-{namespace[:20]}-{claim[:20]}-{digest}".lower()


def claim_dir(root: Path, namespace: str, claim: str) -> Path:
    """The host directory that backs a claim."""
    return root / namespace / claim


def volume_for(claim: Any, root: Path) -> dict[str, Any]:
    """The PersistentVolume manifest that satisfies ``claim`` (a V1PersistentVolumeClaim)."""
    meta, spec = claim.metadata, claim.spec
    request = (spec.resources.requests or {}).get("storage", "1Gi") if spec.resources else "1Gi"
    path = claim_dir(root, meta.namespace, meta.name)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(meta.namespace, meta.name, meta.uid),
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            "labels": {"harness.modelops.dev/claim-namespace": meta.namespace},
        },
        "spec": {
            "capacity": {"storage": request},
            "accessModes": list(spec.access_modes or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.storage_class_name or STORAGE_CLASS,
            "volumeMode": spec.volume_mode or "Filesystem",
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta.namespace,
                "name": meta.name,
                "uid": meta.uid,
            },
        },
    }


def wants_volume(claim: Any) -> bool:
    """Whether this provisioner should create a volume for the claim."""
    if claim.spec.volume_name or claim.metadata.deletion_timestamp:
        return False
    sc = claim.spec.storage_class_name
    return sc in (None, STORAGE_CLASS)


def provision(core: client.CoreV1Api, claim: Any, root: Path) -> None:
    """Create the claim's volume; an existing one (a restart, a resync) is success."""
    pv = volume_for(claim, root)
    path = Path(pv["spec"]["hostPath"]["path"])
    path.mkdir(parents=True, exist_ok=True)
    # Writable by whatever user a pod runs as (the images run as 65532; fsGroup does not apply
    # to hostPath volumes), like the local-path provisioners of small clusters.
    path.chmod(0o777)
    try:
        # The client sends dicts as they are; its type hints only name the model class.
        core.create_persistent_volume(pv)  # type: ignore[arg-type]
    except ApiException as e:
        if e.status != 409:
            raise
        return
    log.info(
        "Provisioned PersistentVolume %s for claim %s/%s at %s",
        pv["metadata"]["name"],
        claim.metadata.namespace,
        claim.metadata.name,
        pv["spec"]["hostPath"]["path"],
    )


def run(kubeconfig: str, root: Path, stop: threading.Event) -> None:
    """Watch claims until ``stop`` is set; each watch restart re-lists, so nothing is missed."""
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    while not stop.is_set():
        w = watch.Watch()
        try:
            for event in w.stream(
                core.list_persistent_volume_claim_for_all_namespaces, timeout_seconds=30
            ):
                if stop.is_set():
                    break
                claim = event["object"]
                if event["type"] in ("ADDED", "MODIFIED") and wants_volume(claim):
                    provision(core, claim, root)
        except Exception:
            log.exception("Watching PersistentVolumeClaims failed; retrying")
            stop.wait(1)
        finally:
            w.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.provisioner --kubeconfig PATH --root DIR``."""
    parser = argparse.ArgumentParser(prog="python -m harness.provisioner")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def _exit(*_: object) -> None:
        # Raising interrupts the blocking watch read at once; the stop flag ends the loop.
        stop.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    args.root.mkdir(parents=True, exist_ok=True)
    run(args.kubeconfig, args.root.resolve(), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
