"""DriftPolicy wiring: collect (``k8s.scrape``), window and decide (``core.driftpolicy``),
write, export ``modelops_drift_*``; again every ``spec.interval``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

from modelops import api
from modelops.core import driftpolicy, quarantine
from modelops.core.plan import ObjectRef
from modelops.handlers.common import act, forget_announcements, load
from modelops.handlers.deps import Deps
from modelops.handlers.reconcile import GONE, Gone, reconciler
from modelops.handlers.workqueue import Key
from modelops.k8s import scrape
from modelops.k8s.observe import model_versions, taints
from modelops.observability import DriftSample, FeatureDriftSample, OperatorMetrics

log = logging.getLogger(__name__)

_STATE_KEY = "DriftPolicy"


@dataclass
class DriftState:
    """The drift loop's memory: live-data windows, reference documents, and when each policy
    was last evaluated (with which generation)."""

    windows: driftpolicy.Windows = field(default_factory=driftpolicy.Windows)
    references: scrape.ReferenceCache = field(default_factory=scrape.ReferenceCache)
    evaluated: dict[Key, tuple[int, datetime]] = field(default_factory=dict)

    def due_in(self, key: Key, generation: int, now: datetime, interval: float) -> float:
        """Seconds until ``key`` is due; 0 when it is due now.

        A policy is due once ``interval`` has passed since its last evaluation, or at once
        when its spec changed. Without this, the status write of each evaluation — a watch
        event that queues the policy again — would start the next evaluation right away.
        A second (a tenth of the interval for short ones) of slack lets a requeue timer that
        fires a little early still count as on time.
        """
        last = self.evaluated.get(key)
        if last is None or last[0] != generation:
            return 0.0
        remaining = interval - (now - last[1]).total_seconds()
        return remaining if remaining > min(1.0, interval / 10) else 0.0

    def forget(self, key: Key) -> None:
        """Drop everything kept for a deleted policy."""
        policy = (key.namespace, key.name)
        self.windows.forget(policy)
        self.references.forget(policy)
        self.evaluated.pop(key, None)


def drift_state(deps: Deps) -> DriftState:
    """This process's drift state, created on first use and kept in ``deps.state``."""
    state = deps.state.setdefault(_STATE_KEY, DriftState())
    assert isinstance(state, DriftState)
    return state


@reconciler("DriftPolicy")
def reconcile_driftpolicy(deps: Deps, key: Key) -> float | Gone | None:
    """Evaluate one DriftPolicy if it is due; returns when to look again."""
    state = drift_state(deps)
    loaded = load(deps, key, api.DriftPolicy)
    if loaded is None:
        state.forget(key)
        deps.metrics.forget_driftpolicy(key.namespace, key.name)
        forget_announcements(deps, key)
        return GONE
    policy, raw = loaded
    now = deps.clock()
    generation = policy.metadata.generation or 0
    interval = driftpolicy.interval_seconds(policy)
    wait = state.due_in(key, generation, now, interval)
    if wait > 0:
        return wait
    collected = scrape.collect(deps.kube, policy, state.references)
    observed = driftpolicy.window(policy, collected, state.windows, now=now)
    if observed.model is not None and policy.spec.actions.retrain is not None:
        refused = quarantine.retrain_refused(
            observed.model,
            model_versions(deps.kube, key.namespace, policy.spec.model_ref.name),
            taints(deps.kube),
        )
        observed = replace(observed, retrain_refused=refused)
    decision = driftpolicy.reconcile(policy, observed, now=now)
    writes = act(deps, key, raw, decision.plan, live={ObjectRef.of(raw): raw}, now=now)
    deps.metrics.writes.labels(key.kind).inc(writes)
    state.evaluated[key] = (generation, now)
    _export(deps.metrics, policy, decision, now, interval)
    _log(policy, decision)
    return decision.plan.requeue_after


def _export(
    metrics: OperatorMetrics,
    policy: api.DriftPolicy,
    decision: driftpolicy.Decision,
    now: datetime,
    interval: float,
) -> None:
    ns, name = policy.metadata.namespace or "", policy.metadata.name or ""
    evaluation = decision.evaluation
    if evaluation is None:
        assert decision.problem is not None
        metrics.drift_failed(
            ns,
            name,
            decision.problem.reason,
            model=policy.spec.model_ref.name,
            version=decision.version,
            interval=interval,
        )
        return
    assert decision.version is not None
    verdict = evaluation.verdict
    sample = DriftSample(
        model=policy.spec.model_ref.name,
        version=decision.version,
        samples=evaluation.samples,
        features=tuple(
            FeatureDriftSample(
                feature=f.name,
                method=f.method,
                score=driftpolicy.reported_score(f),
                threshold=f.threshold,
                drifted=f.drifted,
            )
            for f in evaluation.features
        ),
        dataset_drifted=verdict,
        drifted_share=None if verdict is None else evaluation.drifted_share,
        detected=decision.firing if policy.spec.actions.alert else None,
    )
    metrics.drift_evaluated(ns, name, sample, at=now.timestamp(), interval=interval)


def _log(policy: api.DriftPolicy, decision: driftpolicy.Decision) -> None:
    where = f"DriftPolicy {policy.metadata.namespace}/{policy.metadata.name}"
    evaluation = decision.evaluation
    if evaluation is None:
        assert decision.problem is not None
        ready = next((c for c in policy.status.conditions if c.type == "Ready"), None)
        # Said at WARNING when the problem is new; repeating it every interval is noise.
        level = (
            logging.DEBUG if ready and ready.reason == decision.problem.reason else logging.WARNING
        )
        log.log(level, "Cannot evaluate %s: %s", where, decision.problem.message)
    elif evaluation.insufficient_data:
        log.info(
            "Evaluated drift of %s: %d predictions in the window, too few for a verdict",
            where,
            evaluation.samples,
        )
    else:
        log.info(
            "Evaluated drift of %s: %d of %d features drifted in %d predictions of version %s%s",
            where,
            len(evaluation.drifted_features),
            len(evaluation.features),
            evaluation.samples,
            decision.version,
            "; drift detected" if decision.firing else "",
        )
