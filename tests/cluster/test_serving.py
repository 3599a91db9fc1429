"""Serving on the local control plane: train → version → Deployment → real V2 inference, then a
canary takeover, a tampered version rolled back, retention, and CloudEvents notifications."""

from __future__ import annotations

import functools
import json
import operator
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cluster import LocalCluster
from tests.cluster.kube import (
    Operator,
    Sink,
    apply,
    artifacts_root,
    condition,
    get,
    has_condition,
    operator_writes,
    prepare_namespace,
    training_run,
)
from tests.cluster.kube import wait_for as wait

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NS = "serving"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [4.6, 3.1, 1.5, 0.2]]


def seeded_run(name: str, seed: int) -> dict[str, Any]:
    return training_run(name, env=[{"name": "MODELOPS_TRAINER_SEED", "value": str(seed)}])


@pytest.fixture(scope="module")
def env(
    cluster: LocalCluster, sink: Sink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    prepare_namespace(cluster, NS)
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {
                "serving": {
                    "promotion": "Automatic",
                    "gates": [{"metric": "accuracy", "min": 0.85}],
                    "replicas": 2,
                    "progressDeadlineSeconds": 30,
                    "canary": {"replicasPercent": 50, "minReadySeconds": 5},
                    "command": ["python", "-m", "modelops.runtimes.server"],
                    # Spelled as the API server does not store them (50m, 64Mi): a settled
                    # Model must still compare equal and write nothing.
                    "resources": {"requests": {"cpu": "0.05", "memory": "0.0625Gi"}},
                },
                "retention": {"keepLast": 1},
                "notifications": {"sinks": [{"url": sink.url}]},
            },
        },
        namespace=NS,
    )
    op = Operator(cluster.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log", NS)
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(op.log.read_text()[-5000:])


def model(cluster: LocalCluster) -> dict[str, Any]:
    obj = get(cluster, "model", "iris", "-n", NS)
    assert obj is not None
    return obj


def serving_pods(cluster: LocalCluster, version: str) -> list[dict[str, Any]]:
    return [
        p
        for p in json.loads(
            cluster.kubectl(
                "get",
                "pods",
                "-n",
                NS,
                "-l",
                f"modelops.dev/model=iris,modelops.dev/version={version}",
                "-o",
                "json",
            ).stdout
        )["items"]
        if p["metadata"].get("deletionTimestamp") is None
    ]


def infer(pod_ip: str, rows: list[list[float]]) -> dict[str, Any]:
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), 4],
                    "datatype": "FP64",
                    "data": functools.reduce(operator.iadd, rows, []),
                }
            ]
        }
    ).encode()
    req = urllib.request.Request(
        f"http://{pod_ip}:8080/v2/models/iris/infer",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def expected_labels(artifact_dir: Path, rows: list[list[float]]) -> list[str]:
    """An independent implementation of modelops-linear/v1 on the artifact on disk."""
    m = json.loads((artifact_dir / "model.json").read_text())
    x = (np.array(rows) - np.array(m["mean"])) / np.array(m["scale"])
    scores = x @ np.array(m["weights"]) + np.array(m["bias"])
    return [m["classes"][i] for i in np.argmax(scores, axis=1)]


def test_first_version_serves_real_predictions(cluster: LocalCluster, env: Operator) -> None:
    apply(cluster, seeded_run("iris-1", seed=0), namespace=NS)
    wait(
        cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("productionVersion") == "1",
        timeout=240,
        what="version 1 in production",
    )
    wait(cluster, ["model", "iris", "-n", NS], has_condition("Ready"), timeout=60)
    pods = serving_pods(cluster, "1")
    assert len(pods) == 2
    assert len({p["status"]["podIP"] for p in pods}) == 2
    expected = expected_labels(artifacts_root(cluster, NS) / "iris" / "iris-1", ROWS)
    for pod in pods:
        answer = infer(pod["status"]["podIP"], ROWS)
        assert answer["model_version"] == "1"
        assert answer["outputs"][0]["data"] == expected
    mv = get(cluster, "modelversion", "iris-1", "-n", NS)
    assert mv is not None
    assert mv["status"]["phase"] == "Serving"
    text = env.metrics()
    assert (
        'modelops_model_serving_info{model="iris",namespace="serving",role="production",'
        'version="1"} 1.0'
    ) in text


def test_second_version_is_canary_then_production(cluster: LocalCluster, env: Operator) -> None:
    apply(cluster, seeded_run("iris-2", seed=1), namespace=NS)
    wait(
        cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("canaryVersion") == "2",
        timeout=240,
        what="version 2 as canary",
    )
    deployments = {
        d["metadata"]["name"]: d["spec"]["replicas"]
        for d in json.loads(cluster.kubectl("get", "deployments", "-n", NS, "-o", "json").stdout)[
            "items"
        ]
    }
    assert deployments == {"iris-1": 1, "iris-2": 1}  # 50% of 2 replicas
    m = wait(
        cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("productionVersion") == "2",
        timeout=120,
        what="version 2 promoted",
    )
    last = m["status"]["history"][-1]
    assert (last["kind"], last["from"], last["to"]) == ("Promoted", "1", "2")
    wait(
        cluster,
        ["deployment", "iris-2", "-n", NS],
        lambda d: d["spec"]["replicas"] == 2 and d["status"].get("availableReplicas") == 2,
    )
    assert get(cluster, "deployment", "iris-1", "-n", NS) is None or get(
        cluster, "deployment", "iris-1", "-n", NS
    )["metadata"].get("deletionTimestamp")  # type: ignore[index]


def test_tampered_version_never_ready_and_is_rolled_back(
    cluster: LocalCluster, env: Operator
) -> None:
    good = get(cluster, "modelversion", "iris-2", "-n", NS)
    assert good is not None
    tampered = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "iris-3"},
        "spec": {
            "modelRef": {"name": "iris"},
            "version": "3",
            "artifact": {**good["spec"]["artifact"], "digest": "sha256:" + "0" * 64},
            "metrics": {"accuracy": 0.99},
        },
    }
    apply(cluster, tampered, namespace=NS)
    wait(
        cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("canaryVersion") == "3",
        timeout=60,
    )
    for pod in serving_pods(cluster, "3"):
        # A pod just created has no Ready condition yet: that is not ready either.
        ready = next((c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"), None)
        assert ready is None or ready["status"] == "False"
    m = wait(
        cluster,
        ["model", "iris", "-n", NS],
        # The Event is sent after the status that records the rollback (and its announcement):
        # wait until the announcement is settled, not only recorded.
        lambda m: (
            any(
                h["kind"] == "RolledBack" and h.get("from") == "3"
                for h in m.get("status", {}).get("history") or []
            )
            and not m["status"].get("announcements")
        ),
        timeout=180,
        what="rollback of version 3, announced",
    )
    status = m["status"]
    assert status["productionVersion"] == "2"
    assert "canaryVersion" not in status
    assert condition(m, "Degraded")["status"] == "True"  # type: ignore[index]
    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", NS, "--field-selector", "involvedObject.kind=Model", "-o", "json"
        ).stdout
    )
    assert "RolledBack" in {e["reason"] for e in events["items"]}
    mv3 = get(cluster, "modelversion", "iris-3", "-n", NS)
    assert condition(mv3, "Ready")["reason"] == "RolloutFailed"  # type: ignore[arg-type,index]


