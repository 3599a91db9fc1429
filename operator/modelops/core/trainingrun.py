"""TrainingRun decisions: observed Job and pods in, Job / ModelVersion / status / events out.

The life of a run::

    (new) ──create Job──▶ Pending ──pod runs──▶ Running ──Job Complete, result valid──▶ Succeeded
                 │            ▲  │                 │
      spec.suspend│   resume  │  ▼                 └──Job Failed / invalid result──────▶ Failed
                 └────────▶ Suspended

Succeeded and Failed are final: a finished run is a record and is never re-run. Decisions that
need care:

- **The Job was deleted by hand while the run was active** (status.jobName is set, the run is
  not finished, the Job is gone): the run fails with reason ``JobDeleted``. Deleting a Job is
  how people cancel work in Kubernetes; silently recreating it would restart a training the
  user meant to stop. Start a new TrainingRun to train again.
- **Registration** happens once: the ModelVersion's name is derived from the Model and version,
  so a repeated reconcile (an operator restarted mid-way) finds the version it created and
  never makes a second one. A version of that name created by *another* run is a conflict and
  fails this run rather than overwrite a record.
- **``ttlSecondsAfterFinished`` is set only once the result is recorded.** The Job is created
  without it, so the TTL controller cannot delete the Job and its pods (which hold the
  trainer's termination message) before the operator has read them; once the run's status is
  final the Job gets the TTL the user asked for. A finished Job cleaned up afterwards changes
  nothing: the run is final.
- **A Job of that name that this run did not create** (a leftover of an earlier run of the same
  name, someone else's Job) is never adopted, updated or deleted: the run waits with reason
  ``JobNameTaken`` until the name is free.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import ValidationError

from modelops import api
from modelops.api import artifact
from modelops.core import builders, conditions, labels, naming
from modelops.core.plan import EventSpec, Obj, ObjectRef, Plan, StatusPatch

TRAINER_CONTAINER = "trainer"
DATASET_MOUNT = "/data"
OUTPUT_MOUNT = "/output"
S3_OUTPUT_DIR = "/tmp/artifact"
S3_DATASET_DIR = "/tmp/dataset"
WAITING_FOR_MODEL_REQUEUE = 30.0
NAME_TAKEN_REQUEUE = 15.0
"""How often a run whose Job name is taken looks again (a Job without our label sends us no
event when it goes)."""

Phase = api.TrainingRunPhase
_TRUE, _FALSE, _UNKNOWN = (
    api.ConditionStatus.TRUE,
    api.ConditionStatus.FALSE,
    api.ConditionStatus.UNKNOWN,
)


@dataclass(frozen=True)
class Observed:
    """What the reconcile saw of the run's world.

    ``job``: the run's Job or None; ``pods``: that Job's pods; ``model``: the Model the run
    belongs to, or None if it does not exist (yet); ``version``: the ModelVersion this run
    registers (by its derived name), or None; ``job_name_taken``: a Job of the run's Job name
    exists that this run does not own (then ``job`` is None).
    """

    job: Obj | None
    pods: Sequence[Obj]
    model: api.Model | None
    version: Obj | None
    job_name_taken: bool = False


def version_of(run: api.TrainingRun) -> str:
    """The version name a run registers: ``spec.version``, else derived from the run's name."""
    return run.spec.version or naming.default_version(run.spec.model_ref.name, _name(run))


def output_location(run: api.TrainingRun) -> builders.StorageLocation | None:
    """Where the run's artifact directory is written on its claim; None for an S3 output."""
    pvc = run.spec.output.pvc
    if pvc is None:
        return None
    return builders.StorageLocation(
        pvc.claim_name,
        (pvc.path or naming.artifact_path(run.spec.model_ref.name, _name(run))).strip("/"),
    )


def output_uri(run: api.TrainingRun) -> str:
    """The URI of the run's artifact: ``pvc://claim/path`` or ``s3://bucket/prefix/model/run``."""
    out = output_location(run)
    if out is not None:
        return out.uri()
    assert run.spec.output.s3 is not None  # Output has exactly one of pvc and s3
    path = naming.artifact_path(run.spec.model_ref.name, _name(run))
    return f"{run.spec.output.s3.uri.rstrip('/')}/{path}"


