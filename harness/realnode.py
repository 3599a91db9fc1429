"""Real nodes for the local cluster: upstream kubelet, containerd, runc, CNI (docs/real-nodes.md).

Each node ``real-<i>`` gets

* a network namespace of its own (``mo<slot>-<i>``) joined to the host by a veth pair on a /30
  of 10.250.<slot>.0/24; in it run containerd (CRI v1, runc, overlayfs) and the CNI bridge that
  its pods attach to (pod subnet 10.<128+slot>.<i>.0/24), so bridges, pod veths and their
  firewall rules live and die with the namespace;
* a kubelet in the host network namespace (it reaches the API server on 127.0.0.1, and the API
  server reaches it on the host end of the veth for logs, exec and port-forward); a host route
  sends the node's pod subnet through the veth, so probes reach pods;
* kube-proxy (nftables mode) in the node's namespace; it reaches the API server through
  ``harness.nsforward`` at 127.0.0.1 of that namespace;
* a direct veth link to every other real node, with routes to its pod subnet: pod addresses
  cross nodes unchanged and the host never forwards;
* its own cgroup root ``/mo<slot>-<i>``, state under ``<cluster state>/realnodes/real-<i>`` and
  sockets under ``/run/modelops-nodes/mo<slot>-<i>``: nothing is shared with another cluster or
  with a system containerd, so clusters started in parallel cannot collide.

The slot is claimed by creating the first node's network namespace (``ip netns add`` fails if it
exists), before the API server starts: it advertises ``10.250.<slot>.254`` (the ``kubernetes``
Service's endpoint), an address every node has on its loopback device where ``nsforward``
listens, so pods reach the API server through the Service like on any cluster.

The images of ``make images`` and a pause image (``FROM scratch`` with Debian's static
``catatonit``) are imported into each node's containerd.

Processes are started through ``LocalCluster.spawn`` (recorded by PID); ``stop`` kills every
container task through containerd, stops kubelet and containerd, kills leftover shims by the PIDs
containerd recorded, then removes mounts, cgroups, the route, the namespace (with its bridge and
veths) and restores the kernel settings the kubelet changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# harness.cluster imports this module only when real nodes are asked for.
from harness.cluster import wait_for

if TYPE_CHECKING:
    from harness.cluster import LocalCluster

IMAGES = tuple(f"ghcr.io/modelops/{t}:0.1.0" for t in ("operator", "trainer", "server"))
PAUSE_IMAGE = "localhost/modelops/pause:catatonit"
COREDNS_REPO = "localhost/modelops/coredns"
DNS_SERVICE_IP = "10.96.0.10"  # the kube-dns Service; every kubelet's clusterDNS
NODE_LABEL = "real-node"
RUN_ROOT = Path("/run/modelops-nodes")
CGROUP_ROOT = Path("/sys/fs/cgroup")
MAX_SLOTS = 100
#: Host-wide settings the kubelet sets at start (protectKernelDefaults off); restored at stop.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


class RealNodeError(RuntimeError):
    """A real node could not be set up (missing packages, images or binaries)."""


@dataclass
class Node:
    """Everything about one real node that ``stop`` needs, also from another process."""

    name: str
    netns: str
    state: str
    run: str
    host_ip: str
    node_ip: str
    pod_subnet: str
    cgroup: str

    @property
    def socket(self) -> str:
        return f"{self.run}/containerd.sock"


def _run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RealNodeError(f"{' '.join(argv)}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


def _claim_slot() -> int:
    """The first free slot: its first network namespace is created here, atomically."""
    for slot in range(1, MAX_SLOTS):
        if subprocess.run(["ip", "netns", "add", f"mo{slot}-0"], capture_output=True).returncode:
            continue
        return slot
    raise RealNodeError(f"no free real-node slot (mo1-0 … mo{MAX_SLOTS - 1}-0 all exist)")


def _nodes_file(cluster: LocalCluster) -> Path:
    return cluster.state_dir / "realnodes.json"


def _save(cluster: LocalCluster, slot: int, nodes: list[Node], sysctls: dict[str, str]) -> None:
    data = {"slot": slot, "nodes": [asdict(n) for n in nodes], "sysctls": sysctls}
    _nodes_file(cluster).write_text(json.dumps(data, indent=2))


def api_address(slot: int) -> str:
    """Where pods reach the API server: the ``kubernetes`` Service's endpoint (the API server's
    ``--advertise-address``). Every node has it on its loopback device, and ``harness.nsforward``
    listens there, forwarding to the API server on the host's 127.0.0.1."""
    return f"10.250.{slot}.254"


