"""TrainingRun decisions, table-driven over observed Job and pod states. No cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from modelops import api
from modelops.core import labels, trainingrun
from modelops.core.plan import Plan

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
RUN_UID = "11111111-2222-3333-4444-555555555555"
RESULT = {
    "artifact": {
        "uri": "pvc://models/iris/iris-7",
        "digest": DIGEST,
        "format": "modelops-linear/v1",
    },
    "metrics": {"accuracy": 0.97},
    "referenceStats": "pvc://models/iris/iris-7/reference.json",
    "dataset": {"uri": "pvc://datasets/iris.csv", "digest": "sha256:" + "cd" * 32},
    "code": {"revision": "0.1.0"},
}


def make_run(**status: Any) -> api.TrainingRun:
    return api.TrainingRun.model_validate(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": "iris-7", "namespace": "ml", "uid": RUN_UID, "generation": 1},
            "spec": {
                "modelRef": {"name": "iris"},
                "image": "ghcr.io/modelops/trainer:0.1.0",
                "command": ["python", "-m", "modelops.runtimes.trainer"],
                "dataset": {"uri": "pvc://datasets/iris.csv"},
                "hyperparameters": {"epochs": 200},
                "output": {"pvc": {"claimName": "models"}},
                "activeDeadlineSeconds": 600,
            },
            "status": status,
        }
    )


def make_model() -> api.Model:
    return api.Model.model_validate(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris", "namespace": "ml", "uid": "model-uid", "generation": 1},
            "spec": {},
            "status": {"productionVersion": "6"},
        }
    )


def job(
    *, conditions: tuple[tuple[str, str], ...] = (), active: int = 0, suspend: bool = False
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "iris-7", "namespace": "ml"},
        "spec": {"suspend": suspend},
        "status": {
            "active": active,
            "startTime": "2026-11-28T11:50:00Z",
            "completionTime": "2026-11-28T11:55:00Z" if conditions else None,
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": f"{r} msg"}
                for t, r in conditions
            ],
        },
    }


def pod(phase: str, message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if phase == "Running" else {}
    if phase in ("Succeeded", "Failed"):
        state = {
            "terminated": {"exitCode": 0 if phase == "Succeeded" else 2, "message": message or ""}
        }
    return {
        "metadata": {"name": "iris-7-abc", "creationTimestamp": "2026-11-28T11:50:00Z"},
        "status": {"phase": phase, "containerStatuses": [{"name": "trainer", "state": state}]},
    }


def observed(
    job_obj: dict[str, Any] | None = None,
    pods: tuple[dict[str, Any], ...] = (),
    model: api.Model | None = None,
    version: dict[str, Any] | None = None,
) -> trainingrun.Observed:
    return trainingrun.Observed(job=job_obj, pods=pods, model=model, version=version)


def status_of(plan: Plan) -> dict[str, Any]:
    (patch,) = plan.status
    return patch.status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_new_run_creates_one_job_with_restricted_security() -> None:
    plan = trainingrun.reconcile(make_run(), observed(), now=NOW)
    (job_obj,) = plan.apply
    assert job_obj["metadata"]["name"] == "iris-7"
    assert job_obj["metadata"]["ownerReferences"][0]["uid"] == RUN_UID
    assert job_obj["metadata"]["labels"]["modelops.dev/trainingrun"] == "iris-7"
    assert job_obj["metadata"]["labels"]["modelops.dev/model"] == "iris"
    spec = job_obj["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod_spec["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MODELOPS_TRAINER_DATASET"] == "/data/iris.csv"
    assert env["MODELOPS_TRAINER_OUTPUT_DIR"] == "/output/iris/iris-7"
    assert env["MODELOPS_TRAINER_OUTPUT_URI"] == "pvc://models/iris/iris-7"
    assert json.loads(env["MODELOPS_TRAINER_HYPERPARAMETERS"]) == {"epochs": 200}
    claims = {
        v["persistentVolumeClaim"]["claimName"]: v["persistentVolumeClaim"]["readOnly"]
        for v in pod_spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"models": False, "datasets": True}
    # Only the Job: its record and Event come from the next reconcile, queued behind the
    # runs that wait for their Job (issue 12).
    assert plan.status == ()
    assert plan.events == ()
    assert plan.requeue_after == 0.0
    recorded = trainingrun.reconcile(make_run(), observed(job_obj), now=NOW)
    assert recorded.apply == ()
    status = status_of(recorded)
    assert status["phase"] == "Pending"
    assert status["jobName"] == "iris-7"
    assert condition(status, "Succeeded")["status"] == "Unknown"
    assert [e.reason for e in recorded.events] == ["JobCreated"]


def test_a_new_suspended_run_is_recorded_as_suspended() -> None:
    plain = make_run()
    run = plain.model_copy(update={"spec": plain.spec.model_copy(update={"suspend": True})})
    (job_obj,) = trainingrun.reconcile(run, observed(), now=NOW).apply
    assert job_obj["spec"]["suspend"] is True
    recorded = trainingrun.reconcile(run, observed(job_obj), now=NOW)
    assert status_of(recorded)["phase"] == "Suspended"
    assert [e.reason for e in recorded.events] == ["JobCreated", "Suspended"]


@pytest.mark.parametrize(
    ("job_obj", "pods", "phase", "running"),
    [
        (job(), (), "Pending", "False"),
        (job(active=1), (pod("Pending"),), "Pending", "False"),
        (job(active=1), (pod("Running"),), "Running", "True"),
        (job(suspend=True), (), "Suspended", "False"),
    ],
)
def test_active_job_states(
    job_obj: dict[str, Any], pods: tuple[dict[str, Any], ...], phase: str, running: str
) -> None:
    run = make_run(phase="Pending", jobName="iris-7")
    plan = trainingrun.reconcile(run, observed(job_obj, pods), now=NOW)
    status = status_of(plan)
    assert status["phase"] == phase
    assert condition(status, "Running")["status"] == running
    assert condition(status, "Succeeded")["status"] == "Unknown"
    assert plan.create == ()


def waiting_pod(reason: str, message: str = "") -> dict[str, Any]:
    stuck = pod("Pending")
    stuck["status"]["containerStatuses"][0].update(
        image="ghcr.io/acme/trainer:9", state={"waiting": {"reason": reason, "message": message}}
    )
    return stuck


@pytest.mark.parametrize(
    ("waiting", "reason", "says"),
    [
        ("ErrImagePull", "ImagePullBackOff", "cannot pull image ghcr.io/acme/trainer:9"),
        ("ImagePullBackOff", "ImagePullBackOff", "cannot pull image ghcr.io/acme/trainer:9"),
        ("CreateContainerConfigError", "CreateContainerConfigError", 'secret "s3" not found'),
        ("ContainerCreating", "Pending", "Waiting for the training pod to start"),
    ],
)
def test_a_trainer_that_cannot_start_says_why(waiting: str, reason: str, says: str) -> None:
    run = make_run(phase="Pending", jobName="iris-7")
    pods = (waiting_pod(waiting, 'secret "s3" not found'),)
    status = status_of(trainingrun.reconcile(run, observed(job(active=1), pods), now=NOW))
    assert status["phase"] == "Pending"
    assert condition(status, "Succeeded")["reason"] == reason
    assert says in condition(status, "Succeeded")["message"]


def test_an_init_container_that_cannot_start_says_why() -> None:
    stuck = pod("Pending")
    stuck["status"]["initContainerStatuses"] = [
        {
            "name": "fetch",
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "no s3"}},
        }
    ]
    run = make_run(phase="Pending", jobName="iris-7")
    status = status_of(trainingrun.reconcile(run, observed(job(active=1), (stuck,)), now=NOW))
    assert condition(status, "Succeeded")["reason"] == "CreateContainerConfigError"
    assert condition(status, "Succeeded")["message"] == "container fetch cannot start: no s3"


def test_an_image_pull_retry_rewrites_no_status() -> None:
    """The kubelet alternates ErrImagePull and ImagePullBackOff: one status for both."""
    run = make_run(phase="Pending", jobName="iris-7")
    first = trainingrun.reconcile(
        run, observed(job(active=1), (waiting_pod("ErrImagePull", "rpc error: 1"),)), now=NOW
    )
    again = trainingrun.reconcile(
        run, observed(job(active=1), (waiting_pod("ImagePullBackOff", "Back-off"),)), now=NOW
    )
    assert status_of(first)["conditions"] == status_of(again)["conditions"]


def test_success_registers_exactly_one_version_with_provenance() -> None:
    run = make_run(phase="Running", jobName="iris-7")
    obs = observed(
        job(conditions=(("Complete", "Completed"),)),
        (pod("Succeeded", json.dumps(RESULT)),),
        model=make_model(),
    )
    plan = trainingrun.reconcile(run, obs, now=NOW)
    (mv,) = plan.create
    assert mv["metadata"]["name"] == "iris-7"
    assert mv["metadata"]["ownerReferences"][0]["uid"] == "model-uid"
    spec = mv["spec"]
    assert spec["version"] == "7"
    assert spec["artifact"]["digest"] == DIGEST
    assert spec["metrics"] == {"accuracy": 0.97}
    prov = spec["provenance"]
    assert prov["trainingRun"] == {"name": "iris-7", "uid": RUN_UID}
    assert prov["parentVersion"] == "6"
    assert prov["parameters"] == {"epochs": 200}
    assert prov["dataset"]["digest"] == RESULT["dataset"]["digest"]  # type: ignore[index]
    status = status_of(plan)
    assert status["phase"] == "Succeeded"
    assert status["modelVersion"] == "iris-7"
    assert status["result"]["metrics"] == {"accuracy": 0.97}
    assert condition(status, "Succeeded")["status"] == "True"
    assert [e.reason for e in plan.events] == ["Registered", "Succeeded"]


def test_success_again_after_restart_creates_nothing_new() -> None:
    run = make_run(phase="Running", jobName="iris-7")
    existing = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "iris-7", "namespace": "ml"},
        "spec": {"provenance": {"trainingRun": {"name": "iris-7", "uid": RUN_UID}}},
    }
    obs = observed(
        job(conditions=(("Complete", "Completed"),)),
        (pod("Succeeded", json.dumps(RESULT)),),
        model=make_model(),
        version=existing,
    )
    plan = trainingrun.reconcile(run, obs, now=NOW)
    # The version found is this run's own (the operator died between creating it and
    # recording it): nothing new is created, and the registration the status now records is
    # announced — it never was (issue 11.14).
    assert [e.reason for e in plan.events] == ["Registered", "Succeeded"]
    assert status_of(plan)["phase"] == "Succeeded"
    assert status_of(plan)["modelVersion"] == "iris-7"


def test_a_job_found_before_its_status_records_it_is_announced() -> None:
    """The operator died between creating the Job and recording it (issue 11.14)."""
    plan = trainingrun.reconcile(make_run(), observed(job(active=1), (pod("Pending"),)), now=NOW)
    assert [e.reason for e in plan.events] == ["JobCreated"]
    assert status_of(plan)["jobName"] == "iris-7"
    recorded = trainingrun.reconcile(
        make_run(phase="Pending", jobName="iris-7"),
        observed(job(active=1), (pod("Pending"),)),
        now=NOW,
    )
    assert recorded.events == ()


def test_version_of_another_run_is_a_conflict() -> None:
    run = make_run(phase="Running", jobName="iris-7")
    other = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "iris-7", "namespace": "ml"},
        "spec": {"provenance": {"trainingRun": {"name": "x", "uid": "other"}}},
    }
    obs = observed(
        job(conditions=(("Complete", "Completed"),)),
        (pod("Succeeded", json.dumps(RESULT)),),
        model=make_model(),
        version=other,
    )
    plan = trainingrun.reconcile(run, obs, now=NOW)
    assert plan.create == ()
    assert status_of(plan)["failure"]["reason"] == "VersionConflict"


@pytest.mark.parametrize(
    ("conds", "message", "reason", "text"),
    [
        ((("Failed", "DeadlineExceeded"),), None, "DeadlineExceeded", "DeadlineExceeded msg"),
        (
            (("Failed", "BackoffLimitExceeded"),),
            '{"error": "dataset refused: column \\"petal_width\\": 3 values above max 10"}',
            "TrainerFailed",
            'column "petal_width"',
        ),
        (
            (("Failed", "BackoffLimitExceeded"),),
            "Traceback ... ZeroDivisionError",
            "BackoffLimitExceeded",
            "ZeroDivisionError",
        ),
    ],
)
def test_failures_carry_reason_and_message(
    conds: tuple[tuple[str, str], ...], message: str | None, reason: str, text: str
) -> None:
    run = make_run(phase="Running", jobName="iris-7")
    plan = trainingrun.reconcile(
        run, observed(job(conditions=conds), (pod("Failed", message),)), now=NOW
    )
    status = status_of(plan)
    assert status["phase"] == "Failed"
    assert status["failure"]["reason"] == reason
    assert text in status["failure"]["message"]
    assert condition(status, "Succeeded")["status"] == "False"
    assert plan.create == ()
    assert plan.events[0].type == "Warning"


@pytest.mark.parametrize(
    "message",
    [
        None,
        "not json",
        json.dumps(
            {
                **RESULT,
                "artifact": {
                    **RESULT["artifact"],  # type: ignore[dict-item]
                    "digest": "sha256:nothex",
                },
            }
        ),
    ],
)
def test_invalid_result_fails_and_registers_nothing(message: str | None) -> None:
    run = make_run(phase="Running", jobName="iris-7")
    obs = observed(
        job(conditions=(("Complete", "Completed"),)),
        (pod("Succeeded", message),),
        model=make_model(),
    )
    plan = trainingrun.reconcile(run, obs, now=NOW)
    assert plan.create == ()
    assert status_of(plan)["failure"]["reason"] == "InvalidResult"


def test_job_deleted_while_active_fails_the_run() -> None:
    run = make_run(phase="Running", jobName="iris-7")
    plan = trainingrun.reconcile(run, observed(None), now=NOW)
    assert plan.apply == ()
    assert status_of(plan)["failure"]["reason"] == "JobDeleted"


def test_finished_run_is_final_and_quiet() -> None:
    run = make_run(phase="Succeeded", jobName="iris-7", observedGeneration=1)
    plan = trainingrun.reconcile(run, observed(None), now=NOW)
    assert plan == Plan()


def test_suspend_toggle_updates_the_job() -> None:
    run = make_run(phase="Running", jobName="iris-7")
    run.spec.suspend = True
    plan = trainingrun.reconcile(run, observed(job(active=1), (pod("Running"),)), now=NOW)
    (job_obj,) = plan.apply
    assert job_obj["spec"]["suspend"] is True


def test_waits_for_model_before_registering() -> None:
    run = make_run(phase="Running", jobName="iris-7")
    obs = observed(
        job(conditions=(("Complete", "Completed"),)),
        (pod("Succeeded", json.dumps(RESULT)),),
        model=None,
    )
    plan = trainingrun.reconcile(run, obs, now=NOW)
    assert plan.create == ()
    assert plan.requeue_after is not None
    assert condition(status_of(plan), "Succeeded")["reason"] == "WaitingForModel"


def test_condition_time_changes_only_on_flip() -> None:
    run = make_run(phase="Pending", jobName="iris-7")
    first = status_of(
        trainingrun.reconcile(run, observed(job(active=1), (pod("Running"),)), now=NOW)
    )
    later = datetime(2026, 11, 28, 12, 5, tzinfo=UTC)
    again = status_of(
        trainingrun.reconcile(
            make_run(**first), observed(job(active=1), (pod("Running"),)), now=later
        )
    )
    assert (
        condition(again, "Running")["lastTransitionTime"]
        == condition(first, "Running")["lastTransitionTime"]
    )


def test_the_job_gets_its_ttl_only_after_the_result_is_recorded() -> None:
    """Regression (issue 11.3): with ``ttlSecondsAfterFinished`` on the Job from the start, the
    TTL controller could delete the Job and its pods (holding the termination message) before
    the operator read them, recording a success as JobDeleted or InvalidResult."""
    run = make_run()
    run.spec.ttl_seconds_after_finished = 0
    (created,) = trainingrun.reconcile(run, observed(), now=NOW).apply
    assert "ttlSecondsAfterFinished" not in created["spec"]

    running = make_run(phase="Running", jobName="iris-7")
    running.spec.ttl_seconds_after_finished = 0
    done = job(conditions=(("Complete", "Completed"),))
    plan = trainingrun.reconcile(
        running,
        observed(done, (pod("Succeeded", json.dumps(RESULT)),), make_model()),
        now=NOW,
    )
    assert status_of(plan)["phase"] == "Succeeded"
    assert plan.apply == ()  # not while the result is only being recorded

    finished = make_run(phase="Succeeded", jobName="iris-7", observedGeneration=1)
    finished.spec.ttl_seconds_after_finished = 0
    (with_ttl,) = trainingrun.reconcile(finished, observed(done), now=NOW).apply
    assert with_ttl["spec"]["ttlSecondsAfterFinished"] == 0
    assert with_ttl["spec"]["suspend"] is False


def test_a_job_this_run_does_not_own_is_never_adopted() -> None:
    """Regression (issue 11.4): a TrainingRun re-created under the same name adopted the old
    run's Job (fetched by name only)."""
    run = make_run()
    obs = trainingrun.Observed(job=None, pods=(), model=None, version=None, job_name_taken=True)
    plan = trainingrun.reconcile(run, obs, now=NOW)
    assert plan.apply == ()
    status = status_of(plan)
    assert condition(status, "Succeeded")["reason"] == "JobNameTaken"
    assert [e.reason for e in plan.events] == ["JobNameTaken"]
    assert "jobName" not in status
    again = trainingrun.reconcile(make_run(**status), obs, now=NOW)
    assert again.events == ()  # said once
    assert again.requeue_after == trainingrun.NAME_TAKEN_REQUEUE  # its going sends no event


