"""Helpers for cluster tests: waiting on objects, running the operator as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import pytest

from harness import realnode
from harness.cluster import REPO, LocalCluster, free_port


class Cluster(Protocol):
    """What tests need of a cluster: the local one or an existing one (``--cluster=existing``).
    A module typed with this, not ``LocalCluster``, runs on both."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def bin_dir(self) -> Path:
        """Where kubectl and helm are."""
        ...

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]: ...

    def helm(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]: ...


def apply(cluster: Cluster, *objs: dict[str, Any], namespace: str | None = None) -> None:
    """Server-side apply objects as the test's own field manager."""
    args = ["apply", "--server-side", "--field-manager=tests", "-f", "-"]
    if namespace:
        args += ["-n", namespace]
    doc = "\n---\n".join(json.dumps(o) for o in objs)
    cluster.kubectl(*args, input=doc)


def get(cluster: Cluster, *args: str) -> dict[str, Any] | None:
    """``kubectl get ... -o json`` or None when not found."""
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    if out.returncode != 0:
        if "NotFound" in out.stderr or "not found" in out.stderr:
            return None
        raise AssertionError(out.stderr)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def wait_for(
    cluster: Cluster,
    args: list[str],
    pred: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 120,
    what: str = "",
) -> dict[str, Any]:
    """Poll an object until ``pred`` holds; fail with the last state seen."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        last = get(cluster, *args)
        if last is not None and pred(last):
            return last
        time.sleep(0.5)
    pytest.fail(
        f"timed out after {timeout}s waiting for {what or args}; last: {json.dumps(last)[:3000]}"
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The condition of ``type_`` in ``obj``'s status, or None."""
    for c in obj.get("status", {}).get("conditions", []):
        if c.get("type") == type_:
            return c  # type: ignore[no-any-return]
    return None


def has_condition(type_: str, status: str = "True") -> Callable[[dict[str, Any]], bool]:
    """A predicate: the object has ``type_`` with ``status``, for its current generation."""

    def check(obj: dict[str, Any]) -> bool:
        c = condition(obj, type_)
        return (
            c is not None
            and c.get("status") == status
            and obj.get("status", {}).get("observedGeneration") == obj["metadata"]["generation"]
        )

    return check