def reserve(cluster: LocalCluster) -> int:
    """Check what real nodes need and claim a slot, before the API server starts (it advertises
    ``api_address(slot)``); ``stop`` releases it."""
    check_prerequisites(cluster.bin_dir)
    slot = _claim_slot()
    _save(cluster, slot, [], {})
    return slot


def missing(bin_dir: Path) -> str | None:
    """What real nodes still need on this machine, saying what to run; None when nothing."""
    if os.geteuid() != 0:
        return "real nodes need root (network namespaces, mounts, cgroups)"
    absent = [
        b for b in ("containerd", "ctr", "runc", "ip", "nsenter", "podman") if not shutil.which(b)
    ]
    if absent or not Path("/usr/lib/cni/bridge").exists():
        return f"missing {absent or 'CNI plugins'}: run `make system-packages`"
    for binary in ("kubelet", "kube-proxy", "coredns"):
        if not (bin_dir / binary).exists():
            return f"no {binary} in {bin_dir}: run `make real-nodes-tools`"
    for image in IMAGES:
        if subprocess.run(_podman("image", "exists", image)).returncode != 0:
            return f"image {image} not built: run `make images`"
    return None


def check_prerequisites(bin_dir: Path) -> None:
    """Fail early, saying what to run, when something real nodes need is missing."""
    reason = missing(bin_dir)
    if reason:
        raise RealNodeError(reason)


def _podman(*argv: str) -> list[str]:
    return [
        "env",
        f"CONTAINERS_CONF={Path(__file__).parent.parent / 'hack' / 'containers.conf'}",
        "podman",
        *argv,
    ]


def _build_scratch_image(image: str, binary: Path, entrypoint: list[str]) -> None:
    """Builds ``image`` ``FROM scratch`` holding one static ``binary`` as its entrypoint."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp)
        shutil.copy(binary, ctx / binary.name)
        (ctx / "Containerfile").write_text(
            f"FROM scratch\nCOPY {binary.name} /{binary.name}\n"
            f"ENTRYPOINT {json.dumps(entrypoint)}\n"
        )
        _run(*_podman("build", "--quiet", "-t", image, str(ctx)))


def _ensure_pause_image() -> None:
    if subprocess.run(_podman("image", "exists", PAUSE_IMAGE)).returncode == 0:
        return
    catatonit = shutil.which("catatonit")
    if not catatonit:
        raise RealNodeError("catatonit not found: run `make system-packages`")
    # The pause process of every pod: reaps zombies, waits for SIGTERM (-P: pause mode).
    _build_scratch_image(PAUSE_IMAGE, Path(catatonit), ["/catatonit", "-P"])


def _ensure_coredns_image(bin_dir: Path) -> str:
    """The CoreDNS image: ``FROM scratch`` with the static binary of ``make real-nodes-tools``,
    tagged by that binary's digest (rebuilt only when the binary changes). Returns its name."""
    binary = bin_dir / "coredns"
    image = f"{COREDNS_REPO}:{hashlib.sha256(binary.read_bytes()).hexdigest()[:12]}"
    if subprocess.run(_podman("image", "exists", image)).returncode != 0:
        _build_scratch_image(image, binary, ["/coredns"])
    return image


def start(cluster: LocalCluster, count: int) -> list[Node]:
    """Set up and start ``count`` real nodes in the slot ``reserve`` claimed; returns them
    (also saved in the state dir)."""
    slot = int(json.loads(_nodes_file(cluster).read_text())["slot"])
    _ensure_pause_image()
    coredns = _ensure_coredns_image(cluster.bin_dir)
    sysctls = {k: Path("/proc/sys", k).read_text().strip() for k in KUBELET_SYSCTLS}
    nodes = [_node(cluster, slot, i) for i in range(count)]
    _save(cluster, slot, nodes, sysctls)
    for node in nodes:
        _network(node, first=node.name.endswith("-0"), api=api_address(slot))
    _link_nodes(nodes, slot)
    for node in nodes:
        _start_containerd(cluster, node)
    import_images(cluster, nodes, PAUSE_IMAGE, coredns, *IMAGES)
    for node in nodes:
        _start_kubelet(cluster, node)
    _start_node_services(cluster, nodes, slot)
    _start_cluster_dns(cluster, coredns, replicas=min(2, len(nodes)))
    return nodes


