"""Model decisions: promotion, canary, rollback, retention — table-driven, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelops import api
from modelops.core import model as model_core
from modelops.core.plan import Plan, contains
from modelops.core.runtimes import ServingRuntime
from modelops.settings import OperatorSettings

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def make_model(
    serving: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    retention: dict[str, Any] | None = None,
) -> api.Model:
    spec: dict[str, Any] = {}
    if serving is not None:
        spec["serving"] = serving
    if retention is not None:
        spec["retention"] = retention
    return api.Model.model_validate(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris", "namespace": "ml", "uid": "model-uid", "generation": 2},
            "spec": spec,
            "status": status or {},
        }
    )


def mv(
    version: str,
    age_hours: float = 1,
    *,
    metrics: dict[str, float] | None = None,
    phase: str | None = None,
    approved: bool = False,
    failed: bool = False,
    fmt: str = "modelops-linear/v1",
) -> api.ModelVersion:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if failed:
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "False",
                "reason": "RolloutFailed",
                "message": "x",
                "lastTransitionTime": "2026-11-28T10:00:00Z",
            }
        ]
    return api.ModelVersion.model_validate(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {
                "name": f"iris-{version}",
                "namespace": "ml",
                "generation": 1,
                "creationTimestamp": (NOW - timedelta(hours=age_hours)).isoformat(),
                "labels": {"modelops.dev/approved": "true"} if approved else {},
            },
            "spec": {
                "modelRef": {"name": "iris"},
                "version": version,
                "artifact": {
                    "uri": f"pvc://models/iris/{version}",
                    "digest": DIGEST,
                    "format": fmt,
                },
                "metrics": metrics or {"accuracy": 0.95},
            },
            "status": status,
        }
    )


def deployment(
    version: str,
    replicas: int,
    *,
    available_for: float | None = None,
    deadline_exceeded: bool = False,
) -> dict[str, Any]:
    conditions = []
    if available_for is not None:
        conditions.append(
            {
                "type": "Available",
                "status": "True",
                "lastTransitionTime": (NOW - timedelta(seconds=available_for)).isoformat(),
            }
        )
    if deadline_exceeded:
        conditions.append(
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "timed out",
            }
        )
    ready = replicas if available_for is not None else 0
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"iris-{version}", "namespace": "ml", "generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
            "conditions": conditions,
        },
    }


def crashing_pod(version: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"iris-{version}-abc"},
        "status": {
            "containerStatuses": [
                {
                    "name": "server",
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "message": "digest mismatch"}},
                }
            ]
        },
    }


def observed(
    versions: list[api.ModelVersion],
    deployments: dict[str, Any] | None = None,
    pods: dict[str, list[Any]] | None = None,
    services: list[str] = (),  # type: ignore[assignment]
) -> model_core.Observed:
    return model_core.Observed(
        versions=versions,
        deployments=deployments or {},
        pods=pods or {},
        services={name: service(name) for name in services},
    )


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "ml", "ownerReferences": [{"uid": "model-uid"}]},
    }


def model_status(plan: Plan) -> dict[str, Any]:
    return next(p.status for p in plan.status if p.target.kind == "Model")


def version_phases(plan: Plan) -> dict[str, Any]:
    return {
        p.target.name: p.status.get("phase") for p in plan.status if p.target.kind == "ModelVersion"
    }


def cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def deployments_of(plan: Plan) -> dict[str, int]:
    return {
        o["metadata"]["name"]: o["spec"]["replicas"]
        for o in plan.apply
        if o["kind"] == "Deployment"
    }


CANARY = {"version": "v2", "replicas": 4, "canary": {"replicasPercent": 25, "minReadySeconds": 60}}


def test_first_pinned_version_rolls_out_with_probes_and_restricted_security() -> None:
    plan = model_core.reconcile(
        make_model({"version": "v1", "replicas": 2}), observed([mv("v1")]), now=NOW
    )
    assert deployments_of(plan) == {"iris-v1": 2}
    dep = next(o for o in plan.apply if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELOPS_SERVER_ARTIFACT_DIGEST"] == DIGEST
    assert env["MODELOPS_SERVER_ARTIFACT_DIR"] == "/artifacts/iris/v1"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    services = {o["metadata"]["name"] for o in plan.apply if o["kind"] == "Service"}
    assert services == {"iris", "iris-v1"}
    status = model_status(plan)
    assert "productionVersion" not in status
    assert cond(status, "Ready")["status"] == "Unknown"
    assert cond(status, "Progressing")["status"] == "True"
    assert plan.requeue_after is not None


def test_available_first_version_is_promoted_and_announced() -> None:
    obs = observed([mv("v1")], {"v1": deployment("v1", 1, available_for=5)})
    plan = model_core.reconcile(make_model({"version": "v1"}), obs, now=NOW)
    status = model_status(plan)
    assert status["productionVersion"] == "v1"
    assert status["history"][-1]["kind"] == "Promoted"
    assert "from" not in status["history"][-1]
    assert version_phases(plan)["iris-v1"] == "Serving"
    assert [e.reason for e in plan.events] == ["Promoted"]
    assert [n.type for n in plan.notifications] == ["dev.modelops.model.promoted"]
    assert cond(status, "Ready")["status"] == "True"


def test_steady_state_is_quiet() -> None:
    obs = observed([mv("v1", phase="Serving")], {"v1": deployment("v1", 1, available_for=500)})
    first = model_core.reconcile(
        make_model({"version": "v1"}, {"productionVersion": "v1"}), obs, now=NOW
    )
    again = model_core.reconcile(
        make_model({"version": "v1"}, model_status(first)),
        observed([mv("v1", phase="Serving")], {"v1": deployment("v1", 1, available_for=900)}),
        now=NOW + timedelta(minutes=5),
    )
    assert contains(model_status(first), model_status(again))
    assert again.events == ()
    assert again.notifications == ()


def test_automatic_promotion_picks_newest_version_passing_gates_and_approval() -> None:
    serving = {
        "promotion": "Automatic",
        "requireApproval": True,
        "gates": [{"metric": "accuracy", "min": 0.9}],
    }
    versions = [
        mv("v1", 5, metrics={"accuracy": 0.93}, approved=True),
        mv("v2", 3, metrics={"accuracy": 0.95}, approved=True),
        mv("v3", 2, metrics={"accuracy": 0.80}, approved=True),  # fails the gate
        mv("v4", 1, metrics={"accuracy": 0.99}),  # not approved
        mv("v5", 0.5, metrics={"accuracy": 0.99}, approved=True, failed=True),  # failed before
    ]
    plan = model_core.reconcile(make_model(serving), observed(versions), now=NOW)
    assert deployments_of(plan) == {"iris-v2": 1}


def test_new_version_starts_as_canary_with_its_share_of_replicas() -> None:
    model = make_model(CANARY, {"productionVersion": "v1"})
    obs = observed(
        [mv("v1", 5, phase="Serving"), mv("v2", 1)], {"v1": deployment("v1", 4, available_for=900)}
    )
    plan = model_core.reconcile(model, obs, now=NOW)
    assert deployments_of(plan) == {"iris-v1": 3, "iris-v2": 1}
    status = model_status(plan)
    assert status["productionVersion"] == "v1"
    assert status["canaryVersion"] == "v2"
    assert version_phases(plan) == {"iris-v1": "Serving", "iris-v2": "Canary"}
    assert [e.reason for e in plan.events] == ["CanaryStarted"]
    canary_pods = next(o for o in plan.apply if o["metadata"]["name"] == "iris-v2")
    assert canary_pods["metadata"]["labels"]["modelops.dev/role"] == "canary"
    # Not on the pods: promoting the canary must not replace its pods.
    assert "modelops.dev/role" not in canary_pods["spec"]["template"]["metadata"]["labels"]


def test_canary_waits_for_min_ready_then_is_promoted() -> None:
    model = make_model(CANARY, {"productionVersion": "v1", "canaryVersion": "v2"})
    versions = [mv("v1", 5, phase="Serving"), mv("v2", 1, phase="Canary")]
    deps = {
        "v1": deployment("v1", 3, available_for=900),
        "v2": deployment("v2", 1, available_for=20),
    }
    waiting = model_core.reconcile(model, observed(versions, deps), now=NOW)
    assert model_status(waiting)["canaryVersion"] == "v2"
    assert waiting.requeue_after == 40
    deps["v2"] = deployment("v2", 1, available_for=61)
    done = model_core.reconcile(model, observed(versions, deps), now=NOW)
    status = model_status(done)
    assert status["productionVersion"] == "v2"
    assert "canaryVersion" not in status
    assert status["history"][-1] == {
        **status["history"][-1],
        "kind": "Promoted",
        "from": "v1",
        "to": "v2",
    }
    assert deployments_of(done) == {"iris-v2": 4}
    assert {r.name for r in done.delete} == {"iris-v1"}
    assert version_phases(done) == {"iris-v1": "Registered", "iris-v2": "Serving"}


def test_crash_looping_canary_is_rolled_back() -> None:
    model = make_model(CANARY, {"productionVersion": "v1", "canaryVersion": "v2"})
    versions = [mv("v1", 5, phase="Serving"), mv("v2", 1, phase="Canary")]
    deps = {"v1": deployment("v1", 3, available_for=900), "v2": deployment("v2", 1)}
    plan = model_core.reconcile(
        model, observed(versions, deps, {"v2": [crashing_pod("v2")]}), now=NOW
    )
    status = model_status(plan)
    assert status["productionVersion"] == "v1"
    assert "canaryVersion" not in status
    assert status["history"][-1]["kind"] == "RolledBack"
    assert "digest mismatch" in status["history"][-1]["reason"]
    assert deployments_of(plan) == {"iris-v1": 4}
    assert {r.name for r in plan.delete} == {"iris-v2"}
    assert cond(status, "Degraded")["status"] == "True"
    assert [e.reason for e in plan.events] == ["RolledBack"]
    v2 = next(p.status for p in plan.status if p.target.name == "iris-v2")
    assert cond(v2, "Ready")["reason"] == "RolloutFailed"


def test_progress_deadline_rolls_back_and_pin_is_not_retried() -> None:
    model = make_model(CANARY, {"productionVersion": "v1", "canaryVersion": "v2"})
    versions = [mv("v1", 5, phase="Serving"), mv("v2", 1, phase="Canary")]
    deps = {
        "v1": deployment("v1", 3, available_for=900),
        "v2": deployment("v2", 1, deadline_exceeded=True),
    }
    plan = model_core.reconcile(model, observed(versions, deps), now=NOW)
    status = model_status(plan)
    assert status["history"][-1]["kind"] == "RolledBack"
    again = model_core.reconcile(
        make_model(CANARY, status),
        observed(versions, {"v1": deployment("v1", 4, available_for=1)}),
        now=NOW,
    )
    assert deployments_of(again) == {"iris-v1": 4}
    assert cond(model_status(again), "Degraded")["reason"] == "RolloutFailed"


def test_pinning_a_retired_version_keeps_production() -> None:
    model = make_model({"version": "v0"}, {"productionVersion": "v1"})
    obs = observed(
        [mv("v0", 9, phase="Retired"), mv("v1", 5, phase="Serving")],
        {"v1": deployment("v1", 1, available_for=900)},
    )
    plan = model_core.reconcile(model, obs, now=NOW)
    status = model_status(plan)
    assert status["productionVersion"] == "v1"
    assert cond(status, "Degraded")["reason"] == "VersionRetired"
    assert deployments_of(plan) == {"iris-v1": 1}


def test_retention_retires_oldest_non_serving_versions_only() -> None:
    model = make_model({"version": "v3"}, {"productionVersion": "v3"}, {"keepLast": 1})
    versions = [mv("v1", 30), mv("v2", 20), mv("v3", 10, phase="Serving"), mv("v4", 1)]
    plan = model_core.reconcile(
        model, observed(versions, {"v3": deployment("v3", 1, available_for=900)}), now=NOW
    )
    phases = version_phases(plan)
    assert phases["iris-v1"] == "Retired"
    assert phases["iris-v2"] == "Retired"
    assert phases["iris-v3"] == "Serving"
    assert phases["iris-v4"] == "Registered"
    assert {m.target.name for m in plan.metadata} == {"iris-v1", "iris-v2"}
    jobs = {o["metadata"]["name"]: o for o in plan.apply if o["kind"] == "Job"}
    assert set(jobs) == {"retire-iris-v1", "retire-iris-v2"}
    args = jobs["retire-iris-v1"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--delete-artifacts" not in args  # deleteArtifacts defaults to false
    assert [e.reason for e in plan.events] == ["Retired", "Retired"]


def test_max_age_retires_old_versions() -> None:
    model = make_model(None, {}, {"maxAge": "24h", "deleteArtifacts": True})
    plan = model_core.reconcile(model, observed([mv("v1", 48), mv("v2", 2)]), now=NOW)
    assert version_phases(plan) == {"iris-v1": "Retired", "iris-v2": "Registered"}
    job = next(o for o in plan.apply if o["kind"] == "Job")
    assert "--delete-artifacts" in job["spec"]["template"]["spec"]["containers"][0]["args"]


def test_no_serving_is_a_registry_and_removes_serving_objects() -> None:
    plan = model_core.reconcile(
        make_model(None),
        observed(
            [mv("v1")],
            {"v1": deployment("v1", 1, available_for=5)},
            services=["iris-v1", "iris"],
        ),
        now=NOW,
    )
    assert deployments_of(plan) == {}
    # Regression (issue 11.10): the stable Service used to stay behind.
    assert {(r.kind, r.name) for r in plan.delete} == {
        ("Deployment", "iris-v1"),
        ("Service", "iris-v1"),
        ("Service", "iris"),
    }
    assert cond(model_status(plan), "Ready")["reason"] == "RegistryOnly"


PINNED = {"version": "v2", "replicas": 1}


def _rolled_back(generation: int, *later: dict[str, Any]) -> dict[str, Any]:
    return {
        "productionVersion": "v1",
        "history": [
            {
                "time": "2026-11-28T11:00:00Z",
                "kind": "RolledBack",
                "from": "v2",
                "to": "v1",
                "reason": "crash loop",
                "generation": generation,
            },
            *later,
        ],
    }


def _pinned_model(generation: int, status: dict[str, Any]) -> api.Model:
    model = make_model(PINNED, status)
    model.metadata.generation = generation
    return model


def test_a_rolled_back_pin_is_retried_after_an_edit_only() -> None:
    """Regression (issue 11.1): the retry rule looked at the last history entry only and
    ignored the generation — an edit never retried, and an unrelated later entry (a
    retirement) made the operator deploy the failed version again."""
    versions = [mv("v1", 5, phase="Serving"), mv("v2", 1, failed=True), mv("v0", 9)]
    serving_v1 = {"v1": deployment("v1", 1, available_for=900)}
    retired = {
        "time": "2026-11-28T11:30:00Z",
        "kind": "Retired",
        "from": "v0",
        "to": "v1",
        "reason": "retention",
        "generation": 2,
    }
    same_gen = model_core.reconcile(
        _pinned_model(2, _rolled_back(2, retired)), observed(versions, serving_v1), now=NOW
    )
    assert deployments_of(same_gen) == {"iris-v1": 1}
    assert cond(model_status(same_gen), "Degraded")["reason"] == "RolloutFailed"

    edited = model_core.reconcile(
        _pinned_model(3, _rolled_back(2, retired)), observed(versions, serving_v1), now=NOW
    )
    assert set(deployments_of(edited)) == {"iris-v1", "iris-v2"}  # the pin rolls out again


def test_the_rollback_records_the_generation_it_happened_at() -> None:
    model = make_model(CANARY, {"productionVersion": "v1", "canaryVersion": "v2"})
    versions = [mv("v1", 5, phase="Serving"), mv("v2", 1, phase="Canary")]
    deps = {
        "v1": deployment("v1", 3, available_for=900),
        "v2": deployment("v2", 1, deadline_exceeded=True),
    }
    plan = model_core.reconcile(model, observed(versions, deps), now=NOW)
    assert model_status(plan)["history"][-1]["generation"] == 2


def test_a_failed_first_rollout_is_announced_once() -> None:
    """Regression (issue 11.7): a failed pinned first rollout posted a new RolloutFailed
    Warning on every reconcile."""
    model = make_model({"version": "v1"}, {})
    obs = observed([mv("v1")], {"v1": deployment("v1", 1)}, {"v1": [crashing_pod("v1")]})
    first = model_core.reconcile(model, obs, now=NOW)
    assert [e.reason for e in first.events] == ["RolloutFailed"]
    again = model_core.reconcile(make_model({"version": "v1"}, model_status(first)), obs, now=NOW)
    assert again.events == ()


def test_a_retried_retirement_appends_no_second_history_entry() -> None:
    """Regression (issue 11.12): when the version's own write failed after the Model's status
    (with the Retired entry) was written, every retry appended another Retired entry until
    the bounded history held nothing else."""
    model = make_model({"version": "v3"}, {"productionVersion": "v3"}, {"keepLast": 0})
    versions = [mv("v1", 30), mv("v3", 10, phase="Serving")]
    deps = {"v3": deployment("v3", 1, available_for=900)}
    first = model_core.reconcile(model, observed(versions, deps), now=NOW)
    history = model_status(first)["history"]
    assert [h["kind"] for h in history] == ["Retired"]
    # The ModelVersion write failed: v1 is still Registered when the reconcile is retried.
    retry = model_core.reconcile(
        make_model({"version": "v3"}, model_status(first), {"keepLast": 0}),
        observed(versions, deps),
        now=NOW,
    )
    assert model_status(retry)["history"] == history
    assert version_phases(retry)["iris-v1"] == "Retired"  # the version write is redone
    assert {m.target.name for m in retry.metadata} == {"iris-v1"}
    # ... and announces nothing again: the first decision's Event and CloudEvent are recorded
    # with it (a fresh announcement would carry a new id, and sinks would see it twice).
    assert [e.reason for e in first.events] == ["Retired"]
    assert retry.events == ()
    assert retry.notifications == ()


def test_a_retired_version_without_its_label_gets_it() -> None:
    """Found by the serving crash test: a crash between the Retired phase (status) and the
    label (metadata) left a version that admission would still let serve: no later reconcile
    retired it again, so the label was never written."""
    model = make_model({"version": "v3"}, {"productionVersion": "v3"}, {"keepLast": 0})
    versions = [mv("v1", 30, phase="Retired"), mv("v3", 10, phase="Serving")]
    deps = {"v3": deployment("v3", 1, available_for=900)}
    plan = model_core.reconcile(model, observed(versions, deps), now=NOW)
    assert [(m.target.name, m.labels) for m in plan.metadata] == [
        ("iris-v1", {"modelops.dev/retired": "true"})
    ]
    assert plan.events == ()


# -- governance: the data behind what serves, who approved a promotion -----------------------


def trained_on(version: api.ModelVersion, dataset: str, approved_by: str | None = None) -> Any:
    """``version`` with a recorded training dataset (and the API server's approval record)."""
    out = version.model_copy(deep=True)
    out.spec.provenance = api.Provenance(
        dataset=api.DatasetReference(uri=f"pvc://datasets/{dataset}.csv", digest=DIGEST)
    )
    if approved_by is not None:
        out.metadata.annotations = {"modelops.dev/approved-by": approved_by}
    return out


def test_status_names_the_datasets_of_the_served_versions() -> None:
    versions = [
        trained_on(mv("v1", 3, phase="Serving"), "june"),
        trained_on(mv("v2", 2), "july"),
        trained_on(mv("v3", 1), "august"),
    ]
    obs = observed(versions, {"v1": deployment("v1", 3, available_for=900)})
    plan = model_core.reconcile(
        make_model({**CANARY, "version": "v2"}, {"productionVersion": "v1"}), obs, now=NOW
    )
    assert model_status(plan)["datasets"] == [
        {"version": "v1", "uri": "pvc://datasets/june.csv", "digest": DIGEST},
        {"version": "v2", "uri": "pvc://datasets/july.csv", "digest": DIGEST},
    ]


def test_no_datasets_without_serving_or_provenance() -> None:
    registry = model_core.reconcile(make_model(), observed([trained_on(mv("v1"), "june")]), now=NOW)
    assert "datasets" not in model_status(registry)
    unrecorded = model_core.reconcile(
        make_model({"version": "v1"}),
        observed([mv("v1")], {"v1": deployment("v1", 1, available_for=5)}),
        now=NOW,
    )
    assert "datasets" not in model_status(unrecorded)


def test_a_promotion_names_its_approver() -> None:
    serving = {"promotion": "Automatic", "requireApproval": True}
    versions = [trained_on(mv("v1", approved=True), "june", approved_by="alice")]
    obs = observed(versions, {"v1": deployment("v1", 1, available_for=5)})
    plan = model_core.reconcile(make_model(serving), obs, now=NOW)
    (entry,) = model_status(plan)["history"]
    assert entry["kind"] == "Promoted"
    assert entry["approvedBy"] == "alice"
    assert plan.notifications[0].data["approvedBy"] == "alice"


def test_an_unapproved_promotion_names_no_approver() -> None:
    obs = observed([mv("v1")], {"v1": deployment("v1", 1, available_for=5)})
    (entry,) = model_status(model_core.reconcile(make_model({"version": "v1"}), obs, now=NOW))[
        "history"
    ]
    assert "approvedBy" not in entry


# -- the retire Job: resources and a deadline, settable -----------------------------------------


def _retire_jobs(plan: Plan) -> list[dict[str, Any]]:
    return [o for o in plan.apply if o["kind"] == "Job"]


def test_the_retire_job_has_resources_and_a_deadline_by_default() -> None:
    model = make_model({"version": "v2"}, {"productionVersion": "v2"}, {"keepLast": 0})
    obs = observed([mv("v1", 30), mv("v2", 10, phase="Serving")])
    (job,) = _retire_jobs(model_core.reconcile(model, obs, now=NOW))
    assert job["spec"]["activeDeadlineSeconds"] == model_core.RETIRE_JOB_DEADLINE_SECONDS
    (container,) = job["spec"]["template"]["spec"]["containers"]
    # Requests and limits of both CPU and memory: a compute ResourceQuota admits the pod.
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}


