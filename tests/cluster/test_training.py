"""Training on the local control plane: the operator as a process, the trainer image really
training on a real node, results checked against the files on disk."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.cluster import LocalCluster
from modelops import datasets
from tests.cluster.kube import (
    IRIS_SCHEMA,
    Operator,
    apply,
    artifacts_root,
    condition,
    get,
    has_condition,
    loader_job,
    operator_writes,
    prepare_namespace,
    training_run,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NS = "training"
TAINT = (
    "import csv; from modelops import datasets; "
    "rows = list(csv.reader(open(datasets.path('iris.csv')))); "
    "[r.__setitem__(3, '99') for r in rows[1:4]]; "
    "csv.writer(open('/data/tainted.csv', 'w', newline='')).writerows(rows)"
)


@pytest.fixture(scope="module")
def env(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    prepare_namespace(cluster, NS, loader_job("load-tainted", ["python", "-c", TAINT]))
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {},
        },
        namespace=NS,
    )
    op = Operator(cluster.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log", NS)
    op.start()
    try:
        yield op
    finally:
        op.stop()
        print(op.log.read_text()[-5000:])


def expected_artifact(tmp: Path) -> dict[str, Any]:
    """Train in-process on the same data and settings: the trainer is deterministic."""
    out = tmp / "expected"
    env = {
        **os.environ,
        "MODELOPS_TRAINER_DATASET": str(datasets.path("iris.csv")),
        "MODELOPS_TRAINER_SCHEMA": json.dumps(IRIS_SCHEMA),
        "MODELOPS_TRAINER_OUTPUT_DIR": str(out),
        "MODELOPS_TRAINER_TERMINATION_LOG": str(tmp / "termination-log"),
    }
    subprocess.run(
        [sys.executable, "-m", "modelops.runtimes.trainer"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return json.loads((tmp / "termination-log").read_text())  # type: ignore[no-any-return]


def test_training_run_trains_and_registers_one_version(
    cluster: LocalCluster, env: Operator, tmp_path: Path
) -> None:
    apply(cluster, training_run("iris-1"), namespace=NS)
    run = wait_for(
        cluster,
        ["trainingrun", "iris-1", "-n", NS],
        has_condition("Succeeded"),
        timeout=180,
        what="TrainingRun iris-1 to succeed",
    )
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["modelVersion"] == "iris-1"
    mv = get(cluster, "modelversion", "iris-1", "-n", NS)
    assert mv is not None
    # The digest is the sha256 of the manifest the trainer wrote on the claim.
    artifact_dir = artifacts_root(cluster, NS) / "iris" / "iris-1"
    manifest = (artifact_dir / "manifest.json").read_bytes()
    assert mv["spec"]["artifact"]["digest"] == "sha256:" + hashlib.sha256(manifest).hexdigest()
    assert mv["spec"]["artifact"]["uri"] == "pvc://models/iris/iris-1"
    # Same data, same seed: the same model and metrics as training here.
    expected = expected_artifact(tmp_path)
    assert mv["spec"]["artifact"]["digest"] == expected["artifact"]["digest"]
    assert mv["spec"]["metrics"] == expected["metrics"]
    assert mv["spec"]["provenance"]["trainingRun"]["uid"] == run["metadata"]["uid"]
    assert mv["metadata"]["ownerReferences"][0]["kind"] == "Model"
    # The trainer's log is retrievable the Kubernetes way.
    logs = cluster.kubectl("logs", "-n", NS, "job/iris-1").stdout
    assert expected["artifact"]["digest"] in logs
    reasons = {
        e["reason"]
        for e in json.loads(
            cluster.kubectl(
                "get",
                "events",
                "-n",
                NS,
                "--field-selector",
                "involvedObject.name=iris-1",
                "-o",
                "json",
            ).stdout
        )["items"]
    }
    assert {"JobCreated", "Registered", "Succeeded"} <= reasons


def test_tainted_dataset_fails_with_the_trainers_message(
    cluster: LocalCluster, env: Operator
) -> None:
    apply(
        cluster,
        training_run(
            "iris-tainted", dataset={"uri": "pvc://datasets/tainted.csv", "schema": IRIS_SCHEMA}
        ),
        namespace=NS,
    )
    run = wait_for(
        cluster,
        ["trainingrun", "iris-tainted", "-n", NS],
        has_condition("Succeeded", "False"),
        timeout=180,
    )
    failure = run["status"]["failure"]
    assert "petal_width" in failure["message"]
    assert "max" in failure["message"]
    assert get(cluster, "modelversion", "iris-tainted", "-n", NS) is None


def test_deadline_fails_the_run(cluster: LocalCluster, env: Operator) -> None:
    apply(
        cluster,
        training_run(
            "iris-slow",
            command=["python", "-c", "import time; time.sleep(120)"],
            activeDeadlineSeconds=3,
        ),
        namespace=NS,
    )
    run = wait_for(
        cluster,
        ["trainingrun", "iris-slow", "-n", NS],
        has_condition("Succeeded", "False"),
        timeout=120,
    )
    assert run["status"]["failure"]["reason"] == "DeadlineExceeded"


def test_suspend_and_resume(cluster: LocalCluster, env: Operator) -> None:
    apply(cluster, training_run("iris-suspended", suspend=True), namespace=NS)
    wait_for(
        cluster,
        ["trainingrun", "iris-suspended", "-n", NS],
        lambda r: r.get("status", {}).get("phase") == "Suspended",
        timeout=60,
    )
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", NS, "-l", "modelops.dev/trainingrun=iris-suspended", "-o", "json"
        ).stdout
    )["items"]
    assert pods == []
    cluster.kubectl(
        "patch",
        "trainingrun",
        "iris-suspended",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec": {"suspend": false}}',
    )
    run = wait_for(
        cluster,
        ["trainingrun", "iris-suspended", "-n", NS],
        has_condition("Succeeded"),
        timeout=180,
    )
    assert run["status"]["modelVersion"] == "iris-suspended"


def test_operator_killed_mid_run_creates_nothing_twice(
    cluster: LocalCluster, env: Operator
) -> None:
    slow = [
        "python",
        "-c",
        "import runpy, sys, time; time.sleep(4); "
        "sys.argv = ['trainer']; runpy.run_module('modelops.runtimes.trainer', "
        "run_name='__main__')",
    ]
    apply(cluster, training_run("iris-crash", command=slow), namespace=NS)
    wait_for(
        cluster,
        ["trainingrun", "iris-crash", "-n", NS],
        lambda r: r.get("status", {}).get("phase") in ("Pending", "Running"),
        timeout=60,
    )
    env.kill()  # SIGKILL: no clean-up, no last words
    env.start()
    run = wait_for(
        cluster, ["trainingrun", "iris-crash", "-n", NS], has_condition("Succeeded"), timeout=180
    )
    assert run["status"]["modelVersion"] == "iris-crash"
    jobs = json.loads(
        cluster.kubectl(
            "get", "jobs", "-n", NS, "-l", "modelops.dev/trainingrun=iris-crash", "-o", "json"
        ).stdout
    )["items"]
    assert len(jobs) == 1
    versions = [
        v
        for v in json.loads(cluster.kubectl("get", "modelversions", "-n", NS, "-o", "json").stdout)[
            "items"
        ]
        if v["spec"]["provenance"]["trainingRun"]["name"] == "iris-crash"
    ]
    assert len(versions) == 1


def test_reconcile_with_nothing_to_do_writes_nothing(cluster: LocalCluster, env: Operator) -> None:
    """A restarted operator re-reconciles every object; with everything settled that must
    not write anything (counted in the API server's audit log)."""
    wait_for(cluster, ["trainingrun", "iris-1", "-n", NS], has_condition("Succeeded"))
    for name in ("iris-tainted", "iris-slow"):
        run = get(cluster, "trainingrun", name, "-n", NS)
        if run is not None:  # settled: every run is final before we count
            wait_for(
                cluster,
                ["trainingrun", name, "-n", NS],
                lambda r: (condition(r, "Succeeded") or {}).get("status") in ("True", "False"),
                timeout=180,
            )
    env.stop()
    since = time.time()
    env.start()
    # Let the new operator list and reconcile everything it watches.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = env.metrics()
        done = [
            line
            for line in text.splitlines()
            if line.startswith('modelops_reconciles_total{kind="TrainingRun"')
        ]
        if done and float(done[0].split()[-1]) >= 3:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the restarted operator did not reconcile the runs")
    writes = operator_writes(cluster.audit_log, since)
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]


