"""Gather what each reconcile decides on: the reads, in one place per kind."""

from __future__ import annotations

from pydantic import ValidationError

from modelops import api
from modelops.core import naming, trainingrun
from modelops.core.plan import Obj, ObjectRef
from modelops.k8s.client import Kube

Live = dict[ObjectRef, Obj]


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
    pods = kube.list("v1", "Pod", ns, labels=trainingrun.job_selector(name)) if job else []
    model, _ = get_model(kube, ns, run.spec.model_ref.name)
    version = None
    if run.status.phase not in (api.TrainingRunPhase.SUCCEEDED, api.TrainingRunPhase.FAILED):
        version = kube.get(
            api.API_VERSION,
            "ModelVersion",
            ns,
            naming.model_version_name(run.spec.model_ref.name, trainingrun.version_of(run)),
        )
    observed = trainingrun.Observed(job=job, pods=pods, model=model, version=version)
    return observed, _index(raw, job, version)