def import_images(cluster: LocalCluster, nodes: list[Node], *images: str) -> None:
    """Put built images into each node's containerd, as ``kind load`` does: pods then run
    them with ``imagePullPolicy: IfNotPresent`` and nothing is pulled. Also for images a test
    needs beyond :data:`IMAGES` (the examples' training images), on nodes already running.

    Each image is also named by its digest (``repo@sha256:…``), as a pull from a registry
    names it: a pod may pin the image by digest, and its ``imageID`` is that name."""
    for image in images:
        if subprocess.run(_podman("image", "exists", image)).returncode != 0:
            raise RealNodeError(f"image {image} not built: run `make images`")
    archive = cluster.state_dir / "realnodes" / "images.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    # One archive for all nodes: shared layers are stored once.
    _run(*_podman("save", "--quiet", "--multi-image-archive", "-o", str(archive), *images))
    try:
        for node in nodes:
            with archive.open("rb") as f:
                subprocess.run(
                    [*_ctr(node), "images", "import", "-"],
                    stdin=f,
                    capture_output=True,
                    check=True,
                    timeout=600,
                )
            for image in images:
                repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
                _run(
                    *_ctr(node), "images", "tag", "--force", image, f"{repo}@{_digest(node, image)}"
                )
    finally:
        archive.unlink()


def _ctr(node: Node) -> list[str]:
    return ["ctr", "-a", node.socket, "-n", "k8s.io"]


def _digest(node: Node, image: str) -> str:
    """The manifest digest (``sha256:…``) of ``image`` in the node's containerd."""
    for line in _run(*_ctr(node), "images", "ls", f"name=={image}").splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == image:
            return fields[2]
    raise RealNodeError(f"image {image} is not in {node.name}'s containerd")


def image_digest(cluster: LocalCluster, image: str) -> str:
    """The digest under which the nodes know ``image`` (the same on every node: one archive):
    pin ``repo@<digest>`` in a pod to run exactly it."""
    nodes, _ = load(cluster)
    if not nodes:
        raise RealNodeError(f"{cluster.state_dir} has no real nodes")
    return _digest(nodes[0], image)


def _start_node_services(cluster: LocalCluster, nodes: list[Node], slot: int) -> None:
    """The API server forwarder, then kube-proxy (nftables) in each node's network namespace (it
    reaches the API server at 127.0.0.1:<API port> of that namespace); waits until kube-proxy
    has programmed its rules."""
    port = cluster.ports["apiserver"]
    cluster.spawn(
        "nsforward",
        [
            sys.executable,
            "-m",
            "harness.nsforward",
            f"--to=127.0.0.1:{port}",
            *(f"--listen={n.netns}:127.0.0.1:{port}" for n in nodes),
            *(f"--listen={n.netns}:{api_address(slot)}:{port}" for n in nodes),
        ],
    )
    for node in nodes:
        config = Path(node.state) / "kube-proxy.yaml"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "mode": "nftables",
                    "clientConnection": {"kubeconfig": str(cluster.kubeconfig)},
                    "hostnameOverride": node.name,
                    "clusterCIDR": f"10.{128 + slot}.0.0/16",
                    # Inside the node's namespace: these ports collide with nothing.
                    "healthzBindAddress": "127.0.0.1:10256",
                    "metricsBindAddress": "127.0.0.1:10249",
                    # nf_conntrack_max is host-wide: leave it alone.
                    "conntrack": {"maxPerCore": 0, "min": 0},
                    # No CAP_SYS_RESOURCE here: a negative score cannot be set.
                    "oomScoreAdj": 0,
                }
            )
        )
        cluster.spawn(
            f"kube-proxy-{node.name}",
            [
                "nsenter",
                f"--net=/run/netns/{node.netns}",
                "--",
                str(cluster.bin_dir / "kube-proxy"),
                f"--config={config}",
                "--v=1",
            ],
        )

    for node in nodes:

        def programmed(node: Node = node) -> bool:
            cluster._check_alive(f"kube-proxy-{node.name}")
            nft = ["ip", "netns", "exec", node.netns, "nft", "list", "table", "ip", "kube-proxy"]
            return subprocess.run(nft, capture_output=True).returncode == 0

        wait_for(f"kube-proxy of {node.name} to program its rules", programmed, 60)


