"""Fault injection: the operator killed in every window between two of its writes, and at
random during overlapping lifecycles with an API server restart among the kills.

For one TrainingRun lifecycle (Job, status, Events, ModelVersion), the operator is told to exit
right after its N-th write (``MODELOPS_TEST_CRASH_AFTER_WRITES``, a test-only hook), for N = 1,
2, … until a lifecycle completes without reaching N; each time a fresh operator then finishes
the work. Then ten lifecycles run at once while the operator is SIGKILLed at random moments
at least 40 times and the API server restarts once. The invariants are read from the API
server's audit log and the objects themselves: one Job and one ModelVersion per run, the
announcements of the outcome delivered (at least once, never as two Event objects), no
history entry lost or doubled, nothing left pending.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.cluster import LocalCluster
from modelops.k8s.client import CRASH_AFTER_WRITES, CRASH_EXIT_CODE
from tests.cluster.kube import (
    CRASH_TEST_ARGS,
    Operator,
    apply,
    audit_codes,
    audited,
    condition,
    created_once,
    events_of,
    get,
    operator_writes,
    prepare_namespace,
    training_run,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(1800)]

NS = "faults"
MAX_WRITES = 40
"""More than one lifecycle makes: reaching it means the crash points were not counted."""
# The same identity after each restart (as a restarted container keeps its pod name), so a new
# process takes its own Lease back at once; a short lease for the API server restart.
CHAOS_ENV = {"MODELOPS_POD_NAME": "faults-operator"}


@pytest.fixture(scope="module")
def op(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    prepare_namespace(cluster, NS)
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
    operator = Operator(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("op") / "operator.log",
        NS,
        args=CRASH_TEST_ARGS,
        env=CHAOS_ENV,
    )
    try:
        yield operator
    finally:
        operator.kill()
        print(operator.log.read_text()[-5000:])


def _settled(run: dict[str, Any]) -> bool:
    status = run.get("status", {})
    return (condition(run, "Succeeded") or {}).get("status") == "True" and not status.get(
        "announcements"
    )


def _audited(cluster: LocalCluster, verb: str, resource: str, name: str) -> int:
    """Successful ``verb`` requests on ``resource``/``name`` in the test namespace."""
    return audited(cluster, NS, verb, resource, name)


def _events(cluster: LocalCluster, name: str) -> list[dict[str, Any]]:
    return events_of(cluster, NS, name)


def test_a_crash_after_every_write_loses_and_doubles_nothing(
    cluster: LocalCluster, op: Operator
) -> None:
    crashed_at: list[int] = []
    for n in range(1, MAX_WRITES + 1):
        name = f"crash-{n}"
        apply(cluster, training_run(name), namespace=NS)
        op.start(env={CRASH_AFTER_WRITES: str(n)}, wait=False)
        assert op.proc is not None
        try:
            code = op.proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            code = None  # it never made its n-th write: the lifecycle has fewer
        if code is None:
            run = get(cluster, "trainingrun", name, "-n", NS)
            op.stop()
            assert run is not None
            assert _settled(run), run.get("status")
            break
        assert code == CRASH_EXIT_CODE, op.log.read_text()[-3000:]
        op.proc = None
        crashed_at.append(n)
        op.start()
        run = wait_for(
            cluster,
            ["trainingrun", name, "-n", NS],
            _settled,
            timeout=180,
            what=f"TrainingRun {name} to succeed with its announcements settled",
        )
        op.stop()
        # One Job, one ModelVersion: nothing created twice across the crash.
        assert _audited(cluster, "create", "jobs", name) == 1, n
        assert run["status"]["modelVersion"] == f"iris-{name}"
        assert _audited(cluster, "create", "modelversions", f"iris-{name}") == 1, n
        # The outcome was announced, each announcement as one Event object, never two.
        reasons = [e["reason"] for e in _events(cluster, name)]
        for reason in ("JobCreated", "Registered", "Succeeded"):
            assert reasons.count(reason) == 1, (n, reasons)
    else:
        pytest.fail(f"a lifecycle made more than {MAX_WRITES} writes")
    print(f"crash points covered: {crashed_at}")
    assert len(crashed_at) >= 5  # a lifecycle has at least this many writes


def test_quiet_after_the_faults(cluster: LocalCluster, op: Operator) -> None:
    """Everything settled: a restarted operator reconciles every run and writes nothing."""
    since = time.time()
    op.start()
    runs = len(
        json.loads(cluster.kubectl("get", "trainingruns", "-n", NS, "-o", "json").stdout)["items"]
    )
    wait_for(
        cluster,
        ["model", "iris", "-n", NS],
        lambda _: _reconciled(op, "TrainingRun") >= runs,
        timeout=60,
        what="every run reconciled",
    )
    op.stop()
    writes = operator_writes(cluster.audit_log, since)
    assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]


def _reconciled(op: Operator, kind: str) -> float:
    for line in op.metrics().splitlines():
        if line.startswith(f'modelops_reconciles_total{{kind="{kind}",result="success"}}'):
            return float(line.split()[-1])
    return 0.0


CHAOS_RUNS = 10
KILLS = 40
SLOW = [
    "python",
    "-c",
    "import runpy, sys, time; time.sleep(15); "
    "sys.argv = ['trainer']; runpy.run_module('modelops.runtimes.trainer', run_name='__main__')",
]


def test_random_kills_and_an_api_server_restart(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ns = "chaos"
    prepare_namespace(cluster, ns)
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            # Retention retires all but the two newest versions while the runs finish: history
            # entries written under fire.
            "spec": {"retention": {"keepLast": 2}},
        },
        namespace=ns,
    )
    names = [f"chaos-{i}" for i in range(CHAOS_RUNS)]
    op = Operator(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("chaos") / "operator.log",
        ns,
        args=CRASH_TEST_ARGS,
        env=CHAOS_ENV,
    )
    rng = random.Random(20261203)
    kills = 0
    try:
        op.start(wait=False)
        for name in names:
            apply(cluster, training_run(name, command=SLOW), namespace=ns)
        while kills < KILLS:
            time.sleep(rng.uniform(0.2, 2.0))
            op.kill()
            kills += 1
            if kills == KILLS // 2:
                took = cluster.restart_apiserver()
                print(f"kube-apiserver restarted in {took:.1f}s")
            op.start(wait=False)
        op.kill()
        op.start()
        for name in names:
            wait_for(
                cluster,
                ["trainingrun", name, "-n", ns],
                _settled,
                timeout=300,
                what=f"TrainingRun {name} to converge",
            )
        model = wait_for(
            cluster,
            ["model", "iris", "-n", ns],
            lambda m: (
                len((m.get("status") or {}).get("history") or []) >= CHAOS_RUNS - 2
                and not m["status"].get("announcements")
            ),
            timeout=300,
            what="the Model to retire every version but the two newest",
        )
    finally:
        op.kill()
        print(op.log.read_text()[-4000:])
    print(f"{kills} kills")
    for name in names:
        # The API server restart can time out a create that etcd kept (seen: a 504 on a
        # ModelVersion's create, then the object there): one create either way, never two.
        for resource, child in (("jobs", name), ("modelversions", f"iris-{name}")):
            codes = audit_codes(cluster, ns, "create", resource, child)
            assert created_once(codes), (resource, child, codes)
        reasons = [e["reason"] for e in events_of(cluster, ns, name)]
        for reason in ("JobCreated", "Registered", "Succeeded"):
            assert reasons.count(reason) == 1, (name, reasons)
    history = model["status"]["history"]
    retired = [h["from"] for h in history if h["kind"] == "Retired"]
    assert len(retired) == len(set(retired)) == CHAOS_RUNS - 2, history
    versions = json.loads(cluster.kubectl("get", "modelversions", "-n", ns, "-o", "json").stdout)
    registered = {v["metadata"]["name"] for v in versions["items"]}
    assert registered >= {f"iris-{name}" for name in names}, registered
    phases = sorted(v["status"].get("phase", "") for v in versions["items"])
    assert phases.count("Retired") == CHAOS_RUNS - 2, phases
