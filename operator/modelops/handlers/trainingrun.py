"""TrainingRun wiring: read, decide (``core.trainingrun``), write."""

from __future__ import annotations

from dataclasses import replace

from modelops import api
from modelops.core import trainingrun
from modelops.handlers.common import act, forget_announcements, load
from modelops.handlers.deps import Deps
from modelops.handlers.reconcile import GONE, Gone, reconciler
from modelops.handlers.workqueue import Key
from modelops.k8s.client import NameTakenError
from modelops.k8s.observe import observe_trainingrun


@reconciler("TrainingRun")
def reconcile_trainingrun(deps: Deps, key: Key) -> float | Gone | None:
    """Reconcile one TrainingRun; returns when to look again, if it must."""
    loaded = load(deps, key, api.TrainingRun)
    if loaded is None:
        deps.metrics.forget_trainingrun(key.namespace, key.name)
        forget_announcements(deps, key)
        return GONE
    run, raw = loaded
    observed, live = observe_trainingrun(deps.kube, run, raw)
    now = deps.clock()
    plan = trainingrun.reconcile(run, observed, now=now)
    try:
        writes = act(deps, key, raw, plan, live=live, now=now)
    except NameTakenError:
        # The Job's name is held by an object the cache does not show (it lacks our label):
        # decide again knowing that, which reports it instead of retrying blindly.
        observed = replace(observed, job_name_taken=True)
        plan = trainingrun.reconcile(run, observed, now=now)
        writes = act(deps, key, raw, plan, live=live, now=now)
    deps.metrics.writes.labels(key.kind).inc(writes)
    phase = (
        next((p.status.get("phase") for p in plan.status if p.target.kind == key.kind), None)
        or run.status.phase
    )
    if phase:
        deps.metrics.set_trainingrun_phase(key.namespace, key.name, str(phase))
    return plan.requeue_after