# -- lineage labels ---------------------------------------------------------------------------

IMAGE_DIGEST = "sha256:" + "ef" * 32


def test_the_registered_version_carries_its_lineage_as_labels() -> None:
    run = make_run(phase="Running", jobName="iris-7")
    run.spec.image = f"ghcr.io/modelops/trainer@{IMAGE_DIGEST}"
    obs = observed(
        job(conditions=(("Complete", "Completed"),)),
        (pod("Succeeded", json.dumps(RESULT)),),
        model=make_model(),
    )
    (mv,) = trainingrun.reconcile(run, obs, now=NOW).create
    lbls = mv["metadata"]["labels"]
    assert lbls[labels.DATASET_DIGEST] == "sha256-" + "cd" * 28
    assert lbls[labels.IMAGE_DIGEST] == "sha256-" + "ef" * 28
    assert lbls[labels.PARENT_VERSION] == "6"
    assert lbls[labels.TRAININGRUN] == "iris-7"
    assert lbls[labels.VERSION] == "7"
    assert all(len(v) <= 63 for v in lbls.values())


def test_no_image_digest_or_parent_label_when_there_is_none() -> None:
    # The image is named by tag only; the Model served nothing when the run was trained.
    run = make_run(phase="Running", jobName="iris-7")
    first = api.Model.model_validate({**make_model().to_dict(), "status": {}})
    obs = observed(
        job(conditions=(("Complete", "Completed"),)),
        (pod("Succeeded", json.dumps(RESULT)),),
        model=first,
    )
    (mv,) = trainingrun.reconcile(run, obs, now=NOW).create
    lbls = mv["metadata"]["labels"]
    assert labels.DATASET_DIGEST in lbls
    assert not {labels.IMAGE_DIGEST, labels.PARENT_VERSION} & lbls.keys()


