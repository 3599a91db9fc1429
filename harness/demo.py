"""``make demo``: the whole model lifecycle on a local control plane, narrated.

Starts the local control plane (``.k8s-local``), installs the CRDs and the admission policy,
runs the operator, Prometheus and Alertmanager, applies ``manifests/samples/lifecycle.yaml``,
and walks through training → registration → rollout → inference traffic → drift → alert →
retraining → promotion of the new version → retirement of the old one, printing at each step
the ``kubectl`` command a person would run to see it. Everything keeps running afterwards;
``make demo-down`` stops it all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import monitoring, realnode
from harness.cluster import DEFAULT_BIN_DIR, REPO, LocalCluster
from harness.traffic import Traffic, read_rows, ready_pod_ips
from modelops import datasets

NS = "ml"
SYSTEM_NS = "modelops-system"
OPERATOR_METRICS_PORT = 8080  # the chart's metrics.port
SAMPLE = REPO / "manifests" / "samples" / "lifecycle.yaml"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
SHIFT = {"petal_length": 3.0, "petal_width": 1.5}
PATCH_MODEL = ("patch", "-n", NS, "model", "iris", "--type=merge", "-p")
BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


class Demo:
    """One narrated run; ``step`` numbers the story."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.n = 0

    def step(self, title: str) -> None:
        self.n += 1
        print(f"\n{BOLD}━━ {self.n}. {title}{RESET}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {text}", flush=True)

    def show(self, *args: str) -> str:
        """Run kubectl and print the command and its output, as a person would see them."""
        print(f"   {DIM}$ kubectl {' '.join(args)}{RESET}", flush=True)
        out = self.cluster.kubectl(*args, check=False)
        text = (out.stdout or out.stderr).rstrip()
        for line in text.splitlines():
            print(f"     {line}")
        return text

    def get(self, *args: str) -> dict[str, Any] | None:
        out = self.cluster.kubectl("get", *args, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 300) -> None:
        """Poll ``check`` with a deadline, showing progress dots."""
        print(f"   … waiting for {what}", end="", flush=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if check():
                    print(" done", flush=True)
                    return
            except (OSError, KeyError, IndexError, TypeError, ValueError):
                pass
            print(".", end="", flush=True)
            time.sleep(2)
        print(" timed out", flush=True)
        raise SystemExit(
            f"The demo did not see {what} within {timeout:.0f}s; the cluster is "
            f"still running for a look (make demo-down stops it)"
        )

    def model_status(self) -> dict[str, Any]:
        m = self.get("model", "iris", "-n", NS)
        status: dict[str, Any] = (m or {}).get("status", {})
        return status

    def policy_status(self) -> dict[str, Any]:
        p = self.get("driftpolicy", "iris", "-n", NS)
        status: dict[str, Any] = (p or {}).get("status", {})
        return status


def _condition(status: dict[str, Any], type_: str) -> str | None:
    for c in status.get("conditions", []):
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def _succeeded(demo: Demo, run: str) -> bool:
    """Whether ``run`` succeeded; a failed run ends the demo with its reason."""
    status = (demo.get("trainingrun", run, "-n", NS) or {}).get("status", {})
    if _condition(status, "Succeeded") == "False":
        failure = status.get("failure", {})
        raise SystemExit(
            f"\nTrainingRun {run} failed ({failure.get('reason')}): "
            f"{failure.get('message', '')[:2000]}"
        )
    return _condition(status, "Succeeded") == "True"


def _operator_addresses(demo: Demo) -> list[str]:
    """The IPs of the Ready operator pods (every replica: only the leader exports drift)."""
    pods = demo.get("pods", "-n", SYSTEM_NS, "-l", "app.kubernetes.io/name=modelops") or {}
    return [
        str(pod["status"]["podIP"])
        for pod in pods.get("items", [])
        if _condition(pod.get("status", {}), "Ready") == "True" and pod["status"].get("podIP")
    ]


def up(state: Path, bin_dir: Path, real_nodes: int) -> int:
    """Run the demo; leave everything running."""
    missing = realnode.missing(bin_dir)
    if missing:
        raise SystemExit(f"The demo runs on real nodes; {missing}")
    cluster = LocalCluster(state_dir=state, bin_dir=bin_dir, detached=True, real_nodes=real_nodes)
    demo = Demo(cluster)
    demo.step("Start a local Kubernetes cluster: a control plane and real nodes (no Docker)")
    took = cluster.up(timeout=300)
    demo.say(
        f"etcd, kube-apiserver, controller-manager, scheduler, a KWOK node and {real_nodes} real"
        f" nodes (kubelet, containerd, kube-proxy, CoreDNS; the built images imported) are"
        f" Ready in {took:.1f}s."
    )
    demo.show("get", "nodes", "-o", "wide")
    demo.say("Cluster DNS is an add-on, CoreDNS in kube-system:")
    demo.show("get", "pods", "-n", "kube-system", "-o", "wide")

    demo.step("Install modelops with its Helm chart: CRDs, admission policies, the operator")
    installed = cluster.helm(
        "install",
        "modelops",
        str(REPO / "helm" / "modelops"),
        "--namespace",
        SYSTEM_NS,
        "--create-namespace",
        "--set",
        f"nodeSelector.type={realnode.NODE_LABEL}",
        "--wait",
        "--timeout",
        "300s",
    )
    if installed.returncode != 0:
        log = cluster.kubectl("-n", SYSTEM_NS, "logs", "deployment/modelops", check=False)
        raise SystemExit(f"helm install failed: {installed.stderr}\n{log.stdout[-3000:]}")
    print(f"   {DIM}$ helm install modelops helm/modelops -n {SYSTEM_NS} --create-namespace{RESET}")
    demo.show("get", "pods", "-n", SYSTEM_NS, "-o", "wide")
    demo.show("api-resources", "--api-group=modelops.dev")

    demo.step("Run Prometheus and Alertmanager with the alert rules modelops ships")
    addresses = [f"{ip}:{OPERATOR_METRICS_PORT}" for ip in _operator_addresses(demo)]
    targets = state / "monitoring" / "model-servers.json"
    mon = monitoring.start(
        cluster.bin_dir,
        state / "monitoring",
        cluster.run_dir,
        operator_metrics=addresses,
        server_targets=targets,
        interval="5s",
        detached=True,
    )
    demo.say(f"Operator metrics (its pods): {', '.join(f'http://{a}/metrics' for a in addresses)}")
    demo.say(f"Prometheus: {mon.prometheus}   Alertmanager: {mon.alertmanager}")

    demo.step("Apply the lifecycle sample: storage, data loading, Model, TrainingRun, DriftPolicy")
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("apply", "-n", NS, "-f", str(SAMPLE))
    demo.show("get", "modelops", "-n", NS)
    demo.wait(
        "the dataset to land on its claim (Job load-iris)",
        lambda: bool(
            cluster.kubectl(
                "wait",
                "-n",
                NS,
                "--for=condition=Complete",
                "job/load-iris",
                "--timeout=2s",
                check=False,
            ).returncode
            == 0
        ),
        120,
    )
    demo.say("The TrainingRun was created suspended so it waits for the data; start it:")
    demo.show(
        "patch",
        "-n",
        NS,
        "trainingrun",
        "iris-1",
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
    )

    demo.step("Training: a Job validates the data, trains, and registers a ModelVersion")
    demo.wait("TrainingRun iris-1 to succeed", lambda: _succeeded(demo, "iris-1"), 300)
    demo.show("get", "trainingruns,modelversions", "-n", NS)
    demo.show("get", "pods", "-n", NS, "-l", "job-name=iris-1", "-o", "wide")
    demo.say("The trainer's own log (its container, on a real node):")
    demo.show("logs", "-n", NS, "job/iris-1", "--tail=2")

    demo.step("Serving: the version passes the gates and rolls out")
    demo.wait(
        "version 1 to serve production",
        lambda: demo.model_status().get("productionVersion") == "1",
        300,
    )
    demo.show("get", "models", "-n", NS)
    demo.show(
        "get",
        "deployments,pods",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/component=model-server",
        "-o",
        "wide",
    )

    rows = read_rows(datasets.path("iris.csv"), FEATURES)

    def pods() -> list[str]:
        return ready_pod_ips(cluster.kubectl, NS, "iris")

    def targets_for(ips: list[str]) -> None:
        monitoring.write_targets(targets, [f"{ip}:8080" for ip in ips])

    demo.step("Inference traffic like the training data: no drift")
    clean = Traffic("iris", rows, pods, on_pods=targets_for)
    clean.start()
    demo.say("Sending Open Inference Protocol v2 requests to the serving pods…")
    demo.wait(
        "a drift evaluation with enough samples",
        lambda: (
            demo.policy_status().get("samples", 0) >= 100
            and _condition(demo.policy_status(), "DriftDetected") == "False"
        ),
        300,
    )
    demo.show("get", "driftpolicies", "-n", NS)
    clean.stop()

    demo.step("Traffic drifts: " + ", ".join(f"{f} +{d} cm" for f, d in SHIFT.items()))
    shifted = Traffic("iris", rows, pods, shift=SHIFT, on_pods=targets_for)
    shifted.start()
    demo.wait(
        "the DriftPolicy to detect drift",
        lambda: _condition(demo.policy_status(), "DriftDetected") == "True",
        600,
    )
    demo.show("get", "driftpolicies", "-n", NS)
    demo.show("get", "events", "-n", NS, "--field-selector", "involvedObject.kind=DriftPolicy")
    demo.say("What Prometheus scrapes from the operator:")
    for sample in mon.query("modelops_drift_feature_score"):
        labels = sample["metric"]
        demo.say(
            f"  modelops_drift_feature_score{{feature={labels.get('feature')!r}, "
            f"method={labels.get('method')!r}}} = {float(sample['value'][1]):.3f}"
        )
    demo.wait(
        "Prometheus to fire ModelDriftDetected and Alertmanager to list it",
        lambda: bool(mon.alerts("ModelDriftDetected")),
        600,
    )
    for alert in mon.alerts("ModelDriftDetected"):
        demo.say(f"ALERT {alert['labels']['alertname']} {alert['annotations'].get('summary', '')}")

    demo.step("Retraining: the policy starts one TrainingRun from the Model's template")
    demo.wait(
        "the retrained version to serve production",
        lambda: demo.model_status().get("productionVersion") not in (None, "1"),
        900,
    )
    shifted.stop()
    demo.show("get", "trainingruns,modelversions", "-n", NS)
    demo.show("get", "models", "-n", NS)

    demo.step("Retirement: keep no old versions (a policy edit, as it would come from Git)")
    demo.show(*PATCH_MODEL, '{"spec":{"retention":{"keepLast":0}}}')
    demo.wait(
        "version 1 to be retired",
        lambda: (
            (demo.get("modelversion", "iris-1", "-n", NS) or {}).get("status", {}).get("phase")
            == "Retired"
        ),
        120,
    )
    demo.show("get", "modelversions", "-n", NS, "-L", "modelops.dev/retired")
    demo.say("Pinning it again is refused at admission:")
    demo.show(
        *PATCH_MODEL, '{"spec":{"serving":{"promotion":"Manual","gates":null,"version":"1"}}}'
    )

    demo.step("The story, as kubectl tells it")
    demo.show("get", "modelops", "-n", NS)
    history = demo.model_status().get("history", [])
    for h in history:
        demo.say(
            f"{h['time']}  {h['kind']:<10} {h.get('from', '-'):>16} → "
            f"{h.get('to', '-'):<16} {h.get('reason', '')}"
        )
    print(f"\n{BOLD}Everything is still running.{RESET}")
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  export PATH={cluster.bin_dir}:$PATH")
    print(f"  kubectl get modelops -n {NS}")
    print(f"  Prometheus {mon.prometheus}  Alertmanager {mon.alertmanager}")
    print("  make demo-down    # stops everything the demo started")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.demo up|down``."""
    parser = argparse.ArgumentParser(prog="python -m harness.demo", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--state-dir", type=Path, default=REPO / ".k8s-local")
    parser.add_argument("--bin-dir", type=Path, default=DEFAULT_BIN_DIR)
    parser.add_argument("--real-nodes", type=int, default=2)
    args = parser.parse_args(argv)
    state = args.state_dir.resolve()
    existing = LocalCluster.load(state, args.bin_dir)
    if args.command == "down" or existing.alive():
        existing.down()
        print(f"Stopped the demo in {state}")
        if args.command == "down":
            return 0
    if state.exists():
        subprocess.run(["rm", "-rf", str(state)], check=True)
    return up(state, args.bin_dir, args.real_nodes)


if __name__ == "__main__":
    sys.exit(main())
