"""The product as users install it, on real nodes running the built images: the operator
from the chart (and ``helm test``) and from kustomize, training with the trainer image, serving
with the server image through the Model's Service by its DNS name (the canary share counted
there), drift from traffic sent through that Service, a retrain, the examples' own images.
The restricted securityContext that the operator puts on every pod it creates
(``modelops.core.builders``) holds inside a real container: the image's non-root user, a root
filesystem that refuses writes, no capabilities at all; checked from the container's own output
(``kubectl logs``) and through ``kubectl exec``.

By default on a control plane of its own (module scope) with two real nodes
(``harness.realnode``: upstream kubelet, containerd, runc) and no other nodes; afterwards the
cluster is stopped and nothing of the nodes is left on the host: no process, mount, cgroup,
network namespace or route. Skipped, saying why, without root, the Debian packages, the kubelet
or the images (``make system-packages real-nodes-tools images``).

With ``--cluster=existing`` (kind, or ``make cluster-up``) the same tests run against the
``KUBECONFIG`` cluster through kubectl and helm only: pods go to its nodes labelled
``type=real-node``, which must hold the built images (``kind load``, docs/install.md); only the
checks of this harness's own nodes (node names, kubelet version, host firewall, the CoreDNS
add-on, teardown) are left out. What the module installs there (namespaces, the chart's
release, the kustomize install's cluster-scoped objects; not the CRDs) is deleted at its start
and its end.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import realnode
from harness.cluster import DEFAULT_BIN_DIR, REPO, LocalCluster, wait_for
from modelops.core.builders import (
    CONTAINER_SECURITY_CONTEXT,
    POD_SECURITY_CONTEXT,
    SCRATCH_MOUNT,
    SCRATCH_VOLUME,
)
from tests.cluster.kube import (
    DRIFT_POLICY_SPEC,
    Cluster,
    apply,
    condition,
    has_condition,
    training_run,
)
from tests.cluster.kube import wait_for as wait_on
from tests.unit.test_examples import DATASETS
from tests.unit.test_examples import example as load_example

# Set-up (a control plane, two nodes, image imports) and teardown count in a test's time.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

SERVER_IMAGE = "ghcr.io/modelops/server:0.1.0"
PROBE = "id -u; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; touch /x 2>&1 || true"


@pytest.fixture(scope="module")
def real(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    if request.config.getoption("--cluster") == "existing":
        existing: Cluster = request.getfixturevalue("cluster")
        clean_up(existing)  # what an interrupted run left
        try:
            yield existing
        finally:
            clean_up(existing)
        return
    reason = realnode.missing(DEFAULT_BIN_DIR)
    if reason:
        pytest.skip(reason)
    cluster = LocalCluster(state_dir=tmp_path_factory.mktemp("real"), kwok_nodes=0, real_nodes=2)
    took = cluster.up(timeout=240)
    print(f"\nControl plane and real nodes ready in {took:.1f}s")
    nodes, _ = realnode.load(cluster)
    try:
        yield cluster
    finally:
        cluster.down()
        assert not cluster.alive()
        assert_nothing_left(nodes)


def assert_nothing_left(nodes: list[realnode.Node]) -> None:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    for node in nodes:
        assert node.netns not in netns.split()
        assert node.pod_subnet not in routes
        assert node.state not in mounts
        assert node.run not in mounts
        assert not any(
            (h / node.cgroup.lstrip("/")).exists() for h in realnode.CGROUP_ROOT.iterdir()
        )
        assert not Path(node.run).exists()


NAMESPACES = ("examples", "lifecycle", "restricted", "modelops-system")
"""The namespaces the module creates, the operator's last."""


