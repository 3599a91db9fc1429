"""Model decisions: which version serves, how a new one takes over, and which versions retire.

State lives in the Model's status (``productionVersion``, ``canaryVersion``, ``history``) and in
its ModelVersions' status (``phase``, the ``RolloutFailed`` reason). Each reconcile:

1. picks the **target** version: the pin (``serving.version``) with promotion Manual, else the
   newest Registered version that passes every gate (and is approved when required) and has
   not failed a rollout before; no target keeps the current production version;
2. moves the rollout one step: a first version simply rolls out; a new version next to a
   production one rolls out as a canary (its share of the replicas, behind the stable Service)
   or, without canary settings, at full size; it is promoted once its Deployment has been
   available for ``canary.minReadySeconds`` (0 without canary), and rolled back to the
   previous production version when its rollout fails (progress deadline exceeded, crash loop);
3. retires versions beyond ``retention.keepLast`` or older than ``retention.maxAge`` — never the
   production, canary or target version;
4. derives every ModelVersion's phase and the Model's conditions.

A version whose rollout failed is not chosen again automatically. A pinned version whose
rollout failed and was rolled back is not retried under the same ``metadata.generation``: any
edit of the Model retries it (the rollback's history entry records the generation).

Every write this plan leads to may be interrupted and redone: history entries are appended
only when what they record has not been recorded yet, so a retry never appends twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from modelops import api
from modelops.core import builders, conditions, labels, naming
from modelops.core.plan import (
    EventSpec,
    MetadataPatch,
    Notification,
    Obj,
    ObjectRef,
    Plan,
    StatusPatch,
)
from modelops.core.quarantine import (
    LIFTED,
    QUARANTINED,
    Taint,
    Verdict,
    ever_quarantined,
    reached,
)
from modelops.core.runtimes import DEFAULT_RUNTIMES, Server, ServingRuntime
from modelops.core.runtimes import select as select_runtime

SERVER_CONTAINER = "server"
SERVER_PORT = 8080
ARTIFACT_MOUNT = "/artifacts"
COMPONENT = "model-server"
CRASH_RESTARTS = 3
"""Restarts after which a candidate's pod counts as crash-looping (the rollout failed)."""
PROGRESS_REQUEUE = 5.0
"""While a rollout is under way, look again this often (pod restarts do not touch the
Deployment, so not every change arrives as an event)."""
RETIRE_JOB_TTL = 3600
RETIRE_JOB_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
"""Marking a directory (or deleting its files) needs little; every value is set, so a
namespace whose ResourceQuota covers requests and limits of CPU and memory admits the pod."""
RETIRE_JOB_DEADLINE_SECONDS = 600
FETCH_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}
"""The serving pod's artifact download step: it holds one artifact file in memory at a time."""
ARTIFACT_VOLUME_LIMIT = "4Gi"
"""The emptyDir an artifact from S3 is downloaded into."""
STALLED_REASONS = frozenset(
    {
        "RolloutFailed",
        "VersionRetired",
        "UnsupportedArtifact",
        "UnsupportedFormat",
        "UnknownRuntime",
        "VersionQuarantined",
        "QuarantineLifted",
    }
)
"""Problems only a change of the spec (or of the version) resolves: kstatus ``Stalled``. A pin
of a version not registered yet is not among them: registering it resolves it."""

VersionPhase = api.ModelVersionPhase
_TRUE, _FALSE, _UNKNOWN = (
    api.ConditionStatus.TRUE,
    api.ConditionStatus.FALSE,
    api.ConditionStatus.UNKNOWN,
)


@dataclass(frozen=True)
class RetireJob:
    """The pods of artifact-retirement Jobs: their resources and how long a Job may run before
    it fails (operator settings ``retire_job_resources``, ``retire_job_deadline_seconds``)."""

    resources: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: RETIRE_JOB_RESOURCES)
    active_deadline_seconds: int = RETIRE_JOB_DEADLINE_SECONDS
    image: str = api.DEFAULT_SERVER_IMAGE
    """The reference server image, which has the retire program (a Model's own server image
    need not)."""


DEFAULT_RETIRE_JOB = RetireJob()


@dataclass(frozen=True)
class Observed:
    """What the reconcile saw: the Model's versions; for each served version (by version
    name) its Deployment and pods; the Services the Model owns (by name). Only objects this
    Model owns are here: nothing else is ever updated or deleted."""

    versions: Sequence[api.ModelVersion]
    deployments: Mapping[str, Obj]
    pods: Mapping[str, Sequence[Obj]]
    services: Mapping[str, Obj] = field(default_factory=dict)
    taints: Sequence[Taint] = ()
    """The Quarantines in force (cluster-wide)."""


@dataclass(frozen=True)
class _Rollout:
    """Step 2's result: what serves, what to build, what happened."""

    production: str | None
    canary: str | None
    replicas: Mapping[str, int]  # version -> serving replicas (the Deployments to keep)
    roles: Mapping[str, str]
    history: tuple[api.HistoryEntry, ...] = ()
    events: tuple[EventSpec, ...] = ()
    failed: str | None = None  # a version whose rollout just failed
    progressing: str | None = None  # message while a rollout is under way
    problem: tuple[str, str] | None = None  # (reason, message) for Degraded
    requeue: float | None = None


