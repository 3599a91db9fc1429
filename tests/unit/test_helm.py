"""The Helm chart (helm/modelops), rendered offline by the real ``helm`` binary.

Nothing is mocked: ``helm lint`` and ``helm template`` run the chart with each ``ci/*-values.yaml``
scenario, and the tests read the objects it renders. ``helm`` is built from its Go module by
``make tools`` (``hack/build-tools.sh helm``); without it these tests fail rather than skip, so a
missing tool never passes for a green run. ``tests/unit/test_kustomize.py`` and
``tests/unit/test_rbac.py`` reuse :func:`render_chart` and :func:`tool`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster import DEFAULT_BIN_DIR, REPO
from modelops.settings import OperatorSettings

CHART = REPO / "helm" / "modelops"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "modelops"
NAMESPACE = "modelops-system"
RULES = REPO / "manifests" / "prometheus" / "modelops-rules.yaml"

Obj = dict[str, Any]


def tool(name: str) -> Path:
    """A binary from the tools directory; fails the test (never skips) when it was not built."""
    path = DEFAULT_BIN_DIR / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make tools` (hack/build-tools.sh {name})")
    return path


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the built ``helm`` offline (no kubeconfig is read by lint or template)."""
    return subprocess.run(
        [str(tool("helm")), *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin", "KUBECONFIG": "/dev/null"},
    )


def render_chart(*values: Path, sets: tuple[str, ...] = (), show_tests: bool = True) -> list[Obj]:
    """``helm template`` of the chart as release ``modelops`` in ``modelops-system``."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for v in values:
        args += ["--values", str(v)]
    for s in sets:
        args += ["--set", s]
    if not show_tests:
        args += ["--skip-tests"]
    out = run_helm(*args)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def find(objs: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    """The rendered objects of ``kind`` (and ``name``)."""
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The single rendered object of ``kind`` (and ``name``)."""
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def values_file(name: str) -> Path:
    return CHART / "ci" / f"{name}-values.yaml"


# -- lint and render every scenario ---------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_lint_is_clean(values: Path) -> None:
    out = run_helm("lint", "--strict", str(CHART), "--values", str(values), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_every_scenario_renders_named_objects(values: Path) -> None:
    objs = render_chart(values)
    assert objs
    for obj in objs:
        assert obj["apiVersion"]
        assert obj["metadata"]["name"]


def test_scenarios_cover_the_documented_modes() -> None:
    assert {p.stem for p in CI_VALUES} == {
        "default-values",
        "namespaced-values",
        "monitoring-values",
        "crds-off-values",
    }


# -- the default install ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def default() -> list[Obj]:
    return render_chart(values_file("default"))


def test_default_kinds(default: list[Obj]) -> None:
    kinds = sorted(o["kind"] for o in default)
    assert kinds == sorted(
        [
            "ServiceAccount",
            *["CustomResourceDefinition"] * 5,
            *["ClusterRole"] * 5,  # operator, Quarantine reader, view, edit, quarantine-admin
            *["ClusterRoleBinding"] * 2,
            "Role",  # leader election, in the release namespace
            "RoleBinding",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
            *["ValidatingAdmissionPolicy"] * 6,
            *["ValidatingAdmissionPolicyBinding"] * 6,
            *["MutatingAdmissionPolicy"] * 2,
            *["MutatingAdmissionPolicyBinding"] * 2,
            "Pod",
        ]
    )


def test_crds_are_kept_on_uninstall_by_default(default: list[Obj]) -> None:
    crds = find(default, "CustomResourceDefinition")
    assert {c["metadata"]["name"] for c in crds} == {
        "models.modelops.dev",
        "modelversions.modelops.dev",
        "trainingruns.modelops.dev",
        "driftpolicies.modelops.dev",
        "quarantines.modelops.dev",
    }
    for crd in crds:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_crds_can_be_left_to_helm_or_to_someone_else() -> None:
    unkept = render_chart(sets=("crds.keep=false",))
    for crd in find(unkept, "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})
    assert not find(render_chart(values_file("crds-off")), "CustomResourceDefinition")


def test_the_chart_crds_are_the_generated_ones(default: list[Obj]) -> None:
    for crd in find(default, "CustomResourceDefinition"):
        plural = crd["metadata"]["name"].split(".", 1)[0]
        source = yaml.safe_load((REPO / "crds" / f"modelops.dev_{plural}.yaml").read_text())
        assert crd["spec"] == source["spec"]


def test_operator_deployment(default: list[Obj]) -> None:
    deployment = one(default, "Deployment", "modelops")
    spec = deployment["spec"]
    # Two replicas, one leading; an update starts a new follower before it stops a pod.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "modelops"
    (container,) = pod["containers"]
    assert container["image"] == "ghcr.io/modelops/operator:0.1.0"
    assert container["command"] == ["python", "-m", "modelops"]
    assert container["args"] == [
        "--all-namespaces",
        "--metrics-port=8080",
        "--health-port=8081",
        "--workers=8",
        "--leader-election-lease=modelops-leader",
        "--lease-duration=15",
        "--renew-deadline=10",
        "--retry-period=2",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["MODELOPS_POD_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    # The pod name is the replica's identity in the leader Lease.
    assert env["MODELOPS_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]


def test_replicas_spread_over_nodes_and_are_evicted_one_at_a_time(default: list[Obj]) -> None:
    deployment = one(default, "Deployment", "modelops")
    selector = deployment["spec"]["selector"]
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": selector,
    }
    budget = one(default, "PodDisruptionBudget", "modelops")
    assert budget["metadata"]["namespace"] == NAMESPACE
    assert budget["spec"] == {"maxUnavailable": 1, "selector": selector}


def test_anti_affinity_can_be_required_or_left_out() -> None:
    def affinity(*sets: str) -> Obj | None:
        spec = one(render_chart(sets=sets), "Deployment")["spec"]["template"]["spec"]
        return spec.get("affinity")  # type: ignore[no-any-return]

    hard = affinity("podAntiAffinity=hard")
    assert hard is not None
    (term,) = hard["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert affinity("podAntiAffinity=none") is None
    # Affinity of one's own replaces the default.
    assert affinity("affinity.nodeAffinity.x=1") == {"nodeAffinity": {"x": 1}}


def test_leader_election_timing_reaches_the_operator() -> None:
    objs = render_chart(
        sets=(
            "leaderElection.leaseDurationSeconds=30",
            "leaderElection.renewDeadlineSeconds=20",
            "leaderElection.retryPeriodSeconds=5",
            "replicaCount=3",
        )
    )
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"][-3:] == [
        "--lease-duration=30",
        "--renew-deadline=20",
        "--retry-period=5",
    ]


def test_runtimes_and_the_retire_image_reach_the_operator() -> None:
    objs = render_chart(
        sets=(
            "runtimes[0].name=mirror",
            "runtimes[0].formats={onnx/v1,modelops-linear/v1}",
            "runtimes[0].image=registry.example.com/modelops/server:0.1.0",
            "runtimes[0].command={python,-m,modelops.runtimes.server}",
            "retireJobImage=registry.example.com/modelops/server:0.1.0",
        )
    )
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # The operator reads the rendered values as its settings, unchanged.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODELOPS_RUNTIMES", env["MODELOPS_RUNTIMES"])
        patch.setenv("MODELOPS_RETIRE_JOB_IMAGE", env["MODELOPS_RETIRE_JOB_IMAGE"])
        settings = OperatorSettings()
    (runtime,) = settings.runtimes
    assert runtime.name == "mirror"
    assert runtime.formats == ("onnx/v1", "modelops-linear/v1")
    assert runtime.command == ("python", "-m", "modelops.runtimes.server")
    assert settings.retire_job_image == "registry.example.com/modelops/server:0.1.0"
    # Left empty, the operator keeps its defaults: no variable at all.
    (container,) = one(render_chart(), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert not {"MODELOPS_RUNTIMES", "MODELOPS_RETIRE_JOB_IMAGE"} & {
        e["name"] for e in container["env"]
    }


def test_without_leader_election_one_replica_and_no_lease_role() -> None:
    objs = render_chart(
        sets=("leaderElection.enabled=false", "replicaCount=1", "podDisruptionBudget.enabled=false")
    )
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--no-leader-election" in container["args"]
    assert not find(objs, "Role")
    assert not find(objs, "PodDisruptionBudget")
    out = run_helm(
        "template", RELEASE, str(CHART), "--set", "leaderElection.enabled=false", check=False
    )
    assert out.returncode != 0
    assert "replicaCount > 1 needs leaderElection.enabled" in out.stderr


def test_selector_labels_never_change_between_releases(default: list[Obj]) -> None:
    selector = one(default, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "modelops",
        "app.kubernetes.io/instance": "modelops",
        "app.kubernetes.io/component": "operator",
    }
    assert one(default, "Service")["spec"]["selector"] == selector


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "a" * 64
    objs = render_chart(sets=(f"image.digest={digest}", "image.tag=9.9.9"))
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/modelops/operator@{digest}"


def restricted_violations(pod_spec: Obj) -> list[str]:
    """What in a pod spec breaks Pod Security "restricted" (the checks a pod author controls)."""
    problems = []
    pod_sc = pod_spec.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(flag):
            problems.append(flag)
    for volume in pod_spec.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"hostPath volume {volume['name']}")
    for c in [*pod_spec.get("initContainers", []), *pod_spec["containers"]]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation not false")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            problems.append(f"{name}: capabilities not dropped")
        if sc.get("capabilities", {}).get("add"):
            problems.append(f"{name}: capabilities added")
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot not set")
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if user == 0:
            problems.append(f"{name}: runs as root")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: no seccomp profile")
        if c.get("ports") and any(p.get("hostPort") for p in c["ports"]):
            problems.append(f"{name}: hostPort")
    return problems


def test_pods_meet_pod_security_restricted(default: list[Obj]) -> None:
    deployment = one(default, "Deployment")
    assert restricted_violations(deployment["spec"]["template"]["spec"]) == []
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 65532
    assert restricted_violations(one(default, "Pod")["spec"]) == []


def test_helm_test_checks_healthz_through_the_service(default: list[Obj]) -> None:
    pod = one(default, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "http://modelops.modelops-system.svc:8081/healthz" in script
    service_ports = {p["name"]: p["port"] for p in one(default, "Service")["spec"]["ports"]}
    assert service_ports == {"metrics": 8080, "health": 8081}
    compile(script, "healthz-test", "exec")  # the test pod's program is valid Python


def test_monitoring_is_off_by_default(default: list[Obj]) -> None:
    assert not find(default, "ServiceMonitor")
    assert not find(default, "PrometheusRule")


# -- namespaced mode --------------------------------------------------------------------------


def test_namespaced_mode_has_one_role_per_namespace_and_only_quarantine_reads_cluster_wide() -> (
    None
):
    objs = render_chart(values_file("namespaced"))
    # The leader-election Role (release namespace) is checked in test_rbac.py.
    roles = [r for r in find(objs, "Role") if r["metadata"]["name"] == "modelops"]
    bindings = [b for b in find(objs, "RoleBinding") if b["metadata"]["name"] == "modelops"]
    assert {r["metadata"]["namespace"] for r in roles} == {"ml-team-a", "ml-team-b"}
    assert {b["metadata"]["namespace"] for b in bindings} == {"ml-team-a", "ml-team-b"}
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "modelops",
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "modelops", "namespace": NAMESPACE}
        ]
    # Cluster-wide, the operator only reads Quarantines (cluster-scoped; test_rbac.py).
    assert [b["roleRef"]["name"] for b in find(objs, "ClusterRoleBinding")] == [
        "modelops-quarantines"
    ]
    # The other ClusterRoles are for people; they grant the operator nothing.
    assert {r["metadata"]["name"] for r in find(objs, "ClusterRole")} == {
        "modelops-view",
        "modelops-edit",
        "modelops-quarantines",
        "modelops-quarantine-admin",
    }
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][:2] == ["--namespace=ml-team-a", "--namespace=ml-team-b"]
    assert "--all-namespaces" not in container["args"]


def test_namespaced_mode_defaults_to_the_release_namespace() -> None:
    objs = render_chart(sets=("watch.allNamespaces=false",))
    assert [r["metadata"]["namespace"] for r in find(objs, "Role", "modelops")] == [NAMESPACE]
    (container,) = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == f"--namespace={NAMESPACE}"


# -- monitoring -------------------------------------------------------------------------------


def test_rules_file_is_the_one_prometheus_loads() -> None:
    kept = CHART / "files" / "modelops-rules.yaml"
    assert kept.read_text() == RULES.read_text(), (
        f"{kept} differs from {RULES}: copy it (cp {RULES} {kept})"
    )


def test_monitoring_objects() -> None:
    objs = render_chart(values_file("monitoring"))
    monitor = one(objs, "ServiceMonitor")
    service = one(objs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    rule = one(objs, "PrometheusRule")
    # The alerts arrive intact, their own {{ $labels }} templates included.
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert "{{ $labels.model }}" in yaml.safe_dump(rule["spec"], width=10_000)


# -- admission and schema ---------------------------------------------------------------------


def test_admission_policies_can_warn_instead_of_deny() -> None:
    objs = render_chart(sets=("admissionPolicy.validationActions={Warn,Audit}",))
    for binding in find(objs, "ValidatingAdmissionPolicyBinding"):
        assert binding["spec"]["validationActions"] == ["Warn", "Audit"]
    assert not find(
        render_chart(sets=("admissionPolicy.enabled=false",)), "ValidatingAdmissionPolicy"
    )


@pytest.mark.parametrize(
    "bad",
    [
        "replicas=2",
        "replicaCount=0",
        "leaderElection.leaseDurationSeconds=1",
        "podAntiAffinity=always",
        "watch.namespaces[0]=Not_A_Namespace",
        "admissionPolicy.validationActions[0]=Reject",
        "image.digest=latest",
        "metrics.port=0",
        "runtimes[0].name=Bad_Name",
        "retireJobImage=bad tag",
    ],
)
def test_schema_refuses_unknown_and_invalid_values(bad: str) -> None:
    out = run_helm("template", RELEASE, str(CHART), "--set", bad, check=False)
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr


def test_every_value_is_documented() -> None:
    """Each key in values.yaml has a comment naming it, and the schema knows it."""
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())

    def walk(node: Obj, props: Obj, prefix: str) -> None:
        for key, value in node.items():
            assert key in props, f"{prefix}{key} is not in values.schema.json"
            assert props[key].get("description"), f"{prefix}{key} has no schema description"
            sub = props[key].get("properties")
            if isinstance(value, dict) and sub:
                walk(value, sub, f"{prefix}{key}.")
            else:
                name = f"{prefix}{key}"
                # Helm's convention: the comment above a value begins with its name.
                assert f"# {name} " in text, f"{name} is not documented in values.yaml"

    walk(values, schema["properties"], "")
