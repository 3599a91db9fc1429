"""Two operator processes against the local control plane: exactly one leads.

Each process authenticates with a client certificate of its own (user ``modelops-op-a``,
``modelops-op-b``…, group ``system:masters``, signed by the harness's CA), so the API server's
audit log says which process made each write; each holds the leader Lease under a name of its
own (``MODELOPS_POD_NAME``). Election runs with short test settings (lease 6 s, renew deadline
4 s, retry 1 s). The module goes through:

1. A leads and B follows: every write to a modelops object or a Job comes from A while a
   TrainingRun trains; B reconciles nothing.
2. A is SIGKILLed while a run trains: B takes the Lease within the lease duration (the
   measured failover is printed), the run completes with one Job, and B's writes all come
   after it acquired the Lease.
3. B is stopped with SIGTERM: it releases the Lease, and C takes it at once.
4. An operator started while the CRDs are not served yet waits for them, reports no health
   meanwhile, and then serves them (issue 11, item 13).
5. A leader whose Lease someone else took, and one cut off from the API server (SIGSTOP) for
   longer than the renew deadline, exit (status 3) instead of reconciling on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from harness.cluster import LocalCluster
from tests.cluster.kube import (
    Operator,
    apply,
    get,
    has_condition,
    install_crds,
    prepare_namespace,
    training_run,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

NS = "leader"
LEASE = "modelops-leader"
DURATION, RENEW, RETRY = 6, 4.0, 1.0
TIMING = [
    f"--lease-duration={DURATION}",
    f"--renew-deadline={RENEW}",
    f"--retry-period={RETRY}",
]
SLOW_TRAINER = [
    "python",
    "-c",
    "import runpy, sys, time; time.sleep(6); "
    "sys.argv = ['trainer']; runpy.run_module('modelops.runtimes.trainer', run_name='__main__')",
]
WATCHED = {"models", "modelversions", "trainingruns", "driftpolicies", "jobs"}
"""Audited resources the operator writes on behalf of a lifecycle (Events aside: kopf may post
some of its own)."""

Obj = dict[str, Any]


@dataclass
class Env:
    cluster: LocalCluster
    work: Path
    operators: dict[str, Operator]

    def operator(self, name: str, *, start: bool = True) -> Operator:
        """Operator ``name`` with its own certificate, identity and log."""
        op = Operator(
            user_kubeconfig(self.cluster, f"modelops-op-{name}", self.work),
            self.work / f"operator-{name}.log",
            NS,
            args=TIMING,
            env={"MODELOPS_POD_NAME": f"op-{name}"},
        )
        self.operators[name] = op
        if start:
            op.start()
        return op


def user_kubeconfig(cluster: LocalCluster, user: str, work: Path) -> Path:
    """A kubeconfig for ``user`` (group system:masters), signed by the cluster's CA."""
    key, csr, crt = (work / f"{user}.{ext}" for ext in ("key", "csr", "crt"))
    pki = cluster.pki
    request = ["openssl", "req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", str(key)]
    sign = ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt")]
    for cmd in (
        [*request, "-out", str(csr), "-subj", f"/O=system:masters/CN={user}"],
        [*sign, "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "1", "-out", str(crt)],
    ):
        subprocess.run(cmd, check=True, capture_output=True, cwd=work)
    config = json.loads(cluster.kubeconfig.read_text())
    config["users"][0]["user"] = {"client-certificate": str(crt), "client-key": str(key)}
    path = work / f"{user}.kubeconfig"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def env(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    prepare_namespace(cluster, NS)
    model = {"apiVersion": "modelops.dev/v1alpha1", "kind": "Model", "metadata": {"name": "iris"}}
    apply(cluster, {**model, "spec": {}}, namespace=NS)
    e = Env(cluster, tmp_path_factory.mktemp("leader"), {})
    try:
        yield e
    finally:
        for name, op in e.operators.items():
            op.kill()
            print(f"--- operator {name} log (tail)\n{op.log.read_text()[-4000:]}")


def lease(cluster: LocalCluster) -> Obj | None:
    return get(cluster, "lease", LEASE, "-n", NS)


def holder(cluster: LocalCluster) -> str | None:
    current = lease(cluster)
    return None if current is None else current["spec"].get("holderIdentity")


def leader_gauge(op: Operator) -> float | None:
    """``modelops_leader`` of ``op`` (for its own identity), or None if not exported."""
    match = re.search(r"^modelops_leader\{[^}]*\} (\S+)$", op.metrics(), re.MULTILINE)
    return float(match.group(1)) if match else None


def reconciles(op: Operator) -> float:
    total = 0.0
    for line in op.metrics().splitlines():
        if line.startswith("modelops_reconciles_total{"):
            total += float(line.split()[-1])
    return total


def writes(cluster: LocalCluster) -> list[tuple[float, str, str]]:
    """(time, user, what) of every audited write to the lifecycle's objects in NS."""
    out = []
    for line in cluster.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef", {})
        if ref.get("namespace") != NS or ref.get("resource") not in WATCHED:
            continue
        user = event["user"]["username"]
        if not user.startswith("modelops-op-"):
            continue
        when = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
        what = f"{event['verb']} {ref['resource']}/{ref.get('name', '')}"
        out.append((when, user, what))
    return out


def jobs_of(cluster: LocalCluster, run: str) -> list[Obj]:
    out = cluster.kubectl(
        "get", "jobs", "-n", NS, "-l", f"modelops.dev/trainingrun={run}", "-o", "json"
    )
    return json.loads(out.stdout)["items"]  # type: ignore[no-any-return]


def test_only_the_leader_reconciles(env: Env) -> None:
    cluster = env.cluster
    a = env.operator("a")
    wait_for(
        cluster, ["lease", LEASE, "-n", NS], lambda x: x["spec"].get("holderIdentity") == "op-a"
    )
    b = env.operator("b")
    assert (leader_gauge(a), leader_gauge(b)) == (1, 0)
    apply(cluster, training_run("iris-lead-1"), namespace=NS)
    wait_for(cluster, ["trainingrun", "iris-lead-1", "-n", NS], has_condition("Succeeded"))
    by = {user for _, user, _ in writes(cluster)}
    assert by == {"modelops-op-a"}, writes(cluster)
    # B saw the same watch events and queued them, but ran nothing.
    assert reconciles(a) > 0
    assert reconciles(b) == 0
    assert holder(cluster) == "op-a"


def test_killed_leader_is_replaced_within_the_lease_duration(env: Env) -> None:
    cluster = env.cluster
    a, b = env.operators["a"], env.operators["b"]
    apply(cluster, training_run("iris-lead-2", command=SLOW_TRAINER), namespace=NS)
    wait_for(
        cluster,
        ["trainingrun", "iris-lead-2", "-n", NS],
        lambda r: r.get("status", {}).get("phase") in ("Pending", "Running"),
        timeout=60,
    )
    killed_at, killed_wall = time.monotonic(), time.time()
    a.kill(signal.SIGKILL)
    # The follower may take the Lease one lease duration after it last saw it renewed (at most
    # the moment of the kill), at its next retry (a period plus a fifth of jitter).
    taken = wait_for(
        cluster,
        ["lease", LEASE, "-n", NS],
        lambda x: x["spec"].get("holderIdentity") == "op-b",
        timeout=DURATION + 2 * RETRY + 5,
        what="the follower to take the Lease",
    )
    failover = time.monotonic() - killed_at
    print(f"\nFailover after SIGKILL of the leader: {failover:.1f}s (lease duration {DURATION}s)")
    assert taken["spec"]["leaseTransitions"] >= 1
    acquired = datetime.fromisoformat(taken["spec"]["acquireTime"]).timestamp()
    run = wait_for(
        cluster,
        ["trainingrun", "iris-lead-2", "-n", NS],
        has_condition("Succeeded"),
        timeout=180,
    )
    assert run["status"]["modelVersion"] == "iris-lead-2"
    assert len(jobs_of(cluster, "iris-lead-2")) == 1
    assert leader_gauge(b) == 1
    # Writes come from the one leading at the time: A before it died, B only once it held
    # the Lease (one clock: the API server and both processes run on this machine).
    for when, user, what in writes(cluster):
        if user == "modelops-op-a":
            assert when <= killed_wall, f"{what} by A after it was killed"
        else:
            assert user == "modelops-op-b", (user, what)
            assert when >= acquired, f"{what} by B before it held the Lease"
    assert any(user == "modelops-op-b" for _, user, _ in writes(cluster))


def test_graceful_stop_releases_the_lease(env: Env) -> None:
    cluster = env.cluster
    b = env.operators["b"]
    assert holder(cluster) == "op-b"
    b.stop()
    # Nobody else runs: only a release leaves the Lease without a holder.
    assert holder(cluster) is None
    assert "Released Lease leader/modelops-leader" in b.log.read_text()
    started = time.monotonic()
    c = env.operator("c", start=False)
    c.start()
    wait_for(
        cluster,
        ["lease", LEASE, "-n", NS],
        lambda x: x["spec"].get("holderIdentity") == "op-c",
        timeout=30,
    )
    print(f"\nTakeover of a released Lease: {time.monotonic() - started:.1f}s after start")
    assert leader_gauge(c) == 1
    c.stop()


def health(op: Operator) -> int | None:
    """The status of ``op``'s /healthz, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def test_operator_started_before_its_crds_waits_and_then_serves_them(env: Env) -> None:
    """Issue 11, item 13: kopf resolves the watched resources once, at start-up. An operator
    started while a CRD is not served yet must wait for it, not report healthy and never
    watch it."""
    cluster = env.cluster
    cluster.kubectl(
        "delete", "crd", "driftpolicies.modelops.dev", "--wait=true", "--timeout=60s", timeout=90
    )
    try:
        deadline = time.monotonic() + 60
        while (
            "driftpolicies" in cluster.kubectl("get", "--raw", "/apis/modelops.dev/v1alpha1").stdout
        ):
            assert time.monotonic() < deadline, "the deleted CRD is still discoverable"
            time.sleep(0.2)
        d = env.operator("d", start=False)
        d.start(wait=False)
        # Either it waits, or kopf started without the resource.
        deadline = time.monotonic() + 60
        while not re.search("Waiting until the API server serves|Unresolved", d.log.read_text()):
            assert d.proc is not None
            assert d.proc.poll() is None, d.log.read_text()[-3000:]
            assert time.monotonic() < deadline, d.log.read_text()[-3000:]
            time.sleep(0.2)
        assert health(d) != 200, "healthy while a watched resource is not served"
    finally:
        install_crds(cluster)
    deadline = time.monotonic() + 60
    while health(d) != 200:
        assert time.monotonic() < deadline, d.log.read_text()[-3000:]
        time.sleep(0.2)
    # A DriftPolicy created now is watched and reconciled (its Model serves nothing yet).
    policy = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": "iris-late"},
        "spec": {"modelRef": {"name": "iris"}},
    }
    apply(cluster, policy, namespace=NS)
    wait_for(
        cluster,
        ["driftpolicy", "iris-late", "-n", NS],
        lambda p: p.get("status", {}).get("observedGeneration") == 1,
        timeout=60,
    )
    assert "Unresolved resources" not in d.log.read_text()
    d.stop()


def wait_exit(op: Operator, timeout: float) -> int:
    """The exit status of ``op``'s process, once it ended by itself."""
    assert op.proc is not None
    try:
        return op.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the operator did not exit: {op.log.read_text()[-3000:]}")


def test_leader_whose_lease_was_taken_exits_at_once(env: Env) -> None:
    cluster = env.cluster
    e = env.operator("e")
    wait_for(
        cluster, ["lease", LEASE, "-n", NS], lambda x: x["spec"].get("holderIdentity") == "op-e"
    )
    cluster.kubectl(
        "patch",
        "lease",
        LEASE,
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec": {"holderIdentity": "someone-else"}}',
    )
    assert wait_exit(e, timeout=DURATION) == 3
    assert "Lost Lease leader/modelops-leader: someone-else holds it now" in e.log.read_text()


def test_leader_cut_off_from_the_api_server_exits_before_the_lease_expires(env: Env) -> None:
    """The API server stops answering (SIGSTOP): the leader gives up at its renew deadline,
    before a follower could take over, and exits."""
    cluster = env.cluster
    cluster.kubectl("delete", "lease", LEASE, "-n", NS)
    f = env.operator("f")
    wait_for(
        cluster, ["lease", LEASE, "-n", NS], lambda x: x["spec"].get("holderIdentity") == "op-f"
    )
    apiserver = int((cluster.run_dir / "kube-apiserver.pid").read_text())
    os.kill(apiserver, signal.SIGSTOP)
    try:
        status = wait_exit(f, timeout=DURATION)
    finally:
        os.kill(apiserver, signal.SIGCONT)
    assert status == 3
    assert re.search(
        r"Lost Lease leader/modelops-leader: not renewed for [\d.]+s", f.log.read_text()
    )