def build_job(run: api.TrainingRun, *, finished: bool = False) -> Obj:
    """The Job that runs the training, with restricted pod security and the trainer contract
    (docs/contracts.md) in its environment. ``ttlSecondsAfterFinished`` is included only for a
    run whose result is already recorded (``finished``). An S3 dataset is downloaded and an S3
    output uploaded by the trainer itself, with the storage settings in its environment."""
    spec, name = run.spec, _name(run)
    model = spec.model_ref.name
    out = output_location(run)
    volumes: list[Obj] = [builders.SCRATCH_VOLUME]
    mounts: list[Obj] = [builders.SCRATCH_MOUNT]
    if out is not None:
        volumes.insert(0, builders.pvc_volume("output", out.claim, read_only=False))
        mounts.insert(0, {"name": "output", "mountPath": OUTPUT_MOUNT})
    env: list[Obj] = [
        {"name": "MODELOPS_TRAINER_DATASET_URI", "value": spec.dataset.uri},
        {
            "name": "MODELOPS_TRAINER_OUTPUT_DIR",
            # An S3 artifact is written to the scratch volume first, then uploaded.
            "value": f"{OUTPUT_MOUNT}/{out.path}" if out is not None else S3_OUTPUT_DIR,
        },
        {"name": "MODELOPS_TRAINER_OUTPUT_URI", "value": output_uri(run)},
    ]
    dataset = builders.parse_pvc_uri(spec.dataset.uri)
    if dataset is not None:
        if out is not None and dataset.claim == out.claim:
            # One claim mounted once: the dataset is read from the output mount.
            env.append(
                {"name": "MODELOPS_TRAINER_DATASET", "value": f"{OUTPUT_MOUNT}/{dataset.path}"}
            )
        else:
            volumes.append(builders.pvc_volume("dataset", dataset.claim, read_only=True))
            mounts.append({"name": "dataset", "mountPath": DATASET_MOUNT, "readOnly": True})
            env.append(
                {"name": "MODELOPS_TRAINER_DATASET", "value": f"{DATASET_MOUNT}/{dataset.path}"}
            )
    elif spec.dataset.uri.startswith("file://"):
        env.append(
            {"name": "MODELOPS_TRAINER_DATASET", "value": spec.dataset.uri.removeprefix("file://")}
        )
    elif builders.is_s3_uri(spec.dataset.uri):
        # The trainer downloads MODELOPS_TRAINER_DATASET_URI to this file before reading it.
        file_name = spec.dataset.uri.rstrip("/").rsplit("/", 1)[-1]
        env.append({"name": "MODELOPS_TRAINER_DATASET", "value": f"{S3_DATASET_DIR}/{file_name}"})
    if out is None or builders.is_s3_uri(spec.dataset.uri):
        env.extend(builders.storage_env(spec.storage))
    if spec.dataset.digest:
        # The trainer refuses data whose sha256 differs from the declared one.
        env.append({"name": "MODELOPS_TRAINER_DATASET_DIGEST", "value": spec.dataset.digest})
    if spec.dataset.data_schema is not None:
        env.append(
            {
                "name": "MODELOPS_TRAINER_SCHEMA",
                "value": json.dumps(spec.dataset.data_schema.to_dict(), sort_keys=True),
            }
        )
    if spec.hyperparameters:
        env.append(
            {
                "name": "MODELOPS_TRAINER_HYPERPARAMETERS",
                "value": json.dumps(spec.hyperparameters, sort_keys=True),
            }
        )
    env.extend({"name": e.name, "value": e.value} for e in spec.env or ())

    container: Obj = {
        "name": TRAINER_CONTAINER,
        "image": spec.image,
        "env": env,
        "volumeMounts": mounts,
        "securityContext": builders.CONTAINER_SECURITY_CONTEXT,
        "terminationMessagePath": "/dev/termination-log",
        # A trainer that dies before writing its result still leaves its last log lines.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.command:
        container["command"] = list(spec.command)
    if spec.args:
        container["args"] = list(spec.args)
    if spec.resources is not None:
        container["resources"] = spec.resources.to_dict()
    pod_labels = builders.child_labels(model, trainingrun=name)
    pod_spec: Obj = {
        "restartPolicy": "Never",
        # The trainer needs no API access: no token in the pod.
        "automountServiceAccountToken": False,
        "securityContext": builders.POD_SECURITY_CONTEXT,
        "containers": [container],
        "volumes": volumes,
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [t.to_dict() for t in spec.tolerations]
    job_spec: Obj = {
        "backoffLimit": spec.backoff_limit,
        "suspend": spec.suspend,
        "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if finished and spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": naming.job_name(name),
            "namespace": run.metadata.namespace,
            "labels": builders.child_labels(model, trainingrun=name),
            "ownerReferences": [builders.owner_reference(run)],
        },
        "spec": job_spec,
    }


def build_version(run: api.TrainingRun, result: api.TrainingRunResult, model: api.Model) -> Obj:
    """The ModelVersion registered from a successful run, owned by its Model so that it outlives
    the run (and its Job) and goes only with the Model itself."""
    spec, name = run.spec, _name(run)
    version = version_of(run)
    dataset = result.dataset or api.DatasetReference(
        uri=spec.dataset.uri, digest=spec.dataset.digest
    )
    provenance: Obj = {
        "trainingRun": {"name": name, "uid": run.metadata.uid},
        "image": spec.image,
        "dataset": dataset.to_dict(),
    }
    if result.code is not None:
        provenance["code"] = result.code.to_dict()
    if spec.hyperparameters:
        provenance["parameters"] = spec.hyperparameters
    if model.status.production_version:
        provenance["parentVersion"] = model.status.production_version
    mv_spec: Obj = {
        "modelRef": {"name": spec.model_ref.name},
        "version": version,
        "artifact": result.artifact.to_dict(),
        "provenance": provenance,
    }
    if result.metrics:
        mv_spec["metrics"] = dict(result.metrics)
    if result.reference_stats:
        mv_spec["referenceStats"] = result.reference_stats
    # Lineage as labels, so a selector answers "which versions were trained on X"
    # across namespaces (docs/governance.md).
    lineage: dict[str, str] = {"version": version, "trainingrun": name}
    if dataset.digest:
        lineage["dataset-digest"] = labels.digest_value(dataset.digest)
    image_digest = labels.image_digest(spec.image)
    if image_digest:
        lineage["image-digest"] = labels.digest_value(image_digest)
    if "parentVersion" in provenance:
        lineage["parent-version"] = provenance["parentVersion"]
    return {
        "apiVersion": api.API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "name": naming.model_version_name(spec.model_ref.name, version),
            "namespace": run.metadata.namespace,
            "labels": builders.child_labels(spec.model_ref.name, **lineage),
            "ownerReferences": [builders.owner_reference(model, controller=False)],
        },
        "spec": mv_spec,
    }


