"""The kustomize install (manifests/), rendered offline by the built ``kubectl kustomize``.

``manifests/default`` must install what the Helm chart installs by default, in substance: the
same objects by kind, name and namespace, the same RBAC rules, the same operator pod and the
same admission policies. Labels differ (each tool stamps its own) and are not compared. Like
``test_helm.py`` these tests fail, never skip, when ``make tools`` has not built the binaries.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster import REPO
from tests.unit.test_helm import NAMESPACE, find, one, render_chart, tool

MANIFESTS = REPO / "manifests"
BASES = ("crd", "rbac", "manager", "admission", "default")

Obj = dict[str, Any]


def kustomize(path: Path) -> list[Obj]:
    """``kubectl kustomize path`` as objects."""
    out = subprocess.run(
        [str(tool("kubectl")), "kustomize", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def identity(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return (obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace", ""))


@pytest.fixture(scope="module")
def default() -> list[Obj]:
    return kustomize(MANIFESTS / "default")


@pytest.fixture(scope="module")
def chart() -> list[Obj]:
    # The chart's default render, minus what only Helm has: its `helm test` pod.
    return render_chart(show_tests=False)


@pytest.mark.parametrize("base", BASES)
def test_every_base_renders(base: str) -> None:
    assert kustomize(MANIFESTS / base)


def test_flux_example_renders() -> None:
    kinds = {o["kind"] for o in kustomize(MANIFESTS / "gitops" / "flux")}
    assert kinds == {"GitRepository", "Kustomization"}


def test_default_is_crd_rbac_manager_and_admission(default: list[Obj]) -> None:
    parts = {base: {identity(o) for o in kustomize(MANIFESTS / base)} for base in BASES[:-1]}
    assert {identity(o) for o in default} == set().union(*parts.values())


def test_same_objects_as_the_chart(default: list[Obj], chart: list[Obj]) -> None:
    # The namespace is the chart's `--namespace`; kustomize creates it (Pod Security labels).
    ours = {identity(o) for o in default if o["kind"] != "Namespace"}
    assert ours == {identity(o) for o in chart}


def test_namespace_enforces_pod_security_restricted(default: list[Obj]) -> None:
    labels = one(default, "Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_cluster_scoped_objects_have_no_namespace(default: list[Obj]) -> None:
    cluster_scoped = {
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "Namespace",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
    }
    for obj in default:
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], identity(obj)
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, identity(obj)


@pytest.mark.parametrize(
    "kind",
    ["ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy", "MutatingAdmissionPolicy"],
)
def test_same_rbac_and_admission_as_the_chart(
    default: list[Obj], chart: list[Obj], kind: str
) -> None:
    ours = {o["metadata"]["name"]: o for o in find(default, kind)}
    theirs = {o["metadata"]["name"]: o for o in find(chart, kind)}
    assert ours.keys() == theirs.keys()
    for name, obj in ours.items():
        for key in ("rules", "roleRef", "subjects", "spec"):
            assert obj.get(key) == theirs[name].get(key), f"{kind} {name}: {key} differs"
        # Aggregation is by label, so those labels are part of the substance.
        aggregation = {
            k: v for k, v in obj["metadata"].get("labels", {}).items() if "aggregate-to" in k
        }
        assert aggregation.items() <= theirs[name]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    "kind", ["ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicyBinding"]
)
def test_same_admission_bindings_as_the_chart(
    default: list[Obj], chart: list[Obj], kind: str
) -> None:
    ours = {o["metadata"]["name"]: o["spec"] for o in find(default, kind)}
    theirs = {o["metadata"]["name"]: o["spec"] for o in find(chart, kind)}
    assert ours
    assert ours == theirs


def test_same_operator_pod_as_the_chart(default: list[Obj], chart: list[Obj]) -> None:
    ours = one(default, "Deployment", "modelops")["spec"]
    theirs = one(chart, "Deployment", "modelops")["spec"]
    for key in ("replicas", "strategy", "selector"):
        assert ours[key] == theirs[key], key
    assert ours["template"]["spec"] == theirs["template"]["spec"]
    assert (
        ours["template"]["metadata"]["annotations"] == theirs["template"]["metadata"]["annotations"]
    )
    selector = ours["selector"]["matchLabels"]
    assert selector.items() <= ours["template"]["metadata"]["labels"].items()


def test_same_service_as_the_chart(default: list[Obj], chart: list[Obj]) -> None:
    assert one(default, "Service")["spec"] == one(chart, "Service")["spec"]


def test_same_crds_as_the_chart(default: list[Obj], chart: list[Obj]) -> None:
    ours = {o["metadata"]["name"]: o["spec"] for o in find(default, "CustomResourceDefinition")}
    theirs = {o["metadata"]["name"]: o["spec"] for o in find(chart, "CustomResourceDefinition")}
    assert ours == theirs


# -- the namespaced variant -------------------------------------------------------------------


@pytest.fixture(scope="module")
def namespaced() -> list[Obj]:
    return kustomize(MANIFESTS / "namespaced")


@pytest.fixture(scope="module")
def namespaced_chart() -> list[Obj]:
    return render_chart(sets=("watch.allNamespaces=false",), show_tests=False)


def test_namespaced_variant_is_the_charts_namespaced_mode(
    namespaced: list[Obj], namespaced_chart: list[Obj]
) -> None:
    ours = {identity(o) for o in namespaced if o["kind"] != "Namespace"}
    assert ours == {identity(o) for o in namespaced_chart}
    for kind in ("Role", "RoleBinding", "ClusterRole"):
        theirs = {o["metadata"]["name"]: o for o in find(namespaced_chart, kind)}
        for obj in find(namespaced, kind):
            for key in ("rules", "roleRef", "subjects"):
                assert obj.get(key) == theirs[obj["metadata"]["name"]].get(key), (kind, key)
    assert (
        one(namespaced, "Deployment", "modelops")["spec"]["template"]["spec"]
        == one(namespaced_chart, "Deployment", "modelops")["spec"]["template"]["spec"]
    )


def test_namespaced_variant_grants_the_operator_only_quarantine_reads_cluster_wide(
    namespaced: list[Obj], default: list[Obj]
) -> None:
    # One binding only: reading Quarantines, which are cluster-scoped; not their status.
    (binding,) = find(namespaced, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "modelops-quarantines"
    reader = one(namespaced, "ClusterRole", "modelops-quarantines")
    assert reader["rules"] == [
        {
            "apiGroups": ["modelops.dev"],
            "resources": ["quarantines"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    # The other ClusterRoles are the roles for people, which the operator is not bound to.
    assert {o["metadata"]["name"] for o in find(namespaced, "ClusterRole")} == {
        "modelops-view",
        "modelops-edit",
        "modelops-quarantines",
        "modelops-quarantine-admin",
    }
    role = one(namespaced, "Role", "modelops")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == one(default, "ClusterRole", "modelops")["rules"]
    (container,) = one(namespaced, "Deployment", "modelops")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["args"][0] == f"--namespace={NAMESPACE}"
    assert "--all-namespaces" not in container["args"]


def test_namespaced_variant_can_watch_another_namespace(tmp_path: Path) -> None:
    """The overlay manifests/namespaced/kustomization.yaml and docs/install.md show."""
    base = os.path.relpath(MANIFESTS / "namespaced", tmp_path)
    replace = '[{{"op": "replace", "path": "{}", "value": "{}"}}]'
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [base],
                "patches": [
                    {
                        "target": {"kind": "Role", "name": "modelops"},
                        "patch": replace.format("/metadata/namespace", "ml"),
                    },
                    {
                        "target": {"kind": "RoleBinding", "name": "modelops"},
                        "patch": replace.format("/metadata/namespace", "ml"),
                    },
                    {
                        "target": {"kind": "Deployment", "name": "modelops"},
                        "patch": replace.format(
                            "/spec/template/spec/containers/0/args/0", "--namespace=ml"
                        ),
                    },
                ],
            }
        )
    )
    objs = kustomize(tmp_path)
    assert one(objs, "Role", "modelops")["metadata"]["namespace"] == "ml"
    binding = one(objs, "RoleBinding", "modelops")
    assert binding["metadata"]["namespace"] == "ml"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelops", "namespace": NAMESPACE}
    ]
    (container,) = one(objs, "Deployment", "modelops")["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "--namespace=ml"
