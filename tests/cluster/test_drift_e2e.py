"""The drift loop end to end: train → serve → traffic → drift → alert → retrain.

On the local control plane, with nothing mocked: the operator runs as a process, the trainer
and the model server run in containers of the built images on the real nodes (the host reaches
their pod addresses through its route to each node's pod subnet), and a real Prometheus
scrapes the operator (and, for the Prometheus source, the serving pods), evaluates
``manifests/prometheus/modelops-rules.yaml`` and sends alerts to a real Alertmanager
(``harness.monitoring``; traffic from ``harness.traffic``). Prometheus and Alertmanager listen
on free 127.0.0.1 ports and are stopped, with every other process this module starts, in the
fixture's teardown.

The tests run in file order and share one model's story; each states the step it checks, so a
failure says where the loop broke.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from harness.cluster import LocalCluster
from harness.monitoring import Monitoring, write_targets
from harness.monitoring import start as start_monitoring
from harness.traffic import Traffic, read_rows, ready_pod_ips
from modelops import datasets
from tests.cluster.kube import (
    DRIFT_POLICY_SPEC,
    IRIS_FEATURES,
    SHIFTED,
    Operator,
    apply,
    condition,
    get,
    has_condition,
    prepare_namespace,
    training_run,
    wait_for,
)

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.timeout(1500),
    # harness.monitoring does not keep the Popen objects of Prometheus and Alertmanager (it
    # records their PIDs); their finalizers warn while the processes rightly still run.
]

NS = "drift-e2e"
POLICY = "iris-drift"
PROM_POLICY = "iris-drift-prom"
# The Model's retraining template: the first run's spec without the model reference.
TEMPLATE: dict[str, Any] = {
    k: v for k, v in training_run("template")["spec"].items() if k != "modelRef"
}


def poll(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except OSError as e:
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}"[:3000])


# -- the story ------------------------------------------------------------------------------


@dataclass
class Env:
    cluster: LocalCluster
    operator: Operator
    monitoring: Monitoring
    traffic: Traffic


@pytest.fixture(scope="module")
def env(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("drift-e2e")
    prepare_namespace(cluster, NS)
    run_dir = work / "run"
    run_dir.mkdir()
    targets = work / "model-servers.json"
    operator = Operator(cluster.kubeconfig, work / "operator.log", NS)
    traffic = Traffic(
        "iris",
        read_rows(datasets.path("iris.csv"), list(IRIS_FEATURES)),
        pods=lambda: ready_pod_ips(cluster.kubectl, NS, "iris"),
        on_pods=lambda ips: write_targets(targets, [f"{ip}:8080" for ip in ips]),
    )
    with pytest.MonkeyPatch.context() as mp:
        # The operator's own endpoints on loopback only.
        mp.setenv("MODELOPS_METRICS_ADDRESS", "127.0.0.1")
        mp.setenv("MODELOPS_HEALTH_ADDRESS", "127.0.0.1")
        operator.start()
    watching = None
    try:
        watching = start_monitoring(
            cluster.bin_dir,
            work / "monitoring",
            run_dir,
            operator_metrics=f"127.0.0.1:{operator.metrics_port}",
            server_targets=targets,
        )
        yield Env(cluster, operator, watching, traffic)
    finally:
        traffic.stop()
        if watching is not None:
            watching.stop()
        operator.stop()
        print(operator.log.read_text()[-8000:])
        for log in sorted((work / "monitoring").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def policy_status(env: Env, name: str = POLICY) -> dict[str, Any]:
    obj = get(env.cluster, "driftpolicy", name, "-n", NS)
    assert obj is not None, f"DriftPolicy {name} is gone"
    return obj


def drift_detected(status: str) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        c = condition(obj, "DriftDetected")
        return c is not None and c["status"] == status

    return check


def retrain_runs(env: Env) -> list[dict[str, Any]]:
    runs = get(env.cluster, "trainingruns", "-n", NS, "-l", f"modelops.dev/driftpolicy={POLICY}")
    return list((runs or {}).get("items", []))


def operator_series(env: Env, name: str, **labels: str) -> list[float]:
    """Values of the operator's ``name`` samples whose labels include ``labels``."""
    from prometheus_client.parser import text_string_to_metric_families

    return [
        s.value
        for family in text_string_to_metric_families(env.operator.metrics())
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_the_model_is_trained_and_served(env: Env) -> None:
    apply(
        env.cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {
                "training": TEMPLATE,
                "serving": {
                    "promotion": "Automatic",
                    "gates": [{"metric": "accuracy", "min": 0.8}],
                    "replicas": 1,
                },
            },
        },
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": "iris-1"},
            "spec": {**TEMPLATE, "modelRef": {"name": "iris"}},
        },
        namespace=NS,
    )
    wait_for(
        env.cluster,
        ["trainingrun", "iris-1", "-n", NS],
        has_condition("Succeeded"),
        timeout=240,
        what="TrainingRun iris-1 to train and register version 1",
    )
    wait_for(
        env.cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("productionVersion") == "1" and has_condition("Ready")(m),
        timeout=240,
        what="Model iris to serve version 1",
    )
    poll(
        "a ready serving pod",
        lambda: ready_pod_ips(env.cluster.kubectl, NS, "iris"),
        timeout=60,
    )