def reconcile(
    model: api.Model,
    observed: Observed,
    *,
    now: datetime,
    retire_job: RetireJob = DEFAULT_RETIRE_JOB,
    runtimes: Sequence[ServingRuntime] = DEFAULT_RUNTIMES,
) -> Plan:
    """Decide serving, promotion, rollback and retirement for ``model``; ``runtimes`` is the
    operator's table of serving runtimes (:mod:`modelops.core.runtimes`)."""
    by_version = {v.spec.version: v for v in observed.versions}
    verdicts = reached(observed.versions, observed.taints)
    serving = model.spec.serving
    if serving is None:
        rollout = _Rollout(production=None, canary=None, replicas={}, roles={})
        target = None
    else:
        target, problem = _target(model, serving, by_version, verdicts, runtimes)
        prod = model.status.production_version
        if prod in verdicts and prod in by_version:
            assert prod is not None
            rollout = _evacuate(model, serving, prod, verdicts, target, by_version, now, runtimes)
            target = rollout.production
        else:
            rollout = _step(model, serving, target, by_version, observed, now)
        if problem is not None and (rollout.problem is None or rollout.problem[0] == "Quarantined"):
            # A quarantined pin is the problem to fix, on this reconcile and the next alike.
            rollout = replace(rollout, problem=problem)
        if rollout.production is None and verdicts and rollout.problem is None:
            rollout = replace(rollout, problem=_nothing_clean(verdicts))
    keep = {v for v in (rollout.production, rollout.canary, target) if v}
    retiring = _to_retire(model, by_version, keep, now)

    apply: list[Obj] = []
    delete: list[ObjectRef] = []
    ns = model.metadata.namespace or ""
    name = _name(model)
    if serving is not None:
        for version, replicas in rollout.replicas.items():
            mv = by_version[version]
            server = select_runtime(serving, mv.spec.artifact.format, runtimes)
            if isinstance(server, Server):
                apply.append(
                    build_deployment(
                        model,
                        serving,
                        mv,
                        replicas,
                        rollout.roles[version],
                        server,
                        tools_image=retire_job.image,
                    )
                )
            elif rollout.problem is None:
                # Served before the runtime table lost its format: the running Deployment is
                # left as it is (not rebuilt, not deleted) and the Model says why.
                rollout = replace(rollout, problem=server)
            apply.append(build_version_service(model, mv))
        apply.append(build_stable_service(model))
    wanted = {o["metadata"]["name"] for o in apply if o["kind"] == "Service"}
    for version, dep in observed.deployments.items():
        if version not in rollout.replicas:
            delete.append(ObjectRef.of(dep))
    for svc_name, svc in sorted(observed.services.items()):
        if svc_name not in wanted:
            delete.append(ObjectRef.of(svc))
    retention = model.spec.retention
    for version, reason in retiring:
        apply.append(
            build_retire_job(
                model,
                by_version[version],
                reason,
                delete_artifacts=bool(retention and retention.delete_artifacts),
                job=retire_job,
            )
        )

    history = list(model.status.history or [])
    history.extend(rollout.history)
    events = list(rollout.events)
    notifications = [_notify(model, h) for h in rollout.history]
    version_status: list[StatusPatch] = []
    metadata: list[MetadataPatch] = []
    recorded = {h.from_ for h in history if h.kind is api.HistoryKind.RETIRED}
    for version, reason in retiring:
        entry = api.HistoryEntry(
            time=now,
            kind=api.HistoryKind.RETIRED,
            from_=version,
            to=rollout.production,
            reason=reason,
            generation=model.metadata.generation,
        )
        # A retry after a half-done retirement (the Model's status written, the version's not)
        # appends nothing and announces nothing again: the first decision's announcements are
        # already recorded with it, under their own ids.
        if version not in recorded:
            history.append(entry)
            events.append(EventSpec("Normal", "Retired", f"Retired version {version}: {reason}"))
            notifications.append(_notify(model, entry))
    retired_now = dict(retiring)
    for version, mv in by_version.items():
        # A version retired now, or before, carries the label admission refuses to serve; so
        # does a quarantined one, until the quarantine is lifted. The phase and the labels are
        # separate writes: after a crash between them the labels are redone here, whatever
        # else this reconcile decides.
        have = mv.metadata.labels or {}
        want: dict[str, str | None] = {}
        retired = version in retired_now or mv.status.phase is VersionPhase.RETIRED
        if retired and have.get(labels.RETIRED) != "true":
            want[labels.RETIRED] = "true"
        if version in verdicts and have.get(labels.QUARANTINED) != "true":
            want[labels.QUARANTINED] = "true"
        elif version not in verdicts and labels.QUARANTINED in have:
            want[labels.QUARANTINED] = None
        if want:
            metadata.append(MetadataPatch(_ref(mv), want))
        patch = _version_status(mv, rollout, retired_now.get(version), verdicts.get(version), now)
        if patch is not None:
            version_status.append(patch)
    # Announced once per change: the list in the Model's status is written with the
    # announcements, so a retry after a lost write of the versions' own status says nothing twice.
    before = set(model.status.quarantined_versions or ())
    for version in sorted(set(verdicts) - before):
        verdict = verdicts[version]
        events.append(
            EventSpec("Warning", "VersionQuarantined", f"Version {version}: {verdict.describe()}")
        )
        notifications.append(_notify_version(model, "quarantined", version, verdict))
    for version in sorted(before - set(verdicts)):
        events.append(
            EventSpec(
                "Normal",
                "QuarantineLifted",
                f"Version {version} is no longer quarantined; it serves again only when pinned "
                "or promoted",
            )
        )
        notifications.append(_notify_version(model, "quarantinelifted", version, None))

    status = model.status.model_copy(deep=True)
    status.production_version = rollout.production
    status.canary_version = rollout.canary
    status.endpoint = (
        f"http://{naming.stable_service_name(name)}.{ns}.svc/v2/models/{name}"
        if serving is not None
        else None
    )
    status.history = history[-api.HISTORY_MAX_ITEMS :] if history else None
    status.datasets = _served_datasets(rollout, by_version) or None
    status.quarantined_versions = sorted(verdicts)[: api.QUARANTINED_MAX_ITEMS] or None
    status.conditions = _conditions(model, serving, rollout, observed, now)
    status.observed_generation = model.metadata.generation or 0
    return Plan(
        apply=tuple(apply),
        delete=tuple(delete),
        status=(StatusPatch(_ref(model), status.to_dict()), *version_status),
        metadata=tuple(metadata),
        events=tuple(events),
        notifications=tuple(notifications),
        requeue_after=rollout.requeue,
    )


