"""Least privilege: the operator's RBAC, as the chart (both modes) and kustomize render it.

The rules are a contract, spelled out in :data:`OPERATOR_RULES`: a new permission must be added
there on purpose (with its reason in the templates and docs/security.md), never slip in. What
the cache watches is read from its list of sources, so a new watch without list/watch fails
here rather than with a 403 in a cluster. That the rules are enough
for a whole lifecycle is shown in a real cluster by tests/cluster/test_install.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

import modelops.handlers.wiring  # noqa: F401  (registers the handlers with kopf)
from harness.cluster import REPO
from modelops.handlers.events import SOURCES
from tests.unit.test_helm import CHART, NAMESPACE, find, render_chart, values_file
from tests.unit.test_kustomize import MANIFESTS, kustomize

Obj = dict[str, Any]
SA = ("modelops", NAMESPACE)

OPERATOR_RULES: dict[tuple[str, str], set[str]] = {
    ("modelops.dev", "models"): {"get", "list", "watch"},
    ("modelops.dev", "driftpolicies"): {"get", "list", "watch"},
    ("modelops.dev", "modelversions"): {"get", "list", "watch", "create", "patch"},
    ("modelops.dev", "trainingruns"): {"get", "list", "watch", "create"},
    ("modelops.dev", "models/status"): {"patch"},
    ("modelops.dev", "modelversions/status"): {"patch"},
    ("modelops.dev", "trainingruns/status"): {"patch"},
    ("modelops.dev", "driftpolicies/status"): {"patch"},
    ("modelops.dev", "models/finalizers"): {"update"},
    ("modelops.dev", "trainingruns/finalizers"): {"update"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "events"): {"get", "create", "patch"},
}
QUARANTINE_ROLE = "modelops-quarantines"
QUARANTINE_RULES = {
    ("modelops.dev", "quarantines"): {"get", "list", "watch"},
    ("modelops.dev", "quarantines/status"): {"patch"},
}
"""Quarantines are cluster-scoped: the operator reads them cluster-wide in every mode, and
writes their status only when it watches every namespace (handlers/events.py)."""
LEADER_ELECTION_ROLE = "modelops-leader-election"
LEADER_ELECTION_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": ["modelops-leader"],
        "verbs": ["get", "update"],
    },
]
"""Leader election: create the Lease, then read and renew only that one, in the operator's own
namespace (handlers/election.py, k8s/leader.py)."""
KINDS = ("models", "modelversions", "trainingruns", "driftpolicies")
FORBIDDEN_RESOURCES = {"secrets", "configmaps", "serviceaccounts/token", "pods/exec"}
ESCALATING_VERBS = {"escalate", "bind", "impersonate", "*"}


def flatten(rules: list[Obj]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "nonResourceURLs" not in rule
        assert "resourceNames" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def operator_roles(objs: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(scope, role) for each (Cluster)Role bound to the operator's ServiceAccount, except the
    leader-election Role (see :func:`election_roles`) and the Quarantine reader (see
    :func:`quarantine_roles`)."""
    return (
        (s, r)
        for s, r in bound_roles(objs)
        if r["metadata"]["name"] not in (LEADER_ELECTION_ROLE, QUARANTINE_ROLE)
    )


def quarantine_roles(objs: list[Obj]) -> list[tuple[str, Obj]]:
    """(scope, role) for the Quarantine role(s) bound to the operator."""
    return [(s, r) for s, r in bound_roles(objs) if r["metadata"]["name"] == QUARANTINE_ROLE]


def election_roles(objs: list[Obj]) -> list[tuple[str, Obj]]:
    """(scope, role) for the leader-election Role(s) bound to the operator."""
    return [(s, r) for s, r in bound_roles(objs) if r["metadata"]["name"] == LEADER_ELECTION_ROLE]