COREFILE = """.:53 {
    errors
    health :8080
    ready :8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    loop
    reload
}
"""
"""Service and pod names of ``cluster.local`` only: nothing is forwarded outside the cluster."""


def cluster_dns_objects(image: str, replicas: int) -> list[dict[str, Any]]:
    """CoreDNS as a cluster add-on, as kubeadm installs it: a Deployment in ``kube-system``
    (in-cluster configuration, its own service account with read access to Services,
    EndpointSlices, pods and namespaces) behind the Service ``kube-dns`` at
    :data:`DNS_SERVICE_IP`."""
    labels = {"k8s-app": "kube-dns"}
    meta = {"namespace": "kube-system", "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", **meta},
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", **meta},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "nodeSelector": {"type": NODE_LABEL},
                        "affinity": {
                            "podAntiAffinity": {
                                "preferredDuringSchedulingIgnoredDuringExecution": [
                                    {
                                        "weight": 100,
                                        "podAffinityTerm": {
                                            "labelSelector": {"matchLabels": labels},
                                            "topologyKey": "kubernetes.io/hostname",
                                        },
                                    }
                                ]
                            }
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                ],
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "initialDelaySeconds": 10,
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                # Port 53 needs root's NET_BIND_SERVICE; nothing else.
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {
                                        "drop": ["ALL"],
                                        "add": ["NET_BIND_SERVICE"],
                                    },
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", **meta},
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]


def _start_cluster_dns(cluster: LocalCluster, image: str, replicas: int) -> None:
    """Apply the CoreDNS add-on and wait until its Deployment is available."""
    objects = {"apiVersion": "v1", "kind": "List", "items": cluster_dns_objects(image, replicas)}
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=harness", "-f", "-", input=json.dumps(objects)
    )
    rollout = cluster.kubectl(
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deployment/coredns",
        "--timeout=180s",
        check=False,
        timeout=200,
    )
    if rollout.returncode != 0:
        pods = cluster.kubectl("-n", "kube-system", "get", "pods", "-o", "wide", check=False)
        raise RealNodeError(f"CoreDNS did not become available: {rollout.stderr}\n{pods.stdout}")


def _node(cluster: LocalCluster, slot: int, i: int) -> Node:
    netns = f"mo{slot}-{i}"
    return Node(
        name=f"real-{i}",
        netns=netns,
        state=str(cluster.state_dir / "realnodes" / f"real-{i}"),
        run=str(RUN_ROOT / netns),
        host_ip=f"10.250.{slot}.{4 * i + 1}",
        node_ip=f"10.250.{slot}.{4 * i + 2}",
        pod_subnet=f"10.{128 + slot}.{i}.0/24",
        cgroup=f"/{netns}",
    )


def _network(node: Node, first: bool, api: str) -> None:
    ns, host_if = node.netns, f"{node.netns}h"
    if not first:
        _run("ip", "netns", "add", ns)
    inside = ["ip", "-n", ns]
    _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
    _run("ip", "addr", "add", f"{node.host_ip}/30", "dev", host_if)
    _run("ip", "link", "set", host_if, "up")
    _run(*inside, "addr", "add", f"{node.node_ip}/30", "dev", "eth0")
    _run(*inside, "link", "set", "lo", "up")
    _run(*inside, "addr", "add", f"{api}/32", "dev", "lo")  # the API server, for pods
    _run(*inside, "link", "set", "eth0", "up")
    _run(*inside, "route", "add", "default", "via", node.host_ip)
    _run("ip", "route", "add", node.pod_subnet, "via", node.node_ip)
    # The node routes between its pods' bridge and the veth (a per-namespace setting).
    _run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")


