"""A settled namespace at scale costs the API server nothing: 100 Models serving, 1,000
ModelVersions and 1,000 finished TrainingRuns, then a full resync of every object makes no write
and no read request (counted in the API server's audit log); reads are served by the cache's
list+watch alone.

Every pod goes to a KWOK node, so nothing runs: a MutatingAdmissionPolicy of the test (as a
cluster admin's policy would) puts the serving and retire pods of this namespace on the fake
node; the training pods ask for it themselves. KWOK ends a training pod without the trainer's
result, so each run finishes as failed (``InvalidResult``): settled all the same.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.cluster import LocalCluster
from tests.cluster.kube import (
    Operator,
    condition,
    install_crds,
    model_version,
    on_kwok,
    operator_writes,
    pvc,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1500)]

NS = "scale"
MODELS = 100
VERSIONS_PER_MODEL = 10
RUNS_PER_MODEL = 10
RESYNC_SECONDS = 20
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
ON_KWOK = on_kwok("test-scale-on-kwok", NS)


def _model(i: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"serving": {"version": str(VERSIONS_PER_MODEL)}}
    if i % 10 == 0:  # some Models retire old versions: settled retirements too
        spec["retention"] = {"keepLast": 5}
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": f"m{i}"},
        "spec": spec,
    }


def _run(model: str, r: int) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": f"{model}-run-{r}"},
        "spec": {
            "modelRef": {"name": model},
            "image": "ghcr.io/modelops/trainer:0.1.0",
            "nodeSelector": {"type": "kwok"},
            "tolerations": [KWOK_TOLERATION],
            "dataset": {"uri": "pvc://datasets/iris.csv"},
            "output": {"pvc": {"claimName": "models"}},
        },
    }


def _items(cluster: LocalCluster, kind: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", kind, "-n", NS, "-o", "json", timeout=120).stdout
    return json.loads(out)["items"]  # type: ignore[no-any-return]


def _create(cluster: LocalCluster, objs: list[dict[str, Any]]) -> None:
    for i in range(0, len(objs), 250):
        doc = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs[i : i + 250]})
        cluster.kubectl("create", "-n", NS, "-f", "-", input=doc, timeout=300)


def _settled(cluster: LocalCluster) -> bool:
    runs = _items(cluster, "trainingruns")
    models = _items(cluster, "models")
    return (
        len(runs) == MODELS * RUNS_PER_MODEL
        and all(
            (condition(r, "Succeeded") or {}).get("status") in ("True", "False")
            and not r["status"].get("announcements")
            and r["status"].get("observedGeneration") == r["metadata"]["generation"]
            for r in runs
        )
        and len(models) == MODELS
        and all(
            (condition(m, "Ready") or {}).get("status") == "True"
            and not m["status"].get("announcements")
            for m in models
        )
    )


def _wait(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def settled(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    install_crds(cluster)
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("apply", "-f", "-", input=ON_KWOK)
    for claim in ("models", "datasets"):
        cluster.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(pvc(claim)))
    models = [_model(i) for i in range(MODELS)]
    names = [m["metadata"]["name"] for m in models]
    _create(cluster, models)
    _create(
        cluster, [model_version(m, str(v)) for m in names for v in range(1, VERSIONS_PER_MODEL + 1)]
    )
    _create(cluster, [_run(m, r) for m in names for r in range(RUNS_PER_MODEL)])
    op = Operator(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("scale") / "operator.log",
        NS,
        env={"MODELOPS_RESYNC_SECONDS": str(RESYNC_SECONDS)},
    )
    op.start()
    try:
        _wait("every run finished and every Model ready", lambda: _settled(cluster), 900)
        yield op
    finally:
        op.stop()
        print(op.log.read_text()[-3000:])
        cluster.kubectl(
            "delete",
            "mutatingadmissionpolicybinding,mutatingadmissionpolicy",
            "test-scale-on-kwok",
            check=False,
        )


def _reconciled(op: Operator) -> float:
    total = 0.0
    for line in op.metrics().splitlines():
        if line.startswith("modelops_reconciles_total{") and 'result="success"' in line:
            total += float(line.split()[-1])
    return total


def _requests(op: Operator) -> dict[str, float]:
    """The operator's own count of its API requests (every verb, every resource), outside the
    cache's list+watch."""
    return {
        line.rsplit(" ", 1)[0]: float(line.split()[-1])
        for line in op.metrics().splitlines()
        if line.startswith("modelops_api_requests_total{")
    }


def test_a_full_resync_at_scale_makes_no_request(cluster: LocalCluster, settled: Operator) -> None:
    objects = MODELS + MODELS * RUNS_PER_MODEL
    # Let the writes of settling (a finished Job's TTL, the last statuses) pass.
    _wait(
        "10 s without a write by the operator",
        lambda: not operator_writes(cluster.audit_log, time.time() - 10),
        300,
    )
    since = time.time()
    requests = _requests(settled)
    before = _reconciled(settled)
    _wait(
        "a periodic resync of every object",
        lambda: _reconciled(settled) >= before + objects,
        RESYNC_SECONDS + 300,
    )
    resync = _reconciled(settled) - before
    writes = operator_writes(cluster.audit_log, since)
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes[:20]]
    assert _requests(settled) == requests  # no get, no list, no write: the cache served all
    print(f"resync: {resync:.0f} reconciles of {objects} objects, no request")
