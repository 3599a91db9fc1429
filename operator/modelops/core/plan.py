"""What a reconcile decided, as data: the pure ``core`` returns a Plan, ``k8s`` carries it out.

Keeping the decision separate from the I/O lets every decision be tested table-style without a
cluster, and gives one place (the executor) that guarantees a reconcile with nothing to do
writes nothing: children already as desired are not applied again, an unchanged status is not
patched, and events are only planned on state changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Obj = dict[str, Any]


@dataclass(frozen=True)
class ObjectRef:
    """Identifies one namespaced object."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference of a wire-form object."""
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"])

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class EventSpec:
    """A Kubernetes Event to record about the reconciled object."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    id: str | None = None
    """The announcement this Event delivers (see ``core.announce``); a repeat of the same id
    adds nothing."""


@dataclass(frozen=True)
class StatusPatch:
    """The whole desired status of ``target`` (the reconciled object itself or another object
    the reconcile owns the status of, e.g. a ModelVersion's phase). Fields the live status has
    and this one lacks are removed: the operator owns status entirely."""

    target: ObjectRef
    status: Obj


@dataclass(frozen=True)
class MetadataPatch:
    """Labels to set (or, with None, remove) on ``target`` — e.g. the retired label of a
    ModelVersion, which admission policies select on."""

    target: ObjectRef
    labels: dict[str, str | None]


@dataclass(frozen=True)
class Notification:
    """A change worth announcing to the Model's notification sinks (CloudEvents)."""

    type: str
    subject: str
    data: Obj
    id: str | None = None
    """The CloudEvent id (stable across retries and restarts; see ``core.announce``)."""


@dataclass(frozen=True)
class Plan:
    """Everything one reconcile wants done, in the order the executor does it.

    - ``apply``: children to server-side apply (skipped when the live object already holds
      every field the manifest sets);
    - ``create``: write-once records (ModelVersions) created only if absent;
    - ``delete``: children to remove;
    - ``status``: status patches, skipped when the live status already matches;
    - ``metadata``: label patches, skipped when the live labels already match;
    - ``events``: recorded after the writes succeed;
    - ``notifications``: handed to the notifier after the writes succeed (never blocking);
    - ``requeue_after``: look again after this many seconds even if nothing changes
      (a canary's minimum ready time, a drift window, a cooldown).
    """

    apply: tuple[Obj, ...] = ()
    create: tuple[Obj, ...] = ()
    delete: tuple[ObjectRef, ...] = ()
    status: tuple[StatusPatch, ...] = ()
    metadata: tuple[MetadataPatch, ...] = ()
    events: tuple[EventSpec, ...] = ()
    notifications: tuple[Notification, ...] = ()
    requeue_after: float | None = None


def contains(live: Any, desired: Any, *, _parent: str = "") -> bool:
    """Whether ``live`` already holds everything ``desired`` sets.

    Maps compare key by key (extra keys in ``live`` — defaults the API server filled in,
    fields other managers own — do not count); lists compare element-wise and must have the
    same length, because server-side apply replaces the lists we set or merges them by key
    into the same length. Resource quantities (``resources.requests`` and ``.limits``)
    compare by value: the API server stores ``cpu: "0.5"`` as ``500m``, and a textual compare
    would re-apply the object on every reconcile.
    """
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return False
        if _parent == "resources":
            return all(
                _same_quantities(live.get(k), v) if k in _QUANTITY_MAPS else _has(live, k, v)
                for k, v in desired.items()
            )
        return all(_has(live, k, v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(contains(a, b) for a, b in zip(live, desired, strict=True))
        )
    return bool(live == desired)


def _has(live: Mapping[str, Any], key: str, value: Any) -> bool:
    # A None in ``desired`` asks for the key to be absent (merge-patch deletion).
    if value is None:
        return live.get(key) is None
    return key in live and contains(live[key], value, _parent=key)


_QUANTITY_MAPS = frozenset({"requests", "limits"})
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
)
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{f"{p}i": Decimal(1024) ** (i + 1) for i, p in enumerate("KMGTPE")},
}


def quantity(value: Any) -> Decimal | None:
    """The value of a Kubernetes resource quantity ('500m', '0.5', '1Gi', '1e3'), or None
    when ``value`` is not one."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return None
    number, suffix = match.group(1), match.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * Decimal(10) ** int(suffix[1:])
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, KeyError):
        return None


def _same_quantities(live: Any, desired: Mapping[str, Any]) -> bool:
    if not isinstance(live, Mapping):
        return False
    for name, value in desired.items():
        if value is None:
            if live.get(name) is not None:
                return False
            continue
        a, b = quantity(live.get(name)), quantity(value)
        if a is None or b is None:
            if live.get(name) != value:
                return False
        elif a != b:
            return False
    return True


def merge_patch(live: Any, desired: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``live`` into ``desired``.

    Keys only ``live`` has become None (deleted); maps present on both sides are diffed
    recursively; anything else is replaced by the desired value.
    """
    if not isinstance(desired, Mapping) or not isinstance(live, Mapping):
        return desired
    patch: dict[str, Any] = {k: None for k in live if k not in desired}
    for k, v in desired.items():
        patch[k] = merge_patch(live.get(k), v) if k in live else v
    return patch
