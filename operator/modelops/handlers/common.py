"""Steps every reconciler shares."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from modelops import api
from modelops.core import announce
from modelops.core.plan import EventSpec, Obj, ObjectRef, Plan
from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key
from modelops.k8s.executor import execute

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
        raw["metadata"].get("namespace", ""),
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


@dataclass
class _Announced:
    """This process's memory of one object's announcements: sent (so a reconcile while one is
    in flight does not send it twice) and settled (so the next reconcile drops it from the
    status)."""

    sent: set[str] = field(default_factory=set)
    settled: set[str] = field(default_factory=set)


_ANNOUNCED = "announcements"


def act(
    deps: Deps,
    key: Key,
    raw: Obj,
    plan: Plan,
    *,
    live: Mapping[ObjectRef, Obj],
    now: datetime,
    sinks: Sequence[str] = (),
    headers: Mapping[str, Mapping[str, str]] | None = None,
) -> int:
    """Carry out ``plan`` for the object ``raw`` (``live``: what the reconcile observed), with
    its Events and CloudEvents delivered at least once (see ``core.announce``); returns the
    writes made.

    The intent is written with the status, then sent; what settles is dropped from the status
    by the next reconcile, which a settled announcement queues. Only this process's memory
    says what was sent already: after a restart, what is still pending is sent again, under
    the same id.
    """
    memory = deps.state.setdefault(_ANNOUNCED, {})
    assert isinstance(memory, dict)
    mine: _Announced = memory.setdefault(key, _Announced())
    plan, pending = announce.record(
        plan,
        ObjectRef.of(raw),
        raw.get("status") or {},
        uid=raw["metadata"].get("uid") or "",
        settled=mine.settled,
        now=now,
    )
    writes = execute(deps.kube, plan, regarding=raw, live=live, now=now)
    ids = {e.id for e in pending.events} | {n.id for n in pending.notifications}
    mine.sent &= ids  # forget what no longer needs remembering
    mine.settled &= ids
    settled_now = False
    for event in pending.events:
        assert event.id is not None
        if event.id in mine.sent:
            continue
        mine.sent.add(event.id)
        if deps.kube.post_event(raw, event, now):
            writes += 1
            mine.settled.add(event.id)
            settled_now = True
        else:
            mine.sent.discard(event.id)  # try again next time
    for notification in pending.notifications:
        nid = notification.id
        assert nid is not None
        if nid in mine.sent:
            continue
        mine.sent.add(nid)

        def settle(nid: str = nid) -> None:  # from the delivery thread
            mine.settled.add(nid)
            deps.queue.add_threadsafe(key)

        deps.notifier.send(notification, sinks, headers or {}, on_settled=settle)
    if settled_now:
        deps.queue.add_threadsafe(key)  # the next reconcile drops them from the status
    return writes


def forget_announcements(deps: Deps, key: Key) -> None:
    """Drop what this process remembers of a deleted object's announcements."""
    memory = deps.state.get(_ANNOUNCED)
    if isinstance(memory, dict):
        memory.pop(key, None)