def test_the_retire_job_takes_the_operators_settings() -> None:
    model = make_model({"version": "v2"}, {"productionVersion": "v2"}, {"keepLast": 0})
    obs = observed([mv("v1", 30), mv("v2", 10, phase="Serving")])
    settings = OperatorSettings(
        retire_job_resources={"requests": {"cpu": "1", "memory": "1Gi"}},
        retire_job_deadline_seconds=120,
        retire_job_image="mirror.example/modelops/server@sha256:" + "1" * 64,
    )
    retire_job = model_core.RetireJob(
        settings.retire_job_resources,
        settings.retire_job_deadline_seconds,
        settings.retire_job_image,
    )
    (job,) = _retire_jobs(model_core.reconcile(model, obs, now=NOW, retire_job=retire_job))
    assert job["spec"]["activeDeadlineSeconds"] == 120
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}}
    assert container["image"] == settings.retire_job_image


def test_the_retire_job_runs_the_reference_image_not_the_models_own_server() -> None:
    serving = {"version": "v2", "image": "example.com/triton:1", "command": ["tritonserver"]}
    model = make_model(serving, {"productionVersion": "v2"}, {"keepLast": 0})
    obs = observed([mv("v1", 30), mv("v2", 10, phase="Serving")])
    (job,) = _retire_jobs(model_core.reconcile(model, obs, now=NOW))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == api.DEFAULT_SERVER_IMAGE
    assert container["command"] == ["python", "-m", "modelops.runtimes.server.retire"]


