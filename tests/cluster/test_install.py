"""Installing modelops into the local control plane, the way users do, and running a lifecycle
with the operator in-cluster.

Two installs, one after the other, each uninstalled before the next:

1. ``helm install`` of helm/modelops in **namespaced** mode (one Role in the watched namespace);
2. ``kubectl apply --server-side -k`` of manifests/default (cluster-wide, a ClusterRole), through
   a small overlay.

Each time the operator pod is scheduled on a real node (values / patches add the nodeSelector;
it runs the built operator image in containerd), in a namespace that enforces Pod Security
"restricted", and talks to the API server with its ServiceAccount's projected token —
in-cluster config, nothing else. The kustomize install runs the short lifecycle: a TrainingRun
trains, its ModelVersion is registered, and a Model pinning it serves. The Helm install runs the
whole one: train → serve (promoted by a gate) → drift (shifted traffic from ``harness.traffic``
to the serving pods, judged by a DriftPolicy) → retrain (one TrainingRun from the Model's
``spec.training``) → the new version serves → the first one retires (``retention.keepLast:
0``). All of it is done by that pod; the audit log shows the writes were made as the
ServiceAccount, none refused (not by RBAC, nor by the admission policy that limits them to the
operator's own children), and ``kubectl auth can-i --list`` shows what it may do: no wildcard,
no Secrets.

The operator's ports are set away from the defaults (8080/8081; :data:`PORTS`), so its pod
becomes Ready only if the chart's and the overlay's port settings reach both its arguments and
its probes, and one replica runs instead of the default two (tests/cluster/test_real_nodes.py
installs the defaults: two replicas, ``helm test``). It still elects itself leader through the
Lease its Role allows (tests/cluster/test_leader.py runs two operators). CRDs are kept after each
uninstall (``crds.keep``; the kustomize cleanup leaves them out on purpose): other test modules
share this cluster and its CRDs.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster import REPO, LocalCluster
from harness.traffic import Traffic, read_rows, ready_pod_ips
from modelops import datasets
from tests.cluster.kube import (
    DRIFT_POLICY_SPEC,
    IRIS_FEATURES,
    RUNNER,
    SHIFTED,
    apply,
    condition,
    get,
    has_condition,
    training_run,
    wait_for,
)
from tests.unit.test_helm import CHART

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

SYSTEM_NS = "modelops-system"
SA = f"system:serviceaccount:{SYSTEM_NS}:modelops"
POLICY = "iris-drift"
PORTS = {"metrics": 9464, "health": 9465}
"""The operator's ports in these installs: not the defaults (8080/8081)."""

Obj = dict[str, Any]

TRAINING: Obj = {k: v for k, v in training_run("iris-1")["spec"].items() if k != "modelRef"}
"""The Model's ``spec.training``: what TrainingRun ``iris-1`` runs, and what a retrain runs."""


def helm(cluster: LocalCluster, *args: str, timeout: float = 300) -> str:
    out = cluster.helm(*args, timeout=timeout)
    assert out.returncode == 0, f"helm {' '.join(args)}: {out.stdout}\n{out.stderr}"
    return out.stdout


def workload(cluster: LocalCluster, ns: str) -> None:
    """Data on a claim, then a Model that serves what it pins, in namespace ``ns``."""
    cluster.kubectl("create", "namespace", ns)
    claims = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        for name in ("datasets", "models")
    ]
    loader = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "load-iris"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "nodeSelector": RUNNER,
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "load",
                            "image": "ghcr.io/modelops/trainer:0.1.0",
                            "command": [
                                "python",
                                "-m",
                                "modelops.datasets",
                                "iris.csv",
                                "/data/iris.csv",
                            ],
                            "volumeMounts": [{"name": "d", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "datasets"}}],
                }
            },
        },
    }
    apply(cluster, *claims, loader, namespace=ns)
    cluster.kubectl("wait", "-n", ns, "--for=condition=Complete", "job/load-iris", "--timeout=120s")


def poll(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"[:3000])


def train_first_version(cluster: LocalCluster, ns: str, model_spec: Obj) -> None:
    """Model ``iris`` with ``model_spec``, and TrainingRun ``iris-1`` trained: version 1."""
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": model_spec,
        },
        training_run("iris-1"),
        namespace=ns,
    )
    wait_for(
        cluster,
        ["trainingrun", "iris-1", "-n", ns],
        has_condition("Succeeded"),
        timeout=240,
        what=f"TrainingRun {ns}/iris-1 to succeed",
    )
    wait_for(cluster, ["modelversion", "iris-1", "-n", ns], has_condition("Ready"), timeout=60)


