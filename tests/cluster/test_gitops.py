"""GitOps on the local control plane: health as Argo CD, Flux and kstatus see it, and a GitOps
field manager that never fights the operator.

The operator runs as a process. The module fixture walks objects of all four kinds through
their states — before the first reconcile, suspended, running, succeeded, failed, registered,
rolling out, serving, rolled back, retired, with a spec change not yet observed — and keeps a
snapshot of each, as the API server returned it. Each snapshot is then judged by the Argo CD
Lua scripts, the Flux health expressions and kstatus (``tests/unit/test_argocd_health.py`` holds
the expectations, :data:`~tests.unit.test_argocd_health.EXPECTED`, and runs the same checks on the
saved fixtures without a cluster).

``MODELOPS_WRITE_GITOPS_FIXTURES=1`` saves the snapshots as ``tests/fixtures/gitops/*.json``
(minus ``managedFields``): that is how the fixtures were made, and how to refresh them after a
status change in the API.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.cluster import LocalCluster
from tests.cluster.kube import (
    Operator,
    apply,
    condition,
    get,
    has_condition,
    model_version,
    prepare_namespace,
    training_run,
)
from tests.cluster.kube import wait_for as wait
from tests.unit.test_argocd_health import EXPECTED, FIXTURES, argocd_health, kstatus

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NS = "gitops"
DIGEST = "sha256:" + "0" * 64
GITOPS_MANAGER = "argocd-controller"

Obj = dict[str, Any]


def model(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": spec,
    }


def serving(**extra: Any) -> Obj:
    # The server waits a few seconds before it starts, so a rollout is visibly under way.
    return {
        "replicas": 1,
        "command": ["sh", "-c", "sleep 4; exec python -m modelops.runtimes.server"],
        "progressDeadlineSeconds": 30,
        **extra,
    }


class Snapshots:
    """Objects as the API server returned them, by scenario name."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.taken: dict[str, Obj] = {}

    def take(self, name: str, kind: str, obj_name: str) -> Obj:
        obj = get(self.cluster, kind, obj_name, "-n", NS)
        assert obj is not None, f"{kind} {obj_name} is gone"
        self.taken[name] = obj
        return obj

    def when(
        self,
        name: str,
        kind: str,
        obj_name: str,
        pred: Callable[[Obj], bool],
        *,
        timeout: float = 120,
        interval: float = 0.1,
    ) -> Obj:
        """Poll until ``pred`` holds, then keep that state (a short one, such as a rollout, is
        caught by polling fast)."""
        deadline = time.monotonic() + timeout
        last: Obj | None = None
        while time.monotonic() < deadline:
            last = get(self.cluster, kind, obj_name, "-n", NS)
            if last is not None and pred(last):
                self.taken[name] = last
                return last
            time.sleep(interval)
        pytest.fail(f"{name}: {kind} {obj_name} never got there; last: {json.dumps(last)[:3000]}")


def cond(type_: str, status: str, reason: str | None = None) -> Callable[[Obj], bool]:
    """The object has ``type_`` = ``status`` (with ``reason``) for its current generation."""

    def check(obj: Obj) -> bool:
        c = condition(obj, type_)
        return (
            has_condition(type_, status)(obj)
            and c is not None
            and (reason is None or c.get("reason") == reason)
        )

    return check


def phase(value: str) -> Callable[[Obj], bool]:
    return lambda obj: obj.get("status", {}).get("phase") == value