class Operator:
    """The operator as a real process (``python -m modelops``) against the test cluster."""

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        *namespaces: str,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.namespaces = namespaces
        self.args = args
        """More command-line flags (e.g. leader-election timing)."""
        self.env = env or {}
        """More environment (e.g. ``MODELOPS_POD_NAME``, the identity in the leader Lease)."""
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, env: Mapping[str, str] | None = None, wait: bool = True) -> None:
        """Start the process (``env``: more variables, for this start only) and, with ``wait``,
        wait until its /healthz answers 200."""
        scope = [a for ns in self.namespaces for a in ("--namespace", ns)] or ["--all-namespaces"]
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env, **(env or {})}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "modelops",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    *scope,
                    "--metrics-port",
                    str(self.metrics_port),
                    "--health-port",
                    str(self.health_port),
                    *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        if not wait:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"operator exited: {self.log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=1
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"operator not healthy in 60s: {self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the operator (SIGKILL by default: no chance to clean up)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        """Graceful stop, then make sure."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def metrics(self) -> str:
        """The operator's /metrics text."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            return r.read().decode()  # type: ignore[no-any-return]


@contextmanager
def running_operator(kubeconfig: Path, log: Path, *namespaces: str) -> Iterator[Operator]:
    """An operator process for the duration of a ``with`` block."""
    op = Operator(kubeconfig, log, *namespaces)
    op.start()
    try:
        yield op
    finally:
        op.stop()


def install_crds(cluster: Cluster) -> None:
    """Apply the generated CRDs and wait until the API server serves them."""
    crds = sorted((REPO / "crds").glob("modelops.dev_*.yaml"))
    for crd in crds:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *[f"crd/{c.stem.split('_', 1)[1]}.modelops.dev" for c in crds],
    )


# -- the objects most cluster tests start from ------------------------------------------------

RUNNER = {"type": realnode.NODE_LABEL}
"""Node selector of pods that must really run: the real nodes (kubelet + containerd)."""
TRAINER_IMAGE = "ghcr.io/modelops/trainer:0.1.0"
IRIS_SCHEMA: dict[str, Any] = json.loads(
    (REPO / "operator" / "modelops" / "datasets" / "iris.schema.json").read_text()
)


def pvc(name: str) -> dict[str, Any]:
    """A 1 GiB ReadWriteOnce claim (bound by the harness's provisioner)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def loader_job(name: str, command: list[str]) -> dict[str, Any]:
    """A Job on a real node with the ``datasets`` claim at /data, e.g. to land data."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "nodeSelector": RUNNER,
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "load",
                            "image": TRAINER_IMAGE,
                            "command": command,
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}
                    ],
                }
            },
        },
    }


# The iris features, the one the drift tests shift, and the drift policy they share.
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
SHIFTED = "petal_length"
DRIFT_POLICY_SPEC: dict[str, Any] = {
    "modelRef": {"name": "iris"},
    "interval": "10s",
    "window": "1m",
    "consecutiveWindows": 2,
    "minSamples": 100,
    # One drifted feature of four is dataset drift here: the tests shift one.
    "datasetDriftShare": 0.25,
}


def training_run(name: str, **spec: Any) -> dict[str, Any]:
    """A TrainingRun of model ``iris`` with the reference trainer image on a real node."""
    body: dict[str, Any] = {
        "modelRef": {"name": "iris"},
        "image": TRAINER_IMAGE,
        "command": ["python", "-m", "modelops.runtimes.trainer"],
        "nodeSelector": RUNNER,
        "dataset": {"uri": "pvc://datasets/iris.csv", "schema": IRIS_SCHEMA},
        "output": {"pvc": {"claimName": "models"}},
        "activeDeadlineSeconds": 300,
    }
    body.update(spec)
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": body,
    }


def model_version(
    model: str, version: str, artifact: dict[str, Any] | None = None, **spec: Any
) -> dict[str, Any]:
    """A ModelVersion ``<model>-<version>``; without ``artifact``, a linear model's on the
    ``models`` claim with a digest of zeros (for tests that never serve it). ``spec`` adds
    fields, e.g. ``metrics``."""
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-{version}"},
        "spec": {
            "modelRef": {"name": model},
            "version": version,
            "artifact": artifact
            or {
                "uri": f"pvc://models/{model}/{version}",
                "digest": "sha256:" + "0" * 64,
                "format": "modelops-linear/v1",
            },
            **spec,
        },
    }


def prepare_namespace(cluster: Cluster, namespace: str, *extra_loaders: dict[str, Any]) -> None:
    """CRDs installed, ``namespace`` created with the ``datasets`` and ``models`` claims, and the
    bundled iris data landed on ``datasets`` (plus whatever ``extra_loaders`` write)."""
    install_crds(cluster)
    cluster.kubectl("create", "namespace", namespace)
    iris = loader_job(
        "load-iris", ["python", "-m", "modelops.datasets", "iris.csv", "/data/iris.csv"]
    )
    jobs = [iris, *extra_loaders]
    apply(cluster, pvc("datasets"), pvc("models"), *jobs, namespace=namespace)
    cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Complete",
        "--timeout=120s",
        *[f"job/{j['metadata']['name']}" for j in jobs],
    )


def artifacts_root(cluster: Cluster, namespace: str) -> Path:
    """The host directory behind the ``models`` claim (a hostPath volume of the harness)."""
    claim = get(cluster, "pvc", "models", "-n", namespace)
    assert claim is not None
    volume = get(cluster, "pv", claim["spec"]["volumeName"])
    assert volume is not None
    return Path(volume["spec"]["hostPath"]["path"])


def operator_writes(audit_log: Path, since: float) -> list[dict[str, Any]]:
    """Write requests the operator (our client or kopf) made after ``since`` (epoch seconds)."""
    out = []
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        if not event.get("userAgent", "").startswith(("modelops/", "kopf/")):
            continue
        when = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
        if when >= since:
            out.append(event)
    return out


class Sink:
    """A CloudEvents sink: a local HTTP server that keeps what it receives."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        received = self.events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def audit_codes(cluster: LocalCluster, ns: str, verb: str, resource: str, name: str) -> list[int]:
    """The response codes of the ``verb`` requests on ``resource``/``name`` in ``ns``, in the
    order of the audit log."""
    codes = []
    for line in cluster.audit_log.read_text().splitlines():
        e = json.loads(line)
        ref = e.get("objectRef", {})
        created = (e.get("requestObject") or {}).get("metadata", {}).get("name")
        if (
            e["verb"] == verb
            and ref.get("resource") == resource
            and ref.get("namespace") == ns
            and not ref.get("subresource")
            and name in (ref.get("name"), created)
        ):
            codes.append(e.get("responseStatus", {}).get("code", 0))
    return codes


def audited(cluster: LocalCluster, ns: str, verb: str, resource: str, name: str) -> int:
    """Successful ``verb`` requests on ``resource``/``name`` in ``ns``, from the audit log."""
    return sum(code < 300 for code in audit_codes(cluster, ns, verb, resource, name))


def created_once(codes: list[int]) -> bool:
    """Whether the response ``codes`` of an object's creates (``audit_codes``) show one create,
    also across an API server restart: one successful create, or none and one answered 5xx (a
    timeout whose write etcd kept: the client never learnt the outcome, and a later create would
    have been refused as a conflict). The caller checks that the object exists."""
    ok = sum(code < 300 for code in codes)
    return ok == 1 or (ok == 0 and any(code >= 500 for code in codes))


def events_of(cluster: LocalCluster, ns: str, name: str) -> list[dict[str, Any]]:
    """The Events about ``name`` in ``ns``."""
    out = cluster.kubectl(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}", "-o", "json"
    ).stdout
    return json.loads(out)["items"]  # type: ignore[no-any-return]


