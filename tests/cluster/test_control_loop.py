"""The write path against a real API server: optimistic concurrency, write order, ownership,
aggregated Events (issue 11). The operator's client and executor are driven directly, so each
test reaches the exact window it is about (a write computed from a read someone else has
since overtaken), not a quiet moment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.cluster import LocalCluster
from modelops.core.labels import MODEL
from modelops.core.plan import EventSpec, ObjectRef, Plan, StatusPatch
from modelops.k8s.cache import Cache, Source
from modelops.k8s.client import ConflictError, Kube, NameTakenError
from modelops.k8s.executor import execute
from tests.cluster.kube import apply, get, install_crds

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NS = "control-loop"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def kube(cluster: LocalCluster) -> Kube:
    install_crds(cluster)
    cluster.kubectl("create", "namespace", NS, check=False)
    return Kube.connect(str(cluster.kubeconfig))


def _model(cluster: LocalCluster, name: str) -> dict[str, Any]:
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name},
            "spec": {},
        },
        namespace=NS,
    )
    raw = get(cluster, "model", name, "-n", NS)
    assert raw is not None
    return raw


def _deployment(name: str, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": {"app": name}}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": owner["apiVersion"],
                "kind": owner["kind"],
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]},
            },
        },
    }


def test_a_status_computed_from_a_stale_read_is_refused_and_deletes_wait(
    cluster: LocalCluster, kube: Kube
) -> None:
    """Regression (issue 11.5 and 11.6): the status was merge-patched without the
    resourceVersion it was computed from (a concurrent writer's history entry was silently
    lost), and the old production Deployment was deleted before the status recorded the
    promotion (a failed status write then brought the old version back)."""
    read = _model(cluster, "stale")
    old = kube.apply(_deployment("stale-old", read))
    # Someone else records history after our read: the live object moves on.
    theirs = {"time": "2026-12-03T11:00:00Z", "kind": "Promoted", "to": "v9", "reason": "theirs"}
    cluster.kubectl(
        "patch",
        "model",
        "stale",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"history": [theirs]}}),
    )
    ours = {"time": "2026-12-03T11:05:00Z", "kind": "Promoted", "to": "v2", "reason": "ours"}
    plan = Plan(
        status=(StatusPatch(ObjectRef.of(read), {"productionVersion": "v2", "history": [ours]}),),
        delete=(ObjectRef.of(old),),
    )
    with pytest.raises(ConflictError):
        execute(kube, plan, regarding=read, live={ObjectRef.of(read): read}, now=NOW)
    live = get(cluster, "model", "stale", "-n", NS)
    assert live is not None
    assert live["status"]["history"] == [theirs]  # nothing of theirs was overwritten
    assert get(cluster, "deployment", "stale-old", "-n", NS) is not None  # still serving

    # Decided again from a fresh read, the same plan goes through, the delete last.
    fresh = get(cluster, "model", "stale", "-n", NS)
    assert fresh is not None
    retry = Plan(
        status=(
            StatusPatch(
                ObjectRef.of(fresh), {"productionVersion": "v2", "history": [theirs, ours]}
            ),
        ),
        delete=(ObjectRef.of(old),),
    )
    assert execute(kube, retry, regarding=fresh, live={ObjectRef.of(fresh): fresh}, now=NOW) == 2
    done = get(cluster, "model", "stale", "-n", NS)
    assert done is not None
    assert [h["reason"] for h in done["status"]["history"]] == ["theirs", "ours"]
    assert get(cluster, "deployment", "stale-old", "-n", NS) is None


def test_a_child_name_held_by_someone_else_is_never_taken_over(
    cluster: LocalCluster, kube: Kube
) -> None:
    """Regression (issue 11.4): server-side apply with force took over any object of the
    child's name; now an object without our owner reference is left exactly as it was."""
    owner = _model(cluster, "owner")
    apply(cluster, _deployment("taken"), namespace=NS)  # someone else's, same name
    before = get(cluster, "deployment", "taken", "-n", NS)
    assert before is not None
    ours = _deployment("taken", owner)
    ours["spec"]["replicas"] = 3
    with pytest.raises(NameTakenError):
        kube.apply(ours, new=True)
    after = get(cluster, "deployment", "taken", "-n", NS)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "ownerReferences" not in after["metadata"]

    # Our own child, merely missing from what the reconcile saw, is updated as usual.
    mine = _deployment("mine", owner)
    kube.apply(mine, new=True)
    mine["spec"]["replicas"] = 2
    kube.apply(mine, new=True)
    live = get(cluster, "deployment", "mine", "-n", NS)
    assert live is not None
    assert live["spec"]["replicas"] == 2


def test_create_returns_only_its_own_record(cluster: LocalCluster, kube: Kube) -> None:
    """Regression (issue 11.4): a 409 on create returned whatever object held the name."""
    owner = _model(cluster, "records")
    record = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {
            "name": "records-1",
            "namespace": NS,
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": "Model",
                    "name": "records",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "modelRef": {"name": "records"},
            "version": "1",
            "artifact": {
                "uri": "pvc://models/records/1",
                "digest": "sha256:" + "ab" * 32,
                "format": "modelops-linear/v1",
            },
        },
    }
    _, created = kube.create(record)
    assert created
    again, created = kube.create(record)  # a retried reconcile: our own record, not created
    assert not created
    assert again["metadata"]["name"] == "records-1"
    other = json.loads(json.dumps(record))
    other["spec"]["artifact"]["digest"] = "sha256:" + "cd" * 32
    with pytest.raises(ConflictError):
        kube.create(other)


def test_repeated_events_are_aggregated(cluster: LocalCluster, kube: Kube) -> None:
    """Regression (issue 11.7): every repeat created a new Event object with count 1."""
    model = _model(cluster, "noisy")
    warning = EventSpec("Warning", "RolloutFailed", "version 1 failed to roll out: crash loop")
    for _ in range(3):
        kube.post_event(model, warning, NOW)
    kube.post_event(model, EventSpec("Normal", "Promoted", "Promoted 2 to production"), NOW)
    events = json.loads(
        cluster.kubectl(
            "get",
            "events",
            "-n",
            NS,
            "--field-selector",
            "involvedObject.name=noisy",
            "-o",
            "json",
        ).stdout
    )["items"]
    counts = sorted((e["reason"], e.get("count")) for e in events)
    assert counts == [("Promoted", 1), ("RolloutFailed", 3)]


def test_a_live_read_brings_a_lagging_cache_up_to_date(cluster: LocalCluster) -> None:
    """Issue 12: a decision confirmed live (a finished Job's pods) must not send every later
    reconcile to the API server while the cache is behind: what the live read found is in
    the cache afterwards. Here the cache never started, the laggiest cache there is."""
    name = "lagging"
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {MODEL: name}},
        "spec": {"ports": [{"port": 80}], "selector": {MODEL: name}},
    }
    apply(cluster, svc, namespace=NS)
    kube = Kube.connect(str(cluster.kubeconfig))
    kube.cache = Cache.for_client(
        kube.api, [Source("v1", "Service", MODEL)], [NS], on_event=lambda *_: None
    )
    selector = {MODEL: name}
    assert kube.list("v1", "Service", NS, labels=selector) == []
    (live,) = kube.list("v1", "Service", NS, labels=selector, live=True)
    (cached,) = kube.list("v1", "Service", NS, labels=selector)
    assert cached["metadata"]["uid"] == live["metadata"]["uid"]
    assert kube.get("v1", "Service", NS, name) is not None