def assert_serves(cluster: LocalCluster, ns: str, version: str) -> None:
    """A ready pod of ``version`` answers the readiness endpoint on its own address.

    Polled: a promotion changes the pod template's role label, so the promoted version's pod
    may still be replaced when the Model reports the promotion.
    """

    def ready() -> bool:
        pods = json.loads(
            cluster.kubectl(
                "get",
                "pods",
                "-n",
                ns,
                "-l",
                f"modelops.dev/model=iris,modelops.dev/version={version}",
                "-o",
                "json",
            ).stdout
        )["items"]
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp") or not any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod.get("status", {}).get("conditions", [])
            ):
                continue
            url = f"http://{pod['status']['podIP']}:8080/v2/health/ready"
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    return bool(r.status == 200)
            except OSError:
                continue
        return False

    poll(f"a ready pod of version {version} to answer", ready, timeout=60)


def drift_detected(obj: Obj) -> bool:
    c = condition(obj, "DriftDetected")
    return c is not None and c["status"] == "True"


def retrain_runs(cluster: LocalCluster, ns: str) -> list[Obj]:
    runs = get(cluster, "trainingruns", "-n", ns, "-l", f"modelops.dev/driftpolicy={POLICY}")
    return list((runs or {}).get("items", []))


def drift_lifecycle(cluster: LocalCluster, ns: str) -> None:
    """train → serve → drift → retrain → retire, every step done by the operator.

    Version 1 serves by the gate (promotion Automatic); traffic with a shifted petal length
    makes the DriftPolicy detect drift and retrain from ``spec.training``; the new version
    passes the gate and takes over, and ``keepLast: 0`` retires version 1 once it no longer
    serves. The shifted traffic keeps coming, so the policy detects drift on the new version
    too, and the cooldown holds: one retrain, no second.
    """
    train_first_version(
        cluster,
        ns,
        {
            "training": TRAINING,
            "serving": {
                "promotion": "Automatic",
                "gates": [{"metric": "accuracy", "min": 0.85}],
                "replicas": 1,
            },
            "retention": {"keepLast": 0},
        },
    )
    wait_for(
        cluster,
        ["model", "iris", "-n", ns],
        lambda m: has_condition("Ready")(m) and m["status"].get("productionVersion") == "1",
        timeout=180,
        what=f"Model {ns}/iris to promote version 1 by its gate",
    )
    assert_serves(cluster, ns, "1")

    traffic = Traffic(
        "iris",
        read_rows(datasets.path("iris.csv"), list(IRIS_FEATURES)),
        pods=lambda: ready_pod_ips(cluster.kubectl, ns, "iris"),
        shift={SHIFTED: 3.0},  # far beyond any petal length in the training data
        pause=0.5,  # ~40 predictions a second is plenty for minSamples: 100 a minute
    )
    traffic.start()
    try:
        apply(
            cluster,
            {
                "apiVersion": "modelops.dev/v1alpha1",
                "kind": "DriftPolicy",
                "metadata": {"name": POLICY},
                "spec": {
                    **DRIFT_POLICY_SPEC,
                    "actions": {"retrain": {"cooldown": "1h", "maxConcurrent": 1}},
                },
            },
            namespace=ns,
        )
        policy = wait_for(
            cluster,
            ["driftpolicy", POLICY, "-n", ns],
            drift_detected,
            timeout=180,
            what=f"DriftPolicy {ns}/{POLICY} to detect drift",
        )
        assert policy["status"]["datasetDrift"] is True, policy["status"]
        assert policy["status"]["topFeatures"][0]["name"] == SHIFTED, policy["status"]
        (run,) = poll("the retrain TrainingRun", lambda: retrain_runs(cluster, ns), timeout=60)
        name = run["metadata"]["name"]
        assert name.startswith("iris-retrain-"), name
        trigger = run["spec"]["trigger"]
        assert trigger["driftPolicy"] == POLICY
        assert trigger["evidence"]["version"] == "1"
        assert SHIFTED in trigger["evidence"]["driftedFeatures"].split(",")
        run = wait_for(
            cluster,
            ["trainingrun", name, "-n", ns],
            has_condition("Succeeded"),
            timeout=240,
            what=f"retrain TrainingRun {ns}/{name} to succeed",
        )
        mv_name = run["status"]["modelVersion"]
        new_version = mv_name.removeprefix("iris-")
        assert new_version != "1"
        wait_for(cluster, ["modelversion", mv_name, "-n", ns], has_condition("Ready"), timeout=60)
        wait_for(
            cluster,
            ["model", "iris", "-n", ns],
            lambda m: (
                has_condition("Ready")(m) and m["status"].get("productionVersion") == new_version
            ),
            timeout=240,
            what=f"Model {ns}/iris to promote {new_version}",
        )
        assert_serves(cluster, ns, new_version)
        # Retired: the record says so (phase and label), nothing serves it any more, and its
        # artifact directory is marked by the retire Job.
        old = wait_for(
            cluster,
            ["modelversion", "iris-1", "-n", ns],
            lambda mv: (
                mv.get("status", {}).get("phase") == "Retired"
                and mv["metadata"].get("labels", {}).get("modelops.dev/retired") == "true"
            ),
            timeout=60,
            what=f"ModelVersion {ns}/iris-1 to retire",
        )
        assert "keepLast=0" in old["status"]["retiredReason"], old["status"]
        poll(
            "the Deployment and Service of version 1 to go",
            lambda: (
                get(cluster, "deployment", "iris-1", "-n", ns) is None
                and get(cluster, "service", "iris-1", "-n", ns) is None
            ),
            timeout=60,
        )
        cluster.kubectl(
            "wait",
            "-n",
            ns,
            "--for=condition=Complete",
            "job/retire-iris-1",
            "--timeout=120s",
            timeout=150,
        )
        # The policy now watches the new version and finds the same shifted inputs: drift
        # again, but the cooldown holds — still one retrain.
        wait_for(
            cluster,
            ["driftpolicy", POLICY, "-n", ns],
            lambda p: p["status"].get("version") == new_version and drift_detected(p),
            timeout=180,
            what=f"DriftPolicy {ns}/{POLICY} to detect drift on {new_version}",
        )
        assert [r["metadata"]["name"] for r in retrain_runs(cluster, ns)] == [name]
        # Events are recorded after the status write: poll.
        poll(
            "a RetrainSkipped Event naming the cooldown",
            lambda: [
                e["message"]
                for e in (
                    get(
                        cluster,
                        "events",
                        "-n",
                        ns,
                        "--field-selector",
                        f"involvedObject.name={POLICY},reason=RetrainSkipped",
                    )
                    or {}
                ).get("items", [])
                if "cooldown 1h" in e["message"]
            ],
            timeout=30,
        )
        assert traffic.sent > 0
    finally:
        traffic.stop()


