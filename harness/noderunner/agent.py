"""The node agent: register the Node, keep it Ready, and run the pods bound to it.

Threads:

* heartbeat: renews the node Lease in ``kube-node-lease`` every 10 s and posts the node status
  (``Ready`` condition, capacity, addresses, the log server port) every minute;
* pod watcher: lists the pods with ``spec.nodeName=<node>``, watches them until the next
  resync (20 s), then lists again; every change runs ``_sync``, which applies
  ``sync.action_for`` to each cached pod;
* one ``PodWorker`` per running pod, and the HTTPS log server.

On ``stop`` every worker kills its containers (SIGTERM, SIGKILL after the shutdown grace) and
the agent returns once they are gone. Pod statuses are left as they were, as when a kubelet
stops; a restarted runner picks the pods up again (``PodWorker._recover``).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.noderunner import hostnet, ipam, process, sync, volumedirs
from harness.noderunner.kube import Kube, is_conflict
from harness.noderunner.logserver import LogServer
from harness.noderunner.podstatus import rfc3339
from harness.noderunner.podworker import NodeContext, PodWorker

log = logging.getLogger("harness.noderunner")

Obj = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
#: Node annotation naming the runner's state directory (where `logs` finds container output).
STATE_DIR_ANNOTATION = "harness.modelops.dev/state-dir"
#: Node annotation with the address prefix of its pods (``127.N``).
IP_PREFIX_ANNOTATION = "harness.modelops.dev/ip-prefix"
HOST_IP = "127.0.0.1"
RUNTIME_VERSION = "local-runner://0.1.0"


@dataclass(frozen=True)
class AgentConfig:
    """The runner's command-line settings."""

    kubeconfig: str
    node_name: str
    state_dir: Path
    #: ``127.N``/``127.N.M``, or ``auto``; a prefix another runner holds is swapped for a free one.
    ip_prefix: str = "auto"
    capacity: Mapping[str, str] = field(
        default_factory=lambda: {"cpu": "8", "memory": "16Gi", "pods": "110"}
    )
    resync_seconds: int = 20
    lease_seconds: int = 40
    renew_seconds: float = 10.0
    status_seconds: float = 60.0
    shutdown_grace: float = 5.0
    max_grace: float = 30.0


def micro_time(epoch: float) -> str:
    """An API ``MicroTime`` (leases want microseconds)."""
    whole = int(epoch)
    return f"{rfc3339(whole)[:-1]}.{int((epoch - whole) * 1e6):06d}Z"


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