def _served_datasets(
    rollout: _Rollout, by_version: Mapping[str, api.ModelVersion]
) -> list[api.ServedDataset]:
    """The training data of every version with serving replicas, production first."""
    out = []
    for version in sorted(rollout.replicas, key=lambda v: v != rollout.production):
        provenance = by_version[version].spec.provenance
        if provenance is not None and provenance.dataset is not None:
            out.append(api.ServedDataset(version=version, **provenance.dataset.model_dump()))
    return out


# -- 1. target ---------------------------------------------------------------------------


def _target(
    model: api.Model,
    serving: api.Serving,
    by_version: Mapping[str, api.ModelVersion],
    verdicts: Mapping[str, Verdict],
    runtimes: Sequence[ServingRuntime],
) -> tuple[str | None, tuple[str, str] | None]:
    """The version that should serve production, and a problem that prevents one."""
    current = model.status.production_version
    if serving.promotion is api.Promotion.MANUAL:
        pin = serving.version
        if pin is None:
            return current, None
        mv = by_version.get(pin)
        if mv is None:
            return current, (
                "VersionNotFound",
                f"serving.version {pin}: no ModelVersion "
                f"{naming.model_version_name(_name(model), pin)}",
            )
        if mv.status.phase is VersionPhase.RETIRED:
            return current, (
                "VersionRetired",
                f"serving.version {pin} is retired and can never be served again",
            )
        if pin in verdicts:
            return current, (
                "VersionQuarantined",
                f"serving.version {pin} is quarantined, {verdicts[pin].describe()}; pin a clean "
                "version",
            )
        if pin != current and _taken_off_at_this_generation(model, pin):
            return current, (
                "QuarantineLifted",
                f"serving.version {pin} was taken out of production by a Quarantine, since "
                "lifted; it serves again after an edit of the Model's spec (pin another "
                "version, or remove the pin, then pin it again)",
            )
        failed = _rolled_back_at_this_generation(model, pin)
        if pin != current and failed is not None:
            return current, (
                "RolloutFailed",
                f"version {pin} failed to roll out "
                f"({failed.reason}); pin another version, or edit the Model to retry",
            )
        unsupported = _unsupported(model, mv, serving, runtimes)
        if unsupported is not None:
            return current, unsupported
        return pin, None
    newest = _newest_eligible(model, serving, by_version, verdicts, runtimes)
    if newest is None:
        return current, None
    return newest, None


def _newest_eligible(
    model: api.Model,
    serving: api.Serving,
    by_version: Mapping[str, api.ModelVersion],
    verdicts: Mapping[str, Verdict],
    runtimes: Sequence[ServingRuntime],
) -> str | None:
    """The newest version automatic promotion may pick: not retired, never quarantined, no
    failed rollout, through every gate (and approved when required), servable."""
    eligible = [
        mv
        for v, mv in by_version.items()
        if mv.status.phase is not VersionPhase.RETIRED
        and v not in verdicts
        and not ever_quarantined(mv)
        and not _rollout_failed(mv)
        and _passes(mv, serving)
        and _unsupported(model, mv, serving, runtimes) is None
    ]
    if not eligible:
        return None
    return max(eligible, key=lambda mv: (_created(mv), mv.spec.version)).spec.version