def operator_pod(cluster: LocalCluster) -> Obj:
    pods = json.loads(
        cluster.kubectl(
            "get",
            "pods",
            "-n",
            SYSTEM_NS,
            "-l",
            "app.kubernetes.io/component=operator",
            "-o",
            "json",
        ).stdout
    )["items"]
    running = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    return running[0]  # type: ignore[no-any-return]


def assert_runs_in_cluster(cluster: LocalCluster) -> Obj:
    """The operator pod, checked to run on a node that runs pods (a real node: the built
    operator image in containerd) as its ServiceAccount."""
    pod = operator_pod(cluster)
    node = get(cluster, "node", pod["spec"]["nodeName"])
    assert node is not None
    assert node["metadata"]["labels"]["type"] == RUNNER["type"]
    assert pod["spec"]["serviceAccountName"] == "modelops"
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    # The projected service-account token is what the pod authenticates with.
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert any(
        "projected" in v and any("serviceAccountToken" in s for s in v["projected"]["sources"])
        for v in volumes.values()
    )
    return pod


def assert_leads(cluster: LocalCluster, pod: Obj) -> None:
    """The pod holds the leader Lease in its namespace, under its own name (its Role allows
    exactly that Lease)."""
    wait_for(
        cluster,
        ["lease", "modelops-leader", "-n", SYSTEM_NS],
        lambda lease: lease["spec"].get("holderIdentity") == pod["metadata"]["name"],
        timeout=60,
        what="the operator pod to hold the leader Lease",
    )


def writes_by_operator(cluster: LocalCluster, ns: str) -> list[Obj]:
    """Audit events (writes) in ``ns`` made by the operator's code."""
    events = []
    for line in Path(cluster.audit_log).read_text().splitlines():
        event = json.loads(line)
        if event.get("objectRef", {}).get("namespace") == ns and event.get(
            "userAgent", ""
        ).startswith("modelops/"):
            events.append(event)
    return events


Write = tuple[str, str, str | None]
"""(verb, resource, subresource) of an audited request."""

