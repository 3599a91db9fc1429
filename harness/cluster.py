"""A local Kubernetes control plane for tests and the demo: real binaries, loopback only.

``LocalCluster.up()`` starts etcd, kube-apiserver (TLS, RBAC, service-account signing, an audit
log of every write), kube-controller-manager and kube-scheduler on free loopback ports, then the
node backends: KWOK for fake nodes (pods become Running without running anything) and real
nodes (``harness.realnode``: upstream kubelet, containerd, runc, CNI, kube-proxy and the CoreDNS
add-on, running the built images), plus a tiny volume provisioner so PersistentVolumeClaims
bind. Everything it starts is recorded by PID in ``<state-dir>/run`` and stopped by ``down()``;
nothing is ever found by name.

Two lifetimes:

* attached (pytest): each process gets ``PR_SET_PDEATHSIG`` so it dies with the test process even
  when that is killed with SIGKILL;
* detached (``make cluster-up``): processes outlive the command; ``make cluster-down`` stops them.

Binaries come from ``hack/build-tools.sh`` (cached under ``~/.cache/modelops/tools``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
K8S_VERSION = os.environ.get("K8S_VERSION", "1.36.1")
DEFAULT_BIN_DIR = Path(
    os.environ.get(
        "MODELOPS_TOOLS_DIR",
        Path.home() / ".cache" / "modelops" / "tools" / f"k8s-v{K8S_VERSION}" / "bin",
    )
)
SERVICE_CIDR = "10.96.0.0/16"
KWOK_POD_CIDR = "10.244.0.0/16"  # fake addresses; nothing may ever dial them
KWOK_TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
START_ORDER = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "provisioner",
    "containerd",
    "kubelet",
    "nsforward",
    "kube-proxy",
    "coredns",
)

_PR_SET_PDEATHSIG = 1


class ClusterError(RuntimeError):
    """The control plane could not be started or did not become ready in time."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    """Poll ``check`` until it returns True; raise ``ClusterError`` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise ClusterError(f"Timed out after {timeout:.0f}s waiting for {what}")