@dataclass(frozen=True)
class _Outcome:
    """The phase the observations imply, before it is turned into status and events."""

    phase: Phase
    reason: str
    message: str
    result: api.TrainingRunResult | None = None


def reconcile(run: api.TrainingRun, observed: Observed, *, now: datetime) -> Plan:
    """Decide what to do about ``run`` given what was observed."""
    status = run.status
    if status.phase in (Phase.SUCCEEDED, Phase.FAILED):
        return _finalised(run, observed, now)
    if observed.job_name_taken:
        name = naming.job_name(_name(run))
        message = (
            f"a Job named {name} exists that this run did not create; it is left alone and "
            "the run waits until the name is free"
        )
        reported = any(
            c.type == "Succeeded" and c.reason == "JobNameTaken" for c in status.conditions
        )
        return _progress(
            run,
            Phase.PENDING,
            "JobNameTaken",
            message,
            now,
            event=None if reported else EventSpec("Warning", "JobNameTaken", message),
            requeue=NAME_TAKEN_REQUEUE,
        )
    job = observed.job
    if job is None:
        if status.job_name:
            return _finish(
                run,
                observed,
                _Outcome(
                    Phase.FAILED,
                    "JobDeleted",
                    f"Job {status.job_name} was deleted while the run was active; "
                    "create a new TrainingRun to train again",
                ),
                now,
            )
        # Only the Job: the status that records it, and its Event, are written by the next
        # reconcile (below), which the queue runs after the new runs waiting behind this one
        # (``handlers.workqueue``), so a burst of runs gets its Jobs first. Crash-safe by the
        # same path: a Job this run owns that no status records yet is recorded there.
        return Plan(apply=(build_job(run),), requeue_after=0.0)
    if not status.job_name:
        # The Job exists but no status says so yet: the reconcile that created it left that
        # to this one, or the operator died in between. Record it now, and announce it with
        # the status that records it.
        name = job["metadata"]["name"]
        run = run.model_copy(update={"status": status.model_copy(update={"job_name": name})})
        plan = _observed_job(run, observed, job, now)
        created = EventSpec("Normal", "JobCreated", f"Created Job {name}")
        return replace(plan, events=(created, *plan.events))
    return _observed_job(run, observed, job, now)