def _evacuate(
    model: api.Model,
    serving: api.Serving,
    prod: str,
    verdicts: Mapping[str, Verdict],
    target: str | None,
    by_version: Mapping[str, api.ModelVersion],
    now: datetime,
    runtimes: Sequence[ServingRuntime],
) -> _Rollout:
    """Production serves a quarantined version: move it at once (no canary, no waiting for
    availability) to the newest clean version, or serve nothing when there is none."""
    verdict = verdicts[prod]
    clean = target if target is not None and target not in verdicts else None
    if clean is None:
        clean = _newest_eligible(model, serving, by_version, verdicts, runtimes)
    entry = api.HistoryEntry(
        time=now,
        kind=api.HistoryKind.QUARANTINED,
        from_=prod,
        to=clean,
        reason=verdict.describe()[:1024],
        generation=model.metadata.generation,
    )
    if clean is None:
        message = (
            f"Took version {prod} out of production, {verdict.describe()}; no clean version "
            "passes the gates: nothing serves"
        )
        return _Rollout(
            None,
            None,
            {},
            {},
            history=(entry,),
            events=(EventSpec("Warning", "Quarantined", message),),
            problem=("Quarantined", message),
        )
    message = f"Rolled back from {prod} to {clean}: {prod} is {verdict.describe()}"
    return _Rollout(
        clean,
        None,
        {clean: serving.replicas},
        {clean: "production"},
        history=(entry,),
        events=(EventSpec("Warning", "Quarantined", message),),
        progressing=f"rolling out version {clean} after a quarantine",
        requeue=PROGRESS_REQUEUE,
    )


def _nothing_clean(verdicts: Mapping[str, Verdict]) -> tuple[str, str]:
    names = ", ".join(sorted(verdicts)[:10]) + (", …" if len(verdicts) > 10 else "")
    return (
        "Quarantined",
        f"no version to serve: {len(verdicts)} version(s) are quarantined ({names}) and no "
        "clean version passes the gates",
    )


def _taken_off_at_this_generation(model: api.Model, version: str) -> bool:
    """Whether a Quarantine took ``version`` out of production under the Model's current
    generation: lifting it serves nothing again by itself, a new pin does."""
    return any(
        h.kind is api.HistoryKind.QUARANTINED
        and h.from_ == version
        and h.generation == model.metadata.generation
        for h in model.status.history or ()
    )


def _rolled_back_at_this_generation(model: api.Model, version: str) -> api.HistoryEntry | None:
    """The newest rollback from ``version`` taken under the Model's current generation."""
    generation = model.metadata.generation
    return next(
        (
            h
            for h in reversed(model.status.history or [])
            if h.kind is api.HistoryKind.ROLLED_BACK
            and h.from_ == version
            and h.generation == generation
        ),
        None,
    )


def _passes(mv: api.ModelVersion, serving: api.Serving) -> bool:
    if serving.require_approval and (mv.metadata.labels or {}).get(labels.APPROVED) != "true":
        return False
    metrics = mv.spec.metrics or {}
    for gate in serving.gates or ():
        value = metrics.get(gate.metric)
        if value is None:
            return False
        if gate.min is not None and value < gate.min:
            return False
        if gate.max is not None and value > gate.max:
            return False
    return True


def _unsupported(
    model: api.Model,
    mv: api.ModelVersion,
    serving: api.Serving,
    runtimes: Sequence[ServingRuntime],
) -> tuple[str, str] | None:
    """Why ``mv`` cannot be served (reason, message), or None: its storage, or no runtime."""
    uri = mv.spec.artifact.uri
    if builders.is_s3_uri(uri):
        if model.spec.storage is None:
            return (
                "UnsupportedArtifact",
                f"version {mv.spec.version}: its artifact is in S3 ({uri}); set spec.storage.s3 "
                "to say how serving pods reach it",
            )
    elif builders.parse_pvc_uri(uri) is None:
        return (
            "UnsupportedArtifact",
            f"version {mv.spec.version}: only pvc:// and s3:// artifacts can be served, not {uri}",
        )
    server = select_runtime(serving, mv.spec.artifact.format, runtimes)
    if isinstance(server, Server):
        return None
    reason, message = server
    return reason, f"version {mv.spec.version}: {message}"


# -- 2. rollout --------------------------------------------------------------------------