def clean_up(cluster: Cluster) -> None:
    """An existing cluster rid of what this module installs — its namespaces, the chart's
    release, the kustomize install's cluster-scoped objects — so that the next run starts
    afresh. The CRDs stay: deleting one deletes every object of its kind."""

    def delete_namespaces(*names: str) -> None:
        out = cluster.kubectl(
            *("delete", "namespace", *names, "--ignore-not-found", "--timeout=180s"),
            check=False,
            timeout=200,
        )
        if out.returncode != 0:
            print(f"namespaces {names} not deleted: {out.stderr.strip()}")

    # The workloads' first, together, while the operator is there to finish their finalizers.
    delete_namespaces(*NAMESPACES[:-1])
    cluster.helm("-n", "modelops-system", "uninstall", "modelops", "--wait", "--ignore-not-found")
    rendered = cluster.kubectl("kustomize", str(REPO / "manifests" / "default")).stdout
    cluster_scoped = [
        d
        for d in yaml.safe_load_all(rendered)
        if d
        and d["kind"] not in ("CustomResourceDefinition", "Namespace")
        and not d["metadata"].get("namespace")
    ]
    cluster.kubectl(
        "delete",
        "--ignore-not-found",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": cluster_scoped}),
    )
    delete_namespaces(NAMESPACES[-1])


def kubectl(cluster: Cluster, *args: str, input: str | None = None) -> str:
    """kubectl's output; its own deadline (a `wait --timeout`) is below this one's."""
    return cluster.kubectl(*args, input=input, timeout=300).stdout


def real_nodes(cluster: Cluster) -> list[dict[str, Any]]:
    """The nodes that really run pods (labelled ``type=real-node``)."""
    return list(
        json.loads(
            kubectl(cluster, "get", "nodes", "-l", f"type={realnode.NODE_LABEL}", "-o", "json")
        )["items"]
    )


def node_names(cluster: Cluster) -> list[str]:
    return sorted(n["metadata"]["name"] for n in real_nodes(cluster))


def test_nodes_are_ready_with_containerd(real: Cluster) -> None:
    nodes = real_nodes(real)
    assert nodes, "no node labelled type=real-node"
    for node in nodes:
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert (condition(node, "Ready") or {}).get("status") == "True", node["status"]
    if not isinstance(real, LocalCluster):
        return
    assert sorted(n["metadata"]["name"] for n in nodes) == ["real-0", "real-1"]
    assert all(n["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.1" for n in nodes)
    # The kubelet runs in the host's network namespace but leaves its firewall alone; the node's
    # kube-proxy programs only the node's own namespace.
    host_rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    assert "KUBE-" not in host_rules.stdout
    netns = realnode.load(real)[0][0].netns
    node_rules = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "list", "table", "ip", "kube-proxy"],
        capture_output=True,
        text=True,
    )
    assert node_rules.returncode == 0, node_rules.stderr


def test_restricted_security_context_holds_in_a_real_container(real: Cluster) -> None:
    kubectl(
        real,
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": "restricted",
                    "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
                },
            }
        ),
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": "restricted"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node_names(real)[0]},
            "securityContext": POD_SECURITY_CONTEXT,
            "volumes": [SCRATCH_VOLUME],
            "containers": [
                {
                    "name": "main",
                    "image": SERVER_IMAGE,
                    "imagePullPolicy": "Never",  # the image was imported, never pulled
                    "command": [
                        "sh",
                        "-c",
                        f"{PROBE}; touch /tmp/ok && echo tmp-writable; exec sleep 3600",
                    ],
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                    "volumeMounts": [SCRATCH_MOUNT],
                }
            ],
        },
    }
    kubectl(real, "apply", "-f", "-", input=json.dumps(pod))

    def running() -> bool:
        status = json.loads(kubectl(real, "-n", "restricted", "get", "pod", "probe", "-o", "json"))
        return bool(status["status"].get("phase") == "Running")

    wait_for("pod restricted/probe Running", running, 120)

    def logged() -> bool:
        return "tmp-writable" in kubectl(real, "-n", "restricted", "logs", "probe")

    wait_for("the probe's output", logged, 30)
    lines = kubectl(real, "-n", "restricted", "logs", "probe").splitlines()
    assert lines[0] == "65532"
    caps = dict(line.split(":\t") for line in lines[1:4])
    assert caps == {
        "CapPrm": "0000000000000000",
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
    }
    assert "Read-only file system" in lines[4]
    # The same, from a second process through the API server, the kubelet and containerd.
    inside = kubectl(real, "-n", "restricted", "exec", "probe", "--", "sh", "-c", PROBE)
    assert inside.splitlines()[0] == "65532"
    assert "Read-only file system" in inside