@pytest.mark.parametrize(
    ("image", "digest"),
    [
        (f"ghcr.io/modelops/trainer@{IMAGE_DIGEST}", IMAGE_DIGEST),
        (f"registry:5000/trainer:0.1.0@{IMAGE_DIGEST}", IMAGE_DIGEST),
        ("registry:5000/trainer:0.1.0", None),
        ("trainer@sha256:short", None),
    ],
)
def test_image_digest(image: str, digest: str | None) -> None:
    assert labels.image_digest(image) == digest


def test_a_finished_job_found_before_its_status_records_it_is_announced() -> None:
    """Died right after creating the Job, and the Job finished meanwhile: the run's status
    records the Job and its result at once, and the creation is still announced (found by
    tests/cluster/test_faults.py, crash after the first write)."""
    done = job(conditions=(("Complete", "Completed"),))
    plan = trainingrun.reconcile(
        make_run(), observed(done, (pod("Succeeded", json.dumps(RESULT)),), make_model()), now=NOW
    )
    assert [e.reason for e in plan.events] == ["JobCreated", "Registered", "Succeeded"]
    assert status_of(plan)["jobName"] == "iris-7"
    assert status_of(plan)["phase"] == "Succeeded"


# -- object storage ---------------------------------------------------------------------------

S3 = {
    "s3": {
        "endpoint": "http://s3.storage:8333",
        "pathStyle": True,
        "credentialsSecret": "s3-credentials",
    }
}


