"""Fault injection for the serving half of a lifecycle: the operator killed right after each of
its writes while a Model rolls out its first version, takes a canary, promotes it and retires the
version it replaced.

The TrainingRun half (Job, status, Events, ModelVersion) is covered in ``test_faults``. Here each
crash position N gets a Model of its own (``m{N}``) and two ModelVersions whose artifacts are
copies of one trained artifact. The operator starts with ``MODELOPS_TEST_CRASH_AFTER_WRITES=N``
(a test-only hook) and exits right after its N-th write: between a Deployment's create and the
status that records it, between a promotion's status write and the old Deployment's delete,
between a version's ``Retired`` phase and its label, before an announcement is settled, and so on.
A fresh operator then finishes the lifecycle. N grows until a lifecycle completes without
reaching it, so every write position of the lifecycle is hit once.

Each lifecycle must end exactly as an undisturbed one does, read from the API server's audit log
and the objects: one create of each Deployment, of the stable Service and of the retire Job; the
history ``Promoted → Promoted → Retired`` with no entry lost or doubled; each announcement one
Event object, and a CloudEvent for each history entry (at least once); the replaced version
retired (phase and label) and nothing left pending.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from harness.cluster import LocalCluster
from modelops.k8s.client import CRASH_AFTER_WRITES, CRASH_EXIT_CODE
from tests.cluster.kube import (
    CRASH_TEST_ARGS,
    Operator,
    Sink,
    apply,
    artifacts_root,
    audited,
    condition,
    events_of,
    get,
    model_version,
    prepare_namespace,
    training_run,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(2400)]

NS = "faults-serving"
MAX_WRITES = 80
"""More than one lifecycle makes: reaching it means the crash points were not counted."""
# The same identity after each restart (as a restarted container keeps its pod name), so a new
# process takes its own Lease back at once.
CHAOS_ENV = {"MODELOPS_POD_NAME": "faults-serving-operator"}
STEP_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def trained(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One artifact, trained for real; every crash position serves copies of it."""
    prepare_namespace(cluster, NS)
    model = {"apiVersion": "modelops.dev/v1alpha1", "kind": "Model", "metadata": {"name": "iris"}}
    apply(cluster, {**model, "spec": {}}, namespace=NS)
    apply(cluster, training_run("seed"), namespace=NS)
    op = Operator(cluster.kubeconfig, tmp_path_factory.mktemp("seed") / "operator.log", NS)
    op.start()
    try:
        run = wait_for(
            cluster,
            ["trainingrun", "seed", "-n", NS],
            lambda r: (condition(r, "Succeeded") or {}).get("status") == "True",
            timeout=240,
            what="the seed TrainingRun",
        )
    finally:
        op.stop()
    mv = get(cluster, "modelversion", run["status"]["modelVersion"], "-n", NS)
    assert mv is not None
    return mv["spec"]["artifact"]  # type: ignore[no-any-return]


def _model(name: str, sink: Sink) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "serving": {
                "promotion": "Automatic",
                "replicas": 1,
                "progressDeadlineSeconds": 120,
                "canary": {"replicasPercent": 50, "minReadySeconds": 1},
                "command": ["python", "-m", "modelops.runtimes.server"],
            },
            # Retire every version that does not serve: the replaced one, once promotion is done.
            "retention": {"keepLast": 0},
            "notifications": {"sinks": [{"url": sink.url}]},
        },
    }


def _version(cluster: LocalCluster, model: str, version: str, artifact: dict[str, Any]) -> None:
    """A ModelVersion of ``model`` whose artifact is a copy of the trained one (its own
    directory: retiring it marks the directory, which no other version may share)."""
    root = artifacts_root(cluster, NS)
    source = artifact["uri"].removeprefix("pvc://models/")
    # Owned like the trained directory (by the trainer's uid), or the retire Job, which runs as
    # that uid, could not mark it.
    shutil.copytree(root / source, root / model / version)
    owner = (root / source).stat()
    for path in [root / model, root / model / version, *(root / model / version).rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid)
    copy = {**artifact, "uri": f"pvc://models/{model}/{version}"}
    apply(cluster, model_version(model, version, copy, metrics={"accuracy": 0.9}), namespace=NS)


class Driver:
    """Waits on the lifecycle's steps; when the operator exits at its crash point, records
    which write it was and starts a fresh operator (no crash point) to carry on."""

    def __init__(self, cluster: LocalCluster, op: Operator) -> None:
        self.cluster = cluster
        self.op = op
        self.crashed = False

    def wait(self, args: list[str], pred: Callable[[dict[str, Any]], bool], what: str) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        while time.monotonic() < deadline:
            self._restart_if_crashed()
            obj = get(self.cluster, *args)
            if obj is not None and pred(obj):
                return
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}; last: {get(self.cluster, *args)}")

    def _restart_if_crashed(self) -> None:
        proc = self.op.proc
        if proc is None or proc.poll() is None:
            return
        assert proc.returncode == CRASH_EXIT_CODE, self.op.log.read_text()[-3000:]
        assert not self.crashed, "exited twice"
        self.crashed = True
        self.op.proc = None
        self.op.start()


def _settled(obj: dict[str, Any]) -> bool:
    return not (obj.get("status") or {}).get("announcements")