def test_service_by_dns_name_across_nodes_and_port_forward(real: Cluster) -> None:
    web = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "restricted", "labels": {"app": "web"}},
        "spec": {
            # On the other node than the probe pod (with two): the Service crosses nodes.
            "nodeSelector": {"kubernetes.io/hostname": node_names(real)[-1]},
            "securityContext": POD_SECURITY_CONTEXT,
            "volumes": [SCRATCH_VOLUME],
            "containers": [
                {
                    "name": "main",
                    "image": SERVER_IMAGE,
                    "imagePullPolicy": "Never",
                    "command": [
                        "sh",
                        "-c",
                        "mkdir /tmp/www && echo hello from $(hostname) > /tmp/www/index.html && "
                        "exec python -m http.server 8080 --directory /tmp/www",
                    ],
                    "ports": [{"containerPort": 8080}],
                    # The kubelet probes the pod address through the node's veth.
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                    "volumeMounts": [SCRATCH_MOUNT],
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "restricted"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    kubectl(
        real,
        "apply",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": [web, service]}),
    )
    kubectl(real, "-n", "restricted", "wait", "--for=condition=Ready", "pod/web", "--timeout=120s")
    cluster_ip = kubectl(
        real, "-n", "restricted", "get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"
    )
    # From another pod: the name through the CoreDNS add-on (the kube-dns Service), the
    # ClusterIP through kube-proxy.
    fetch = (
        "import socket, urllib.request as u;"
        "print(socket.gethostbyname('web.restricted.svc.cluster.local'));"
        "url = 'http://web.restricted.svc.cluster.local/';"
        "print(u.urlopen(url, timeout=5).read().decode().strip());"
        "print([l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')])"
    )
    answers: list[str] = []

    def answered() -> bool:
        out = real.kubectl(
            "-n", "restricted", "exec", "probe", "--", "python", "-c", fetch, check=False
        )
        answers[:] = out.stdout.split("\n")
        return out.returncode == 0

    wait_for("Service web to answer by name from pod probe", answered, 60)
    assert answers[0] == cluster_ip
    assert answers[1] == "hello from web"
    dns_service = kubectl(
        real, "-n", "kube-system", "get", "svc", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"
    )
    assert answers[2] == repr([dns_service])
    if isinstance(real, LocalCluster):
        assert dns_service == realnode.DNS_SERVICE_IP
        assert_coredns_is_an_add_on(real)

    # kubectl port-forward: API server → kubelet → containerd, into the pod's namespace.
    with (
        port_forward(real, "restricted", "pod/web", 8080) as port,
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r,
    ):
        assert r.read().decode().strip() == "hello from web"


def assert_coredns_is_an_add_on(real: LocalCluster) -> None:
    # CoreDNS is a cluster add-on: a Deployment in kube-system on the real nodes, its own image.
    dns = json.loads(
        kubectl(real, "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "json")
    )["items"]
    assert len(dns) == 2, [p["metadata"]["name"] for p in dns]
    assert {p["spec"]["nodeName"] for p in dns} <= {"real-0", "real-1"}
    assert all(
        p["spec"]["containers"][0]["image"].startswith(realnode.COREDNS_REPO + ":") for p in dns
    )
    assert not [name for name in real.alive() if name.startswith("coredns")]


@contextlib.contextmanager
def port_forward(real: Cluster, ns: str, target: str, port: int) -> Iterator[int]:
    """``kubectl port-forward`` of ``target``'s ``port`` to a free port on 127.0.0.1, which it
    yields (the forwarder dials 127.0.0.1 inside the pod)."""
    forward = subprocess.Popen(
        [
            str(real.bin_dir / "kubectl"),
            "--kubeconfig",
            str(real.kubeconfig),
            "-n",
            ns,
            "port-forward",
            target,
            f":{port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> port
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        yield int(line.split("127.0.0.1:")[1].split()[0])
    finally:
        forward.terminate()
        forward.wait(10)
        if forward.stdout:
            forward.stdout.close()


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(real: Cluster) -> None:
    # In-cluster configuration, as the operator's pod uses it: 10.96.0.1:443 (kube-proxy) to the
    # advertised address, the service-account token, the cluster CA from kube-root-ca.crt.
    script = (
        "from kubernetes import client, config; config.load_incluster_config();"
        "review = client.AuthenticationV1Api().create_self_subject_review("
        "client.V1SelfSubjectReview());"
        "print(review.status.user_info.username)"
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "in-cluster", "namespace": "restricted"},
        "spec": {
            "nodeSelector": {"type": realnode.NODE_LABEL},
            "restartPolicy": "Never",
            "securityContext": POD_SECURITY_CONTEXT,
            "containers": [
                {
                    "name": "main",
                    "image": "ghcr.io/modelops/operator:0.1.0",
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", script],
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
            ],
        },
    }
    kubectl(real, "apply", "-f", "-", input=json.dumps(pod))

    def finished() -> bool:
        status = json.loads(
            kubectl(real, "-n", "restricted", "get", "pod", "in-cluster", "-o", "json")
        )
        return status["status"].get("phase") in ("Succeeded", "Failed")

    wait_for("pod restricted/in-cluster to finish", finished, 120)
    out = kubectl(real, "-n", "restricted", "logs", "in-cluster")
    assert out.strip() == "system:serviceaccount:restricted:default", out


@pytest.fixture(scope="module")
def operator(real: Cluster) -> str:
    """The chart as users install it, watching all namespaces: its default image (the built
    operator image, present on the nodes, so IfNotPresent never pulls), default ports, in a
    namespace enforcing Pod Security "restricted". Returns that namespace."""
    ns = "modelops-system"
    real.kubectl("create", "namespace", ns)
    real.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    chart = str(REPO / "helm" / "modelops")
    # An existing cluster may have the CRDs already, from the other test modules' `kubectl
    # apply`: managed elsewhere, which is what the chart's crds.enabled=false is for.
    crds = real.kubectl("get", "crd", "models.modelops.dev", check=False).returncode == 0
    install = helm(
        real,
        ns,
        "install",
        "modelops",
        chart,
        "--set",
        f"nodeSelector.type={realnode.NODE_LABEL}",
        *(("--set", "crds.enabled=false") if crds else ()),
        "--wait",
        "--timeout",
        "180s",
    )
    log = real.kubectl("-n", ns, "logs", "deployment/modelops", check=False).stdout
    assert install.returncode == 0, install.stderr + log[-5000:]
    return ns


def helm(real: Cluster, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    return real.helm("-n", ns, *args)


def test_helm_install_runs_the_operator_image_and_helm_test_passes(
    real: Cluster, operator: str
) -> None:
    ns = operator
    pod = json.loads(
        kubectl(
            real, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=modelops", "-o", "json"
        )
    )["items"][0]
    assert pod["spec"]["nodeName"] in node_names(real)
    assert pod["status"]["containerStatuses"][0]["image"] == "ghcr.io/modelops/operator:0.1.0"
    # helm test: a pod of the operator image asks /healthz through the operator's Service name.
    tested = helm(real, ns, "test", "modelops", "--timeout", "120s")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert re.search(
        r"TEST SUITE:\s+modelops-test-healthz\n.*\n.*\nPhase:\s+Succeeded", tested.stdout
    ), tested.stdout


def restricted(spec: dict[str, Any]) -> dict[str, Any]:
    """A pod spec with the operator's restricted securityContext on it and its containers."""
    containers = [{**c, "securityContext": CONTAINER_SECURITY_CONTEXT} for c in spec["containers"]]
    return {**spec, "securityContext": POD_SECURITY_CONTEXT, "containers": containers}


def lifecycle_namespace(real: Cluster, ns: str, datasets: tuple[str, ...]) -> None:
    """A namespace enforcing Pod Security "restricted" with the claims ``datasets`` (holding the
    bundled ``datasets`` files) and ``models``, and a ``client`` pod with Python to ask
    Services from inside the cluster."""
    real.kubectl("create", "namespace", ns)
    real.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
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
    copies = " && ".join(f"python -m modelops.datasets {d} /data/{d}" for d in datasets)
    loader = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "load-datasets"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": restricted(
                    {
                        "restartPolicy": "Never",
                        "containers": [
                            {
                                "name": "load",
                                "image": "ghcr.io/modelops/trainer:0.1.0",
                                "command": ["sh", "-c", copies],
                                "volumeMounts": [{"name": "d", "mountPath": "/data"}],
                            }
                        ],
                        "volumes": [
                            {"name": "d", "persistentVolumeClaim": {"claimName": "datasets"}}
                        ],
                    }
                )
            },
        },
    }
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": restricted(
            {
                "containers": [
                    {
                        "name": "main",
                        "image": "ghcr.io/modelops/operator:0.1.0",
                        "command": ["sleep", "3600"],
                    }
                ]
            }
        ),
    }
    apply(real, *claims, loader, client, namespace=ns)
    real.kubectl(
        "wait",
        "-n",
        ns,
        "--for=condition=Complete",
        "job/load-datasets",
        "--timeout=120s",
        timeout=150,
    )


def infer_in_cluster(real: Cluster, ns: str, model: str, rows: list[list[float]]) -> Any:
    """The V2 answer of Model ``model``'s stable Service, asked by its DNS name from the client
    pod with one ``[N, features]`` tensor; retried (bounded) until the Service answers."""
    service = json.loads(kubectl(real, "-n", ns, "get", "service", model, "-o", "json"))
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{model}.{ns}.svc.cluster.local:{port}/v2/models/{model}/infer"
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), len(rows[0])],
                    "datatype": "FP64",
                    "data": [value for row in rows for value in row],
                }
            ]
        }
    )
    ask = (
        "import json, urllib.request as u;"
        f"r = u.urlopen(u.Request({url!r}, data={body!r}.encode(),"
        " headers={'Content-Type': 'application/json'}), timeout=10);"
        "print(json.dumps(json.load(r)))"
    )
    answers: list[str] = []

    def served() -> bool:
        out = real.kubectl("-n", ns, "exec", "client", "--", "python", "-c", ask, check=False)
        answers[:] = [out.stdout.strip(), out.stderr[-2000:]]
        return out.returncode == 0

    wait_for(f"inference through Service {ns}/{model} by name", served, 120)
    return json.loads(answers[0])