def s3_run() -> api.TrainingRun:
    document = make_run().to_dict()
    document["spec"]["dataset"] = {"uri": "s3://ml-data/iris/iris.csv"}
    document["spec"]["output"] = {"s3": {"uri": "s3://ml-models/trained"}}
    document["spec"]["storage"] = S3
    return api.TrainingRun.model_validate(document)


def test_an_s3_run_downloads_and_uploads_with_the_secret_only_in_its_pod() -> None:
    job = trainingrun.build_job(s3_run())
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MODELOPS_TRAINER_DATASET_URI"] == "s3://ml-data/iris/iris.csv"
    assert env["MODELOPS_TRAINER_DATASET"] == "/tmp/dataset/iris.csv"
    assert env["MODELOPS_TRAINER_OUTPUT_DIR"] == "/tmp/artifact"
    assert env["MODELOPS_TRAINER_OUTPUT_URI"] == "s3://ml-models/trained/iris/iris-7"
    assert env["MODELOPS_S3_ENDPOINT"] == "http://s3.storage:8333"
    assert env["MODELOPS_S3_PATH_STYLE"] == "true"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {"secretKeyRef": {"name": "s3-credentials", "key": key}}
    # No claim at all: the artifact is written to the scratch volume and uploaded.
    assert [v["name"] for v in pod["volumes"]] == ["scratch"]


def test_an_s3_dataset_or_output_needs_storage_settings() -> None:
    document = s3_run().to_dict()
    del document["spec"]["storage"]
    with pytest.raises(ValueError, match=r"storage\.s3 is required"):
        api.TrainingRun.model_validate(document)
    document["spec"]["output"] = {"pvc": {"claimName": "models"}, "s3": {"uri": "s3://bucket/x"}}
    with pytest.raises(ValueError, match="exactly one of pvc and s3"):
        api.TrainingRun.model_validate(document)


def test_a_pvc_run_gets_no_storage_settings() -> None:
    document = make_run().to_dict()
    document["spec"]["storage"] = S3
    (container,) = trainingrun.build_job(api.TrainingRun.model_validate(document))["spec"][
        "template"
    ]["spec"]["containers"]
    assert not [e for e in container["env"] if e["name"].startswith(("MODELOPS_S3", "AWS_"))]