def _step(
    model: api.Model,
    serving: api.Serving,
    target: str | None,
    by_version: Mapping[str, api.ModelVersion],
    observed: Observed,
    now: datetime,
) -> _Rollout:
    prod = model.status.production_version
    if prod is not None and prod not in by_version:
        prod = None  # its record was deleted: nothing to keep serving
    full = serving.replicas
    if target is None or target not in by_version:
        if prod is None:
            return _Rollout(None, None, {}, {})
        return _Rollout(prod, None, {prod: full}, {prod: "production"})
    if target == prod:
        events: tuple[EventSpec, ...] = ()
        old = model.status.canary_version
        if old and old != prod:
            events = (
                EventSpec(
                    "Normal", "CanaryAborted", f"Stopped canary {old}: production stays {prod}"
                ),
            )
        return _Rollout(prod, None, {prod: full}, {prod: "production"}, events=events)

    dep = observed.deployments.get(target)
    pods = observed.pods.get(target, ())
    failure = _failure(dep, pods)
    canary = serving.canary if prod is not None else None
    if prod is None:
        replicas, roles = {target: full}, {target: "production"}
    elif canary is not None:
        share = max(1, round(full * canary.replicas_percent / 100))
        replicas = {prod: max(1, full - share), target: share}
        roles = {prod: "production", target: "canary"}
    else:
        replicas, roles = {prod: full, target: full}, {prod: "production", target: "candidate"}

    if failure is not None:
        message = f"version {target} failed to roll out: {failure}"
        if prod is not None and serving.rollback:
            entry = api.HistoryEntry(
                time=now,
                kind=api.HistoryKind.ROLLED_BACK,
                from_=target,
                to=prod,
                reason=failure,
                generation=model.metadata.generation,
            )
            return _Rollout(
                prod,
                None,
                {prod: full},
                {prod: "production"},
                history=(entry,),
                events=(
                    EventSpec(
                        "Warning", "RolledBack", f"Rolled back from {target} to {prod}: {failure}"
                    ),
                ),
                failed=target,
                problem=("RolloutFailed", message),
            )
        degraded = conditions.find_condition(model.status.conditions, "Degraded")
        reported = (
            degraded is not None
            and degraded.reason == "RolloutFailed"
            and degraded.message == message
        )
        return _Rollout(
            prod,
            None,
            replicas,
            roles,
            failed=target,
            # Said once: the failure stays on record in Degraded while nothing changes.
            events=() if reported else (EventSpec("Warning", "RolloutFailed", message),),
            problem=("RolloutFailed", message),
        )

    min_ready = canary.min_ready_seconds if canary is not None else 0
    since = _available_since(dep, replicas[target])
    if since is not None and now - since >= timedelta(seconds=min_ready):
        entry = api.HistoryEntry(
            time=now,
            kind=api.HistoryKind.PROMOTED,
            from_=prod,
            to=target,
            reason=_promotion_reason(by_version[target], serving, canary is not None),
            generation=model.metadata.generation,
            approved_by=(by_version[target].metadata.annotations or {}).get(labels.APPROVED_BY),
        )
        text = f"Promoted {target} to production" + (f" (was {prod})" if prod else "")
        return _Rollout(
            target,
            None,
            {target: full},
            {target: "production"},
            history=(entry,),
            events=(EventSpec("Normal", "Promoted", text),),
        )

    current_canary = target if canary is not None else None
    events = ()
    if canary is not None and model.status.canary_version != target:
        events = (
            EventSpec(
                "Normal",
                "CanaryStarted",
                f"Started canary {target} with {replicas[target]} of {full} "
                f"replicas next to {prod}",
            ),
        )
    wait = PROGRESS_REQUEUE
    if since is not None:
        wait = max(1.0, min_ready - (now - since).total_seconds())
        message = f"version {target} available; promoting after {min_ready}s"
    else:
        message = f"rolling out version {target}"
    return _Rollout(
        prod, current_canary, replicas, roles, events=events, progressing=message, requeue=wait
    )


def _failure(dep: Obj | None, pods: Sequence[Obj]) -> str | None:
    """Why a candidate's rollout failed, or None while it may still succeed."""
    if dep is not None:
        for c in dep.get("status", {}).get("conditions", []):
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                return f"not available within the progress deadline ({c.get('message', '')})"
    for pod in pods:
        # An init step that keeps failing (the artifact download) is a crash loop too.
        for cs in builders.container_statuses(pod):
            waiting = cs.get("state", {}).get("waiting", {})
            if (
                waiting.get("reason") == "CrashLoopBackOff"
                or cs.get("restartCount", 0) >= CRASH_RESTARTS
            ):
                last = cs.get("lastState", {}).get("terminated", {})
                detail = last.get("message") or f"exit code {last.get('exitCode', '?')}"
                return (
                    f"pod {pod['metadata']['name']} is crash-looping "
                    f"({cs.get('restartCount', 0)} restarts, {detail.strip()[:200]})"
                )
    return None


def _available_since(dep: Obj | None, replicas: int) -> datetime | None:
    """When the Deployment became fully available at ``replicas``, or None if it is not."""
    if dep is None:
        return None
    st = dep.get("status", {})
    if dep.get("spec", {}).get("replicas") != replicas or st.get("observedGeneration", 0) < dep[
        "metadata"
    ].get("generation", 0):
        return None
    if st.get("availableReplicas", 0) < replicas or st.get("updatedReplicas", 0) < replicas:
        return None
    for c in st.get("conditions", []):
        if c.get("type") == "Available" and c.get("status") == "True":
            return _time(c.get("lastTransitionTime"))
    return None


def _promotion_reason(mv: api.ModelVersion, serving: api.Serving, canary: bool) -> str:
    how = "canary stayed available" if canary else "rollout available"
    if serving.promotion is api.Promotion.MANUAL:
        return f"pinned by serving.version; {how}"
    metrics = mv.spec.metrics or {}
    passed = ", ".join(f"{g.metric}={metrics[g.metric]:g}" for g in serving.gates or ())
    return f"gates passed{': ' + passed if passed else ''}; {how}"


# -- 3. retention --------------------------------------------------------------------------


