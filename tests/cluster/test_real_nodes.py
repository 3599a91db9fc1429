"""Pods on a real node: upstream kubelet, containerd and runc, running the built images.

A control plane of its own (module scope) with one real node (``harness.realnode``) and no
other nodes. The restricted securityContext that the operator puts on every pod it creates
(``modelops.core.builders``) holds inside a real container: the image's non-root user, a root
filesystem that refuses writes, no capabilities at all; checked from the container's own output
(``kubectl logs``) and through ``kubectl exec``. Afterwards the cluster is stopped and nothing of
the node is left on the host: no process, mount, cgroup, network namespace or route.

Skipped, saying why, without root, the Debian packages, the kubelet or the images
(``make system-packages real-nodes-tools images``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import realnode
from harness.cluster import DEFAULT_BIN_DIR, LocalCluster, wait_for
from modelops.core.builders import (
    CONTAINER_SECURITY_CONTEXT,
    POD_SECURITY_CONTEXT,
    SCRATCH_MOUNT,
    SCRATCH_VOLUME,
)

# Set-up (a control plane, two nodes, image imports) and teardown count in a test's time.
pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

SERVER_IMAGE = "ghcr.io/modelops/server:0.1.0"
PROBE = "id -u; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status; touch /x 2>&1 || true"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "real nodes need root"
    if not (DEFAULT_BIN_DIR / "kubelet").exists():
        return "no kubelet: run `make real-nodes-tools`"
    for tool in ("containerd", "podman", "ctr"):
        if not shutil.which(tool):
            return f"no {tool}: run `make system-packages`"
    for image in realnode.IMAGES:
        if subprocess.run(realnode._podman("image", "exists", image)).returncode != 0:
            return f"image {image} not built: run `make images`"
    return None


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    cluster = LocalCluster(
        state_dir=tmp_path_factory.mktemp("real"), kwok_nodes=0, runner_nodes=0, real_nodes=2
    )
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


def kubectl(cluster: LocalCluster, *args: str, input: str | None = None) -> str:
    return cluster.kubectl(*args, input=input).stdout


def test_nodes_are_ready_with_containerd(real: LocalCluster) -> None:
    nodes = json.loads(kubectl(real, "get", "nodes", "-o", "json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["real-0", "real-1"]
    for node in nodes:
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
        assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.1"
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


def test_restricted_security_context_holds_in_a_real_container(real: LocalCluster) -> None:
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
            "nodeSelector": {"kubernetes.io/hostname": "real-0"},
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


def test_service_by_dns_name_across_nodes_and_port_forward(real: LocalCluster) -> None:
    web = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "restricted", "labels": {"app": "web"}},
        "spec": {
            # On the other node than the probe pod: the Service crosses nodes.
            "nodeSelector": {"kubernetes.io/hostname": "real-1"},
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
    # From another pod: the name through the node's CoreDNS, the ClusterIP through kube-proxy.
    fetch = (
        "import socket, urllib.request as u;"
        "print(socket.gethostbyname('web.restricted.svc.cluster.local'));"
        "print(u.urlopen('http://web.restricted.svc.cluster.local/', timeout=5).read().decode())"
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

    # kubectl port-forward: API server → kubelet → containerd, into the pod's namespace.
    forward = subprocess.Popen(
        [
            str(real.bin_dir / "kubectl"),
            "--kubeconfig",
            str(real.kubeconfig),
            "-n",
            "restricted",
            "port-forward",
            "pod/web",
            ":8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> 8080
        assert line.startswith("Forwarding from 127.0.0.1:"), line
        port = int(line.split("127.0.0.1:")[1].split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.read().decode().strip() == "hello from web"
    finally:
        forward.terminate()
        forward.wait(10)
        if forward.stdout:
            forward.stdout.close()


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(real: LocalCluster) -> None:
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


def test_helm_install_runs_the_operator_image_and_helm_test_passes(real: LocalCluster) -> None:
    # The chart as users install it: its default image (the built operator image, present on
    # the nodes, so IfNotPresent never pulls), default ports, a restricted namespace.
    ns = "modelops-system"
    real.kubectl("create", "namespace", ns)
    real.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    env = {**os.environ, "KUBECONFIG": str(real.kubeconfig)}
    helm = [str(real.bin_dir / "helm"), "-n", ns]
    chart = str(Path(__file__).resolve().parents[2] / "helm" / "modelops")
    install = subprocess.run(
        [
            *helm,
            "install",
            "modelops",
            chart,
            "--set",
            f"nodeSelector.type={realnode.NODE_LABEL}",
            "--wait",
            "--timeout",
            "180s",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = real.kubectl("-n", ns, "logs", "deployment/modelops", check=False).stdout
    assert install.returncode == 0, install.stderr + log[-5000:]
    pod = json.loads(
        kubectl(
            real, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=modelops", "-o", "json"
        )
    )["items"][0]
    assert pod["spec"]["nodeName"].startswith("real-")
    assert pod["status"]["containerStatuses"][0]["image"] == "ghcr.io/modelops/operator:0.1.0"
    # helm test: a pod of the operator image asks /healthz through the operator's Service name.
    tested = subprocess.run(
        [*helm, "test", "modelops", "--timeout", "120s"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert re.search(
        r"TEST SUITE:\s+modelops-test-healthz\n.*\n.*\nPhase:\s+Succeeded", tested.stdout
    ), tested.stdout
