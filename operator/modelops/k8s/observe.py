"""Gather what each reconcile decides on: the reads, in one place per kind."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from modelops import api
from modelops.core import labels, naming, quarantine, trainingrun
from modelops.core import model as model_core
from modelops.core.plan import Obj, ObjectRef
from modelops.k8s.client import Kube

Live = dict[ObjectRef, Obj]
M = TypeVar("M", bound=BaseModel)


def _index(*objs: Obj | None) -> Live:
    return {ObjectRef.of(o): o for o in objs if o is not None}


def get_model(kube: Kube, namespace: str, name: str) -> tuple[api.Model | None, Obj | None]:
    """The Model parsed, and as read; (None, None) when it does not exist or does not parse
    (the Model's own reconcile reports that)."""
    raw = kube.get(api.API_VERSION, "Model", namespace, name)
    if raw is None:
        return None, None
    try:
        return api.Model.model_validate(raw), raw
    except ValidationError:
        return None, raw


def observe_trainingrun(
    kube: Kube, run: api.TrainingRun, raw: Obj
) -> tuple[trainingrun.Observed, Live]:
    """The run's Job and pods, its Model and the ModelVersion it registers."""
    ns, name = run.metadata.namespace or "", run.metadata.name or ""
    job = kube.get("batch/v1", "Job", ns, naming.job_name(name))
    active = run.status.phase not in (api.TrainingRunPhase.SUCCEEDED, api.TrainingRunPhase.FAILED)
    if job is None and run.status.job_name and active:
        # "The Job is gone" fails the run for good: never decide that on a cache that may lag.
        job = kube.get("batch/v1", "Job", ns, naming.job_name(name), live=True)
    taken = job is not None and not _owned_by(job, run)
    if taken:
        job = None  # someone else's (or an earlier run's of the same name): never adopted
    pods: list[Obj] = []
    if job is not None and active:
        selector = {**trainingrun.job_selector(name), labels.MODEL: run.spec.model_ref.name}
        pods = kube.list("v1", "Pod", ns, labels=selector)
        finished = _finished(job)
        if finished and not any(p.get("status", {}).get("phase") == finished for p in pods):
            # The result is read from a finished pod, and a lagging cache would make a success
            # look like a run that left no result: when the cache shows no pod that finished
            # the way the Job did, the pods are read live.
            pods = kube.list("v1", "Pod", ns, labels=selector, live=True)
    model, _ = get_model(kube, ns, run.spec.model_ref.name)
    version = None
    if active:
        version = kube.get(
            api.API_VERSION,
            "ModelVersion",
            ns,
            naming.model_version_name(run.spec.model_ref.name, trainingrun.version_of(run)),
        )
    observed = trainingrun.Observed(
        job=job, pods=pods, model=model, version=version, job_name_taken=taken
    )
    return observed, _index(raw, job, version)


def parse_all(raws: list[Obj], model: type[M]) -> list[M]:
    """The objects that parse (admission refuses the others; a stray one is skipped)."""
    out = []
    for raw in raws:
        try:
            out.append(model.model_validate(raw))
        except ValidationError:
            continue
    return out


def taints(kube: Kube) -> tuple[quarantine.Taint, ...]:
    """The Quarantines in force (cluster-scoped, from the cache)."""
    return quarantine.taints(
        parse_all(kube.list(api.API_VERSION, "Quarantine", None), api.Quarantine)
    )


def model_versions(kube: Kube, namespace: str | None, model: str | None) -> list[api.ModelVersion]:
    """The versions of one Model (by the cache's index), or of every Model (``model`` None) in
    ``namespace`` (None: every namespace watched)."""
    return parse_all(
        kube.list(api.API_VERSION, "ModelVersion", namespace, model=model), api.ModelVersion
    )


def observe_model(kube: Kube, model: api.Model, raw: Obj) -> tuple[model_core.Observed, Live]:
    """The Model's versions, and the Deployments, pods and Services that serve them."""
    ns, name = model.metadata.namespace or "", model.metadata.name or ""
    raw_versions = kube.list(api.API_VERSION, "ModelVersion", ns, model=name)
    versions = parse_all(raw_versions, api.ModelVersion)
    selector = {labels.MODEL: name, "app.kubernetes.io/component": model_core.COMPONENT}
    deployments = {
        d["metadata"]["labels"][labels.VERSION]: d
        for d in kube.list("apps/v1", "Deployment", ns, labels=selector)
        if _owned_by(d, model)
    }
    pods: dict[str, list[Obj]] = {}
    if deployments:
        for pod in kube.list("v1", "Pod", ns, labels=selector):
            version = pod["metadata"].get("labels", {}).get(labels.VERSION)
            if version:
                pods.setdefault(version, []).append(pod)
    services = {
        s["metadata"]["name"]: s
        for s in kube.list("v1", "Service", ns, labels={labels.MODEL: name})
        if _owned_by(s, model)
    }
    observed = model_core.Observed(
        versions=versions,
        deployments=deployments,
        pods=pods,
        services=services,
        taints=taints(kube),
    )
    return observed, _index(raw, *raw_versions, *deployments.values(), *services.values())


def _finished(job: Obj) -> str | None:
    """The pod phase a finished Job's outcome comes from (Succeeded, Failed), or None."""
    done = {
        c.get("type")
        for c in job.get("status", {}).get("conditions", [])
        if c.get("status") == "True"
    }
    if "Complete" in done or "SuccessCriteriaMet" in done:
        return "Succeeded"
    if "Failed" in done or "FailureTarget" in done:
        return "Failed"
    return None


def _owned_by(obj: Obj, owner: api.Model | api.TrainingRun) -> bool:
    """Whether ``owner`` created ``obj``: only such objects are updated or deleted (a name
    that someone else's object holds is never taken over)."""
    return any(
        ref.get("uid") == owner.metadata.uid for ref in obj["metadata"].get("ownerReferences", [])
    )
