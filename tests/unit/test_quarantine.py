"""Tainted-data quarantine: which versions a Quarantine reaches, and what the Model does about
it (take production off them, refuse to pin them, announce once, lift without re-serving).
Table-style on the pure decisions; the cluster test is tests/cluster/test_quarantine.py."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from modelops import api
from modelops.core import model as model_core
from modelops.core import quarantine
from modelops.core.plan import Plan
from tests.unit.test_model import (
    NOW,
    cond,
    deployment,
    deployments_of,
    make_model,
    model_status,
    mv,
    observed,
    version_phases,
)

BAD = "sha256:" + "ba" * 32
GOOD = "sha256:" + "60" * 32
IMAGE = "sha256:" + "1e" * 32
AUTO = {"promotion": "Automatic", "replicas": 2}


def declared(
    name: str = "q1", *, dataset: str | None = BAD, image: str | None = None, by: str = "alice"
) -> api.Quarantine:
    spec: dict[str, Any] = {"reason": "poisoned labels"}
    if image is not None:
        spec["imageDigest"] = image
    elif dataset is not None:
        spec["datasetDigest"] = dataset
    return api.Quarantine.model_validate(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Quarantine",
            "metadata": {
                "name": name,
                "generation": 1,
                "annotations": {"modelops.dev/declared-by": by},
            },
            "spec": spec,
        }
    )


TAINTS = quarantine.taints([declared()])


def trained(
    version: api.ModelVersion,
    dataset: str = GOOD,
    *,
    parent: str | None = None,
    image: str = "trainer:1",
    uri: str | None = None,
) -> api.ModelVersion:
    out = version.model_copy(deep=True)
    out.spec.provenance = api.Provenance(
        dataset=api.DatasetReference(uri=uri or f"pvc://data/{dataset[7:15]}.csv", digest=dataset),
        image=image,
        parent_version=parent,
    )
    return out


def with_taints(obs: model_core.Observed, taints: Any = TAINTS) -> model_core.Observed:
    return replace(obs, taints=taints)


def labels_of(plan: Plan) -> dict[str, dict[str, str | None]]:
    return {m.target.name: m.labels for m in plan.metadata}


def version_status(plan: Plan, name: str) -> dict[str, Any]:
    return next(p.status for p in plan.status if p.target.name == name)


# -- which versions a Quarantine reaches --------------------------------------------------


def test_a_dataset_reaches_its_versions_and_their_descendants_only() -> None:
    versions = [
        trained(mv("v1", 5), BAD),
        trained(mv("v2", 4), GOOD, parent="v1"),  # retrained from v1: reached
        trained(mv("v3", 3), GOOD, parent="v2"),  # two generations down: reached
        trained(mv("v4", 2), GOOD),  # clean
        mv("v5", 1),  # no provenance at all
    ]
    verdicts = quarantine.reached(versions, TAINTS)
    assert {v: d.via for v, d in verdicts.items()} == {
        "v1": "dataset",
        "v2": "parent v1",
        "v3": "parent v2",
    }
    assert verdicts["v3"].reason == "ParentQuarantined"
    assert "Quarantine q1: poisoned labels" in verdicts["v3"].describe()


def test_an_image_digest_reaches_versions_trained_by_that_image() -> None:
    taints = quarantine.taints([declared(image=IMAGE)])
    versions = [
        trained(mv("v1"), GOOD, image=f"registry.local/trainer@{IMAGE}"),
        trained(mv("v2"), GOOD, image="registry.local/trainer:1"),  # a tag proves nothing
    ]
    assert {v: d.via for v, d in quarantine.reached(versions, taints).items()} == {"v1": "image"}


def test_no_quarantine_reaches_nothing() -> None:
    assert quarantine.reached([trained(mv("v1"), BAD)], ()) == {}


def test_the_quarantine_status_records_the_declarer_and_every_version_reached() -> None:
    versions = [trained(mv("v1", 2), BAD), trained(mv("v2", 1), GOOD, parent="v1")]
    other = trained(mv("v1"), BAD).model_copy(deep=True)
    other.metadata.namespace = "team-b"
    plan = quarantine.reconcile(declared(), [*versions, other], now=NOW)
    (patch,) = plan.status
    assert (patch.target.kind, patch.target.namespace, patch.target.name) == (
        "Quarantine",
        "",
        "q1",
    )
    assert patch.status["declaredBy"] == "alice"
    assert patch.status["affectedCount"] == 3
    assert [(a["namespace"], a["version"], a["via"]) for a in patch.status["affected"]] == [
        ("ml", "v1", "dataset"),
        ("ml", "v2", "parent v1"),
        ("team-b", "v1", "dataset"),
    ]
    assert cond(patch.status, "Ready")["reason"] == "Enforced"


# -- what the Model does ------------------------------------------------------------------


def test_production_on_tainted_data_rolls_back_to_the_newest_clean_version_at_once() -> None:
    versions = [
        trained(mv("v1", 5, phase="Registered"), GOOD),
        trained(mv("v2", 3, phase="Registered"), GOOD),
        trained(mv("v3", 1, phase="Serving"), BAD),
    ]
    model = make_model(AUTO, {"productionVersion": "v3"})
    obs = observed(versions, {"v3": deployment("v3", 2, available_for=900)})
    plan = model_core.reconcile(model, with_taints(obs), now=NOW)
    status = model_status(plan)
    assert status["productionVersion"] == "v2"
    assert deployments_of(plan) == {"iris-v2": 2}  # no canary: the tainted one goes now
    assert [d.name for d in plan.delete if d.kind == "Deployment"] == ["iris-v3"]
    entry = status["history"][-1]
    assert (entry["kind"], entry["from"], entry["to"]) == ("Quarantined", "v3", "v2")
    assert "Quarantine q1" in entry["reason"]
    assert status["quarantinedVersions"] == ["v3"]
    assert {e.reason for e in plan.events} == {"Quarantined", "VersionQuarantined"}
    assert {n.type for n in plan.notifications} == {
        "dev.modelops.model.quarantined",
        "dev.modelops.modelversion.quarantined",
    }
    # The version: Registered, not Ready, Quarantined, labelled for admission.
    assert version_phases(plan)["iris-v3"] == "Registered"
    v3 = version_status(plan, "iris-v3")
    assert cond(v3, "Ready")["status"] == "False"
    assert cond(v3, "Quarantined")["reason"] == "DatasetQuarantined"
    assert cond(v3, "Stalled")["status"] == "True"
    assert labels_of(plan) == {"iris-v3": {"modelops.dev/quarantined": "true"}}


def test_with_no_clean_version_nothing_serves_and_the_model_says_why() -> None:
    versions = [
        trained(mv("v1", 5, phase="Registered"), BAD),
        trained(mv("v2", 1, phase="Serving"), GOOD, parent="v1"),
    ]
    model = make_model(AUTO, {"productionVersion": "v2"})
    obs = observed(versions, {"v2": deployment("v2", 2, available_for=900)})
    plan = model_core.reconcile(model, with_taints(obs), now=NOW)
    status = model_status(plan)
    assert "productionVersion" not in status
    assert deployments_of(plan) == {}
    assert cond(status, "Ready")["reason"] == "Quarantined"
    assert cond(status, "Degraded")["reason"] == "Quarantined"
    assert status["history"][-1]["kind"] == "Quarantined"
    assert "to" not in status["history"][-1]
    # The next reconcile keeps saying so, and appends nothing.
    again = model_core.reconcile(
        make_model(AUTO, status), with_taints(observed(versions)), now=NOW + timedelta(minutes=1)
    )
    assert cond(model_status(again), "Ready")["reason"] == "Quarantined"
    assert model_status(again)["history"] == status["history"]
    assert again.events == ()
    assert again.notifications == ()


def test_a_pinned_version_with_nothing_clean_says_the_pin_must_change_every_time() -> None:
    versions = [trained(mv("s1", 1, phase="Serving"), BAD)]
    model = make_model({"version": "s1"}, {"productionVersion": "s1"})
    obs = observed(versions, {"s1": deployment("s1", 1, available_for=900)})
    first = model_core.reconcile(model, with_taints(obs), now=NOW)
    status = model_status(first)
    assert "productionVersion" not in status
    assert cond(status, "Ready")["reason"] == "VersionQuarantined"
    assert cond(status, "Stalled")["status"] == "True"
    again = model_core.reconcile(
        make_model({"version": "s1"}, status), with_taints(observed(versions)), now=NOW
    )
    assert model_status(again)["conditions"] == status["conditions"]


def test_a_quarantined_canary_is_stopped_and_never_promoted() -> None:
    versions = [
        trained(mv("v1", 5, phase="Serving"), GOOD),
        trained(mv("v2", 1, phase="Canary"), BAD),
    ]
    serving = {**AUTO, "canary": {"replicasPercent": 50, "minReadySeconds": 0}}
    model = make_model(serving, {"productionVersion": "v1", "canaryVersion": "v2"})
    deps = {
        "v1": deployment("v1", 1, available_for=900),
        "v2": deployment("v2", 1, available_for=900),
    }
    plan = model_core.reconcile(model, with_taints(observed(versions, deps)), now=NOW)
    status = model_status(plan)
    assert status["productionVersion"] == "v1"
    assert "canaryVersion" not in status
    assert deployments_of(plan) == {"iris-v1": 2}
    assert "CanaryAborted" in {e.reason for e in plan.events}


def test_a_pinned_quarantined_version_is_refused_and_production_moves_off_it() -> None:
    versions = [
        trained(mv("v1", 5, phase="Registered"), GOOD),
        trained(mv("v2", 1, phase="Serving"), BAD),
    ]
    model = make_model({"version": "v2", "replicas": 2}, {"productionVersion": "v2"})
    obs = observed(versions, {"v2": deployment("v2", 2, available_for=900)})
    plan = model_core.reconcile(model, with_taints(obs), now=NOW)
    status = model_status(plan)
    assert status["productionVersion"] == "v1"
    assert cond(status, "Degraded")["reason"] == "VersionQuarantined"
    assert cond(status, "Stalled")["status"] == "True"  # the pin has to change
    # Pinning it anew is refused the same way (admission refuses it first).
    pinned = make_model({"version": "v2"}, {"productionVersion": "v1"})
    plan = model_core.reconcile(pinned, with_taints(observed(versions)), now=NOW)
    assert model_status(plan)["productionVersion"] == "v1"
    assert "iris-v2" not in deployments_of(plan)


def test_marking_is_announced_once_and_a_retry_writes_the_same_labels() -> None:
    versions = [trained(mv("v1", 5, phase="Serving"), GOOD), trained(mv("v2", 1), BAD)]
    deps = {"v1": deployment("v1", 2, available_for=900)}
    model = make_model(AUTO, {"productionVersion": "v1"})
    first = model_core.reconcile(model, with_taints(observed(versions, deps)), now=NOW)
    assert [e.reason for e in first.events] == ["VersionQuarantined"]
    # The Model's status was written, the version's label and status were not (a crash):
    # the retry marks the version again, and announces nothing again.
    retry = model_core.reconcile(
        make_model(AUTO, model_status(first)), with_taints(observed(versions, deps)), now=NOW
    )
    assert retry.events == ()
    assert retry.notifications == ()
    assert labels_of(retry) == {"iris-v2": {"modelops.dev/quarantined": "true"}}


def test_lifting_restores_pinning_but_automatic_promotion_never_picks_the_version() -> None:
    marked = trained(mv("v2", 1), BAD)
    marked.metadata.labels = {"modelops.dev/quarantined": "true"}
    marked.status.conditions = [
        api.Condition(
            type="Quarantined",
            status=api.ConditionStatus.TRUE,
            reason="DatasetQuarantined",
            message="x",
            last_transition_time=NOW,
        )
    ]
    versions = [trained(mv("v1", 5, phase="Serving"), GOOD), marked]
    deps = {"v1": deployment("v1", 2, available_for=900)}
    model = make_model(AUTO, {"productionVersion": "v1", "quarantinedVersions": ["v2"]})
    plan = model_core.reconcile(model, observed(versions, deps), now=NOW)  # no Quarantine now
    assert model_status(plan)["productionVersion"] == "v1"
    assert deployments_of(plan) == {"iris-v1": 2}  # v2 is newer, but not served by itself
    assert "quarantinedVersions" not in model_status(plan)
    assert labels_of(plan) == {"iris-v2": {"modelops.dev/quarantined": None}}
    v2 = version_status(plan, "iris-v2")
    assert cond(v2, "Quarantined")["status"] == "False"
    assert cond(v2, "Quarantined")["reason"] == "Lifted"
    assert cond(v2, "Ready")["status"] == "True"
    assert [e.reason for e in plan.events] == ["QuarantineLifted"]
    assert [n.type for n in plan.notifications] == ["dev.modelops.modelversion.quarantinelifted"]
    # A person may pin it now.
    pinned = make_model({"version": "v2", "replicas": 2}, {"productionVersion": "v1"})
    lifted = marked.model_copy(deep=True)
    lifted.metadata.labels = {}
    lifted.status = api.ModelVersionStatus.model_validate(version_status(plan, "iris-v2"))
    plan = model_core.reconcile(pinned, observed([versions[0], lifted], deps), now=NOW)
    assert "iris-v2" in deployments_of(plan)


def test_a_pin_taken_off_by_a_quarantine_serves_again_only_after_an_edit() -> None:
    versions = [trained(mv("s1", 1, phase="Registered"), BAD)]  # lifted: no taint any more
    taken_off = {
        "history": [
            {
                "time": NOW.isoformat(),
                "kind": "Quarantined",
                "from": "s1",
                "reason": "x",
                "generation": 2,
            }
        ]
    }
    same = make_model({"version": "s1"}, taken_off)  # generation 2, as when it was taken off
    plan = model_core.reconcile(same, observed(versions), now=NOW)
    assert deployments_of(plan) == {}
    assert cond(model_status(plan), "Ready")["reason"] == "QuarantineLifted"
    assert cond(model_status(plan), "Stalled")["status"] == "True"
    edited = same.model_copy(deep=True)
    edited.metadata.generation = 3
    plan = model_core.reconcile(edited, observed(versions), now=NOW)
    assert deployments_of(plan) == {"iris-s1": 1}


# -- retraining ---------------------------------------------------------------------------


def _model_with_training(dataset: dict[str, Any], image: str = "trainer:1") -> api.Model:
    return api.Model.model_validate(
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris", "namespace": "ml"},
            "spec": {
                "training": {
                    "image": image,
                    "dataset": dataset,
                    "output": {"pvc": {"claimName": "models"}},
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("dataset", "image", "refused"),
    [
        ({"uri": "pvc://data/new.csv", "digest": BAD}, "trainer:1", "spec.training.dataset"),
        ({"uri": "pvc://data/train.csv"}, "trainer:1", "pin the replacement data"),
        ({"uri": "pvc://data/train.csv", "digest": GOOD}, "trainer:1", None),
        ({"uri": "pvc://data/other.csv"}, "trainer:1", None),
        ({"uri": "pvc://data/new.csv"}, f"trainer@{IMAGE}", "spec.training.image"),
    ],
    ids=["tainted-digest", "tainted-location", "replaced-data", "other-data", "tainted-image"],
)
def test_retraining_from_tainted_data_is_refused(
    dataset: dict[str, Any], image: str, refused: str | None
) -> None:
    taints = quarantine.taints([declared(), declared("q2", image=IMAGE)])
    versions = [trained(mv("v1"), BAD, uri="pvc://data/train.csv")]
    why = quarantine.retrain_refused(_model_with_training(dataset, image), versions, taints)
    if refused is None:
        assert why is None
    else:
        assert why is not None
        assert refused in why, why