# -- serving runtimes ---------------------------------------------------------------------

RUNTIMES = (
    ServingRuntime(
        name="modelops-reference",
        formats=("modelops-linear/v1", "onnx/v1"),
        image="registry.example/server:1",
        command=("python", "-m", "modelops.runtimes.server"),
    ),
    ServingRuntime(
        name="triton",
        formats=("onnx/v1", "tensorrt/v1"),
        image="triton:25",
        command=("tritonserver",),
    ),
)


def _server(plan: Plan) -> dict[str, Any]:
    (dep,) = (o for o in plan.apply if o["kind"] == "Deployment")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return {"image": container["image"], "command": container.get("command")}


def test_the_first_runtime_listing_the_format_serves_a_version() -> None:
    plan = model_core.reconcile(
        make_model({"version": "v1"}),
        observed([mv("v1", fmt="onnx/v1")]),
        now=NOW,
        runtimes=RUNTIMES,
    )
    assert _server(plan) == {
        "image": "registry.example/server:1",
        "command": ["python", "-m", "modelops.runtimes.server"],
    }
    # The default table is the reference server for both of its formats.
    plan = model_core.reconcile(
        make_model({"version": "v1"}), observed([mv("v1", fmt="onnx/v1")]), now=NOW
    )
    assert _server(plan)["image"] == api.DEFAULT_SERVER_IMAGE


