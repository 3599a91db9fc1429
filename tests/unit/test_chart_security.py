"""Blast radius in the chart and the kustomize install, rendered offline by the real ``helm`` and
``kubectl kustomize``: the admission policy on the operator's own writes, the operator's
NetworkPolicy, the CRDs' protection against GitOps pruning, and the values schema's refusals.

Like ``test_helm.py`` these fail, never skip, when ``make tools`` has not built the binaries.
What the policy does on a real API server is ``tests/cluster/test_operator_writes.py``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modelops.api import KINDS
from modelops.core import builders, labels
from modelops.core import model as model_core
from tests.unit.test_helm import CHART, NAMESPACE, RELEASE, find, one, render_chart, run_helm
from tests.unit.test_kustomize import MANIFESTS, kustomize

Obj = dict[str, Any]

POLICY = "modelops-operator-writes"
OPERATOR = f"system:serviceaccount:{NAMESPACE}:modelops"


def overlay(tmp_path: Path, *, resources: list[Path], components: list[Path]) -> list[Obj]:
    """``kubectl kustomize`` of an overlay of ``resources`` with ``components``, as a user
    would write it (relative paths: kustomize refuses absolute ones)."""

    def rel(p: Path) -> str:
        return os.path.relpath(p, tmp_path)

    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n"
        + "".join(f"  - {rel(p)}\n" for p in resources)
        + "components:\n"
        + "".join(f"  - {rel(p)}\n" for p in components)
    )
    return kustomize(tmp_path)


# -- the operator's own writes ----------------------------------------------------------------


def test_operator_writes_policy_is_on_by_default() -> None:
    objs = render_chart()
    policy = one(objs, "ValidatingAdmissionPolicy", POLICY)["spec"]
    assert policy["failurePolicy"] == "Fail"
    rules = {
        (tuple(r["apiGroups"]), tuple(r["resources"])): r["operations"]
        for r in policy["matchConstraints"]["resourceRules"]
    }
    assert rules == {
        (("batch",), ("jobs",)): ["CREATE", "UPDATE", "DELETE"],
        (("apps",), ("deployments",)): ["CREATE", "UPDATE", "DELETE"],
        (("",), ("services",)): ["CREATE", "UPDATE", "DELETE"],
    }
    (condition,) = policy["matchConditions"]
    assert condition["expression"] == f"request.userInfo.username == '{OPERATOR}'"
    binding = one(objs, "ValidatingAdmissionPolicyBinding", POLICY)["spec"]
    assert binding == {"policyName": POLICY, "validationActions": ["Deny"]}


def test_operator_writes_policy_names_the_release_service_account() -> None:
    objs = render_chart(sets=("serviceAccount.name=ops-bot",))
    (condition,) = one(objs, "ValidatingAdmissionPolicy", POLICY)["spec"]["matchConditions"]
    assert f"'system:serviceaccount:{NAMESPACE}:ops-bot'" in condition["expression"]


def test_operator_writes_policy_checks_the_labels_the_operator_sets() -> None:
    spec = one(render_chart(), "ValidatingAdmissionPolicy", POLICY)["spec"]
    expressions = " ".join(v["expression"] for v in spec["variables"])
    child = builders.child_labels("iris")
    for key in (*labels.MANAGED_BY, labels.MODEL):
        assert key in child
        assert f"labels[?'{key}']" in expressions
    assert f"== '{labels.MANAGED_BY['app.kubernetes.io/managed-by']}'" in expressions


@pytest.mark.parametrize("switch", ["admissionPolicy.restrictOperator", "admissionPolicy.enabled"])
def test_operator_writes_policy_can_be_turned_off(switch: str) -> None:
    objs = render_chart(sets=(f"{switch}=false",))
    assert not find(objs, "ValidatingAdmissionPolicy", POLICY)
    assert not find(objs, "ValidatingAdmissionPolicyBinding", POLICY)


# -- NetworkPolicy ----------------------------------------------------------------------------


def test_network_policy_is_off_by_default() -> None:
    assert not find(render_chart(), "NetworkPolicy")


def test_network_policy_selects_the_operator_and_opens_its_two_ports() -> None:
    objs = render_chart(
        sets=("networkPolicy.enabled=true", "metrics.port=9090", "health.port=9091")
    )
    spec = one(objs, "NetworkPolicy", "modelops")["spec"]
    pods = one(objs, "Deployment", "modelops")["spec"]["selector"]["matchLabels"]
    assert spec["podSelector"]["matchLabels"] == pods
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {"ports": [{"port": 9090, "protocol": "TCP"}]},
        {"ports": [{"port": 9091, "protocol": "TCP"}]},
    ]
    api, dns, serving = spec["egress"]
    assert api == {"ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]}
    assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert serving["to"] == [
        {
            "namespaceSelector": {},
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/managed-by": "modelops",
                    "app.kubernetes.io/component": "model-server",
                }
            },
        }
    ]


def test_network_policy_reaches_the_pods_the_operator_serves_with() -> None:
    serving = one(render_chart(sets=("networkPolicy.enabled=true",)), "NetworkPolicy")["spec"][
        "egress"
    ][2]
    pod_labels = {**builders.child_labels("iris"), "app.kubernetes.io/component": "model-server"}
    assert model_core.COMPONENT == "model-server"
    assert serving["to"][0]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert serving["ports"] == [{"port": model_core.SERVER_PORT, "protocol": "TCP"}]


def test_network_policy_takes_the_configured_destinations_and_peers() -> None:
    objs = render_chart(
        sets=(
            "networkPolicy.enabled=true",
            "networkPolicy.apiServer.cidrs={10.0.0.1/32,10.0.0.2/32}",
            "networkPolicy.apiServer.ports={6443}",
            "networkPolicy.servingPods=false",
            "networkPolicy.extraEgress[0].ports[0].port=9090",
            "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
        )
    )
    spec = one(objs, "NetworkPolicy")["spec"]
    api, _dns, extra = spec["egress"]
    assert api["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}, {"ipBlock": {"cidr": "10.0.0.2/32"}}]
    assert api["ports"] == [{"port": 6443, "protocol": "TCP"}]
    assert extra == {"ports": [{"port": 9090}]}
    assert spec["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}
    ]
    assert "from" not in spec["ingress"][1]


def test_namespaced_network_policy_reaches_only_the_watched_namespaces() -> None:
    objs = render_chart(
        sets=(
            "networkPolicy.enabled=true",
            "watch.allNamespaces=false",
            "watch.namespaces={ml-a,ml-b}",
        )
    )
    serving = one(objs, "NetworkPolicy")["spec"]["egress"][2]
    assert serving["to"][0]["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ml-a", "ml-b"]}
        ]
    }


def test_kustomize_component_is_the_charts_network_policy(tmp_path: Path) -> None:
    objs = overlay(
        tmp_path,
        resources=[MANIFESTS / "default"],
        components=[MANIFESTS / "components" / "network-policy"],
    )
    ours = one(objs, "NetworkPolicy", "modelops")
    theirs = one(render_chart(sets=("networkPolicy.enabled=true",)), "NetworkPolicy", "modelops")
    assert ours["metadata"]["namespace"] == theirs["metadata"]["namespace"] == NAMESPACE
    assert ours["spec"] == theirs["spec"]


# -- CRDs and GitOps pruning ------------------------------------------------------------------

NO_PRUNE = {
    "argocd.argoproj.io/sync-options": "Prune=false,Delete=false",
    "kustomize.toolkit.fluxcd.io/prune": "disabled",
}


def crd_annotations(objs: list[Obj]) -> list[dict[str, str]]:
    crds = find(objs, "CustomResourceDefinition")
    assert len(crds) == len(KINDS)
    return [c["metadata"].get("annotations") or {} for c in crds]


def test_chart_crds_are_never_pruned_by_default() -> None:
    for found in crd_annotations(render_chart()):
        assert found == {"helm.sh/resource-policy": "keep", **NO_PRUNE}


def test_chart_crd_annotations_follow_the_switches() -> None:
    for found in crd_annotations(render_chart(sets=("crds.preventPrune=false",))):
        assert found == {"helm.sh/resource-policy": "keep"}
    bare = render_chart(sets=("crds.preventPrune=false", "crds.keep=false"))
    assert crd_annotations(bare) == [{}] * len(KINDS)
    extra = render_chart(
        sets=(
            "crds.annotations.team=ml",
            "crds.annotations.argocd\\.argoproj\\.io/sync-options=Prune=false",
        )
    )
    for found in crd_annotations(extra):
        assert found["team"] == "ml"
        assert found["argocd.argoproj.io/sync-options"] == "Prune=false"
        assert found["kustomize.toolkit.fluxcd.io/prune"] == "disabled"


def test_kustomize_crds_are_never_pruned() -> None:
    for found in crd_annotations(kustomize(MANIFESTS / "default")):
        assert found == NO_PRUNE


def test_crd_component_applies_to_an_overlay_of_the_parts(tmp_path: Path) -> None:
    objs = overlay(
        tmp_path,
        resources=[MANIFESTS / "crd"],
        components=[MANIFESTS / "components" / "crd-no-prune"],
    )
    assert crd_annotations(objs) == [NO_PRUNE] * len(KINDS)
    assert crd_annotations(kustomize(MANIFESTS / "crd")) == [{}] * len(KINDS)


# -- the values schema ------------------------------------------------------------------------


def helm_template(*sets: str) -> subprocess.CompletedProcess[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for s in sets:
        args += ["--set", s]
    return run_helm(*args, check=False)


@pytest.mark.parametrize(
    "bad",
    [
        "image.tag=bad tag",
        "image.tag=-leading-dash",
        "image.tag=" + "x" * 129,
        "image.tag=v1@sha256:abc",
        "image.repository=Ghcr.io/Bad Repo",
        "image.repository=ghcr.io/modelops/operator:1.0",
        "image.digest=sha256:ABC",
        "resources.requests.memory=lots",
        "resources.requests.cpu=-1",
        "resources.limits.memory=1.5 Gi",
        "resources.limits.cpu=1core",
        "resources.request.cpu=1",
        "metrics.port=0",
        "health.port=65536",
        "networkPolicy.apiServer.ports={70000}",
        "networkPolicy.apiServer.cidrs={kubernetes}",
        "crds.annotations.team=null",
    ],
)
def test_schema_refuses(bad: str) -> None:
    out = helm_template(bad)
    assert out.returncode != 0, f"{bad} was accepted"
    assert "values don't meet the specifications of the schema" in out.stderr, out.stderr


@pytest.mark.parametrize(
    "good",
    [
        "image.tag=v1.2.3_rc-1",
        "image.tag=latest",
        "image.repository=registry.example.com:5000/team/modelops-operator",
        "image.repository=operator",
        "image.digest=sha256:" + "0" * 64,
        "resources.requests.cpu=0.5",
        "resources.requests.cpu=250m",
        "resources.requests.memory=1.5Gi",
        "resources.requests.memory=1e9",
        "resources.limits.nvidia\\.com/gpu=1",
        "resources.limits.ephemeral-storage=1G",
        "health.port=65535",
        "networkPolicy.apiServer.cidrs={10.96.0.1/32,fd00::1/128}",
    ],
)
def test_schema_accepts(good: str) -> None:
    out = helm_template(good)
    assert out.returncode == 0, out.stderr


def test_resources_reach_the_operator_container(tmp_path: Path) -> None:
    # A values file, so that 0.5 is a YAML number (--set would make it a string).
    values = tmp_path / "values.yaml"
    values.write_text("resources:\n  requests: {cpu: 0.5}\n  limits: {memory: 1Gi}\n")
    (container,) = one(render_chart(values), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"] == 0.5
    assert container["resources"]["limits"]["memory"] == "1Gi"
    values.write_text("resources:\n  requests: {cpu: -0.5}\n")
    out = run_helm("template", RELEASE, str(CHART), "--values", str(values), check=False)
    assert "values don't meet the specifications of the schema" in out.stderr


def test_metrics_and_health_need_different_ports() -> None:
    out = helm_template("metrics.port=9000", "health.port=9000")
    assert out.returncode != 0
    assert (
        "metrics.port and health.port are both 9000: the operator serves /metrics and /healthz "
        "on two different ports"
    ) in out.stderr
    assert helm_template("metrics.port=9000", "health.port=9001").returncode == 0
