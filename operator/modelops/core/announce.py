"""At-least-once announcements: Events and CloudEvents survive a crash between a status write
and the sends that follow it.

A reconcile that decides something worth announcing records the intent in the status write that
records the decision (``status.announcements``: one entry per Event or CloudEvent, with a stable
id). The announcements are sent after that write; each is dropped from the status only once it
is *settled* — the Event exists, the CloudEvent was delivered or gave up after its retries. An
operator killed in between finds the entries on its next reconcile and sends them again under
the same id: Event objects carry the id (so a repeat adds nothing) and CloudEvents use it as
their ``id`` (so sinks can de-duplicate). Pure: what has settled is an input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from modelops.core.plan import EventSpec, Notification, Obj, ObjectRef, Plan, StatusPatch

FIELD: Final = "announcements"
MAX_PENDING: Final = 50
"""Oldest pending announcements beyond this are given up (a sink down for a long time must not
grow the status without bound)."""


@dataclass(frozen=True)
class Pending:
    """What a reconcile should (still) send: the Events and CloudEvents whose intent is in the
    status and that have not settled, each with its stable id."""

    events: tuple[EventSpec, ...]
    notifications: tuple[Notification, ...]


def record(
    plan: Plan,
    target: ObjectRef,
    live_status: Mapping[str, Any],
    *,
    uid: str,
    settled: Collection[str],
    now: datetime,
) -> tuple[Plan, Pending]:
    """Move ``plan``'s events and notifications into ``target``'s status as announcements.

    Returns the plan to execute (its status carries the announcements still unsettled; it has
    no events or notifications of its own any more) and what to send once it is written.
    """
    patch = next((p for p in plan.status if p.target == target), None)
    base = patch.status if patch is not None else dict(live_status)
    kept = [a for a in live_status.get(FIELD) or () if a.get("id") not in settled]
    stamp = now.isoformat()
    fresh: list[Obj] = []
    for event in plan.events:
        fresh.append(
            {
                "id": _id(uid, stamp, "Event", event.type, event.reason, event.message),
                "kind": "Event",
                "type": event.type,
                "reason": event.reason,
                "message": event.message[:1024],
            }
        )
    for n in plan.notifications:
        data = json.dumps(n.data, sort_keys=True, default=str)
        fresh.append(
            {
                "id": _id(uid, stamp, "CloudEvent", n.type, n.subject, data),
                "kind": "CloudEvent",
                "type": n.type,
                "subject": n.subject,
                "data": data,
            }
        )
    known = {a["id"] for a in kept}
    pending = [*kept, *(a for a in fresh if a["id"] not in known)][-MAX_PENDING:]
    status = {k: v for k, v in base.items() if k != FIELD}
    if pending:
        status[FIELD] = pending
    patches = tuple(p for p in plan.status if p.target != target)
    if patch is not None or status != dict(live_status):
        patches = (StatusPatch(target, status), *patches)
    executed = replace(plan, status=patches, events=(), notifications=())
    return executed, _pending(pending)


def _pending(entries: list[Obj]) -> Pending:
    events = tuple(
        EventSpec(a["type"], a["reason"], a["message"], id=a["id"])
        for a in entries
        if a["kind"] == "Event"
    )
    notifications = tuple(
        Notification(a["type"], a["subject"], json.loads(a["data"]), id=a["id"])
        for a in entries
        if a["kind"] == "CloudEvent"
    )
    return Pending(events, notifications)


def _id(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]