def _observed_job(run: api.TrainingRun, observed: Observed, job: Obj, now: datetime) -> Plan:
    outcome = _job_outcome(run, job, observed.pods)
    if outcome.phase is Phase.SUCCEEDED:
        return _register(run, observed, outcome, now)
    if outcome.phase is Phase.FAILED:
        return _finish(run, observed, outcome, now)
    apply: tuple[Obj, ...] = ()
    if bool(job.get("spec", {}).get("suspend")) != run.spec.suspend:
        apply = (build_job(run),)
    return _progress(
        run,
        outcome.phase,
        outcome.reason,
        outcome.message,
        now,
        apply=apply,
        job_name=job["metadata"]["name"],
        start=_job_time(job, "startTime"),
    )


def _job_outcome(run: api.TrainingRun, job: Obj, pods: Sequence[Obj]) -> _Outcome:
    jstatus = job.get("status", {})
    conds = {c["type"]: c for c in jstatus.get("conditions", []) if c.get("status") == "True"}
    if "Complete" in conds:
        message = _termination_message(pods, "Succeeded")
        if message is None:
            return _Outcome(
                Phase.FAILED,
                "InvalidResult",
                "the trainer succeeded but left no result in its termination message",
            )
        try:
            parsed = artifact.parse_termination_message(message)
        except (ValueError, ValidationError) as e:
            return _Outcome(Phase.FAILED, "InvalidResult", f"invalid training result: {e}")
        if isinstance(parsed, artifact.TrainingFailure):
            return _Outcome(Phase.FAILED, "TrainerFailed", parsed.error)
        try:
            result = api.TrainingRunResult.model_validate(
                parsed.model_dump(mode="json", by_alias=True)
            )
        except ValidationError as e:
            return _Outcome(Phase.FAILED, "InvalidResult", f"invalid training result: {e}")
        return _Outcome(Phase.SUCCEEDED, "Completed", "Training completed", result)
    failed = conds.get("Failed") or conds.get("FailureTarget")
    if failed is not None:
        reason = failed.get("reason") or "JobFailed"
        message = failed.get("message") or "the training Job failed"
        trainer = _termination_message(pods, "Failed")
        if trainer:
            try:
                parsed = artifact.parse_termination_message(trainer)
                if isinstance(parsed, artifact.TrainingFailure):
                    message = parsed.error
                    reason = "TrainerFailed" if reason == "BackoffLimitExceeded" else reason
            except (ValueError, ValidationError):
                message = f"{message}: {trainer.strip()[-1024:]}"
        return _Outcome(Phase.FAILED, reason, message)
    if jstatus.get("active", 0) > 0 and any(
        p.get("status", {}).get("phase") == "Running" for p in pods
    ):
        return _Outcome(Phase.RUNNING, "Running", "The training pod is running")
    if job.get("spec", {}).get("suspend"):
        return _Outcome(Phase.SUSPENDED, "Suspended", "The run is suspended (spec.suspend)")
    stuck = _stuck_container(pods)
    if stuck is not None:
        return _Outcome(Phase.PENDING, *stuck)
    return _Outcome(Phase.PENDING, "Pending", "Waiting for the training pod to start")