def drift_policy(*, retrain: bool) -> dict[str, Any]:
    """The alerting policy; retraining is switched on only once the alert has been seen, so
    that the alert is about the version that drifted first."""
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            **DRIFT_POLICY_SPEC,
            "actions": {"retrain": {"enabled": retrain, "cooldown": "1h", "maxConcurrent": 1}},
        },
    }


def test_traffic_from_the_training_distribution_raises_no_alert(env: Env) -> None:
    apply(
        env.cluster,
        drift_policy(retrain=False),
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": PROM_POLICY},
            "spec": {
                **DRIFT_POLICY_SPEC,
                "source": {"prometheus": {"url": env.monitoring.prometheus}},
                "actions": {"alert": False},
            },
        },
        namespace=NS,
    )
    env.traffic.start()  # rows of the training data, as they are
    policy = wait_for(
        env.cluster,
        ["driftpolicy", POLICY, "-n", NS],
        drift_detected("False"),
        timeout=180,
        what=f"DriftPolicy {POLICY} to judge two clean windows",
    )
    assert has_condition("Ready")(policy), policy["status"]
    assert policy["status"]["version"] == "1"
    assert policy["status"]["consecutiveClean"] >= 2
    assert policy["status"]["samples"] >= 100
    assert not any(f["drifted"] for f in policy["status"]["topFeatures"])
    # Prometheus has scraped the verdict (so the alert pipeline is live) and fires nothing.
    poll(
        "Prometheus to scrape modelops_drift_detected 0",
        lambda: [
            r
            for r in env.monitoring.query(f'modelops_drift_detected{{policy="{POLICY}"}}')
            if r["value"][1] == "0"
        ],
        timeout=60,
    )
    assert env.monitoring.query('ALERTS{alertname="ModelDriftDetected"}') == []
    assert env.monitoring.alerts("ModelDriftDetected") == []
    assert retrain_runs(env) == []
    assert not env.traffic.errors, env.traffic.errors[:5]