def test_a_zero_ttl_run_still_records_its_result(cluster: LocalCluster, env: Operator) -> None:
    """Regression (issue 11.3): with ``ttlSecondsAfterFinished: 0`` the TTL controller deleted
    the Job and its pods, with the trainer's termination message, before the operator read
    it. The Job now gets its TTL only once the result is in the status."""
    apply(cluster, training_run("iris-ttl", ttlSecondsAfterFinished=0), namespace=NS)
    run = wait_for(
        cluster,
        ["trainingrun", "iris-ttl", "-n", NS],
        lambda r: (condition(r, "Succeeded") or {}).get("status") in ("True", "False"),
        timeout=180,
        what="TrainingRun iris-ttl to finish",
    )
    assert run["status"]["phase"] == "Succeeded", run["status"]
    assert run["status"]["modelVersion"] == "iris-ttl"
    # Then the TTL the user asked for applies: the finished Job goes.
    wait_for(
        cluster,
        ["trainingrun", "iris-ttl", "-n", NS],
        lambda r: get(cluster, "job", "iris-ttl", "-n", NS) is None,
        timeout=120,
        what="the finished Job to be removed by its TTL",
    )


def test_a_job_the_run_did_not_create_is_left_alone(cluster: LocalCluster, env: Operator) -> None:
    """Regression (issue 11.4): Jobs were looked up by name only, so a run adopted any Job of
    its name (an earlier run's of the same name, someone else's)."""
    foreign = loader_job("iris-foreign", ["python", "-c", "pass"])
    foreign["spec"]["suspend"] = True
    apply(cluster, foreign, namespace=NS)
    before = get(cluster, "job", "iris-foreign", "-n", NS)
    assert before is not None
    apply(cluster, training_run("iris-foreign"), namespace=NS)
    run = wait_for(
        cluster,
        ["trainingrun", "iris-foreign", "-n", NS],
        lambda r: (condition(r, "Succeeded") or {}).get("reason") == "JobNameTaken",
        timeout=60,
        what="TrainingRun iris-foreign to report the taken name",
    )
    assert "jobName" not in run["status"]
    after = get(cluster, "job", "iris-foreign", "-n", NS)
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # Once the name is free, the run goes on with a Job of its own.
    cluster.kubectl("delete", "job", "iris-foreign", "-n", NS, "--wait=true")
    run = wait_for(
        cluster,
        ["trainingrun", "iris-foreign", "-n", NS],
        lambda r: r.get("status", {}).get("jobName") == "iris-foreign",
        timeout=120,
        what="TrainingRun iris-foreign to create its own Job",
    )
    job = get(cluster, "job", "iris-foreign", "-n", NS)
    assert job is not None
    assert job["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]


def test_resyncs_read_from_the_cache(cluster: LocalCluster, env: Operator, tmp_path: Path) -> None:
    """Regression (issue 11.11): every reconcile read the API server (a GET of the object, its
    Job, its Model; a LIST of pods). Resyncing every settled object every second for a while,
    the operator's client makes no get or list request and no write: reads come from the
    cache, whose own list and watch are the only reads."""
    for name in ("iris-1", "iris-ttl", "iris-foreign"):
        if get(cluster, "trainingrun", name, "-n", NS) is not None:
            wait_for(
                cluster,
                ["trainingrun", name, "-n", NS],
                lambda r: (
                    (condition(r, "Succeeded") or {}).get("status") in ("True", "False")
                    and not r["status"].get("announcements")
                ),
                timeout=180,
            )
    runs = len(
        json.loads(cluster.kubectl("get", "trainingruns", "-n", NS, "-o", "json").stdout)["items"]
    )
    env.stop()
    fast = Operator(
        cluster.kubeconfig, tmp_path / "operator.log", NS, env={"MODELOPS_RESYNC_SECONDS": "1"}
    )
    since = time.time()
    fast.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if _metric(fast.metrics(), 'modelops_reconciles_total{kind="TrainingRun"') >= 3 * runs:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the operator did not resync every run three times")
        text = fast.metrics()
    finally:
        fast.stop()
        env.start()
    reads = [
        line
        for line in text.splitlines()
        if line.startswith("modelops_api_requests_total")
        and ('verb="get"' in line or 'verb="list"' in line)
        and float(line.split()[-1]) > 0
    ]
    assert reads == []
    writes = operator_writes(cluster.audit_log, since)
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]


def _metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))
