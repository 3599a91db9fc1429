"""The retired-version admission rules, enforced by the real API server.

``manifests/admission`` holds two ValidatingAdmissionPolicies (no webhook: the API server
evaluates the CEL itself): a Model may not newly pin a ModelVersion labelled
``modelops.dev/retired=true``, and that label cannot be removed once set. The pin policy's
binding selects its params by label (``paramRef.selector``), so the API server evaluates the
Model once per retired ModelVersion in its namespace; the tests use two retired versions to see
that each one is checked, not just the first. No operator runs here: admission alone decides.
The chart renders the same policies (``tests/unit/test_kustomize.py``).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from harness.cluster import REPO, LocalCluster
from tests.cluster.kube import apply, get, install_crds

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

NS = "admission"
OTHER_NS = "admission-other"
POLICIES = REPO / "manifests" / "admission"
DIGEST = "sha256:" + "1" * 64

Obj = dict[str, Any]


def version(name: str, model: str, *, retired: bool) -> Obj:
    labels = {"modelops.dev/retired": "true"} if retired else {}
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"{model}-{name}", "labels": labels},
        "spec": {
            "modelRef": {"name": model},
            "version": name,
            "artifact": {
                "uri": f"pvc://models/{model}/{name}",
                "digest": DIGEST,
                "format": "modelops-linear/v1",
            },
        },
    }


def pinned(model: str, pin: str | None, **meta: Any) -> Obj:
    serving = {"version": pin} if pin is not None else {}
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": model, **meta},
        "spec": {"description": "admission test", "serving": serving},
    }


def kubectl_apply(
    cluster: LocalCluster, obj: Obj, namespace: str = NS, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=tests",
        "-n",
        namespace,
        *extra,
        "-f",
        "-",
        input=yaml.safe_dump(obj),
        check=False,
    )


def retired_message(version_name: str, model: str) -> str:
    return (
        f"spec.serving.version: version {version_name} of model {model} is retired "
        f"(ModelVersion {model}-{version_name}) and can never be served again"
    )


@pytest.fixture(scope="module")
def policies(cluster: LocalCluster) -> Iterator[None]:
    install_crds(cluster)
    for ns in (NS, OTHER_NS):
        cluster.kubectl("create", "namespace", ns)
    apply(
        cluster,
        version("v1", "iris", retired=True),
        version("v2", "iris", retired=True),
        version("v3", "iris", retired=False),
        namespace=NS,
    )
    apply(cluster, version("v1", "iris", retired=False), namespace=OTHER_NS)
    cluster.kubectl("apply", "--server-side", "-k", str(POLICIES))
    try:
        # Policies take effect once the API server's informers have them: probe with a
        # server-side dry run until the pin is refused.
        deadline = time.monotonic() + 30
        while True:
            probe = kubectl_apply(cluster, pinned("iris", "v1"), NS, "--dry-run=server")
            if probe.returncode != 0:
                break
            assert time.monotonic() < deadline, "the admission policy never took effect"
            time.sleep(0.2)
        yield
    finally:
        cluster.kubectl("delete", "-k", str(POLICIES), "--ignore-not-found", check=False)
        for ns in (NS, OTHER_NS):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_policies_type_check_against_the_crds(cluster: LocalCluster, policies: None) -> None:
    out = json.loads(cluster.kubectl("get", "validatingadmissionpolicies", "-o", "json").stdout)
    ours = [p for p in out["items"] if p["metadata"]["name"].startswith("modelops-")]
    # The two retired-version policies, the approval record, the operator's writes
    # (tests/cluster/test_operator_writes.py), the quarantined-version pin and the quarantine
    # record (tests/cluster/test_quarantine.py).
    assert len(ours) == 6
    for policy in ours:
        checked = policy.get("status", {})
        assert checked.get("observedGeneration") == policy["metadata"]["generation"]
        assert not checked.get("typeChecking", {}).get("expressionWarnings"), checked


@pytest.mark.parametrize("retired", ["v1", "v2"])
def test_pinning_any_retired_version_is_rejected(
    cluster: LocalCluster, policies: None, retired: str
) -> None:
    out = kubectl_apply(cluster, pinned("iris", retired))
    assert out.returncode != 0
    assert retired_message(retired, "iris") in out.stderr
    assert "modelops-retired-version-pin" in out.stderr
    assert get(cluster, "model", "iris", "-n", NS) is None


def test_a_live_version_can_be_pinned_then_not_moved_to_a_retired_one(
    cluster: LocalCluster, policies: None
) -> None:
    out = kubectl_apply(cluster, pinned("iris", "v3"))
    assert out.returncode == 0, out.stderr
    moved = kubectl_apply(cluster, pinned("iris", "v2"))
    assert moved.returncode != 0
    assert retired_message("v2", "iris") in moved.stderr
    model = get(cluster, "model", "iris", "-n", NS)
    assert model is not None
    assert model["spec"]["serving"]["version"] == "v3"


def test_other_models_and_namespaces_are_not_affected(
    cluster: LocalCluster, policies: None
) -> None:
    # Another model's version named v1 is not iris's v1.
    assert kubectl_apply(cluster, pinned("rose", "v1")).returncode == 0
    # Retired versions are looked up in the Model's own namespace only.
    assert kubectl_apply(cluster, pinned("iris", "v1"), OTHER_NS).returncode == 0
    # A Model that pins nothing has nothing to check.
    assert kubectl_apply(cluster, pinned("tulip", None)).returncode == 0


def test_a_pin_kept_while_its_version_retires_does_not_block_other_edits(
    cluster: LocalCluster, policies: None
) -> None:
    apply(cluster, version("v4", "lily", retired=False), namespace=NS)
    assert kubectl_apply(cluster, pinned("lily", "v4")).returncode == 0
    cluster.kubectl("label", "modelversion", "lily-v4", "-n", NS, "modelops.dev/retired=true")
    # Labels, annotations, finalizers: an update that keeps the pin passes.
    relabelled = kubectl_apply(cluster, pinned("lily", "v4", labels={"team": "garden"}))
    assert relabelled.returncode == 0, relabelled.stderr
    # Pinning it anew (after pinning something else) does not.
    assert kubectl_apply(cluster, pinned("lily", None)).returncode == 0
    again = kubectl_apply(cluster, pinned("lily", "v4"))
    assert again.returncode != 0
    assert retired_message("v4", "lily") in again.stderr


@pytest.mark.parametrize(
    "change",
    [["modelops.dev/retired-"], ["modelops.dev/retired=false", "--overwrite"]],
    ids=["remove", "overwrite"],
)
def test_the_retired_label_cannot_be_removed_or_changed(
    cluster: LocalCluster, policies: None, change: list[str]
) -> None:
    out = cluster.kubectl("label", "modelversion", "iris-v1", "-n", NS, *change, check=False)
    assert out.returncode != 0
    assert "modelops-retired-label" in out.stderr
    assert (
        "metadata.labels[modelops.dev/retired]: ModelVersion iris-v1 is retired and the label "
        "cannot be removed or changed"
    ) in out.stderr
    mv = get(cluster, "modelversion", "iris-v1", "-n", NS)
    assert mv is not None
    assert mv["metadata"]["labels"]["modelops.dev/retired"] == "true"


def test_other_labels_of_a_retired_version_stay_editable(
    cluster: LocalCluster, policies: None
) -> None:
    out = cluster.kubectl("label", "modelversion", "iris-v2", "-n", NS, "audited=yes", check=False)
    assert out.returncode == 0, out.stderr


def test_a_live_version_can_still_be_retired(cluster: LocalCluster, policies: None) -> None:
    out = cluster.kubectl(
        "label", "modelversion", "iris-v3", "-n", NS, "modelops.dev/retired=true", check=False
    )
    assert out.returncode == 0, out.stderr