def test_train_and_serve_on_real_nodes(real: Cluster, operator: str) -> None:
    """The operator in its pod trains with the trainer image (a Job) and serves the version
    with the server image; a client pod asks the Model's stable Service by its DNS name."""
    ns = "lifecycle"
    lifecycle_namespace(real, ns, ("iris.csv",))
    training = {
        k: v
        for k, v in training_run("iris-1")["spec"].items()
        if k not in ("modelRef", "nodeSelector")
    }
    training["image"] = "ghcr.io/modelops/trainer:0.1.0"
    model = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {
            "training": training,
            "serving": {
                "promotion": "Automatic",
                "gates": [{"metric": "accuracy", "min": 0.85}],
                "replicas": 1,
            },
        },
    }
    run = {**training_run("iris-1"), "spec": {"modelRef": {"name": "iris"}, **training}}
    apply(real, model, run, namespace=ns)
    wait_on(
        real,
        ["trainingrun", "iris-1", "-n", ns],
        has_condition("Succeeded"),
        timeout=300,
        what="TrainingRun iris-1 to succeed",
    )
    jobs = json.loads(kubectl(real, "-n", ns, "get", "pods", "-o", "json"))["items"]
    trainer = [
        p
        for p in jobs
        if p["spec"]["containers"][0]["image"].endswith("trainer:0.1.0")
        and p["metadata"]["name"].startswith("iris-1")
    ]
    assert trainer, [p["metadata"]["name"] for p in jobs]
    assert trainer[0]["spec"]["nodeName"] in node_names(real)
    wait_on(
        real,
        ["model", "iris", "-n", ns],
        lambda m: has_condition("Ready")(m) and m["status"].get("productionVersion") == "1",
        timeout=240,
        what="Model iris to serve version 1",
    )
    answer = infer_in_cluster(real, ns, "iris", [[5.1, 3.5, 1.4, 0.2]])
    assert answer["model_version"] == "1"
    # A person debugging the model: port-forward to its Service reaches the server (it listens
    # on every address of the pod, 127.0.0.1 inside it included).
    with port_forward(real, ns, "service/iris", 80) as port:
        url = f"http://127.0.0.1:{port}/v2/models/iris"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert json.loads(r.read())["versions"] == ["1"]


