"""Carry out a Plan: the one place where decisions become API writes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from modelops.core.plan import Obj, ObjectRef, Plan, contains, merge_patch
from modelops.k8s.client import Kube

log = logging.getLogger(__name__)


def execute(
    kube: Kube,
    plan: Plan,
    *,
    regarding: Obj,
    live: Mapping[ObjectRef, Obj],
    now: datetime,
) -> int:
    """Write what ``plan`` asks for and return how many writes were made.

    ``live`` holds the objects the reconcile observed, by reference; a child or status that
    already matches its live counterpart is not written again, so a reconcile with nothing to
    do makes no request that changes anything.

    Status and label writes carry the ``resourceVersion`` they were computed from: if anyone
    wrote the object since it was read, :class:`~modelops.k8s.client.ConflictError` propagates and
    the reconcile starts over from a fresh read (nothing stale overwrites anything newer).

    Order matters for crashes between two writes: children are applied and records created
    first, then status records what was decided, and only then are children deleted — so an
    interruption never removes what serves before the status says it is replaced (a promotion
    whose status write failed is simply redone). Events about ``regarding`` come last, once
    the writes they describe have succeeded.
    """
    writes = 0
    current = dict(live)
    owner = str(ObjectRef.of(regarding))  # "TrainingRun ml/iris-7", for the log lines
    for manifest in plan.apply:
        ref = ObjectRef.of(manifest)
        existing = current.get(ref)
        if existing is not None and contains(existing, manifest):
            continue
        kube.apply(manifest, new=existing is None)
        writes += 1
        verb = "Updated" if existing is not None else "Created"
        log.info("%s %s %s for %s", verb, ref.kind, ref.name, owner)
    for manifest in plan.create:
        ref = ObjectRef.of(manifest)
        if ref in current:
            continue
        _, created = kube.create(manifest)
        writes += int(created)
        if created:
            log.info("Created %s %s for %s", ref.kind, ref.name, owner)
    for patch in plan.status:
        existing = current.get(patch.target)
        live_status = (existing or {}).get("status") or {}
        if (
            existing is not None
            and contains(live_status, patch.status)
            and not (live_status.keys() - patch.status.keys())
        ):
            continue
        current[patch.target] = kube.patch_status(
            patch.target,
            merge_patch(live_status, patch.status),
            resource_version=_resource_version(existing),
        )
        writes += 1
    for meta in plan.metadata:
        existing = current.get(meta.target)
        if existing is not None and contains(existing["metadata"].get("labels") or {}, meta.labels):
            continue
        current[meta.target] = kube.patch_metadata(
            meta.target, labels=meta.labels, resource_version=_resource_version(existing)
        )
        writes += 1
    for ref in plan.delete:
        if kube.delete(ref):
            writes += 1
            log.info("Deleted %s %s for %s", ref.kind, ref.name, owner)
    for event in plan.events:
        kube.post_event(regarding, event, now)
        writes += 1
    return writes


def _resource_version(obj: Obj | None) -> str | None:
    return None if obj is None else obj["metadata"].get("resourceVersion")
