"""Model wiring: read versions and serving objects, decide (``core.model``), write, notify."""

from __future__ import annotations

from modelops import api
from modelops.core import model as model_core
from modelops.core.plan import EventSpec
from modelops.handlers.common import act, forget_announcements, load
from modelops.handlers.deps import Deps
from modelops.handlers.reconcile import GONE, Gone, reconciler
from modelops.handlers.workqueue import Key
from modelops.k8s.client import NameTakenError
from modelops.k8s.observe import observe_model


@reconciler("Model")
def reconcile_model(deps: Deps, key: Key) -> float | Gone | None:
    """Reconcile one Model; returns when to look again while a rollout is under way."""
    loaded = load(deps, key, api.Model)
    if loaded is None:
        deps.metrics.serving_info.forget(key.namespace, key.name)
        deps.metrics.quarantined.set(key.namespace, key.name, 0)
        forget_announcements(deps, key)
        return GONE
    model, raw = loaded
    observed, live = observe_model(deps.kube, model, raw)
    now = deps.clock()
    settings = deps.settings
    retire_job = model_core.RetireJob(
        settings.retire_job_resources,
        settings.retire_job_deadline_seconds,
        settings.retire_job_image,
    )
    plan = model_core.reconcile(
        model, observed, now=now, retire_job=retire_job, runtimes=settings.runtimes
    )
    sinks = model.spec.notifications.sinks if model.spec.notifications else []
    try:
        writes = act(
            deps,
            key,
            raw,
            plan,
            live=live,
            now=now,
            sinks=[s.url for s in sinks],
            headers={s.url: dict(s.headers or {}) for s in sinks},
        )
    except NameTakenError as e:
        # Said on the Model (aggregated, so a retry only counts up); the error backoff retries.
        deps.kube.post_event(raw, EventSpec("Warning", "NameTaken", str(e)), now)
        raise
    deps.metrics.writes.labels(key.kind).inc(writes)
    status = next(p.status for p in plan.status if p.target.kind == "Model")
    deps.metrics.serving_info.set(
        key.namespace, key.name, status.get("productionVersion"), status.get("canaryVersion")
    )
    deps.metrics.quarantined.set(
        key.namespace, key.name, len(status.get("quarantinedVersions") or ())
    )
    return plan.requeue_after
