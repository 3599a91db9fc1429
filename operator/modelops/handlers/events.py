"""Watch events → work-queue keys. Events on children reconcile the object that owns them."""

from __future__ import annotations

from typing import Any

import kopf

from modelops.api import GROUP, VERSION
from modelops.core.labels import MODEL, TRAININGRUN
from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key

_GENERATIONS = "generations"


def _enqueue(memo: kopf.Memo, key: Key, event: kopf.RawEvent) -> None:
    """Queue the object's key. A new ``metadata.generation`` (a spec edit, perhaps the fix
    for what made its reconcile fail) is urgent and skips an error backoff; status and
    metadata changes, the operator's own writes among them, are not."""
    deps: Deps = memo.deps
    seen = deps.state.setdefault(_GENERATIONS, {})
    assert isinstance(seen, dict)
    if event["type"] == "DELETED":
        seen.pop(key, None)
        deps.queue.forget(key)
        deps.queue.add(key)
        return
    generation = event["object"].get("metadata", {}).get("generation")
    urgent = seen.get(key) != generation
    seen[key] = generation
    deps.queue.add(key, urgent=urgent)


@kopf.on.event(GROUP, VERSION, "trainingruns")
async def trainingrun_changed(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A TrainingRun was created, changed or deleted."""
    _enqueue(memo, Key("TrainingRun", namespace or "", name), event)


@kopf.on.event("batch", "v1", "jobs", labels={TRAININGRUN: kopf.PRESENT})
async def training_job_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A training Job moved: its TrainingRun's status follows."""
    memo.deps.queue.add(Key("TrainingRun", namespace or "", labels[TRAININGRUN]))


@kopf.on.event(GROUP, VERSION, "models")
async def model_changed(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A Model was created, changed or deleted."""
    _enqueue(memo, Key("Model", namespace or "", name), event)


@kopf.on.event(GROUP, VERSION, "modelversions")
async def modelversion_changed(
    spec: kopf.Spec, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A version appeared, changed (labels: approval) or went: its Model decides again."""
    model = (spec.get("modelRef") or {}).get("name")
    if model:
        memo.deps.queue.add(Key("Model", namespace or "", model))


@kopf.on.event("apps", "v1", "deployments", labels={MODEL: kopf.PRESENT})
async def serving_deployment_changed(
    namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A serving Deployment's rollout moved: its Model's rollout follows."""
    memo.deps.queue.add(Key("Model", namespace or "", labels[MODEL]))


@kopf.on.event(GROUP, VERSION, "driftpolicies")
async def driftpolicy_changed(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A DriftPolicy was created, changed or deleted."""
    _enqueue(memo, Key("DriftPolicy", namespace or "", name), event)