CRASH_TEST_ARGS = ["--lease-duration=6", "--renew-deadline=4", "--retry-period=0.5"]
"""Operator flags of the fault suites: a short lease, so that a restarted operator (or one
that lost its API server) leads again within seconds."""


def on_kwok(name: str, namespace: str) -> str:
    """A MutatingAdmissionPolicy (and its binding), as YAML, that puts every pod created in
    ``namespace`` on a KWOK node, as a cluster admin's policy would: nothing runs there, and
    serving pods become Ready at once. Delete both by ``name`` when done."""
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  reinvocationPolicy: Never
  matchConstraints:
    resourceRules:
      - {{apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["pods"]}}
  mutations:
    # A JSONPatch (an ApplyConfiguration may not set atomic fields such as nodeSelector and
    # tolerations) that appends one toleration: the API server (v1.36.1) panics converting a
    # list value. DefaultTolerationSeconds runs first, so every pod has a tolerations list.
    - patchType: JSONPatch
      jsonPatch:
        expression: >-
          [JSONPatch{{op: "add", path: "/spec/nodeSelector", value: {{"type": "kwok"}}}},
          JSONPatch{{op: "add", path: "/spec/tolerations/-", value: Object.spec.tolerations{{
          key: "kwok.x-k8s.io/node", operator: "Exists", effect: "NoSchedule"}}}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {namespace}}}
"""


def plugin(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``kubectl modelops …``: kubectl finds ``kubectl-modelops`` (the package's console script,
    next to this interpreter) on PATH, as it would for a user with the package installed."""
    scripts = Path(sys.executable).parent
    assert (scripts / "kubectl-modelops").is_file(), "install the package: make install"
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{scripts}:{cluster.bin_dir}:{os.environ['PATH']}",
    }
    out = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "modelops", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out