# Waiting reasons of a container that will not start by waiting a little: the kubelet retries
# (the Job's activeDeadlineSeconds ends the run), but the user has something to fix.
_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff"})
_STUCK_REASONS = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}
)


def _stuck_container(pods: Sequence[Obj]) -> tuple[str, str] | None:
    """``(reason, message)`` when a container of the newest pod waits for something that needs
    the user (an image that cannot be pulled, a missing Secret or ConfigMap). Init containers
    too: a mutating webhook, such as a service mesh's or a secrets agent's, may add them."""
    newest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)
    for cs in builders.container_statuses(newest) if newest is not None else []:
        waiting = cs.get("state", {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in _PULL_REASONS:
            # One reason and message for both: the kubelet alternates between them, and the
            # status must not be rewritten at every retry.
            return (
                "ImagePullBackOff",
                f"container {cs.get('name')} cannot pull image {cs.get('image')}; the "
                "kubelet keeps retrying until spec.activeDeadlineSeconds",
            )
        if reason in _STUCK_REASONS:
            return reason, f"container {cs.get('name')} cannot start: {waiting.get('message', '')}"
    return None


def _termination_message(pods: Sequence[Obj], phase: str) -> str | None:
    """The trainer container's termination message of the newest pod in ``phase``."""
    candidates = sorted(
        (p for p in pods if p.get("status", {}).get("phase") == phase),
        key=lambda p: p["metadata"].get("creationTimestamp", ""),
    )
    for pod in reversed(candidates):
        for cs in pod.get("status", {}).get("containerStatuses", []):
            if cs.get("name") != TRAINER_CONTAINER:
                continue
            message = cs.get("state", {}).get("terminated", {}).get("message")
            if message:
                return str(message)
    return None


def _register(run: api.TrainingRun, observed: Observed, outcome: _Outcome, now: datetime) -> Plan:
    assert outcome.result is not None
    if not run.spec.register_version:
        return _finish(run, observed, outcome, now)
    if observed.model is None:
        return _progress(
            run,
            Phase.RUNNING,
            "WaitingForModel",
            f"Training finished; waiting for Model {run.spec.model_ref.name} to exist to "
            "register the version",
            now,
            job_name=run.status.job_name,
            requeue=WAITING_FOR_MODEL_REQUEUE,
        )
    desired = build_version(run, outcome.result, observed.model)
    existing = observed.version
    if existing is not None:
        owner_run = existing.get("spec", {}).get("provenance", {}).get("trainingRun", {})
        if owner_run.get("uid") != run.metadata.uid:
            return _finish(
                run,
                observed,
                _Outcome(
                    Phase.FAILED,
                    "VersionConflict",
                    f"ModelVersion {desired['metadata']['name']} already exists and was not "
                    "registered by this run; set spec.version to a new name",
                ),
                now,
            )
    plan = _finish(run, observed, outcome, now, version_name=desired["metadata"]["name"])
    events = plan.events
    # Announced with the status that records it, not with the create: an operator that died
    # between the two still says it (the record it finds is its own, checked above).
    if run.status.model_version is None:
        events = (
            EventSpec(
                "Normal", "Registered", f"Registered ModelVersion {desired['metadata']['name']}"
            ),
            *events,
        )
    return Plan(create=(desired,), status=plan.status, events=events)


def _finish(
    run: api.TrainingRun,
    observed: Observed,
    outcome: _Outcome,
    now: datetime,
    *,
    version_name: str | None = None,
) -> Plan:
    ok = outcome.phase is Phase.SUCCEEDED
    status = run.status.model_copy(deep=True)
    status.phase = outcome.phase
    status.completion_time = (
        status.completion_time
        or (_job_time(observed.job, "completionTime") if ok and observed.job else None)
        or now
    )
    status.start_time = status.start_time or (
        _job_time(observed.job, "startTime") if observed.job else None
    )
    status.result = outcome.result
    status.model_version = version_name
    status.failure = None if ok else api.Failure(reason=outcome.reason, message=outcome.message)
    gen = run.metadata.generation or 0
    if ok:
        reason = "Registered" if version_name else "Completed"
        message = f"Registered ModelVersion {version_name}" if version_name else outcome.message
    else:
        reason, message = outcome.reason, outcome.message
    status.conditions = conditions.set_condition(
        status.conditions,
        "Succeeded",
        _TRUE if ok else _FALSE,
        reason=reason,
        message=message,
        observed_generation=gen,
        now=now,
    )
    status.conditions = conditions.set_condition(
        status.conditions,
        "Running",
        _FALSE,
        reason=outcome.reason,
        message="The run has finished",
        observed_generation=gen,
        now=now,
    )
    status.conditions = conditions.set_kstatus(
        status.conditions,
        reconciling=None,
        stalled=None if ok else (reason, message),
        observed_generation=gen,
        now=now,
    )
    status.observed_generation = gen
    event = (
        EventSpec("Normal", "Succeeded", outcome.message)
        if ok
        else EventSpec("Warning", outcome.reason, outcome.message)
    )
    return Plan(status=(StatusPatch(_ref(run), status.to_dict()),), events=(event,))


def _progress(
    run: api.TrainingRun,
    phase: Phase,
    reason: str,
    message: str,
    now: datetime,
    *,
    apply: tuple[Obj, ...] = (),
    job_name: str | None = None,
    start: datetime | None = None,
    event: EventSpec | None = None,
    requeue: float | None = None,
) -> Plan:
    status = run.status.model_copy(deep=True)
    gen = run.metadata.generation or 0
    changed_phase = status.phase != phase
    status.phase = phase
    status.job_name = job_name or status.job_name
    status.start_time = status.start_time or start
    status.conditions = conditions.set_condition(
        status.conditions,
        "Succeeded",
        _UNKNOWN,
        reason=reason,
        message=message,
        observed_generation=gen,
        now=now,
    )
    status.conditions = conditions.set_condition(
        status.conditions,
        "Running",
        _TRUE if phase is Phase.RUNNING else _FALSE,
        reason=reason,
        message=message,
        observed_generation=gen,
        now=now,
    )
    active = phase in (Phase.PENDING, Phase.RUNNING)
    status.conditions = conditions.set_kstatus(
        status.conditions,
        reconciling=(reason, message) if active else None,
        stalled=None,
        observed_generation=gen,
        now=now,
    )
    status.observed_generation = gen
    events: tuple[EventSpec, ...] = ()
    if event is not None:
        events = (event,)
    elif changed_phase and phase in (Phase.RUNNING, Phase.SUSPENDED):
        events = (EventSpec("Normal", phase.value, message),)
    return Plan(
        apply=apply,
        status=(StatusPatch(_ref(run), status.to_dict()),),
        events=events,
        requeue_after=requeue,
    )


def _finalised(run: api.TrainingRun, observed: Observed, now: datetime) -> Plan:
    """A finished run keeps observedGeneration current (e.g. after a suspend edit), and its Job
    gets ``ttlSecondsAfterFinished`` now that the result is safely in the status."""
    gen = run.metadata.generation
    apply: tuple[Obj, ...] = ()
    if observed.job is not None and run.spec.ttl_seconds_after_finished is not None:
        # The suspend the Job already has: a finished Job is not resumed or suspended again.
        job = build_job(run, finished=True)
        job["spec"]["suspend"] = bool(observed.job.get("spec", {}).get("suspend"))
        apply = (job,)
    if run.status.observed_generation == gen:
        return Plan(apply=apply)
    status = run.status.model_copy(deep=True)
    status.observed_generation = gen
    status.conditions = [
        c.model_copy(update={"observed_generation": gen}) for c in status.conditions
    ]
    return Plan(apply=apply, status=(StatusPatch(_ref(run), status.to_dict()),))


def _job_time(job: Obj | None, field: str) -> datetime | None:
    value = (job or {}).get("status", {}).get(field)
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _name(run: api.TrainingRun) -> str:
    assert run.metadata.name is not None
    return run.metadata.name


def _ref(run: api.TrainingRun) -> ObjectRef:
    return ObjectRef(run.api_version, run.kind, run.metadata.namespace or "", _name(run))


def job_selector(run_name: str) -> dict[str, str]:
    """The label selector of a run's Job and its pods."""
    return {labels.TRAININGRUN: run_name}
