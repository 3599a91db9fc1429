"""The operator's blast radius, enforced by the real API server: the admission policy
``manifests/admission/operator_writes.yaml`` lets the operator's ServiceAccount write only the
Jobs, Deployments and Services that carry its children's labels
(``app.kubernetes.io/managed-by=modelops`` and ``modelops.dev/model``).

Requests are made as that ServiceAccount (``kubectl --as system:serviceaccount:modelops-system:
modelops``) holding the operator's real rules (``manifests/rbac/role.yaml``, bound in this
module's namespace only), so RBAC allows every write here and whatever is refused is refused by
the policy. Other users are not affected. No operator runs: admission alone decides. Deployments
have no replicas and Jobs are suspended, so nothing is scheduled.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from harness.cluster import REPO
from tests.cluster.kube import Cluster, apply, get

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NS = "operator-writes"
POLICY = REPO / "manifests" / "admission" / "operator_writes.yaml"
POLICY_NAME = "modelops-operator-writes"
OPERATOR_RULES = REPO / "manifests" / "rbac" / "role.yaml"
OPERATOR = "system:serviceaccount:modelops-system:modelops"
TEST_ROLE = "operator-writes-test"
OURS = {"app.kubernetes.io/managed-by": "modelops", "modelops.dev/model": "iris"}
KINDS = ("deployment", "service", "job")

Obj = dict[str, Any]


def workload(kind: str, name: str, labels: dict[str, str]) -> Obj:
    """A Deployment (no replicas), Service or Job (suspended) that schedules nothing."""
    selector = {"app": name}
    pod = {
        "metadata": {"labels": selector},
        "spec": {
            "restartPolicy": "Never" if kind == "job" else "Always",
            "containers": [{"name": "main", "image": "registry.example/app:1"}],
        },
    }
    meta = {"name": name, "namespace": NS, "labels": labels}
    if kind == "deployment":
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {"replicas": 0, "selector": {"matchLabels": selector}, "template": pod},
        }
    if kind == "service":
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {"selector": selector, "ports": [{"port": 80}]},
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {"suspend": True, "template": pod},
    }


def as_operator(
    cluster: Cluster, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("--as", OPERATOR, "-n", NS, *args, input=input, check=False)


def operator_apply(cluster: Cluster, obj: Obj, *extra: str) -> subprocess.CompletedProcess[str]:
    """Server-side apply as the operator does it (field manager ``modelops``)."""
    return as_operator(
        cluster,
        "apply",
        "--server-side",
        "--field-manager=modelops",
        *extra,
        "-f",
        "-",
        input=json.dumps(obj),
    )


def annotate(cluster: Cluster, kind: str, name: str) -> subprocess.CompletedProcess[str]:
    """A merge patch (an UPDATE) that changes nothing that matters."""
    patch = json.dumps({"metadata": {"annotations": {"touched": str(time.monotonic_ns())}}})
    return as_operator(cluster, "patch", kind, name, "--type=merge", "-p", patch)


def refused_by_the_policy(out: subprocess.CompletedProcess[str]) -> bool:
    return out.returncode != 0 and f"ValidatingAdmissionPolicy '{POLICY_NAME}'" in out.stderr


@pytest.fixture(scope="module")
def policy(cluster: Cluster) -> Iterator[None]:
    cluster.kubectl("create", "namespace", NS)
    role = yaml.safe_load(OPERATOR_RULES.read_text())
    role["metadata"] = {"name": TEST_ROLE}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": TEST_ROLE, "namespace": NS},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": TEST_ROLE,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "modelops", "namespace": "modelops-system"}
        ],
    }
    apply(cluster, role, binding)
    for kind in KINDS:
        apply(
            cluster, workload(kind, "payments", {"app": "payments"}), workload(kind, "iris", OURS)
        )
    cluster.kubectl("apply", "--server-side", "--field-manager=tests", "-f", str(POLICY))
    try:
        # The policy acts once the API server's informers have it: dry-run a foreign write
        # as the operator until it is refused (RBAC alone allows it).
        deadline = time.monotonic() + 30
        probe = workload("deployment", "probe", {})
        while not refused_by_the_policy(out := operator_apply(cluster, probe, "--dry-run=server")):
            assert time.monotonic() < deadline, f"the policy never took effect: {out.stderr}"
            time.sleep(0.2)
        yield
    finally:
        cluster.kubectl("delete", "-f", str(POLICY), "--ignore-not-found", check=False)
        cluster.kubectl("delete", "clusterrole", TEST_ROLE, "--ignore-not-found", check=False)
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def test_the_policy_type_checks(cluster: Cluster, policy: None) -> None:
    vap = get(cluster, "validatingadmissionpolicy", POLICY_NAME)
    assert vap is not None
    checked = vap.get("status", {})
    assert checked.get("observedGeneration") == vap["metadata"]["generation"]
    assert not checked.get("typeChecking", {}).get("expressionWarnings"), checked


@pytest.mark.parametrize("kind", KINDS)
def test_rbac_alone_would_allow_every_write_here(cluster: Cluster, policy: None, kind: str) -> None:
    for verb in ("create", "patch", "delete") if kind != "job" else ("create", "patch"):
        out = cluster.kubectl("auth", "can-i", "--as", OPERATOR, "-n", NS, verb, kind, check=False)
        assert out.stdout.strip() == "yes", f"{verb} {kind}: {out.stdout}{out.stderr}"


@pytest.mark.parametrize("kind", KINDS)
def test_patching_what_it_does_not_own_is_refused(
    cluster: Cluster, policy: None, kind: str
) -> None:
    out = annotate(cluster, kind, "payments")
    assert refused_by_the_policy(out), out.stderr
    assert (
        f"the modelops operator may only change {kind}s it created: {NS}/payments does not "
        "carry the labels app.kubernetes.io/managed-by=modelops and modelops.dev/model"
    ) in out.stderr
    live = get(cluster, kind, "payments", "-n", NS)
    assert live is not None
    assert "touched" not in (live["metadata"].get("annotations") or {})


@pytest.mark.parametrize("kind", KINDS)
def test_patching_its_own_children_is_allowed(cluster: Cluster, policy: None, kind: str) -> None:
    out = annotate(cluster, kind, "iris")
    assert out.returncode == 0, out.stderr
    live = get(cluster, kind, "iris", "-n", NS)
    assert live is not None
    assert "touched" in live["metadata"]["annotations"]


def test_a_foreign_object_cannot_be_taken_over_by_adding_the_labels(
    cluster: Cluster, policy: None
) -> None:
    out = operator_apply(cluster, workload("deployment", "payments", OURS))
    assert refused_by_the_policy(out), out.stderr
    live = get(cluster, "deployment", "payments", "-n", NS)
    assert live is not None
    assert "modelops.dev/model" not in live["metadata"]["labels"]


def test_its_own_children_cannot_lose_the_labels(cluster: Cluster, policy: None) -> None:
    patch = json.dumps({"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}})
    out = as_operator(cluster, "patch", "deployment", "iris", "--type=merge", "-p", patch)
    assert refused_by_the_policy(out), out.stderr
    assert f"{NS}/iris would not carry them" in out.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_it_creates_only_what_carries_its_labels(cluster: Cluster, policy: None, kind: str) -> None:
    foreign = operator_apply(cluster, workload(kind, "unlabelled", {"app": "x"}))
    assert refused_by_the_policy(foreign), foreign.stderr
    assert get(cluster, kind, "unlabelled", "-n", NS) is None
    # The model label alone is not enough: managed-by says the operator made it.
    half = operator_apply(cluster, workload(kind, "half", {"modelops.dev/model": "iris"}))
    assert refused_by_the_policy(half), half.stderr
    ours = operator_apply(cluster, workload(kind, "iris-new", OURS))
    assert ours.returncode == 0, ours.stderr


@pytest.mark.parametrize("kind", ["deployment", "service"])
def test_it_deletes_only_its_own_children(cluster: Cluster, policy: None, kind: str) -> None:
    apply(cluster, workload(kind, "doomed", OURS), workload(kind, "ledger", {"app": "ledger"}))
    foreign = as_operator(cluster, "delete", kind, "ledger", "--wait=false")
    assert refused_by_the_policy(foreign), foreign.stderr
    assert get(cluster, kind, "ledger", "-n", NS) is not None
    ours = as_operator(cluster, "delete", kind, "doomed", "--wait=false")
    assert ours.returncode == 0, ours.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_other_users_are_not_restricted(cluster: Cluster, policy: None, kind: str) -> None:
    apply(cluster, workload(kind, "audit", {"app": "audit"}))
    out = cluster.kubectl(
        "annotate", kind, "audit", "-n", NS, "--overwrite", "reviewed=yes", check=False
    )
    assert out.returncode == 0, out.stderr
    live = get(cluster, kind, "audit", "-n", NS)
    assert live is not None
    assert live["metadata"]["annotations"]["reviewed"] == "yes"