@pytest.fixture(scope="module")
def env(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    prepare_namespace(cluster, NS)
    op = Operator(cluster.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log", NS)
    try:
        yield op
    finally:
        op.stop()
        print(op.log.read_text()[-5000:])
        # Its model servers run as local processes until their pods go.
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def snapshots(cluster: LocalCluster, env: Operator) -> dict[str, Obj]:
    """Walk every scenario once; see the module docstring."""
    s = Snapshots(cluster)
    # Before the operator runs: objects without status.
    apply(
        cluster,
        model("iris", serving=serving()),
        training_run("iris-1"),
        model_version("iris", "manual"),
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "iris"},
            "spec": {"modelRef": {"name": "iris"}},
        },
        namespace=NS,
    )
    s.take("model-new", "model", "iris")
    s.take("trainingrun-new", "trainingrun", "iris-1")
    s.take("modelversion-new", "modelversion", "iris-manual")
    s.take("driftpolicy-new", "driftpolicy", "iris")
    env.start()

    # TrainingRuns in every phase.
    apply(
        cluster,
        training_run("iris-later", suspend=True),
        training_run("iris-sleepy", command=["python", "-c", "import time; time.sleep(600)"]),
        training_run("iris-broken", command=["python", "-c", "import sys; sys.exit(3)"]),
        namespace=NS,
    )
    s.when("trainingrun-suspended", "trainingrun", "iris-later", phase("Suspended"))
    s.when("trainingrun-running", "trainingrun", "iris-sleepy", cond("Running", "True"))
    cluster.kubectl("delete", "trainingrun", "iris-sleepy", "-n", NS, "--wait=false")
    s.when("trainingrun-failed", "trainingrun", "iris-broken", cond("Succeeded", "False"))
    s.when("trainingrun-succeeded", "trainingrun", "iris-1", cond("Succeeded", "True"), timeout=240)
    s.when("modelversion-registered", "modelversion", "iris-1", cond("Ready", "True"))
    # A Model asked to serve, with nothing chosen yet; a DriftPolicy with nothing to watch.
    s.when("model-no-version", "model", "iris", cond("Ready", "False", "NoVersionSelected"))
    s.when("driftpolicy-not-ready", "driftpolicy", "iris", cond("Ready", "False"))

    # Pin version 1: catch the rollout under way, then serving.
    apply(cluster, model("iris", serving=serving(version="1")), namespace=NS)
    s.when("model-rolling-out", "model", "iris", cond("Progressing", "True"))
    s.when("model-serving", "model", "iris", cond("Ready", "True", "Serving"), timeout=120)
    s.when(
        "modelversion-serving",
        "modelversion",
        "iris-1",
        lambda mv: phase("Serving")(mv) and cond("Ready", "True")(mv),
    )

    # Pin a version whose artifact digest is wrong: the server never gets ready, the rollout
    # passes its deadline and is rolled back to version 1.
    good = s.taken["modelversion-registered"]["spec"]["artifact"]
    apply(cluster, model_version("iris", "bad", {**good, "digest": DIGEST}), namespace=NS)
    apply(cluster, model("iris", serving=serving(version="bad")), namespace=NS)
    s.when(
        "model-rollout-failed",
        "model",
        "iris",
        cond("Degraded", "True", "RolloutFailed"),
        timeout=180,
    )
    s.when(
        "modelversion-rollout-failed",
        "modelversion",
        "iris-bad",
        cond("Ready", "False", "RolloutFailed"),
    )

    # A pin to a version that does not exist (yet).
    apply(cluster, model("ghost", serving=serving(version="9")), namespace=NS)
    s.when("model-version-not-found", "model", "ghost", cond("Degraded", "True", "VersionNotFound"))

    # Retention retires the older of two versions nobody serves.
    apply(cluster, model_version("old", "a"), namespace=NS)
    time.sleep(1.1)  # creationTimestamp has whole seconds; retention orders by it
    apply(cluster, model_version("old", "b"), namespace=NS)
    apply(cluster, model("old", retention={"keepLast": 1}), namespace=NS)
    s.when("model-registry-only", "model", "old", cond("Ready", "True", "RegistryOnly"))
    s.when("modelversion-retired", "modelversion", "old-a", phase("Retired"))

    # A spec change the operator has not seen: stop it first, so that it cannot.
    env.stop()
    cluster.kubectl(
        "patch", "model", "ghost", "-n", NS, "--type=merge", "-p", '{"spec":{"owner":"ml"}}'
    )
    s.take("model-stale", "model", "ghost")
    env.start()

    if os.environ.get("MODELOPS_WRITE_GITOPS_FIXTURES") == "1":
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for name, obj in s.taken.items():
            obj["metadata"].pop("managedFields", None)
            (FIXTURES / f"{name}.json").write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    return s.taken