def test_a_model_names_its_runtime_or_brings_its_own_server() -> None:
    named = make_model({"version": "v1", "runtime": "triton"})
    plan = model_core.reconcile(
        named, observed([mv("v1", fmt="onnx/v1")]), now=NOW, runtimes=RUNTIMES
    )
    assert _server(plan) == {"image": "triton:25", "command": ["tritonserver"]}
    # A server of the Model's own gets any format, with the image's entrypoint unless set.
    own = make_model({"version": "v1", "image": "example.com/mine:2"})
    plan = model_core.reconcile(own, observed([mv("v1", fmt="tf/v2")]), now=NOW, runtimes=RUNTIMES)
    assert _server(plan) == {"image": "example.com/mine:2", "command": None}


def test_a_pinned_version_no_runtime_loads_is_refused_not_rolled_out() -> None:
    model = make_model({"version": "v2"}, {"productionVersion": "v1"})
    obs = observed(
        [mv("v1", 20, phase="Serving"), mv("v2", 10, fmt="tensorflow/v2")],
        {"v1": deployment("v1", 1, available_for=600)},
    )
    plan = model_core.reconcile(model, obs, now=NOW, runtimes=RUNTIMES)
    assert deployments_of(plan) == {"iris-v1": 1}  # production stays, nothing crash-loops
    status = model_status(plan)
    stalled = cond(status, "Stalled")
    assert stalled["status"] == "True"
    assert stalled["reason"] == "UnsupportedFormat"
    assert "tensorflow/v2" in stalled["message"]
    assert "modelops-reference: modelops-linear/v1, onnx/v1" in stalled["message"]