def _lifecycle(
    cluster: LocalCluster, op: Operator, name: str, artifact: dict[str, Any], sink: Sink
) -> bool:
    """Run one Model's lifecycle with the operator told to exit after write ``crash_after``
    (already in ``op``'s start); True when it crashed on the way."""
    drive = Driver(cluster, op)
    apply(cluster, _model(name, sink), namespace=NS)
    _version(cluster, name, "1", artifact)
    drive.wait(
        ["model", name, "-n", NS],
        lambda m: m.get("status", {}).get("productionVersion") == "1" and _settled(m),
        "version 1 in production",
    )
    _version(cluster, name, "2", artifact)
    drive.wait(
        ["model", name, "-n", NS],
        lambda m: (
            m.get("status", {}).get("productionVersion") == "2"
            and len(m["status"].get("history") or []) >= 3
            and _settled(m)
        ),
        "version 2 promoted and version 1 retired",
    )
    drive.wait(
        ["modelversion", f"{name}-1", "-n", NS],
        lambda v: (
            v.get("status", {}).get("phase") == "Retired"
            and v["metadata"].get("labels", {}).get("modelops.dev/retired") == "true"
            and _settled(v)
        ),
        "version 1 retired, phase and label",
    )
    drive.wait(
        ["job", f"retire-{name}-1", "-n", NS],
        lambda j: any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in j.get("status", {}).get("conditions", [])
        ),
        "the retire Job to complete",
    )
    drive.wait(["modelversion", f"{name}-2", "-n", NS], _settled, "version 2 settled")
    return drive.crashed


def _check(cluster: LocalCluster, name: str, sink: Sink, position: int) -> None:
    where = f"crash after write {position}"
    # Nothing created twice across the crash.
    for resource, child in (
        ("deployments", f"{name}-1"),
        ("deployments", f"{name}-2"),
        ("services", name),
        ("jobs", f"retire-{name}-1"),
    ):
        assert audited(cluster, NS, "create", resource, child) == 1, (where, resource, child)
    assert get(cluster, "deployment", f"{name}-1", "-n", NS) is None or get(
        cluster, "deployment", f"{name}-1", "-n", NS
    )["metadata"].get("deletionTimestamp"), where  # type: ignore[index]
    # History: no entry lost, none doubled.
    model = get(cluster, "model", name, "-n", NS)
    assert model is not None
    history = [(h["kind"], h.get("from"), h.get("to")) for h in model["status"]["history"]]
    assert history == [
        ("Promoted", None, "1"),
        ("Promoted", "1", "2"),
        ("Retired", "1", "2"),
    ], (where, history)
    # Every announcement one Event object (a repeat of the same announcement adds nothing). The
    # canary's start is announced with the status that records it: when the crash fell before
    # that write and the canary was ready for promotion by the time a fresh operator looked, no
    # status ever said "canary", and there is nothing to announce.
    model_events = sorted(
        e["reason"] for e in events_of(cluster, NS, name) if e["involvedObject"]["kind"] == "Model"
    )
    canary = ["CanaryStarted"] if _canary_recorded(cluster, name) else []
    assert model_events == [*canary, "Promoted", "Promoted", "Retired"], (where, model_events)
    # A CloudEvent for each history entry, at least once; a repeat carries the same id.
    received = {e["id"]: e["type"] for e in sink.events if e["subject"] == f"{NS}/{name}"}
    assert sorted(received.values()) == sorted(
        f"dev.modelops.model.{kind.lower()}" for kind, _, _ in history
    ), (where, received)


def _canary_recorded(cluster: LocalCluster, name: str) -> bool:
    """Whether a status write of the operator's ever recorded version 2 as the canary."""
    for line in cluster.audit_log.read_text().splitlines():
        e = json.loads(line)
        ref = e.get("objectRef", {})
        if (
            e["verb"] == "patch"
            and ref.get("resource") == "models"
            and ref.get("namespace") == NS
            and ref.get("name") == name
            and ref.get("subresource") == "status"
            and e.get("responseStatus", {}).get("code", 0) < 300
            and ((e.get("requestObject") or {}).get("status") or {}).get("canaryVersion") == "2"
        ):
            return True
    return False


def test_a_crash_after_every_serving_write_loses_and_doubles_nothing(
    cluster: LocalCluster,
    trained: dict[str, Any],
    sink: Sink,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    op = Operator(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("op") / "operator.log",
        NS,
        args=CRASH_TEST_ARGS,
        env=CHAOS_ENV,
    )
    crashed_at: list[int] = []
    try:
        for n in range(1, MAX_WRITES + 1):
            name = f"m{n}"
            op.start(env={CRASH_AFTER_WRITES: str(n)}, wait=False)
            crashed = _lifecycle(cluster, op, name, trained, sink)
            op.stop()
            _check(cluster, name, sink, n)
            if not crashed:
                break  # the whole lifecycle made fewer than n writes: every position was hit
            crashed_at.append(n)
        else:
            pytest.fail(f"a lifecycle made more than {MAX_WRITES} writes")
    finally:
        op.kill()
        print(op.log.read_text()[-5000:])
    print(f"serving crash points covered: {crashed_at}")
    assert len(crashed_at) >= 10  # the serving half makes at least this many writes