def die_with_parent() -> None:
    """In a child between fork and exec: have the kernel SIGTERM it when its parent dies."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def run_kubectl(
    bin_dir: Path,
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``bin_dir``'s kubectl against ``kubeconfig``'s cluster (this harness's or any other)."""
    return subprocess.run(
        [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def run_helm(
    bin_dir: Path, kubeconfig: Path, cache: Path, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``bin_dir``'s helm against ``kubeconfig``'s cluster, its cache in ``cache``; the caller
    checks the result."""
    return subprocess.run(
        [str(bin_dir / "helm"), *args],
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": str(cache)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class LocalCluster:
    """One local control plane rooted at ``state_dir``.

    ``kwok_nodes`` fake nodes ``kwok-0``… carry the taint ``kwok.x-k8s.io/node=fake:NoSchedule``
    so that only pods that tolerate it land there: real work (training Jobs, model servers) goes
    to the ``real_nodes`` real nodes ``real-0``….
    """

    state_dir: Path
    bin_dir: Path = DEFAULT_BIN_DIR
    kwok_nodes: int = 1
    #: Nodes with an upstream kubelet and containerd (``harness.realnode``), ``real-0``…
    real_nodes: int = 0
    detached: bool = False
    audit_reads: bool = False
    """Audit reads (get, list, watch) too, not only writes: for benchmarks that count a
    client's requests; off by default, as every controller's watches would fill the log."""
    ports: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    #: The API server's --advertise-address (the ``kubernetes`` Service's endpoint), if set.
    _advertise: str = field(default="", repr=False)

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (user in group ``system:masters``)."""
        return self.state_dir / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def audit_log(self) -> Path:
        """JSON lines, one per write request the API server accepted (see ``audit-policy.yaml``),
        and per read with ``audit_reads``."""
        return self.log_dir / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    # -- lifecycle -------------------------------------------------------------------------

    def up(self, timeout: float = 120) -> float:
        """Start everything and wait until every node is Ready; return the seconds it took."""
        started = time.monotonic()
        missing = [b for b in ("etcd", "kube-apiserver", "kubectl") if not self._bin(b).exists()]
        if missing:
            raise ClusterError(
                f"Missing {', '.join(missing)} in {self.bin_dir}: run hack/build-tools.sh first"
            )
        for d in (self.pki, self.run_dir, self.log_dir, self.state_dir / "etcd"):
            d.mkdir(parents=True, exist_ok=True)
        if any(self.run_dir.glob("*.pid")):
            raise ClusterError(f"{self.state_dir} already has a running cluster: run down first")
        self.ports = {
            name: free_port()
            for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")
        }
        (self.state_dir / "ports.json").write_text(json.dumps(self.ports))
        try:
            self._write_pki()
            self._write_kubeconfig()
            if self.real_nodes:
                from harness import realnode  # needs root and packages; only then imported

                self._advertise = realnode.api_address(realnode.reserve(self))
            self._start_etcd()
            self._start_apiserver(timeout)
            self.spawn("kube-controller-manager", self._kcm_args())
            self.spawn("kube-scheduler", self._scheduler_args())
            self._install_basics()
            if self.kwok_nodes:
                self._start_kwok()
            self.spawn(
                "provisioner",
                [
                    sys.executable,
                    "-m",
                    "harness.provisioner",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--root",
                    str(self.state_dir / "volumes"),
                ],
            )
            if self.real_nodes:
                realnode.start(self, self.real_nodes)
            self._wait_nodes_ready(timeout - (time.monotonic() - started))
        except BaseException:
            self.down()
            raise
        return time.monotonic() - started

    def down(self) -> None:
        """Stop every process this cluster started, newest first: SIGTERM, then SIGKILL."""
        if (self.state_dir / "realnodes.json").exists():
            from harness import realnode

            realnode.stop(self)  # containers, mounts, cgroups, namespaces: not just processes
        for pidfile in started_newest_first(self.run_dir):
            self.stop_component(pidfile.stem)
        if not any(self.run_dir.glob("*.pid")):
            (self.run_dir / "order").unlink(missing_ok=True)

    def stop_component(self, name: str) -> None:
        """Stop one recorded process (SIGTERM, then SIGKILL) and forget it."""
        pidfile = self.run_dir / f"{name}.pid"
        with contextlib.suppress(ValueError, OSError):
            _stop(int(pidfile.read_text()), name)
        pidfile.unlink(missing_ok=True)
        proc = self._procs.pop(name, None)
        if proc is not None:  # collect the exit status of the children we started
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)

    def alive(self) -> dict[str, int]:
        """PIDs of the recorded processes that still run, by component."""
        out = {}
        for pidfile in self.run_dir.glob("*.pid"):
            pid = int(pidfile.read_text())
            if _running(pid):
                out[pidfile.stem] = pid
        return out

    @classmethod
    def load(cls, state_dir: Path, bin_dir: Path = DEFAULT_BIN_DIR) -> LocalCluster:
        """Attach to a cluster that ``up`` started earlier (for ``down``, ``status``, ``env``)."""
        c = cls(state_dir=state_dir, bin_dir=bin_dir, detached=True)
        ports = state_dir / "ports.json"
        if ports.exists():
            c.ports = json.loads(ports.read_text())
        return c

    # -- helpers ---------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl with the admin kubeconfig."""
        return run_kubectl(
            self.bin_dir, self.kubeconfig, *args, input=input, check=check, timeout=timeout
        )

    def helm(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """Run the tools' helm with the admin kubeconfig; the caller checks the result."""
        return run_helm(
            self.bin_dir, self.kubeconfig, self.state_dir / "helm-cache", *args, timeout=timeout
        )

    def env(self) -> dict[str, str]:
        """Environment for a shell that should talk to this cluster."""
        return {"KUBECONFIG": str(self.kubeconfig), "PATH": f"{self.bin_dir}:{os.environ['PATH']}"}

    def _bin(self, name: str) -> Path:
        return self.bin_dir / name

    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        """Start a process that belongs to this cluster: logged to ``logs/<name>.log``,
        recorded in ``run/<name>.pid`` and stopped by :meth:`down`."""
        log = (self.log_dir / f"{name}.log").open("ab")
        child_env = {**os.environ, **(env or {})}
        # Components import harness/modelops from the repository, wherever the cwd is.
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p
        )
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.state_dir,
            env=child_env,
            start_new_session=True,
            preexec_fn=None if self.detached else die_with_parent,
        )
        log.close()
        self._procs[name] = proc
        record_pid(self.run_dir, name, proc.pid)
        return proc.pid

    def restart_apiserver(self, timeout: float = 120) -> float:
        """Stop kube-apiserver and start it again (fault tests); seconds until it was ready."""
        started = time.monotonic()
        self.stop_component("kube-apiserver")
        self._start_apiserver(timeout)
        return time.monotonic() - started

    def _check_alive(self, name: str) -> None:
        pid = int((self.run_dir / f"{name}.pid").read_text())
        if not _running(pid):
            tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{name} exited during start-up; last log lines:\n{tail}")

    def _write_pki(self) -> None:
        pki = self.pki
        if (pki / "admin.crt").exists():
            return
        (pki / "ca.cnf").write_text(
            "[req]\ndistinguished_name=dn\nprompt=no\nx509_extensions=v3_ca\n"
            "[dn]\nCN=modelops-local-ca\n"
            "[v3_ca]\nbasicConstraints=critical,CA:TRUE\n"
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\n"
        )
        (pki / "admin.cnf").write_text(
            "[req]\ndistinguished_name=dn\nprompt=no\n"
            "[dn]\nO=system:masters\nCN=modelops-admin\n"
            "[ext]\nbasicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\nauthorityKeyIdentifier=keyid\n"
            "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,"
            "IP:127.0.0.1,IP:10.96.0.1\n"
        )
        run = ["openssl"]
        cmds = [
            [
                *run,
                "req",
                "-x509",
                "-new",
                "-nodes",
                "-newkey",
                "rsa:2048",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "3650",
                "-config",
                "ca.cnf",
            ],
            [
                *run,
                "req",
                "-new",
                "-nodes",
                "-newkey",
                "rsa:2048",
                "-keyout",
                "admin.key",
                "-out",
                "admin.csr",
                "-config",
                "admin.cnf",
            ],
            [
                *run,
                "x509",
                "-req",
                "-in",
                "admin.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "3650",
                "-extfile",
                "admin.cnf",
                "-extensions",
                "ext",
                "-out",
                "admin.crt",
            ],
            [*run, "genrsa", "-out", "sa.key", "2048"],
        ]
        for cmd in cmds:
            subprocess.run(cmd, cwd=pki, check=True, capture_output=True)

    def _write_kubeconfig(self) -> None:
        pki = self.pki
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "modelops-local",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(pki / "ca.crt"),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": "admin",
                            "user": {
                                "client-certificate": str(pki / "admin.crt"),
                                "client-key": str(pki / "admin.key"),
                            },
                        }
                    ],
                    "contexts": [
                        {
                            "name": "modelops-local",
                            "context": {"cluster": "modelops-local", "user": "admin"},
                        }
                    ],
                    "current-context": "modelops-local",
                },
                indent=2,
            )
        )

    def _start_etcd(self) -> None:
        p = self.ports
        client, peer = f"http://127.0.0.1:{p['etcd']}", f"http://127.0.0.1:{p['etcd-peer']}"
        self.spawn(
            "etcd",
            [
                str(self._bin("etcd")),
                "--name=node0",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=node0={peer}",
                "--unsafe-no-fsync=true",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
                "--listen-metrics-urls=",
            ],
        )

        def healthy() -> bool:
            self._check_alive("etcd")
            with urllib.request.urlopen(f"{client}/health", timeout=2) as r:
                return bool(json.load(r).get("health") == "true")

        wait_for("etcd /health", healthy, 30)

    def _start_apiserver(self, timeout: float) -> None:
        pki, p = self.pki, self.ports
        policy = self.state_dir / "audit-policy.yaml"
        # Writes, with the user and user agent: enough to count what the operator writes.
        # Writes to the four kinds and to Jobs keep their bodies (level Request), so tests can
        # see what was written (never a spec of ours) and name what a create made. Benchmarks
        # that count a client's requests audit reads too (audit_reads).
        writes = "verbs: [create, update, patch, delete, deletecollection]"
        every = "verbs: [create, update, patch, delete, deletecollection, get, list, watch]"
        policy.write_text(
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n"
            f"- level: Request\n  {writes}\n"
            "  resources: [{group: modelops.dev}, {group: batch, resources: [jobs]}]\n"
            f"- level: Metadata\n  {every if self.audit_reads else writes}\n"
            "- level: None\n"
        )
        self.spawn(
            "kube-apiserver",
            [
                str(self._bin("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={p['apiserver']}",
                f"--tls-cert-file={pki / 'admin.crt'}",
                f"--tls-private-key-file={pki / 'admin.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.key'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                # `kubectl logs`, `exec` and `port-forward` go to a kubelet at its InternalIP.
                "--kubelet-preferred-address-types=InternalIP,Hostname",
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
                # Reads fill the log fast; a rotation (at 100 MB by default) would move the
                # requests a benchmark counts by offset into another file.
                *(["--audit-log-maxsize=1000000"] if self.audit_reads else []),
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--v=1",
                *([f"--advertise-address={self._advertise}"] if self._advertise else []),
            ],
        )
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))

        def ready() -> bool:
            self._check_alive("kube-apiserver")
            with urllib.request.urlopen(f"{self.server}/readyz", timeout=2, context=ctx) as r:
                return bool(r.status == 200)

        wait_for("kube-apiserver /readyz", ready, timeout)

    def _kcm_args(self) -> list[str]:
        kc, pki = str(self.kubeconfig), self.pki
        return [
            str(self._bin("kube-controller-manager")),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['kcm']}",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
            "--v=1",
        ]

    def _scheduler_args(self) -> list[str]:
        kc = str(self.kubeconfig)
        return [
            str(self._bin("kube-scheduler")),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['scheduler']}",
            "--leader-elect=false",
            "--v=1",
        ]

    def _install_basics(self) -> None:
        # The default StorageClass whose claims the harness provisioner binds to host dirs.
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager=harness",
            "-f",
            "-",
            input=(
                "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local\n"
                "  annotations: {storageclass.kubernetes.io/is-default-class: 'true'}\n"
                "provisioner: harness.modelops.dev/local\nvolumeBindingMode: Immediate\n"
                "reclaimPolicy: Retain\n"
            ),
        )

    def _start_kwok(self) -> None:
        stages = sorted((self.bin_dir / "kwok-stages").glob("*.yaml"))
        stages.append(REPO / "harness" / "kwok" / "stages.yaml")
        config = self.state_dir / "kwok.yaml"
        config.write_text("\n---\n".join(s.read_text() for s in stages))
        self.spawn(
            "kwok",
            [
                str(self._bin("kwok")),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={config}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-label-selector=type=kwok",
                f"--cidr={KWOK_POD_CIDR}",
                "--node-ip=10.243.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
            ],
        )
        for i in range(self.kwok_nodes):
            name = f"kwok-{i}"
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "node.alpha.kubernetes.io/ttl": "0",
                        "kwok.x-k8s.io/node": "fake",
                    },
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                    },
                },
                "spec": {"taints": [KWOK_TAINT]},
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                },
            }
            self.kubectl(
                "apply",
                "--server-side",
                "--field-manager=harness",
                "-f",
                "-",
                input=json.dumps(node),
            )

    def _wait_nodes_ready(self, timeout: float) -> None:
        want = {f"kwok-{i}" for i in range(self.kwok_nodes)}
        want |= {f"real-{i}" for i in range(self.real_nodes)}

        def ready() -> bool:
            for pidfile in self.run_dir.glob("*.pid"):
                self._check_alive(pidfile.stem)
            out = self.kubectl("get", "nodes", "-o", "json", check=False)
            if out.returncode != 0:
                return False
            nodes = {
                n["metadata"]["name"]
                for n in json.loads(out.stdout)["items"]
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            }
            return want <= nodes

        wait_for(f"nodes {', '.join(sorted(want))} to be Ready", ready, max(timeout, 10))