DRIFT_SECONDS = 420
"""How long the client pod sends drifted traffic at most (the test stops it once retrained)."""


def drifted_traffic(ns: str, model: str, port: int) -> str:
    """A Python program for the client pod: batches of the bundled iris rows, petal_length
    shifted by +3 cm, sent to the Model's Service by its DNS name for ``DRIFT_SECONDS``."""
    url = f"http://{model}.{ns}.svc.cluster.local:{port}/v2/models/{model}/infer"
    return (
        "import csv, json, random, time, urllib.request as u\n"
        "from modelops import datasets\n"
        "rows = [[float(r[k]) + (3.0 if k == 'petal_length' else 0.0) for k in"
        " ('sepal_length', 'sepal_width', 'petal_length', 'petal_width')]"
        " for r in csv.DictReader(open(datasets.path('iris.csv')))]\n"
        "rng, end, sent = random.Random(7), time.monotonic() + " + str(DRIFT_SECONDS) + ", 0\n"
        "while time.monotonic() < end:\n"
        "    batch = rng.choices(rows, k=40)\n"
        "    body = json.dumps({'inputs': [{'name': 'input-0', 'shape': [40, 4],"
        " 'datatype': 'FP64', 'data': [v for r in batch for v in r]}]}).encode()\n"
        "    try:\n"
        f"        u.urlopen(u.Request({url!r}, data=body,"
        " headers={'Content-Type': 'application/json'}), timeout=10).read()\n"
        "        sent += 40\n"
        "    except OSError as e:\n"
        "        print('error', e, flush=True)\n"
        "    time.sleep(0.2)\n"
    )