LIFECYCLE_WRITES: set[Write] = {
    ("create", "jobs", None),  # the training Job (children are created, then applied)
    ("create", "modelversions", None),
    ("patch", "trainingruns", "status"),
    ("create", "deployments", None),
    ("patch", "deployments", None),  # server-side apply: the canary's replicas change
    ("patch", "models", "status"),
}
DRIFT_WRITES: set[Write] = LIFECYCLE_WRITES | {
    ("create", "services", None),
    ("patch", "modelversions", "status"),
    ("create", "events", None),
    ("patch", "driftpolicies", "status"),
    ("create", "trainingruns", None),  # the retrain
    ("patch", "modelversions", None),  # the retired label
    ("delete", "deployments", None),  # version 1 stops serving
    ("delete", "services", None),
}
"""What the drift lifecycle writes on top (the retire Job is created like the training one)."""


def assert_acted_as_its_service_account(
    cluster: LocalCluster, ns: str, expected: set[Write]
) -> None:
    events = writes_by_operator(cluster, ns)
    assert events, f"no write by the operator in {ns}"
    assert {e["user"]["username"] for e in events} == {SA}
    done = {
        (e["verb"], e["objectRef"]["resource"], e["objectRef"].get("subresource")) for e in events
    }
    assert expected <= done, sorted(expected - done, key=str)
    denied = [e for e in events if e["responseStatus"]["code"] == 403]
    assert not denied, denied
    # All of it under the policy that limits the operator's writes to its own children
    # (docs/security.md): were any of its writes outside it, one would have been refused above.
    assert get(cluster, "validatingadmissionpolicybinding", "modelops-operator-writes")
    # Reads are not audited: an RBAC denial of one would show in the operator's log (kopf's
    # watches included) as the API server's message.
    # The message may be quoted inside a JSON body: User \"system:serviceaccount:…\" cannot.
    logs = cluster.kubectl("logs", "-n", SYSTEM_NS, "deployment/modelops").stdout
    denial = re.compile(r'User \\?"' + re.escape(SA) + r'\\?" cannot')
    assert not denial.search(logs), denial.search(logs)


def permissions(cluster: LocalCluster, ns: str) -> dict[str, set[str]]:
    """``kubectl auth can-i --list`` as the operator: resource → verbs, in ``ns``."""
    out = cluster.kubectl("auth", "can-i", "--list", f"--as={SA}", "-n", ns).stdout
    table: dict[str, set[str]] = {}
    for line in out.splitlines()[1:]:
        resource = line[: line.index("[")].strip()
        verbs = line[line.rindex("[") + 1 : line.rindex("]")].split()
        if resource:
            table.setdefault(resource, set()).update(verbs)
    return table


def assert_least_privilege(table: dict[str, set[str]]) -> None:
    for resource, verbs in table.items():
        assert "*" not in verbs, resource
        assert "*" not in resource, resource
        assert not resource.startswith("secrets"), resource
        assert not resource.startswith("configmaps"), resource


MODELOPS_RESOURCES = {"models.modelops.dev", "modelversions.modelops.dev", "jobs.batch"}


@pytest.fixture(scope="module")
def system_namespace(cluster: LocalCluster) -> Iterator[None]:
    cluster.kubectl("create", "namespace", SYSTEM_NS)
    cluster.kubectl(
        "label", "namespace", SYSTEM_NS, "pod-security.kubernetes.io/enforce=restricted"
    )
    try:
        yield
    finally:
        cluster.kubectl("delete", "namespace", SYSTEM_NS, "--wait=false", check=False)