def test_every_expected_state_was_reached(snapshots: dict[str, Obj]) -> None:
    assert set(snapshots) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_live_health(snapshots: dict[str, Obj], name: str) -> None:
    obj = snapshots[name]
    expected = EXPECTED[name]
    assert argocd_health(obj)[0] == expected.argocd
    result = kstatus(obj)
    assert result["status"] == expected.kstatus, result
    assert result.get("flux") == expected.flux, result


# -- field managers -----------------------------------------------------------------------------


GITOPS_MODEL = model(
    "declared",
    description="Declared in Git, applied by a GitOps tool.",
    owner="ml-platform@example.com",
    serving={"version": "1", "replicas": 1},
)


def gitops_apply(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        *args,
        "--server-side",
        f"--field-manager={GITOPS_MANAGER}",
        "-n",
        NS,
        "-f",
        "-",
        input=yaml.safe_dump(GITOPS_MODEL),
        check=False,
    )


def managers(obj: Obj) -> dict[str, set[str]]:
    """Top-level fields (spec, status, metadata…) each field manager owns."""
    out: dict[str, set[str]] = {}
    for entry in obj["metadata"]["managedFields"]:
        fields = {k.removeprefix("f:") for k in entry.get("fieldsV1", {}) if k.startswith("f:")}
        out.setdefault(entry["manager"], set()).update(fields)
    return out


def test_gitops_apply_twice_no_diff_no_fight(
    cluster: LocalCluster, env: Operator, snapshots: dict[str, Obj]
) -> None:
    first = gitops_apply(cluster, "apply")
    assert first.returncode == 0, first.stderr
    ready = wait(
        cluster, ["model", "declared", "-n", NS], has_condition("Ready", "False"), timeout=60
    )
    # The operator has written status; a second apply of the same file changes nothing.
    second = gitops_apply(cluster, "apply")
    assert second.returncode == 0, second.stderr
    assert "unchanged" in second.stdout or "serverside-applied" in second.stdout
    again = get(cluster, "model", "declared", "-n", NS, "--show-managed-fields")
    assert again is not None
    assert again["metadata"]["generation"] == ready["metadata"]["generation"] == 1
    owners = managers(again)
    assert owners[GITOPS_MANAGER] >= {"spec"}
    assert "status" not in owners[GITOPS_MANAGER]
    assert owners["modelops"] == {"status"}
    assert all("spec" not in fields for m, fields in owners.items() if m != GITOPS_MANAGER)
    spec_entries = [
        e for e in again["metadata"]["managedFields"] if "f:spec" in e.get("fieldsV1", {})
    ]
    assert [(e["manager"], e["operation"]) for e in spec_entries] == [(GITOPS_MANAGER, "Apply")]
    status_entries = [e for e in again["metadata"]["managedFields"] if e["manager"] == "modelops"]
    assert {e.get("subresource") for e in status_entries} == {"status"}
    # What a GitOps tool computes before syncing: nothing to do.
    diff = gitops_apply(cluster, "diff")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert diff.stdout == ""
    # The yaml view the task names shows the same: spec by the GitOps manager only.
    shown = cluster.kubectl(
        "get", "model", "declared", "-n", NS, "-o", "yaml", "--show-managed-fields"
    ).stdout
    assert f"manager: {GITOPS_MANAGER}" in shown
    assert "manager: modelops" in shown


def test_operator_never_writes_a_spec(
    cluster: LocalCluster, env: Operator, snapshots: dict[str, Obj]
) -> None:
    """Over everything this module did, the operator wrote only status, labels of versions,
    the objects it owns and events — never the spec of an object someone else declared."""
    audit = Path(cluster.audit_log)
    declared = {"models", "modelversions", "trainingruns", "driftpolicies"}
    writes = []
    for line in audit.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef", {})
        if (
            event.get("userAgent", "").startswith("modelops/")
            and ref.get("namespace") == NS
            and ref.get("resource") in declared
        ):
            writes.append((event["verb"], ref["resource"], ref.get("subresource")))
    assert writes
    for verb, resource, subresource in writes:
        if subresource == "status":
            continue
        # Creating ModelVersions (registration) and TrainingRuns (retraining), labelling
        # ModelVersions: never an update of a declared spec.
        assert (verb, resource) in {
            ("create", "modelversions"),
            ("create", "trainingruns"),
            ("patch", "modelversions"),
        }, (verb, resource, subresource)