def test_drift_through_the_service_retrains_on_real_nodes(real: Cluster, operator: str) -> None:
    """Continues the lifecycle namespace: a client pod sends drifted inputs through the Model's
    Service by name; the operator (in its pod) gathers the serving pods' histograms across the
    nodes, declares drift and retrains with the trainer image on a real node, and the new
    version goes through the gate into production."""
    ns = "lifecycle"
    policy = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": "iris"},
        "spec": {
            **DRIFT_POLICY_SPEC,
            "actions": {"retrain": {"enabled": True, "cooldown": "1h", "maxConcurrent": 1}},
        },
    }
    apply(real, policy, namespace=ns)
    service = json.loads(kubectl(real, "-n", ns, "get", "service", "iris", "-o", "json"))
    program = drifted_traffic(ns, "iris", service["spec"]["ports"][0]["port"])
    traffic = subprocess.Popen(
        [
            str(real.bin_dir / "kubectl"),
            "--kubeconfig",
            str(real.kubeconfig),
            "-n",
            ns,
            "exec",
            "client",
            "--",
            "python",
            "-c",
            program,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        drifted = wait_on(
            real,
            ["driftpolicy", "iris", "-n", ns],
            has_condition("DriftDetected"),
            timeout=300,
            what="DriftPolicy iris to detect drift",
        )
        verdicts = {f["name"]: f["drifted"] for f in drifted["status"]["topFeatures"]}
        assert verdicts["petal_length"] is True, drifted["status"]
        assert verdicts["sepal_length"] is False, drifted["status"]
        model = wait_on(
            real,
            ["model", "iris", "-n", ns],
            lambda m: m["status"].get("productionVersion") not in (None, "1"),
            timeout=360,
            what="the retrained version of iris to serve production",
        )
    finally:
        traffic.kill()
        output = traffic.communicate(timeout=30)[0]
    version = model["status"]["productionVersion"]
    runs = json.loads(kubectl(real, "-n", ns, "get", "trainingruns", "-o", "json"))["items"]
    retrain = [r for r in runs if r["metadata"]["name"] != "iris-1"]
    assert len(retrain) == 1, [r["metadata"]["name"] for r in retrain]
    assert retrain[0]["metadata"]["labels"]["modelops.dev/driftpolicy"] == "iris"
    pods = json.loads(
        kubectl(
            real,
            "-n",
            ns,
            "get",
            "pods",
            "-l",
            f"job-name={retrain[0]['metadata']['name']}",
            "-o",
            "json",
        )
    )["items"]
    assert pods
    assert all(p["spec"]["nodeName"] in node_names(real) for p in pods), pods
    answer = infer_in_cluster(real, ns, "iris", [[5.1, 3.5, 1.4, 0.2]])
    assert answer["model_version"] == version, (answer, output[-2000:])


EXAMPLES = REPO / "examples"


@pytest.mark.timeout(900)  # two more images onto both nodes, two trainings, two rollouts
def test_examples_train_with_their_own_images_and_serve_the_frameworks_predictions(
    real: Cluster, operator: str
) -> None:
    """The examples as a user applies them: each one's own training image (scikit-learn,
    LightGBM) trains through the SDK, the operator registers an onnx/v1 version and serves it
    with the server image's onnxruntime once it passes its gate; the predictions through the
    Model's Service equal the framework's own on the same rows (the model refit here)."""
    ns = "examples"
    if isinstance(real, LocalCluster):  # an existing cluster's nodes were given them (kind load)
        nodes, _ = realnode.load(real)
        realnode.import_images(
            real,
            nodes,
            "ghcr.io/modelops/example-sklearn-iris:0.1.0",
            "ghcr.io/modelops/example-lightgbm-diabetes:0.1.0",
        )
    lifecycle_namespace(real, ns, ("iris.csv", "diabetes.csv"))
    for name in ("sklearn-iris", "lightgbm-diabetes"):
        documents = list(yaml.safe_load_all((EXAMPLES / name / "model.yaml").read_text()))
        apply(real, *documents, namespace=ns)
    examples: dict[str, Any] = {}
    for name, model in (
        ("sklearn-iris", "iris-sklearn"),
        ("lightgbm-diabetes", "diabetes-lightgbm"),
    ):
        # The run first: a failed one shows its condition's message here.
        wait_on(
            real,
            ["trainingrun", f"{model}-1", "-n", ns],
            lambda r: (condition(r, "Succeeded") or {}).get("status") in ("True", "False"),
            timeout=300,
            what=f"TrainingRun {model}-1 to finish",
        )
        run = json.loads(kubectl(real, "-n", ns, "get", "trainingrun", f"{model}-1", "-o", "json"))
        assert has_condition("Succeeded")(run), run["status"]
        wait_on(
            real,
            ["model", model, "-n", ns],
            lambda m: has_condition("Ready")(m) and m["status"].get("productionVersion") == "1",
            timeout=420,
            what=f"Model {model} to serve version 1",
        )
        version = json.loads(kubectl(real, "-n", ns, "get", "mv", f"{model}-1", "-o", "json"))
        assert version["spec"]["artifact"]["format"] == "onnx/v1"
        examples[name] = (model, load_example(name))
    iris, iris_module = examples["sklearn-iris"]
    x, y, _ = iris_module.load(str(DATASETS / "iris.csv"), "species")
    pipeline, _, x_test, _ = iris_module.fit(x, y, {"C": 1.0, "seed": 0})
    answer = {
        o["name"]: o["data"] for o in infer_in_cluster(real, ns, iris, x_test.tolist())["outputs"]
    }
    assert answer["predict"] == pipeline.predict(x_test).tolist()
    assert (
        max(
            abs(a - b)
            for a, b in zip(
                answer["predict_proba"], pipeline.predict_proba(x_test).ravel(), strict=True
            )
        )
        < 1e-5
    )
    diabetes, diabetes_module = examples["lightgbm-diabetes"]
    x, y, _ = diabetes_module.load(str(DATASETS / "diabetes.csv"), "progression")
    spec = {"trees": 100, "learningRate": 0.05, "leaves": 15, "seed": 0}
    booster, _, x_test, _ = diabetes_module.fit(x, y, spec)
    answer = {
        o["name"]: o["data"]
        for o in infer_in_cluster(real, ns, diabetes, x_test.tolist())["outputs"]
    }
    expected = booster.predict(x_test)
    assert max(abs(a - b) / abs(b) for a, b in zip(answer["predict"], expected, strict=True)) < 1e-5


CANARY_REQUESTS = 400


def test_the_canary_share_through_the_service_matches_its_replicas(
    real: Cluster, operator: str
) -> None:
    """A canary as clients see it: through the Model's Service (kube-proxy, nftables) the
    share of answers from the canary version is within one replica of the configured share.
    Continues the examples' namespace: version 2 of iris-sklearn becomes a canary of 1 of 4
    replicas and is held there (minReadySeconds far away)."""
    ns, model = "examples", "iris-sklearn"
    documents = list(yaml.safe_load_all((EXAMPLES / "sklearn-iris" / "model.yaml").read_text()))
    base, run = (
        next(d for d in documents if d["kind"] == kind) for kind in ("Model", "TrainingRun")
    )
    base["spec"]["serving"] |= {
        "replicas": 4,
        "canary": {"replicasPercent": 25, "minReadySeconds": 3600},
    }
    run["metadata"]["name"] = f"{model}-2"
    apply(real, base, run, namespace=ns)
    wait_on(
        real,
        ["model", model, "-n", ns],
        lambda m: (
            m["status"].get("canaryVersion") == "2" and m["status"].get("productionVersion") == "1"
        ),
        timeout=300,
        what=f"Model {model} to run version 2 as a canary",
    )
    for version, replicas in (("1", 3), ("2", 1)):
        real.kubectl(
            "-n",
            ns,
            "wait",
            "--for=jsonpath={.status.availableReplicas}=" + str(replicas),
            f"deployment/{model}-{version}",
            "--timeout=240s",
            timeout=270,
        )
    service = json.loads(kubectl(real, "-n", ns, "get", "service", model, "-o", "json"))
    port = service["spec"]["ports"][0]["port"]
    url = f"http://{model}.{ns}.svc.cluster.local:{port}/v2/models/{model}/infer"
    body = json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "data": [5.1, 3.5, 1.4, 0.2],
                }
            ]
        }
    )
    # A new connection per request, as independent clients make: kube-proxy picks a backend
    # per connection.
    count = (
        "import collections, json, urllib.request as u;"
        "c = collections.Counter("
        f"json.load(u.urlopen(u.Request({url!r}, data={body!r}.encode(),"
        " headers={'Content-Type': 'application/json', 'Connection': 'close'}), timeout=10))"
        f"['model_version'] for _ in range({CANARY_REQUESTS}));"
        "print(json.dumps(c))"
    )
    out = real.kubectl("-n", ns, "exec", "client", "--", "python", "-c", count)
    answers = json.loads(out.stdout)
    assert set(answers) == {"1", "2"}, answers
    share = answers["2"] / CANARY_REQUESTS
    configured_replicas = 1
    print(f"\ncanary share through the Service: {share:.3f} ({answers}); configured 1 of 4")
    assert abs(share * 4 - configured_replicas) <= 1, answers