def bound_roles(objs: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """(scope, role) for each (Cluster)Role bound to the operator's ServiceAccount."""
    roles = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")): o for o in objs}
    for binding in objs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = {(s["name"], s.get("namespace")) for s in binding["subjects"]}
        if SA not in subjects:
            continue
        ref = binding["roleRef"]
        namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        yield namespace or "*", roles[(ref["kind"], ref["name"], namespace)]


RENDERS = {
    "helm-default": lambda: render_chart(),
    "helm-namespaced": lambda: render_chart(values_file("namespaced")),
    "kustomize": lambda: kustomize(MANIFESTS / "default"),
}


@pytest.fixture(scope="module", params=sorted(RENDERS))
def render(request: pytest.FixtureRequest) -> list[Obj]:
    objs: list[Obj] = RENDERS[request.param]()
    return objs


def test_operator_rules_are_exactly_the_contract(render: list[Obj]) -> None:
    bound = list(operator_roles(render))
    assert bound, "nothing binds a role to the operator's ServiceAccount"
    for scope, role in bound:
        assert flatten(role["rules"]) == OPERATOR_RULES, f"role in {scope}"


def test_leader_election_touches_only_its_lease_in_the_operators_namespace(
    render: list[Obj],
) -> None:
    ((scope, role),) = election_roles(render)
    assert (scope, role["kind"]) == (NAMESPACE, "Role")
    assert role["rules"] == LEADER_ELECTION_RULES
    # The Lease the operator is told to use is the one it may update.
    (deployment,) = find(render, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    lease = LEADER_ELECTION_RULES[1]["resourceNames"][0]
    assert f"--leader-election-lease={lease}" in container["args"]


@pytest.mark.parametrize(
    ("name", "rules"),
    [
        ("helm-default", QUARANTINE_RULES),
        ("kustomize", QUARANTINE_RULES),
        ("helm-namespaced", {("modelops.dev", "quarantines"): {"get", "list", "watch"}}),
        ("kustomize-namespaced", {("modelops.dev", "quarantines"): {"get", "list", "watch"}}),
    ],
)
def test_quarantines_are_read_cluster_wide_and_written_only_watching_everything(
    name: str, rules: dict[tuple[str, str], set[str]]
) -> None:
    render = {**RENDERS, "kustomize-namespaced": lambda: kustomize(MANIFESTS / "namespaced")}
    ((scope, role),) = quarantine_roles(render[name]())
    assert (scope, role["kind"]) == ("*", "ClusterRole")
    assert flatten(role["rules"]) == rules


def test_namespaced_install_is_bound_only_in_its_namespaces() -> None:
    scopes = sorted(scope for scope, _ in operator_roles(render_chart(values_file("namespaced"))))
    assert scopes == ["ml-team-a", "ml-team-b"]


def test_cluster_wide_install_has_one_cluster_role() -> None:
    bound = list(operator_roles(render_chart()))
    assert [(scope, role["kind"]) for scope, role in bound] == [("*", "ClusterRole")]


def test_no_wildcards_secrets_or_escalation(render: list[Obj]) -> None:
    for role in [*find(render, "ClusterRole"), *find(render, "Role")]:
        for rule in role["rules"]:
            where = f"{role['kind']} {role['metadata']['name']}: {rule}"
            assert "*" not in rule.get("resourceNames", []), where
            assert "*" not in rule["apiGroups"], where
            assert "*" not in rule["resources"], where
            assert not set(rule["verbs"]) & ESCALATING_VERBS, where
            assert not set(rule["resources"]) & FORBIDDEN_RESOURCES, where


def test_the_cache_watches_are_covered() -> None:
    """Every kind the cache lists and watches is granted list and watch."""
    for source in SOURCES:
        group = source.api_version.rpartition("/")[0]
        resource = (group, source.resource.plural)
        granted = OPERATOR_RULES | QUARANTINE_RULES
        assert {"list", "watch"} <= granted.get(resource, set()), resource
    # kopf watches nothing itself, and nothing makes it patch objects (finalizers, progress
    # annotations). kopf keeps its handlers in a registry without a public listing; kopf is
    # pinned.
    registry = kopf.get_default_registry()
    assert not registry._watching.get_all_handlers()
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()


def test_every_rule_says_why() -> None:
    sources = {
        "chart": (CHART / "templates" / "_helpers.tpl")
        .read_text()
        .split('define "modelops.operatorRules"')[1],
        "kustomize": (MANIFESTS / "rbac" / "role.yaml").read_text(),
    }
    for name, text in sources.items():
        lines = text.splitlines()
        rules = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
        assert len(rules) == 10, name
        for i in rules:
            assert lines[i - 1].strip().startswith("#"), f"{name}: no comment above {lines[i]}"
            assert re.search(
                r"# (Application|Framework|Application and framework):",
                "\n".join(lines[max(0, i - 4) : i]),
            ), f"{name}: rule at line {i + 1} does not say whom it serves"


def test_aggregated_roles_give_people_the_four_kinds(render: list[Obj]) -> None:
    view = flatten(one_role(render, "modelops-view")["rules"])
    edit = flatten(one_role(render, "modelops-edit")["rules"])
    for kind in KINDS:
        assert view[("modelops.dev", kind)] == {"get", "list", "watch"}
        assert {"create", "update", "patch", "delete"} <= edit[("modelops.dev", kind)]
        # Status is the operator's: people read it, never write it.
        assert view[("modelops.dev", f"{kind}/status")] == {"get"}
        assert edit[("modelops.dev", f"{kind}/status")] == {"get"}
    view_labels = one_role(render, "modelops-view")["metadata"]["labels"]
    edit_labels = one_role(render, "modelops-edit")["metadata"]["labels"]
    assert view_labels["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit_labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert edit_labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"


def one_role(objs: list[Obj], name: str) -> Obj:
    (role,) = find(objs, "ClusterRole", name)
    return role


def test_security_doc_lists_every_permission() -> None:
    doc = (REPO / "docs" / "security.md").read_text()
    for (_, resource), verbs in (OPERATOR_RULES | QUARANTINE_RULES).items():
        row = next((line for line in doc.splitlines() if f"`{resource}`" in line), None)
        assert row is not None, f"docs/security.md has no row for {resource}"
        for verb in verbs:
            assert verb in row, f"docs/security.md: {resource} row lacks {verb}"
    rows = [line for line in doc.splitlines() if line.startswith("| `coordination.k8s.io`")]
    verbs = {v for rule in LEADER_ELECTION_RULES for v in rule["verbs"]}
    assert verbs <= {v.strip() for row in rows for v in row.split("|")[3].split(",")}