def test_helm_install_namespaced(
    cluster: LocalCluster, system_namespace: None, tmp_path: Path
) -> None:
    ns = "install-helm"
    workload(cluster, ns)
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "watch": {"allNamespaces": False, "namespaces": [ns]},
                "nodeSelector": RUNNER,
                "replicaCount": 1,
                "metrics": {"port": PORTS["metrics"]},
                "health": {"port": PORTS["health"]},
            }
        )
    )
    # --take-ownership: other test modules may have applied the CRDs already.
    helm(
        cluster,
        "install",
        "modelops",
        str(CHART),
        "-n",
        SYSTEM_NS,
        "-f",
        str(values),
        "--take-ownership",
        "--wait",
        "--timeout",
        "180s",
    )
    try:
        started = assert_runs_in_cluster(cluster)
        assert_leads(cluster, started)
        drift_lifecycle(cluster, ns)
        assert_acted_as_its_service_account(cluster, ns, DRIFT_WRITES)
        # The same pod did it all: no restart (a crash would hide behind a new pod's log).
        pod = operator_pod(cluster)
        assert pod["metadata"]["uid"] == started["metadata"]["uid"]
        assert all(c["restartCount"] == 0 for c in pod["status"]["containerStatuses"])
        inside = permissions(cluster, ns)
        assert_least_privilege(inside)
        assert inside.keys() >= MODELOPS_RESOURCES
        # Namespaced: nothing of ours anywhere else.
        outside = permissions(cluster, "default")
        assert not MODELOPS_RESOURCES & outside.keys()
        assert "events" not in outside
    finally:
        # Shown when the test fails: what the operator pod said.
        log = cluster.kubectl("logs", "-n", SYSTEM_NS, "deployment/modelops", check=False)
        print(f"--- operator log (tail)\n{log.stdout[-12000:]}{log.stderr}")
        helm(cluster, "uninstall", "modelops", "-n", SYSTEM_NS, "--wait", "--timeout", "120s")
    # Uninstalled cleanly: the operator and its permissions are gone, the data is not.
    assert get(cluster, "deployment", "modelops", "-n", SYSTEM_NS) is None
    assert get(cluster, "role", "modelops", "-n", ns) is None
    assert get(cluster, "validatingadmissionpolicy", "modelops-retired-version-pin") is None
    assert not MODELOPS_RESOURCES & permissions(cluster, ns).keys()
    crd = get(cluster, "crd", "models.modelops.dev")
    assert crd is not None
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert get(cluster, "model", "iris", "-n", ns) is not None
    # Its model server runs until its pod goes.
    cluster.kubectl("delete", "namespace", ns, "--wait=false")


def kustomize_overlay(tmp_path: Path) -> Path:
    """manifests/default with the nodeSelector of the nodes that run pods, :data:`PORTS` and one
    replica."""
    metrics, health = PORTS["metrics"], PORTS["health"]
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    container = "/spec/template/spec/containers/0"
    patch = [
        {"op": "add", "path": "/spec/template/spec/nodeSelector", "value": RUNNER},
        {"op": "replace", "path": "/spec/replicas", "value": 1},
        {"op": "replace", "path": f"{container}/args/1", "value": f"--metrics-port={metrics}"},
        {"op": "replace", "path": f"{container}/args/2", "value": f"--health-port={health}"},
        {"op": "replace", "path": f"{container}/ports/0/containerPort", "value": metrics},
        {"op": "replace", "path": f"{container}/ports/1/containerPort", "value": health},
    ]
    base = os.path.relpath(REPO / "manifests" / "default", overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [base],
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": "modelops"},
                        "patch": yaml.safe_dump(patch),
                    }
                ],
            }
        )
    )
    return overlay


def test_kustomize_install_cluster_wide(
    cluster: LocalCluster, system_namespace: None, tmp_path: Path
) -> None:
    ns = "install-kustomize"
    workload(cluster, ns)
    overlay = kustomize_overlay(tmp_path)
    rendered = cluster.kubectl("kustomize", str(overlay)).stdout
    # --force-conflicts: the CRDs may have been applied by another field manager before.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(overlay))
    try:
        cluster.kubectl(
            "rollout",
            "status",
            "deployment/modelops",
            "-n",
            SYSTEM_NS,
            "--timeout=180s",
            timeout=200,
        )
        assert_leads(cluster, assert_runs_in_cluster(cluster))
        drift_lifecycle(cluster, ns)
        assert_acted_as_its_service_account(cluster, ns, DRIFT_WRITES)
        for where in (ns, "default"):
            table = permissions(cluster, where)
            assert_least_privilege(table)
            assert table.keys() >= MODELOPS_RESOURCES
    finally:
        # Everything but the CRDs (deleting them would delete every modelops object in the
        # cluster) and the namespace (the fixture's).
        keep = {"CustomResourceDefinition", "Namespace"}
        objs = [o for o in yaml.safe_load_all(rendered) if o and o["kind"] not in keep]
        cluster.kubectl(
            "delete",
            "--ignore-not-found",
            "--wait=true",
            "-f",
            "-",
            input="\n---\n".join(json.dumps(o) for o in objs),
            timeout=120,
        )
    assert get(cluster, "deployment", "modelops", "-n", SYSTEM_NS) is None
    assert get(cluster, "clusterrolebinding", "modelops") is None
    assert not MODELOPS_RESOURCES & permissions(cluster, ns).keys()
    cluster.kubectl("delete", "namespace", ns, "--wait=false")