def test_the_kustomize_install_runs_the_built_operator_image(real: Cluster, operator: str) -> None:
    """The other way users install: after the chart is uninstalled, `kubectl apply -k
    manifests/default` runs two replicas of the built operator image (IfNotPresent: loaded on
    the nodes, never pulled) with leader election, and the elected one trains a new version of
    the examples' model on a real node."""
    ns = operator
    uninstalled = helm(real, ns, "uninstall", "modelops", "--wait", "--timeout", "120s")
    assert uninstalled.returncode == 0, uninstalled.stderr
    real.kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "manifests" / "default")
    )
    real.kubectl(
        "-n", ns, "rollout", "status", "deployment/modelops", "--timeout=240s", timeout=270
    )
    pods = json.loads(
        kubectl(
            real, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=modelops", "-o", "json"
        )
    )["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == 2, [p["metadata"]["name"] for p in pods]
    for pod in running:
        assert pod["spec"]["nodeName"] in node_names(real)
        assert pod["status"]["containerStatuses"][0]["image"] == "ghcr.io/modelops/operator:0.1.0"
    documents = list(yaml.safe_load_all((EXAMPLES / "sklearn-iris" / "model.yaml").read_text()))
    run = next(d for d in documents if d["kind"] == "TrainingRun")
    run["metadata"]["name"] = "iris-sklearn-3"
    apply(real, run, namespace="examples")
    wait_on(
        real,
        ["trainingrun", "iris-sklearn-3", "-n", "examples"],
        has_condition("Succeeded"),
        timeout=300,
        what="TrainingRun iris-sklearn-3 to succeed under the kustomize-installed operator",
    )
    version = json.loads(
        kubectl(real, "-n", "examples", "get", "mv", "iris-sklearn-3", "-o", "json")
    )
    assert version["spec"]["artifact"]["format"] == "onnx/v1"