def test_a_serving_version_whose_format_the_table_lost_keeps_running() -> None:
    model = make_model({"version": "v1"}, {"productionVersion": "v1"})
    obs = observed(
        [mv("v1", phase="Serving", fmt="tensorflow/v2")],
        {"v1": deployment("v1", 1, available_for=600)},
        services=["iris", "iris-v1"],
    )
    plan = model_core.reconcile(model, obs, now=NOW, runtimes=RUNTIMES)
    # Not rebuilt with a server that cannot load it, and nothing of it deleted.
    assert deployments_of(plan) == {}
    assert not plan.delete
    assert cond(model_status(plan), "Stalled")["reason"] == "UnsupportedFormat"


def test_a_runtime_the_table_lacks_is_named_in_the_condition() -> None:
    model = make_model({"version": "v1", "runtime": "seldon"})
    plan = model_core.reconcile(model, observed([mv("v1")]), now=NOW, runtimes=RUNTIMES)
    assert deployments_of(plan) == {}
    stalled = cond(model_status(plan), "Stalled")
    assert stalled["reason"] == "UnknownRuntime"
    assert "serving.runtime seldon" in stalled["message"]


def test_automatic_promotion_skips_a_version_no_runtime_loads() -> None:
    model = make_model({"promotion": "Automatic"})
    obs = observed([mv("v1", 20), mv("v2", 10, fmt="tensorflow/v2")])
    plan = model_core.reconcile(model, obs, now=NOW, runtimes=RUNTIMES)
    assert deployments_of(plan) == {"iris-v1": 1}


