"""Steps every reconciler shares."""

from __future__ import annotations

import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from modelops import api
from modelops.core.plan import EventSpec, Obj, ObjectRef
from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def load(deps: Deps, key: Key, model: type[M]) -> tuple[M, Obj] | None:
    """Read and parse the object behind ``key``.

    None when it is gone or being deleted (children go with it by garbage collection), or
    when it does not parse: admission should have refused such an object, so this is reported
    once as a Warning event and an ``InvalidSpec`` condition, and not retried until the object
    changes — an invalid object must never make the operator crash or loop.
    """
    raw = deps.kube.get(api.API_VERSION, key.kind, key.namespace, key.name)
    if raw is None or raw["metadata"].get("deletionTimestamp"):
        return None
    try:
        return model.model_validate(raw), raw
    except ValidationError as e:
        _report_invalid(deps, raw, e)
        return None


def _report_invalid(deps: Deps, raw: Obj, error: ValidationError) -> None:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    message = f"{field}: {first['msg']}"[:1024]
    gen = raw["metadata"].get("generation", 0)
    status = raw.get("status") or {}
    if status.get("observedGeneration") == gen and any(
        c.get("reason") == "InvalidSpec" and c.get("message") == message
        for c in status.get("conditions", [])
    ):
        return  # already reported for this generation
    log.warning(
        "Ignoring invalid %s %s/%s: %s",
        raw["kind"],
        raw["metadata"]["namespace"],
        raw["metadata"]["name"],
        message,
    )
    summary = "Succeeded" if raw["kind"] == "TrainingRun" else "Ready"
    now = deps.clock().isoformat().replace("+00:00", "Z")
    condition = {
        "type": summary,
        "status": "False",
        "reason": "InvalidSpec",
        "message": message,
        "observedGeneration": gen,
        "lastTransitionTime": now,
    }
    others = [c for c in status.get("conditions", []) if c.get("type") != summary]
    deps.kube.patch_status(
        ObjectRef.of(raw),
        {"observedGeneration": gen, "conditions": [*others, condition]},
        resource_version=raw["metadata"]["resourceVersion"],
    )
    deps.kube.post_event(raw, EventSpec("Warning", "InvalidSpec", message), deps.clock())