def _link_nodes(nodes: list[Node], slot: int) -> None:
    """A direct veth link between every two nodes, with routes to each other's pod subnet:
    pod addresses cross nodes unchanged, and the host never forwards (its ip_forward stays 0)."""
    pairs = [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1 :]]
    for k, (a, b) in enumerate(pairs):
        ip_a, ip_b = f"10.250.{slot}.{128 + 4 * k + 1}", f"10.250.{slot}.{128 + 4 * k + 2}"
        if_a, if_b = f"to-{b.name}", f"to-{a.name}"
        _run(
            "ip",
            "link",
            "add",
            if_a,
            "netns",
            a.netns,
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            b.netns,
        )
        for node, dev, own, other, peer in ((a, if_a, ip_a, b, ip_b), (b, if_b, ip_b, a, ip_a)):
            _run("ip", "-n", node.netns, "addr", "add", f"{own}/30", "dev", dev)
            _run("ip", "-n", node.netns, "link", "set", dev, "up")
            _run("ip", "-n", node.netns, "route", "add", other.pod_subnet, "via", peer)


def _start_containerd(cluster: LocalCluster, node: Node) -> None:
    state, run = Path(node.state), Path(node.run)
    for d in (state / "containerd", state / "cni" / "net.d", run):
        d.mkdir(parents=True, exist_ok=True)
    (state / "cni" / "net.d" / "10-bridge.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "modelops",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": True,
                        # Pod addresses stay visible between nodes (no masquerade).
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": node.pod_subnet}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": str(state / "cni" / "ipam"),
                        },
                    }
                ],
            }
        )
    )
    config = state / "containerd.toml"
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    config.write_text(
        f"""version = 2
root = "{state}/containerd/root"
state = "{run}/state"
[grpc]
  address = "{node.socket}"
[ttrpc]
  address = "{node.socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{state}/containerd/opt"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: negative oom_score_adj values cannot be set.
  restrict_oom_score_adj = true
  stream_server_address = "{node.node_ip}"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{run}/runc"
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{state}/cni/net.d"
"""
    )
    # The kubelet mounts volumes (tmpfs for tokens and secrets) under its root directory in the
    # host's mount namespace; a shared mount there propagates them into containerd's.
    kubelet_root = state / "kubelet"
    kubelet_root.mkdir(exist_ok=True)
    _run("mount", "--bind", str(kubelet_root), str(kubelet_root))
    _run("mount", "--make-rshared", str(kubelet_root))
    # In the node's network namespace, and in a mount namespace of its own that receives the
    # host's mounts (kubelet's volumes) but keeps its own (container root filesystems) private.
    cluster.spawn(
        f"containerd-{node.name}",
        [
            "nsenter",
            f"--net=/run/netns/{node.netns}",
            "--",
            "unshare",
            "--mount",
            "--propagation",
            "slave",
            "--",
            "containerd",
            "--config",
            str(config),
        ],
    )

    def serving() -> bool:
        cluster._check_alive(f"containerd-{node.name}")
        return (
            subprocess.run(["ctr", "-a", node.socket, "version"], capture_output=True).returncode
            == 0
        )

    wait_for(f"containerd of {node.name}", serving, 60)


def _cgroup_dirs(node: Node) -> list[Path]:
    """The node's cgroup root in every v1 hierarchy (and the v2 one), created if missing."""
    out = []
    for hierarchy in sorted(CGROUP_ROOT.iterdir()):
        if hierarchy.is_dir() and (hierarchy / "cgroup.procs").exists():
            out.append(hierarchy / node.cgroup.lstrip("/"))
    return out


def _start_kubelet(cluster: LocalCluster, node: Node) -> None:
    state = Path(node.state)
    for d in _cgroup_dirs(node):
        d.mkdir(exist_ok=True)
        if d.parent.name == "cpuset":  # a new cpuset has no CPUs or memory nodes until given some
            for f in ("cpuset.cpus", "cpuset.mems"):
                (d / f).write_text((d.parent / f).read_text())
    config = state / "kubelet.yaml"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                "address": node.host_ip,
                "port": 10250,
                "readOnlyPort": 0,
                "healthzBindAddress": node.host_ip,
                "healthzPort": 10248,
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True},
                    "x509": {"clientCAFile": str(cluster.pki / "ca.crt")},
                },
                "authorization": {"mode": "Webhook"},
                # The kubelet runs in the host's network namespace: no iptables chains there.
                "makeIPTablesUtilChains": False,
                # Hybrid cgroups (v1 controllers), no systemd; 1.36 refuses v1 unless told.
                "failCgroupV1": False,
                "cgroupDriver": "cgroupfs",
                "cgroupRoot": node.cgroup,
                "containerRuntimeEndpoint": f"unix://{node.socket}",
                "podLogsDir": str(state / "pod-logs"),
                "failSwapOn": False,
                "resolvConf": "/etc/resolv.conf",
                "clusterDomain": "cluster.local",
                # The CoreDNS add-on's Service.
                "clusterDNS": [DNS_SERVICE_IP],
                "evictionHard": {
                    "memory.available": "100Mi",
                    "nodefs.available": "1%",
                    "imagefs.available": "1%",
                },
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "serializeImagePulls": False,
                "maxPods": 110,
            }
        )
    )
    cluster.spawn(
        f"kubelet-{node.name}",
        [
            str(cluster.bin_dir / "kubelet"),
            f"--config={config}",
            f"--kubeconfig={cluster.kubeconfig}",
            f"--root-dir={state / 'kubelet'}",
            f"--cert-dir={state / 'kubelet-pki'}",
            f"--hostname-override={node.name}",
            f"--node-ip={node.host_ip}",
            f"--node-labels=type={NODE_LABEL}",
            "--v=1",
        ],
    )