class Agent:
    """One local-runner node (see the module docstring)."""

    def __init__(self, cfg: AgentConfig, kube: Kube) -> None:
        self.cfg = cfg
        self.kube = kube
        self._lock = threading.Lock()
        self._pods: dict[str, Obj] = {}
        self._workers: dict[str, PodWorker] = {}
        self._finished: set[str] = set()
        self._addresses: ipam.Allocator | None = None
        self._stop = threading.Event()
        self._lease: Obj | None = None
        self._node_uid = ""
        self._since = rfc3339(time.time())
        self._version = ""
        self._server: LogServer | None = None
        self._prefix = ""
        self.ctx: NodeContext | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, then stop every container and return."""
        state = self.cfg.state_dir
        (state / "pods").mkdir(parents=True, exist_ok=True)
        claim = hostnet.claim(self.cfg.ip_prefix)
        if self.cfg.ip_prefix not in ("auto", claim.prefix):
            log.warning(
                "Address prefix %s is held by another local runner on this machine; using %s",
                self.cfg.ip_prefix,
                claim.prefix,
            )
        self._addresses = ipam.Allocator(claim.prefix)
        self._prefix = claim.prefix
        log.info(
            "Pods get addresses %s.%s", claim.prefix, "x" if claim.prefix.count(".") == 2 else "x.y"
        )
        isolate = process.isolation_available()
        if isolate:
            log.info("Containers get a private mount namespace each (running as root)")
        else:
            log.warning(
                "No mount namespaces (not root, or unshare refused): volumes are not mounted; "
                "containers find them through MODELOPS_VOLUME_<NAME> variables"
            )
        host, port = self.kube.server
        self.ctx = NodeContext(
            node_name=self.cfg.node_name,
            state_dir=state,
            api_host=host,
            api_port=port,
            isolate=isolate,
            allocatable=dict(self.cfg.capacity),
            host_ip=HOST_IP,
            python=sys.executable,
            runtime_paths=tuple(process.runtime_paths()),
            runner_pid=os.getpid(),
            max_grace=self.cfg.max_grace,
        )
        self._server = LogServer(state, self.cfg.node_name, self._container_state)
        self._server.start()
        while not stop.is_set():
            try:
                self._version = self.kube.server_version()
                self._register()
                break
            except Exception as e:
                log.warning("Registering node %s failed: %s; retrying", self.cfg.node_name, e)
                stop.wait(2.0)
        threads = [
            threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True),
            threading.Thread(target=self._watch_pods, name="pod watcher", daemon=True),
        ]
        for t in threads:
            t.start()
        stop.wait()
        self._shutdown()
        claim.release()

    def _shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            workers = list(self._workers.values())
        if workers:
            log.info("Stopping the containers of %d pods", len(workers))
        for w in workers:
            w.shutdown(self.cfg.shutdown_grace)
        for w in workers:
            w.join(self.cfg.shutdown_grace + 10)
            if w.is_alive():
                log.error("Pod worker for %s did not stop in time", w.key)
        if self._server:
            self._server.stop()
        log.info("Node %s stopped", self.cfg.node_name)

    # -- the node -------------------------------------------------------------------------------

    def _labels(self) -> dict[str, str]:
        name = self.cfg.node_name
        return {
            "type": "local-runner",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64" if platform.machine() == "x86_64" else platform.machine(),
        }

    def _annotations(self) -> dict[str, str]:
        return {
            "node.alpha.kubernetes.io/ttl": "0",
            STATE_DIR_ANNOTATION: str(self.cfg.state_dir),
            IP_PREFIX_ANNOTATION: self._prefix,
        }

    def _register(self) -> None:
        name = self.cfg.node_name
        node = self.kube.get_node(name)
        if node is None:
            try:
                self.kube.create_node(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": name,
                            "labels": self._labels(),
                            "annotations": self._annotations(),
                        },
                    }
                )
                log.info("Registered node %s", name)
            except Exception as e:
                if not is_conflict(e):
                    raise
            node = self.kube.get_node(name)
        else:
            self.kube.patch_node(
                name, {"metadata": {"labels": self._labels(), "annotations": self._annotations()}}
            )
            log.info("Node %s already exists; taking it over", name)
        self._node_uid = str(((node or {}).get("metadata") or {}).get("uid", ""))
        self._post_status()
        self._renew_lease()

    def _node_status(self) -> Obj:
        now = rfc3339(time.time())
        capacity = dict(self.cfg.capacity)

        def condition(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._since,
            }

        assert self._server is not None
        uname = os.uname()
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                condition("Ready", "True", "KubeletReady", "local runner is posting ready status"),
                condition(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"
                ),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": self.cfg.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self._server.port}},
            "nodeInfo": {
                "machineID": self.cfg.node_name,
                "systemUUID": self.cfg.node_name,
                "bootID": self._since,
                "kernelVersion": uname.release,
                "osImage": _os_image(),
                "containerRuntimeVersion": RUNTIME_VERSION,
                "kubeletVersion": self._version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": self._labels()["kubernetes.io/arch"],
            },
        }

    def _post_status(self) -> None:
        try:
            self.kube.patch_node_status(self.cfg.node_name, self._node_status())
        except Exception as e:
            if getattr(e, "status", None) == 404:
                log.warning("Node %s was deleted; registering it again", self.cfg.node_name)
                self._register()
                return
            raise

    def _renew_lease(self) -> None:
        name, now = self.cfg.node_name, time.time()
        if self._lease is None:
            self._lease = self.kube.get_lease(LEASE_NAMESPACE, name)
        if self._lease is None:
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {
                    "name": name,
                    "namespace": LEASE_NAMESPACE,
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self._node_uid}
                    ],
                },
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": self.cfg.lease_seconds,
                    "renewTime": micro_time(now),
                },
            }
            self.kube.create_lease(LEASE_NAMESPACE, lease)
            self._lease = self.kube.get_lease(LEASE_NAMESPACE, name)
            return
        self._lease.setdefault("spec", {}).update(
            holderIdentity=name,
            leaseDurationSeconds=self.cfg.lease_seconds,
            renewTime=micro_time(now),
        )
        try:
            self._lease = self.kube.replace_lease(LEASE_NAMESPACE, name, self._lease)
        except Exception:
            self._lease = None  # conflict or gone: read it afresh next time
            raise

    def _heartbeat(self) -> None:
        next_status = time.monotonic() + self.cfg.status_seconds
        while not self._stop.wait(self.cfg.renew_seconds):
            try:
                self._renew_lease()
                if time.monotonic() >= next_status:
                    self._post_status()
                    next_status = time.monotonic() + self.cfg.status_seconds
            except Exception as e:
                log.warning("Heartbeat of node %s failed: %s", self.cfg.node_name, e)

    # -- pods -----------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        node = self.cfg.node_name
        while not self._stop.is_set():
            try:
                items, version = self.kube.list_pods(node)
                self._replace(items)
                for event in self.kube.watch_pods(node, version, self.cfg.resync_seconds):
                    if self._stop.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        log.info("Pod watch ended (%s); listing again", obj.get("message"))
                        break
                    if kind in ("ADDED", "MODIFIED"):
                        self._changed(obj)
                    elif kind == "DELETED":
                        self._deleted(obj)
            except Exception as e:
                if self._stop.is_set():
                    return
                log.warning("Watching pods of node %s failed: %s; retrying", node, e)
                self._stop.wait(1.0)

    def _replace(self, items: list[Obj]) -> None:
        with self._lock:
            self._pods = {p["metadata"]["uid"]: p for p in items}
        self._sync()

    def _changed(self, pod: Obj) -> None:
        with self._lock:
            self._pods[pod["metadata"]["uid"]] = pod
        self._sync()

    def _deleted(self, pod: Obj) -> None:
        with self._lock:
            self._pods.pop(pod["metadata"]["uid"], None)
        self._sync()

    def _sync(self) -> None:
        """Bring workers in line with the cached pods."""
        if self._stop.is_set():
            return
        with self._lock:
            pods = dict(self._pods)
            workers = dict(self._workers)
            finished = set(self._finished)
        for uid, worker in workers.items():
            if uid not in pods:
                worker.vanish()
        for uid in finished - pods.keys():
            self._forget(uid)
        for uid, pod in pods.items():
            action = sync.action_for(pod, uid in workers, uid in finished)
            if action == "update":
                workers[uid].update(pod)
            elif action == "start":
                self._start_worker(pod)
            elif action == "delete":
                self._final_delete(pod)

    def _forget(self, uid: str) -> None:
        """A finished pod left the API: drop its volumes (its logs stay)."""
        with self._lock:
            self._finished.discard(uid)
        for directory in (self.cfg.state_dir / "pods").glob(f"*_{uid}"):
            volumedirs.remove_pod_volumes(directory)

    def _start_worker(self, pod: Obj) -> None:
        assert self.ctx is not None
        meta, spec = pod["metadata"], pod.get("spec") or {}
        with self._lock:
            if meta["uid"] in self._workers:
                return
            if spec.get("hostNetwork"):
                address = HOST_IP
            else:
                assert self._addresses is not None
                # Something listening there already (not a pod of ours) would collide.
                in_use = {w.pod_ip for w in self._workers.values()} | hostnet.listening_addresses()
                preferred = (pod.get("status") or {}).get("podIP")
                address = self._addresses.allocate(in_use, preferred)
            worker = PodWorker(pod, address, self.ctx, self.kube, self._worker_done)
            self._workers[meta["uid"]] = worker
        log.info("Running pod %s/%s at %s", meta["namespace"], meta["name"], address)
        worker.start()

    def _worker_done(self, worker: PodWorker) -> None:
        with self._lock:
            self._workers.pop(worker.uid, None)
            self._finished.add(worker.uid)
            still_listed = worker.uid in self._pods
        if still_listed:
            self._sync()  # e.g. it finished and was deleted while the worker wound down

    def _final_delete(self, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            self.kube.delete_pod(meta["namespace"], meta["name"], meta["uid"])
            log.info("Deleted pod %s/%s", meta["namespace"], meta["name"])
        except Exception as e:
            if getattr(e, "status", None) not in (404, 409):
                log.warning("Could not delete pod %s/%s: %s", meta["namespace"], meta["name"], e)

    def _container_state(self, namespace: str, pod: str, container: str) -> str | None:
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            if w.namespace == namespace and w.pod_name == pod:
                return w.container_state(container)
        return None