def record_pid(run_dir: Path, name: str, pid: int) -> None:
    """Record a started process: ``<name>.pid``, and its place in the start order (``order``),
    so that ``LocalCluster.down`` stops what started last first."""
    (run_dir / f"{name}.pid").write_text(str(pid))
    with (run_dir / "order").open("a") as order:
        order.write(f"{name}\n")


def started_newest_first(run_dir: Path) -> list[Path]:
    """The pid files still present, the most recently started first."""
    order_file = run_dir / "order"
    names = order_file.read_text().split() if order_file.exists() else []
    ranked = {name: i for i, name in enumerate(names)}
    return sorted(
        run_dir.glob("*.pid"), key=lambda p: ranked.get(p.stem, len(ranked)), reverse=True
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists": reap it if we can.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _stop(pid: int, name: str, grace: float = 10) -> None:
    """Stop the process group led by ``pid`` (every component starts its own session)."""
    if not _running(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)
    if _running(pid):
        print(f"{name} (pid {pid}) ignored SIGTERM for {grace:.0f}s: killing it", file=sys.stderr)
    # Kill whatever is left of the group too, even when the leader went quietly.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.05)


@contextlib.contextmanager
def running(state_dir: Path, **kwargs: object) -> Iterator[LocalCluster]:
    """Start a cluster for the duration of a ``with`` block; always stop it afterwards."""
    cluster = LocalCluster(state_dir=state_dir, **kwargs)  # type: ignore[arg-type]
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.cluster up|down|status|env|load IMAGE...``."""
    parser = argparse.ArgumentParser(prog="python -m harness.cluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env", "load"])
    parser.add_argument(
        "images",
        nargs="*",
        help="load: built images to import into every real node's containerd (as `kind load`)",
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".k8s-local")
    parser.add_argument("--bin-dir", type=Path, default=DEFAULT_BIN_DIR)
    parser.add_argument("--kwok-nodes", type=int, default=1)
    parser.add_argument("--real-nodes", type=int, default=2, help="docs/real-nodes.md")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_intermixed_args(argv)
    if (args.command == "load") != bool(args.images):
        parser.error("images are given to `load`, and only to it")
    state = args.state_dir.resolve()
    if args.command == "up":
        cluster = LocalCluster(
            state,
            args.bin_dir,
            args.kwok_nodes,
            real_nodes=args.real_nodes,
            detached=True,
        )
        took = cluster.up(args.timeout)
        print(f"Cluster ready in {took:.1f}s (API server {cluster.server})")
        print(f"  export KUBECONFIG={cluster.kubeconfig}")
        print(f"  export PATH={args.bin_dir}:$PATH")
        print("  kubectl get nodes")
        return 0
    cluster = LocalCluster.load(state, args.bin_dir)
    if args.command == "down":
        cluster.down()
        print(f"Cluster in {state} stopped")
    elif args.command == "load":
        from harness import realnode

        nodes, _ = realnode.load(cluster)
        realnode.import_images(cluster, nodes, *args.images)
        print(f"Loaded {len(args.images)} image(s) into {', '.join(n.name for n in nodes)}")
    elif args.command == "status":
        alive = cluster.alive()
        for name in START_ORDER:
            for comp, pid in sorted(alive.items()):
                if comp.startswith(name):
                    print(f"{comp:<26} pid {pid}")
        return 0 if alive else 1
    else:
        for k, v in cluster.env().items():
            print(f"export {k}={v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