def _to_retire(
    model: api.Model, by_version: Mapping[str, api.ModelVersion], keep: set[str], now: datetime
) -> list[tuple[str, str]]:
    """(version, reason) of the versions to retire now, oldest first."""
    policy = model.spec.retention
    if policy is None:
        return []
    candidates = sorted(
        (
            mv
            for v, mv in by_version.items()
            if v not in keep and mv.status.phase is not VersionPhase.RETIRED
        ),
        key=lambda mv: (_created(mv), mv.spec.version),
        reverse=True,
    )
    out: dict[str, str] = {}
    if policy.keep_last is not None:
        for mv in candidates[policy.keep_last :]:
            out[mv.spec.version] = (
                f"retention.keepLast={policy.keep_last}: newer non-serving versions exist"
            )
    if policy.max_age is not None:
        age = api.parse_duration(policy.max_age)
        for mv in candidates:
            if now - _created(mv) > age:
                out.setdefault(mv.spec.version, f"retention.maxAge={policy.max_age} exceeded")
    return sorted(out.items(), key=lambda kv: _created(by_version[kv[0]]))


# -- 4. status ---------------------------------------------------------------------------


def _version_status(
    mv: api.ModelVersion,
    rollout: _Rollout,
    retired_reason: str | None,
    verdict: Verdict | None,
    now: datetime,
) -> StatusPatch | None:
    version = mv.spec.version
    status = mv.status.model_copy(deep=True)
    gen = mv.metadata.generation or 0
    if status.phase is VersionPhase.RETIRED:
        return None  # final: never touched again
    if retired_reason is not None:
        status.phase = VersionPhase.RETIRED
        status.retired_at = now
        status.retired_reason = retired_reason
        # Final and settled: a record GitOps tools should see as healthy, never as pending.
        ready = (_TRUE, "Retired", f"retired: {retired_reason}")
    elif version == rollout.production:
        if status.phase is not VersionPhase.SERVING:
            status.served_since = now
        status.phase = VersionPhase.SERVING
        ready = (_TRUE, "Serving", "serving production traffic")
    elif version == rollout.canary:
        status.phase = VersionPhase.CANARY
        ready = (_TRUE, "Canary", "serving as canary")
    else:
        status.phase = VersionPhase.REGISTERED
        if version == rollout.failed:
            ready = (_FALSE, "RolloutFailed", rollout.problem[1] if rollout.problem else "")
        elif verdict is not None:
            ready = (_FALSE, "Quarantined", f"quarantined: {verdict.describe()}")
        elif _rollout_failed(mv):
            return None  # keep the failure on record until the version retires
        else:
            ready = (_TRUE, "Registered", "registered; not serving")
    status.conditions = conditions.set_condition(
        status.conditions,
        "Ready",
        ready[0],
        reason=ready[1],
        message=ready[2],
        observed_generation=gen,
        now=now,
    )
    quarantined = conditions.find_condition(status.conditions, QUARANTINED)
    if verdict is not None:
        status.conditions = conditions.set_condition(
            status.conditions,
            QUARANTINED,
            _TRUE,
            reason=verdict.reason,
            message=verdict.describe()[:1024],
            observed_generation=gen,
            now=now,
        )
    elif quarantined is not None and quarantined.status is _TRUE:
        status.conditions = conditions.set_condition(
            status.conditions,
            QUARANTINED,
            _FALSE,
            reason=LIFTED,
            message="the quarantine was lifted; pin or promote the version to serve it again "
            "(automatic promotion never picks it)",
            observed_generation=gen,
            now=now,
        )
    stalled = (ready[1], ready[2]) if ready[1] in ("RolloutFailed", "Quarantined") else None
    status.conditions = conditions.set_kstatus(
        status.conditions, reconciling=None, stalled=stalled, observed_generation=gen, now=now
    )
    status.observed_generation = gen
    if mv.spec.metrics:
        first = sorted(mv.spec.metrics.items())[0]
        status.key_metric = f"{first[0]}={first[1]:.4g}"
    return StatusPatch(_ref(mv), status.to_dict())


def _conditions(
    model: api.Model,
    serving: api.Serving | None,
    rollout: _Rollout,
    observed: Observed,
    now: datetime,
) -> list[api.Condition]:
    gen = model.metadata.generation or 0
    conds = list(model.status.conditions)

    def put(type_: str, status: api.ConditionStatus, reason: str, message: str) -> None:
        nonlocal conds
        conds = conditions.set_condition(
            conds, type_, status, reason=reason, message=message, observed_generation=gen, now=now
        )

    prod = rollout.production
    prod_available = (
        prod is not None
        and _available_since(observed.deployments.get(prod), rollout.replicas.get(prod, 0))
        is not None
    )
    if serving is None:
        put("Ready", _TRUE, "RegistryOnly", "spec.serving is unset: nothing to serve")
    elif prod is None:
        if rollout.progressing:
            put("Ready", _UNKNOWN, "RollingOut", rollout.progressing)
        else:
            reason, message = rollout.problem or (
                "NoVersionSelected",
                "no version to serve: pin one with serving.version, or register a version "
                "that passes the gates",
            )
            put("Ready", _FALSE, reason, message)
    elif prod_available:
        put("Ready", _TRUE, "Serving", f"version {prod} is serving")
    else:
        put("Ready", _FALSE, "Unavailable", f"version {prod} is not fully available")
    if rollout.progressing:
        put("Progressing", _TRUE, "RollingOut", rollout.progressing)
    else:
        put("Progressing", _FALSE, "Stable", "no rollout in progress")
    if rollout.problem is not None:
        put("Degraded", _TRUE, *rollout.problem)
    elif serving is not None and prod is not None and not prod_available:
        put("Degraded", _TRUE, "Unavailable", f"version {prod} is not fully available")
    else:
        put("Degraded", _FALSE, "AsExpected", "nothing needs attention")
    stuck = rollout.problem if rollout.problem and rollout.problem[0] in STALLED_REASONS else None
    progressing = ("RollingOut", rollout.progressing) if rollout.progressing else None
    return conditions.set_kstatus(
        conds, reconciling=progressing, stalled=stuck, observed_generation=gen, now=now
    )