def test_a_shifted_feature_fires_model_drift_detected(env: Env) -> None:
    env.traffic.shift = {SHIFTED: 4.0}  # far beyond any petal length seen in training
    poll(
        f"modelops_drift_feature_drifted of {SHIFTED} to turn 1",
        lambda: (
            operator_series(env, "modelops_drift_feature_drifted", policy=POLICY, feature=SHIFTED)
            == [1.0]
        ),
        timeout=120,
    )
    score = operator_series(env, "modelops_drift_feature_score", policy=POLICY, feature=SHIFTED)
    threshold = operator_series(
        env, "modelops_drift_feature_threshold", policy=POLICY, feature=SHIFTED
    )
    method = [
        s.labels["method"]
        for s in _samples(env, "modelops_drift_feature_score")
        if s.labels.get("policy") == POLICY and s.labels.get("feature") == SHIFTED
    ]
    # A p-value method (ks on a 120-row reference) drifts at or below its threshold.
    assert method == ["ks"]
    assert score[0] <= threshold[0]
    policy = wait_for(
        env.cluster,
        ["driftpolicy", POLICY, "-n", NS],
        drift_detected("True"),
        timeout=120,
        what=f"DriftPolicy {POLICY} to detect drift",
    )
    assert policy["status"]["datasetDrift"] is True
    assert policy["status"]["topFeatures"][0]["name"] == SHIFTED
    assert operator_series(env, "modelops_drift_detected", policy=POLICY) == [1.0]
    alerts = poll(
        "Alertmanager to list ModelDriftDetected",
        lambda: env.monitoring.alerts("ModelDriftDetected"),
        timeout=180,
        interval=2,
    )
    (alert,) = alerts
    assert alert["labels"]["model"] == "iris"
    assert alert["labels"]["version"] == "1"
    assert alert["labels"]["policy"] == POLICY
    assert alert["labels"]["severity"] == "warning"
    assert alert["status"]["state"] == "active"
    assert "Model iris version 1" in alert["annotations"]["summary"]
    # The same drift through Prometheus: the increase of the pods' histograms.
    wait_for(
        env.cluster,
        ["driftpolicy", PROM_POLICY, "-n", NS],
        drift_detected("True"),
        timeout=120,
        what=f"DriftPolicy {PROM_POLICY} (Prometheus source) to detect drift",
    )


def _samples(env: Env, name: str) -> list[Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        s
        for family in text_string_to_metric_families(env.operator.metrics())
        for s in family.samples
        if s.name == name
    ]


def test_retraining_creates_exactly_one_run_that_registers_a_new_version(env: Env) -> None:
    assert retrain_runs(env) == []  # retraining was off so far
    apply(env.cluster, drift_policy(retrain=True), namespace=NS)
    (run,) = poll("the retrain TrainingRun", lambda: retrain_runs(env), timeout=60)
    name = run["metadata"]["name"]
    assert name.startswith("iris-retrain-")
    trigger = run["spec"]["trigger"]
    assert trigger["driftPolicy"] == POLICY
    assert SHIFTED in trigger["evidence"]["driftedFeatures"]
    run = wait_for(
        env.cluster,
        ["trainingrun", name, "-n", NS],
        has_condition("Succeeded"),
        timeout=240,
        what=f"retrain TrainingRun {name} to succeed",
    )
    version = run["status"]["modelVersion"]
    assert get(env.cluster, "modelversion", version, "-n", NS) is not None
    new_version = version.removeprefix("iris-")
    policy = policy_status(env)
    assert policy["status"]["lastRetrain"]["trainingRun"] == name
    # The new version takes over; the shifted traffic keeps coming, so the policy detects
    # drift on it too — and the cooldown holds: no second run.
    wait_for(
        env.cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("productionVersion") == new_version,
        timeout=300,
        what=f"Model iris to promote {new_version}",
    )
    wait_for(
        env.cluster,
        ["driftpolicy", POLICY, "-n", NS],
        lambda p: p["status"].get("version") == new_version and drift_detected("True")(p),
        timeout=240,
        what=f"DriftPolicy {POLICY} to detect drift on {new_version}",
    )
    events = get(
        env.cluster,
        "events",
        "-n",
        NS,
        "--field-selector",
        f"involvedObject.name={POLICY},reason=RetrainSkipped",
    )
    messages = [e["message"] for e in (events or {}).get("items", [])]
    assert any("cooldown 1h" in m for m in messages), messages
    assert [r["metadata"]["name"] for r in retrain_runs(env)] == [name]