def load(cluster: LocalCluster) -> tuple[list[Node], dict[str, str]]:
    path = _nodes_file(cluster)
    if not path.exists():
        return [], {}
    data = json.loads(path.read_text())
    return [Node(**n) for n in data["nodes"]], data.get("sysctls", {})


def _slot(cluster: LocalCluster) -> int | None:
    path = _nodes_file(cluster)
    return int(json.loads(path.read_text())["slot"]) if path.exists() else None


def stop(cluster: LocalCluster) -> None:
    """Stop every real node of ``cluster`` and remove everything it left on the host."""
    nodes, sysctls = load(cluster)
    daemons = [f"kube-proxy-{n.name}" for n in nodes]
    for name in [*daemons, "nsforward"]:
        cluster.stop_component(name)
    for node in nodes:
        cluster.stop_component(f"kubelet-{node.name}")
        _kill_tasks(node)
        cluster.stop_component(f"containerd-{node.name}")
        _kill_shims(node)
        _unmount_under(node.state)
        _unmount_under(node.run)
        _remove_cgroups(node)
        subprocess.run(["ip", "route", "del", node.pod_subnet], capture_output=True)
        subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
        shutil.rmtree(node.run, ignore_errors=True)
    slot = _slot(cluster)
    if slot is not None:  # the claim, also when no node got that far
        subprocess.run(["ip", "netns", "del", f"mo{slot}-0"], capture_output=True)
    for key, value in sysctls.items():
        with contextlib.suppress(OSError):
            Path("/proc/sys", key).write_text(value)
    with contextlib.suppress(OSError):  # shared by parallel clusters: only once empty
        RUN_ROOT.rmdir()
    _nodes_file(cluster).unlink(missing_ok=True)


def _kill_tasks(node: Node) -> None:
    """Kill every container through containerd, so that its shims exit by themselves."""
    ctr = _ctr(node)
    listed = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True, timeout=30)
    if listed.returncode != 0:
        return
    for task in listed.stdout.split():
        subprocess.run(
            [*ctr, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True, timeout=30
        )
    for task in listed.stdout.split():
        subprocess.run([*ctr, "tasks", "delete", "-f", task], capture_output=True, timeout=30)


def _kill_shims(node: Node) -> None:
    """Shims left running (containerd killed first): by the PIDs containerd recorded."""
    tasks = Path(node.run) / "state" / "io.containerd.runtime.v2.task"
    for pidfile in tasks.glob("*/*/shim.pid"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def _unmount_under(root: str) -> None:
    """Detach every mount at or below ``root`` (deepest first)."""
    prefix = os.path.realpath(root)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    mine = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    for point in sorted(set(mine), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True)


def _remove_cgroups(node: Node) -> None:
    """Remove the node's cgroup tree, deepest first (a cgroup empties once its tasks are gone)."""
    deadline = time.monotonic() + 10
    for top in _existing_cgroups(node):
        below = [p for p in top.rglob("*") if p.is_dir()]
        for d in [*sorted(below, key=lambda p: len(p.parts), reverse=True), top]:
            while d.exists():
                try:
                    d.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.1)


def _existing_cgroups(node: Node) -> list[Path]:
    return [
        h / node.cgroup.lstrip("/")
        for h in sorted(CGROUP_ROOT.iterdir())
        if (h / node.cgroup.lstrip("/")).is_dir()
    ]