# -- child objects -----------------------------------------------------------------------


def build_deployment(
    model: api.Model,
    serving: api.Serving,
    mv: api.ModelVersion,
    replicas: int,
    role: str,
    server: Server,
    tools_image: str = api.DEFAULT_SERVER_IMAGE,
) -> Obj:
    """The Deployment that serves one version with ``server`` (its runtime's image and command,
    or the Model's own), verified against its digest by the server. An artifact in S3 is first
    downloaded and verified by an init step (``python -m modelops.storage fetch`` in
    ``tools_image``, the reference server image) into a volume the server reads."""
    name, version = _name(model), mv.spec.version
    uri = mv.spec.artifact.uri
    location = builders.parse_pvc_uri(uri)
    in_s3 = builders.is_s3_uri(uri)
    assert location is not None or in_s3  # _unsupported() keeps other URIs out of rollouts
    artifact_dir = (
        f"{ARTIFACT_MOUNT}/{location.path}".rstrip("/") if location is not None else ARTIFACT_MOUNT
    )
    selector = _version_selector(name, version)
    # The role (production, canary) labels the Deployment, not its pods: a label in the pod
    # template would replace every pod of a canary at the moment it is promoted.
    pod_labels = {
        **builders.child_labels(name, version=version),
        "app.kubernetes.io/component": COMPONENT,
    }
    env: list[Obj] = [
        {"name": "MODELOPS_SERVER_MODEL_NAME", "value": name},
        {"name": "MODELOPS_SERVER_MODEL_VERSION", "value": version},
        {"name": "MODELOPS_SERVER_ARTIFACT_DIR", "value": artifact_dir},
        {"name": "MODELOPS_SERVER_ARTIFACT_DIGEST", "value": mv.spec.artifact.digest},
        {"name": "MODELOPS_SERVER_PORT", "value": str(SERVER_PORT)},
    ]
    probe = {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "periodSeconds": 2,
        "failureThreshold": 3,
    }
    container: Obj = {
        "name": SERVER_CONTAINER,
        "image": server.image,
        **({"command": list(server.command)} if server.command is not None else {}),
        "env": env,
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": "artifacts", "mountPath": ARTIFACT_MOUNT, "readOnly": True},
            builders.SCRATCH_MOUNT,
        ],
        "securityContext": builders.CONTAINER_SECURITY_CONTEXT,
    }
    if serving.args:
        container["args"] = list(serving.args)
    if serving.resources is not None:
        container["resources"] = serving.resources.to_dict()
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": naming.serving_name(name, version),
            "namespace": model.metadata.namespace,
            "labels": {
                **builders.child_labels(name, version=version, role=role),
                "app.kubernetes.io/component": COMPONENT,
            },
            "ownerReferences": [builders.owner_reference(model)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "progressDeadlineSeconds": serving.progress_deadline_seconds,
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(SERVER_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": _serving_pod_spec(model, mv, container, location, tools_image),
            },
        },
    }