def test_retention_retires_the_oldest_version(cluster: LocalCluster, env: Operator) -> None:
    # The phase (status) and the label (metadata) are two writes: wait for both.
    mv1 = wait(
        cluster,
        ["modelversion", "iris-1", "-n", NS],
        lambda v: (
            v.get("status", {}).get("phase") == "Retired"
            and "modelops.dev/retired" in v["metadata"].get("labels", {})
        ),
        timeout=120,
    )
    assert mv1["metadata"]["labels"]["modelops.dev/retired"] == "true"
    assert serving_pods(cluster, "1") == []
    marker = artifacts_root(cluster, NS) / "iris" / "iris-1" / "RETIRED"
    wait(
        cluster,
        ["job", "retire-iris-1", "-n", NS],
        lambda j: any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in j.get("status", {}).get("conditions", [])
        ),
        timeout=120,
    )
    assert marker.exists()
    assert (marker.parent / "model.json").exists()  # deleteArtifacts is false: data kept


def test_one_cloudevent_per_version_change(
    cluster: LocalCluster, env: Operator, sink: Sink
) -> None:
    m = model(cluster)
    history = m["status"]["history"]
    deadline_types = [f"dev.modelops.model.{h['kind'].lower()}" for h in history]
    wait(
        cluster,
        ["model", "iris", "-n", NS],
        lambda _: len(sink.events) >= len(history),
        timeout=60,
        what="all events delivered",
    )
    assert [e["type"] for e in sink.events] == deadline_types
    assert all(e["specversion"] == "1.0" and e["subject"] == "serving/iris" for e in sink.events)


def test_a_settled_model_makes_no_writes(cluster: LocalCluster, env: Operator) -> None:
    """Regression (issue 11.8): a serving ``cpu: "0.5"`` never compared equal to the stored
    ``500m``, so every reconcile re-applied the Deployment. After everything settles, a
    restarted operator reconciles the Model and writes nothing (counted in the audit log)."""
    wait(
        cluster,
        ["model", "iris", "-n", NS],
        lambda m: (
            has_condition("Ready")(m)
            and "canaryVersion" not in m["status"]
            and (condition(m, "Progressing") or {}).get("status") == "False"
        ),
        timeout=120,
        what="the Model to settle",
    )
    env.stop()
    since = time.time()
    env.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [
            line
            for line in env.metrics().splitlines()
            if line.startswith('modelops_reconciles_total{kind="Model",result="success"}')
        ]
        if done and float(done[0].split()[-1]) >= 1:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the restarted operator did not reconcile the Model")
    writes = operator_writes(cluster.audit_log, since)
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]
