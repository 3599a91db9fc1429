"""Watch events → work-queue keys. Events on children reconcile their owner."""

from __future__ import annotations

from typing import Any

import kopf

from modelops.api import GROUP, VERSION
from modelops.core.labels import TRAININGRUN
from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key


def _enqueue(memo: kopf.Memo, key: Key, event: kopf.RawEvent) -> None:
    deps: Deps = memo.deps
    if event["type"] == "DELETED":
        deps.queue.forget(key)
    deps.queue.add(key)


@kopf.on.event(GROUP, VERSION, "trainingruns")
async def trainingrun_changed(
    event: kopf.RawEvent, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A TrainingRun was created, changed or deleted."""
    _enqueue(memo, Key("TrainingRun", namespace or "", name), event)


@kopf.on.event("batch", "v1", "jobs", labels={TRAININGRUN: kopf.PRESENT})
async def training_job_changed(
    event: kopf.RawEvent, namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any
) -> None:
    """A training Job moved: its TrainingRun's status follows."""
    memo.deps.queue.add(Key("TrainingRun", namespace or "", labels[TRAININGRUN]))
