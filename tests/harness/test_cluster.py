"""The local control plane itself: versions, KWOK nodes, and a clean teardown (of the control
plane's processes; the real nodes' own teardown, mounts and namespaces included, is checked in
tests/cluster/test_real_nodes.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cluster import K8S_VERSION, LocalCluster

pytestmark = pytest.mark.cluster

KWOK_PLACEMENT = {
    "nodeSelector": {"type": "kwok"},
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}


def apply(cluster: LocalCluster, obj: dict[str, object]) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))


def wait_json(
    cluster: LocalCluster, args: list[str], pred: object, timeout: float = 60
) -> dict[str, Any]:
    """Poll ``kubectl get ... -o json`` until ``pred(obj)`` is true; return the object."""
    assert callable(pred)
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = cluster.kubectl("get", *args, "-o", "json", check=False)
        if out.returncode == 0:
            last = json.loads(out.stdout)
            if pred(last):
                return last
        time.sleep(0.3)
    pytest.fail(f"timed out waiting on {args}; last seen: {json.dumps(last)[:2000]}")


@pytest.fixture(scope="module")
def ns(cluster: LocalCluster) -> str:
    cluster.kubectl("create", "namespace", "harness-kwok")
    return "harness-kwok"


def test_versions_are_the_pinned_release(cluster: LocalCluster) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["clientVersion"]["gitVersion"] == f"v{K8S_VERSION}"
    assert out["serverVersion"]["gitVersion"] == f"v{K8S_VERSION}"


def test_kwok_and_real_nodes_are_ready(cluster: LocalCluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = {
        n["metadata"]["labels"].get("type")
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    }
    assert {"kwok", "real-node"} <= ready


def test_kwok_deployment_becomes_available(cluster: LocalCluster, ns: str) -> None:
    labels = {"app": "web"}
    apply(
        cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {**KWOK_PLACEMENT, "containers": [{"name": "web", "image": "nginx"}]},
                },
            },
        },
    )
    dep = wait_json(
        cluster,
        ["deployment", "web", "-n", ns],
        lambda d: d.get("status", {}).get("availableReplicas") == 3,
    )
    assert dep["status"]["readyReplicas"] == 3


def test_kwok_job_completes(cluster: LocalCluster, ns: str) -> None:
    apply(
        cluster,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "ok", "namespace": ns},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        **KWOK_PLACEMENT,
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                    }
                },
            },
        },
    )
    cluster.kubectl("wait", "-n", ns, "--for=condition=Complete", "job/ok", "--timeout=60s")


def test_kwok_pod_fails_with_chosen_exit_code_and_message(cluster: LocalCluster, ns: str) -> None:
    message = '{"error": "loss diverged: nan at epoch 3"}'
    apply(
        cluster,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "boom", "namespace": ns},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {
                        "annotations": {
                            "harness.modelops.dev/outcome": "Failed",
                            "harness.modelops.dev/exit-code": "3",
                            "harness.modelops.dev/message": message,
                        }
                    },
                    "spec": {
                        **KWOK_PLACEMENT,
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "trainer"}],
                    },
                },
            },
        },
    )
    cluster.kubectl("wait", "-n", ns, "--for=condition=Failed", "job/boom", "--timeout=60s")
    pods = json.loads(
        cluster.kubectl("get", "pods", "-n", ns, "-l", "job-name=boom", "-o", "json").stdout
    )["items"]
    assert len(pods) == 1
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert terminated["message"] == message
    assert pods[0]["status"]["phase"] == "Failed"


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line, environment or cwd mentions ``text`` (ours excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            blob = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            blob += os.readlink(entry / "cwd").encode()
        except OSError:
            continue
        if text.encode() in blob:
            found.append(int(entry.name))
    return found


def test_teardown_leaves_no_process_behind(tmp_path: Path) -> None:
    """A second, small cluster (KWOK only): up, a pod scheduled, down, nothing left."""
    state = tmp_path / "k8s"
    cluster = LocalCluster(state_dir=state, kwok_nodes=1)
    try:
        took = cluster.up()
        print(f"second cluster ready in {took:.1f}s")
        cluster.kubectl(
            "run",
            "sleeper",
            "--image=python",
            "--restart=Never",
            "--overrides",
            json.dumps({"spec": KWOK_PLACEMENT}),
        )
        cluster.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=60s")
        assert len(cluster.alive()) >= 6
    finally:
        cluster.down()
    assert cluster.alive() == {}
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(state)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_mentioning(str(state)) == []
