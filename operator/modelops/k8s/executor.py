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
    do makes no request that changes anything. Events about ``regarding`` are recorded last,
    once the writes they describe have succeeded.
    """
    writes = 0
    owner = str(ObjectRef.of(regarding))  # "TrainingRun ml/iris-7", for the log lines
    for manifest in plan.apply:
        ref = ObjectRef.of(manifest)
        current = live.get(ref)
        if current is not None and contains(current, manifest):
            continue
        kube.apply(manifest)
        writes += 1
        verb = "Updated" if current is not None else "Created"
        log.info("%s %s %s for %s", verb, ref.kind, ref.name, owner)
    for manifest in plan.create:
        ref = ObjectRef.of(manifest)
        if ref in live:
            continue
        _, created = kube.create(manifest)
        writes += int(created)
        if created:
            log.info("Created %s %s for %s", ref.kind, ref.name, owner)
    for ref in plan.delete:
        if kube.delete(ref):
            writes += 1
            log.info("Deleted %s %s for %s", ref.kind, ref.name, owner)
    for patch in plan.status:
        current = live.get(patch.target)
        live_status = (current or {}).get("status") or {}
        if (
            current is not None
            and contains(live_status, patch.status)
            and not (live_status.keys() - patch.status.keys())
        ):
            continue
        kube.patch_status(patch.target, merge_patch(live_status, patch.status))
        writes += 1
    for meta in plan.metadata:
        current = live.get(meta.target)
        if current is not None and contains(current["metadata"].get("labels") or {}, meta.labels):
            continue
        kube.patch_metadata(meta.target, labels=meta.labels)
        writes += 1
    for event in plan.events:
        kube.post_event(regarding, event, now)
        writes += 1
    return writes
