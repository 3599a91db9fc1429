"""Quarantine wiring: the declaration's status (who declared it, which versions it reaches).

The versions themselves are marked, and taken out of production, by their Models' reconciles,
which every Quarantine event queues (``handlers/events.py``)."""

from __future__ import annotations

from modelops import api
from modelops.core import quarantine
from modelops.core.plan import ObjectRef
from modelops.handlers.common import act, load
from modelops.handlers.deps import Deps
from modelops.handlers.reconcile import GONE, Gone, reconciler
from modelops.handlers.workqueue import Key
from modelops.k8s.observe import model_versions


@reconciler("Quarantine")
def reconcile_quarantine(deps: Deps, key: Key) -> float | Gone | None:
    """Record which versions, in every namespace watched, the Quarantine reaches."""
    loaded = load(deps, key, api.Quarantine)
    if loaded is None:
        return GONE
    declared, raw = loaded
    now = deps.clock()
    plan = quarantine.reconcile(declared, model_versions(deps.kube, None, None), now=now)
    writes = act(deps, key, raw, plan, live={ObjectRef.of(raw): raw}, now=now)
    deps.metrics.writes.labels(key.kind).inc(writes)
    return None
