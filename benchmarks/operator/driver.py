"""The benchmark's own client: namespaces, objects created in bulk, and watches that time them.

Every request carries the user agent ``bench-driver``, so the audit log tells the driver's
requests from a contender's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

USER_AGENT = "bench-driver"
GROUP, VERSION = "modelops.dev", "v1alpha1"
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


def connect(kubeconfig: Path, pool: int = 16) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(str(kubeconfig), client_configuration=configuration)
    configuration.connection_pool_maxsize = pool
    api = client.ApiClient(configuration)
    api.user_agent = USER_AGENT
    return api


def model(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {},
    }


def model_version(model_name: str, version: str) -> dict[str, Any]:
    """A registered version, created directly (they are plain custom objects)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelVersion",
        "metadata": {"name": f"{model_name}-{version}"},
        "spec": {
            "modelRef": {"name": model_name},
            "version": version,
            "artifact": {
                "uri": f"pvc://models/{model_name}/{version}",
                "digest": "sha256:" + "0" * 64,
                "format": "modelops-linear/v1",
            },
        },
    }


def training_run(name: str, model_name: str = "bench") -> dict[str, Any]:
    """A TrainingRun whose pod goes to a KWOK node: it never runs anything."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {
            "modelRef": {"name": model_name},
            "image": "ghcr.io/modelops/trainer:0.1.0",
            "nodeSelector": {"type": "kwok"},
            "tolerations": [KWOK_TOLERATION],
            "dataset": {"uri": "pvc://datasets/iris.csv"},
            "output": {"pvc": {"claimName": "models"}},
        },
    }


def pvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


PLURALS = {
    "Model": "models",
    "ModelVersion": "modelversions",
    "TrainingRun": "trainingruns",
    "DriftPolicy": "driftpolicies",
}


class Driver:
    """Bulk creation and deletion with a small thread pool."""

    def __init__(self, kubeconfig: Path, threads: int = 8) -> None:
        self.api = connect(kubeconfig, pool=threads + 4)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.threads = threads

    def namespace(self, name: str, *, training: bool = True) -> None:
        """Create ``name`` with, for training, the two claims the runs mount and Model
        ``bench``."""
        self.core.create_namespace({"metadata": {"name": name}}, _preload_content=False)
        if training:
            for claim in ("datasets", "models"):
                self.core.create_namespaced_persistent_volume_claim(
                    name, pvc(claim), _preload_content=False
                )
            self.create(name, [model("bench")])

    def create(self, namespace: str, objs: Iterable[dict[str, Any]], rate: float = 0) -> None:
        """Create custom objects as fast as the pool allows, or ``rate`` per second."""

        def one(obj: dict[str, Any]) -> None:
            plural = PLURALS[obj["kind"]]
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, obj, _preload_content=False
            )

        with ThreadPoolExecutor(self.threads) as pool:
            if not rate:
                list(pool.map(one, objs))
                return
            started = time.monotonic()
            futures = []
            for i, obj in enumerate(objs):
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
                futures.append(pool.submit(one, obj))
            for future in futures:
                future.result()

    def delete(self, namespace: str, kind: str, names: Iterable[str]) -> None:
        """Delete custom objects (their children go by owner references)."""

        def one(name: str) -> None:
            try:
                self.custom.delete_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURALS[kind],
                    name,
                    propagation_policy="Background",
                    _preload_content=False,
                )
            except ApiException as e:
                if e.status != 404:
                    raise

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(one, names))

    def count(self, group: str, version: str, namespace: str, plural: str) -> int:
        """How many objects of a kind the namespace holds now (one LIST)."""
        out = self.custom.list_namespaced_custom_object(group, version, namespace, plural)
        return len(out["items"])

    def unfinished_runs(self, namespace: str) -> int:
        """TrainingRuns whose status does not record a finished phase yet."""
        out = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "trainingruns")
        return sum(
            1
            for r in out["items"]
            if (r.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )

    def delete_namespace(self, name: str, timeout: float) -> float:
        """Delete a namespace and wait until it is gone; seconds it took."""
        started = time.monotonic()
        try:
            self.core.delete_namespace(name, _preload_content=False)
        except ApiException as e:
            if e.status != 404:
                raise
        wait(f"namespace {name} to be deleted", lambda: not self._exists(name), timeout, 1.0)
        return time.monotonic() - started

    def _exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name, _preload_content=False)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True


class Watcher:
    """A watch on one kind in one namespace (from now on: objects already there are not
    reported) that records when each object was first seen ADDED, and which still exist."""

    def __init__(
        self, api: client.ApiClient, namespace: str, group: str, version: str, plural: str
    ) -> None:
        self.added: dict[str, float] = {}
        self.live: set[str] = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._custom = client.CustomObjectsApi(api)
        self._args = (group, version, namespace, plural)
        listed = self._custom.list_namespaced_custom_object(*self._args)
        self.live = {o["metadata"]["name"] for o in listed["items"]}
        self._version = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                self._custom.list_namespaced_custom_object,
                *self._args,
                resource_version=self._version,
                timeout_seconds=5,
            ):
                seen = time.time()
                name = event["object"]["metadata"]["name"]
                with self._cond:
                    if event["type"] == "ADDED":
                        self.added.setdefault(name, seen)
                        self.live.add(name)
                    elif event["type"] == "DELETED":
                        self.live.discard(name)
                    self._cond.notify_all()
            self._version = stream.resource_version

    def wait(self, what: str, pred: Callable[[Watcher], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._cond.wait(min(left, 1.0))

    def stop(self) -> None:
        self._stop.set()


def wait(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