def _serving_pod_spec(
    model: api.Model,
    mv: api.ModelVersion,
    container: Obj,
    location: builders.StorageLocation | None,
    tools_image: str,
) -> Obj:
    spec: Obj = {
        "automountServiceAccountToken": False,
        "securityContext": builders.POD_SECURITY_CONTEXT,
        "containers": [container],
    }
    if location is not None:
        spec["volumes"] = [
            builders.pvc_volume("artifacts", location.claim, read_only=True),
            builders.SCRATCH_VOLUME,
        ]
        return spec
    # S3: the init step downloads and verifies the artifact (manifest against the digest,
    # every file against the manifest) and fails the pod, with the reason in its termination
    # message, when it cannot; the credentials reach this step only, not the server.
    spec["initContainers"] = [
        {
            "name": "fetch-artifact",
            "image": tools_image,
            "command": ["python", "-m", "modelops.storage", "fetch"],
            "args": [
                "--uri",
                mv.spec.artifact.uri,
                "--digest",
                mv.spec.artifact.digest,
                "--dest",
                ARTIFACT_MOUNT,
            ],
            "env": builders.storage_env(model.spec.storage),
            "volumeMounts": [{"name": "artifacts", "mountPath": ARTIFACT_MOUNT}],
            "securityContext": builders.CONTAINER_SECURITY_CONTEXT,
            "resources": {k: dict(v) for k, v in FETCH_RESOURCES.items()},
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
    ]
    spec["volumes"] = [
        {"name": "artifacts", "emptyDir": {"sizeLimit": ARTIFACT_VOLUME_LIMIT}},
        builders.SCRATCH_VOLUME,
    ]
    return spec


def build_version_service(model: api.Model, mv: api.ModelVersion) -> Obj:
    """The Service that reaches one version only (tests, shadow traffic, drift scraping)."""
    name, version = _name(model), mv.spec.version
    return _service(
        model,
        naming.serving_name(name, version),
        _version_selector(name, version),
        builders.child_labels(name, version=version),
    )


def build_stable_service(model: api.Model) -> Obj:
    """The Service clients use: every serving pod of the model, production and canary."""
    name = _name(model)
    selector = {labels.MODEL: name, "app.kubernetes.io/component": COMPONENT}
    return _service(model, naming.stable_service_name(name), selector, builders.child_labels(name))


def build_retire_job(
    model: api.Model,
    mv: api.ModelVersion,
    reason: str,
    *,
    delete_artifacts: bool,
    job: RetireJob = DEFAULT_RETIRE_JOB,
) -> Obj:
    """A one-off Job that marks a retired version's artifact directory (the server refuses to
    load a directory with a RETIRED marker) and, only when the retention policy says so,
    deletes the artifact files; for an artifact in S3 the marker and the deletion are objects
    under its prefix (``python -m modelops.storage retire``)."""
    name, version = _name(model), mv.spec.version
    uri = mv.spec.artifact.uri
    location = builders.parse_pvc_uri(uri)
    container: Obj = {
        "name": "retire",
        "image": job.image,
        "securityContext": builders.CONTAINER_SECURITY_CONTEXT,
        "resources": {k: dict(v) for k, v in job.resources.items()},
    }
    volumes: list[Obj] = []
    what = ["--reason", reason, "--version", version]
    if delete_artifacts:
        what.append("--delete-artifacts")
    if builders.is_s3_uri(uri):
        container["command"] = ["python", "-m", "modelops.storage", "retire"]
        container["args"] = ["--uri", uri, *what]
        container["env"] = builders.storage_env(model.spec.storage)
    else:
        container["command"] = ["python", "-m", "modelops.runtimes.server.retire"]
        container["args"] = [
            "--dir",
            f"{ARTIFACT_MOUNT}/{location.path}" if location else "",
            *what,
        ]
        container["volumeMounts"] = [{"name": "artifacts", "mountPath": ARTIFACT_MOUNT}]
        if location is not None:
            volumes.append(builders.pvc_volume("artifacts", location.claim, read_only=False))
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": builders.POD_SECURITY_CONTEXT,
        "containers": [container],
        "volumes": volumes,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": naming.fit(f"retire-{naming.model_version_name(name, version)}", 63),
            "namespace": model.metadata.namespace,
            "labels": builders.child_labels(name, version=version),
            "ownerReferences": [builders.owner_reference(model)],
        },
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": job.active_deadline_seconds,
            "ttlSecondsAfterFinished": RETIRE_JOB_TTL,
            "template": {"metadata": {"labels": builders.child_labels(name)}, "spec": pod_spec},
        },
    }


def _service(model: api.Model, svc: str, selector: dict[str, str], lbls: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": svc,
            "namespace": model.metadata.namespace,
            "labels": lbls,
            "ownerReferences": [builders.owner_reference(model)],
        },
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _version_selector(model: str, version: str) -> dict[str, str]:
    return {labels.MODEL: model, labels.VERSION: version, "app.kubernetes.io/component": COMPONENT}


def _notify(model: api.Model, entry: api.HistoryEntry) -> Notification:
    return Notification(
        type=f"dev.modelops.model.{entry.kind.value.lower()}",
        subject=f"{model.metadata.namespace}/{_name(model)}",
        data={"model": _name(model), "namespace": model.metadata.namespace, **entry.to_dict()},
    )


def _notify_version(
    model: api.Model, what: str, version: str, verdict: Verdict | None
) -> Notification:
    data: Obj = {"model": _name(model), "namespace": model.metadata.namespace, "version": version}
    if verdict is not None:
        data |= {
            "quarantine": verdict.taint.name,
            verdict.taint.what + "Digest": verdict.taint.digest,
            "via": verdict.via,
            "reason": verdict.taint.reason,
        }
    return Notification(
        type=f"dev.modelops.modelversion.{what}",
        subject=f"{model.metadata.namespace}/{_name(model)}",
        data=data,
    )


def _rollout_failed(mv: api.ModelVersion) -> bool:
    ready = conditions.find_condition(mv.status.conditions, "Ready")
    return ready is not None and ready.reason == "RolloutFailed"


def _created(mv: api.ModelVersion) -> datetime:
    created = mv.metadata.creation_timestamp
    assert created is not None, "objects read from the API server have a creationTimestamp"
    return created


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _name(obj: api.Model) -> str:
    assert obj.metadata.name is not None
    return obj.metadata.name


def _ref(obj: api.Model | api.ModelVersion) -> ObjectRef:
    return ObjectRef(
        obj.api_version, obj.kind, obj.metadata.namespace or "", obj.metadata.name or ""
    )