# -- artifacts in S3 ----------------------------------------------------------------------

STORAGE = {"s3": {"endpoint": "http://s3.storage:8333", "credentialsSecret": "s3-credentials"}}


def s3_version(version: str, age_hours: float = 1) -> api.ModelVersion:
    document = mv(version, age_hours).to_dict()
    document["spec"]["artifact"]["uri"] = f"s3://ml-models/iris/{version}"
    return api.ModelVersion.model_validate(document)


def s3_model(
    serving: dict[str, Any], status: dict[str, Any] | None = None, **spec: Any
) -> api.Model:
    document = make_model(serving, status).to_dict()
    document["spec"] |= {"storage": STORAGE, **spec}
    return api.Model.model_validate(document)


def test_an_s3_artifact_is_fetched_and_verified_by_an_init_step() -> None:
    plan = model_core.reconcile(s3_model({"version": "v1"}), observed([s3_version("v1")]), now=NOW)
    (dep,) = (o for o in plan.apply if o["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == api.DEFAULT_SERVER_IMAGE
    assert init["command"] == ["python", "-m", "modelops.storage", "fetch"]
    assert init["args"] == [
        "--uri",
        "s3://ml-models/iris/v1",
        "--digest",
        DIGEST,
        "--dest",
        "/artifacts",
    ]
    init_env = {e["name"]: e.get("value", e.get("valueFrom")) for e in init["env"]}
    assert init_env["AWS_SECRET_ACCESS_KEY"] == {
        "secretKeyRef": {"name": "s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    (server,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["MODELOPS_SERVER_ARTIFACT_DIR"] == "/artifacts"
    # The credentials go to the download step only, never to the server.
    assert not [e for e in server["env"] if e["name"].startswith("AWS_")]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["artifacts"]


def test_an_s3_artifact_without_storage_settings_is_not_served() -> None:
    plan = model_core.reconcile(
        make_model({"version": "v1"}), observed([s3_version("v1")]), now=NOW
    )
    assert deployments_of(plan) == {}
    stalled = cond(model_status(plan), "Stalled")
    assert stalled["reason"] == "UnsupportedArtifact"
    assert "spec.storage.s3" in stalled["message"]


def test_a_failing_artifact_download_fails_the_rollout_with_its_reason() -> None:
    model = s3_model({"version": "v2"}, {"productionVersion": "v1"})
    pod = {
        "metadata": {"name": "iris-v2-abc"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "fetch-artifact",
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "message": "the S3 server refused the credentials (InvalidAccessKeyId)",
                        }
                    },
                }
            ]
        },
    }
    obs = observed(
        [s3_version("v1", 20), s3_version("v2", 10)],
        {"v1": deployment("v1", 1, available_for=600), "v2": deployment("v2", 1)},
        {"v2": [pod]},
    )
    plan = model_core.reconcile(model, obs, now=NOW)
    assert deployments_of(plan) == {"iris-v1": 1}
    (entry,) = model_status(plan)["history"]
    assert entry["kind"] == "RolledBack"
    assert "InvalidAccessKeyId" in entry["reason"]


def test_retiring_an_s3_version_marks_and_deletes_its_objects() -> None:
    model = s3_model(
        {"version": "v2"},
        {"productionVersion": "v2"},
        retention={"keepLast": 0, "deleteArtifacts": True},
    )
    obs = observed([s3_version("v1", 30), s3_version("v2", 10)])
    (job,) = _retire_jobs(model_core.reconcile(model, obs, now=NOW))
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "modelops.storage", "retire"]
    assert container["args"][:2] == ["--uri", "s3://ml-models/iris/v1"]
    assert "--delete-artifacts" in container["args"]
    assert job["spec"]["template"]["spec"]["volumes"] == []
    assert any(e["name"] == "AWS_ACCESS_KEY_ID" for e in container["env"])
