"""Governance on the local control plane: lineage labels answer "trained on dataset X" across
namespaces, approvals are recorded by the API server (the approval-record admission policies in
``manifests/admission/approval_record_*.yaml``), the Model's history names who approved what it
promoted. The operator runs as a process; the trainer and the server really run on the local
runner. People are impersonated (``kubectl --as alice``) and hold only the aggregated
``modelops-edit`` role in the namespace."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml

from harness import realnode
from harness.cluster import REPO, LocalCluster
from modelops import datasets
from tests.cluster.kube import (
    TRAINER_IMAGE,
    Operator,
    apply,
    get,
    has_condition,
    plugin,
    prepare_namespace,
    training_run,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NS = "governance"
OTHER_NS = "governance-other"
POLICIES = [
    REPO / "manifests" / "admission" / f"approval_record_{part}.yaml" for part in ("stamp", "guard")
]
EDIT_ROLE = REPO / "manifests" / "rbac" / "edit_role.yaml"
IRIS_SHA256 = hashlib.sha256(datasets.path("iris.csv").read_bytes()).hexdigest()
DATASET_LABEL = f"modelops.dev/dataset-digest=sha256-{IRIS_SHA256[:56]}"
PEOPLE = ("alice", "bob")


def as_user(
    cluster: LocalCluster, user: str, *args: str, namespace: str = NS
) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("--as", user, "-n", namespace, *args, check=False)


def names(listing: str) -> set[tuple[str, str]]:
    """(namespace, name) of the listed objects in this module's namespaces (other test modules
    train on the same bundled dataset elsewhere in the shared cluster)."""
    return {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in json.loads(listing)["items"]
        if o["metadata"]["namespace"] in (NS, OTHER_NS)
    }


def unapproved_version(name: str, **annotations: str) -> dict[str, Any]:
    """A version of model ``registry`` (which has no Model: nothing serves or promotes it)."""
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": f"registry-{name}", "namespace": NS, "annotations": annotations},
        "spec": {
            "modelRef": {"name": "registry"},
            "version": name,
            "artifact": {
                "uri": f"pvc://models/registry/{name}",
                "digest": "sha256:" + "1" * 64,
                "format": "modelops-linear/v1",
            },
        },
    }


def wait_for_policies(cluster: LocalCluster) -> None:
    """Admission policies act once the API server's informers have them: dry-run an approval
    until it comes back stamped, and a forged record until it is refused."""
    approved = unapproved_version("probe")
    approved["metadata"]["labels"] = {"modelops.dev/approved": "true"}
    forged = unapproved_version("probe", **{"modelops.dev/approved-by": "mallory"})
    deadline = time.monotonic() + 30
    while True:
        # Refusals while the API server compiles a new policy (failurePolicy Fail) mean "not yet".
        stamped = cluster.kubectl(
            "create",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(approved),
            check=False,
        )
        annotations = (
            json.loads(stamped.stdout)["metadata"].get("annotations", {})
            if stamped.returncode == 0
            else {}
        )
        refused = cluster.kubectl(
            "create", "--dry-run=server", "-f", "-", input=json.dumps(forged), check=False
        )
        if "modelops.dev/approved-by" in annotations and refused.returncode != 0:
            return
        assert time.monotonic() < deadline, (
            f"the approval-record policies never took effect: {stamped.stderr} {refused.stderr}"
        )
        time.sleep(0.2)


@pytest.fixture(scope="module")
def env(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    prepare_namespace(cluster, NS)
    cluster.kubectl("create", "namespace", OTHER_NS)
    cluster.kubectl("apply", "--server-side", "-f", str(EDIT_ROLE))
    for user in PEOPLE:
        cluster.kubectl(
            "create",
            "rolebinding",
            f"{user}-edit",
            "-n",
            NS,
            "--clusterrole=modelops-edit",
            f"--user={user}",
        )
    for policy in POLICIES:
        cluster.kubectl("apply", "--server-side", "-f", str(policy))
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {
                "serving": {
                    "promotion": "Automatic",
                    "requireApproval": True,
                    "progressDeadlineSeconds": 60,
                    "command": ["python", "-m", "modelops.runtimes.server"],
                },
            },
        },
        namespace=NS,
    )
    op = Operator(cluster.kubeconfig, tmp_path_factory.mktemp("op") / "operator.log", NS)
    try:
        wait_for_policies(cluster)
        op.start()
        yield op
    finally:
        op.stop()
        if op.log.exists():
            print(op.log.read_text()[-5000:])
        for policy in POLICIES:
            cluster.kubectl("delete", "-f", str(policy), "--ignore-not-found", check=False)
        for ns in (NS, OTHER_NS):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def trained(cluster: LocalCluster, run: str, **spec: Any) -> dict[str, Any]:
    apply(cluster, training_run(run, **spec), namespace=NS)
    done = wait_for(
        cluster,
        ["trainingrun", run, "-n", NS],
        has_condition("Succeeded"),
        timeout=240,
        what=f"TrainingRun {run} to succeed",
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    mv = get(cluster, "modelversion", done["status"]["modelVersion"], "-n", NS)
    assert mv is not None
    return mv


def test_versions_trained_on_a_dataset_are_found_by_label_across_namespaces(
    cluster: LocalCluster, env: Operator
) -> None:
    # The trainer image pinned by the digest the nodes know it by, as a registry would serve it.
    digest = realnode.image_digest(cluster, TRAINER_IMAGE).removeprefix("sha256:")
    mv = trained(cluster, "iris-1", image=f"{TRAINER_IMAGE.rsplit(':', 1)[0]}@sha256:{digest}")
    labels = mv["metadata"]["labels"]
    assert labels["modelops.dev/dataset-digest"] == f"sha256-{IRIS_SHA256[:56]}"
    assert labels["modelops.dev/image-digest"] == f"sha256-{digest[:56]}"
    assert labels["modelops.dev/trainingrun"] == "iris-1"
    assert "modelops.dev/parent-version" not in labels  # nothing served when it was trained
    # A version in another namespace trained on other data is not found.
    elsewhere = unapproved_version("x")
    elsewhere["metadata"].update(
        namespace=OTHER_NS, labels={"modelops.dev/dataset-digest": "sha256-" + "0" * 56}
    )
    apply(cluster, elsewhere)
    found = cluster.kubectl("get", "mv", "-A", "-l", DATASET_LABEL, "-o", "json").stdout
    assert names(found) == {(NS, "iris-1")}
    by_image = f"modelops.dev/image-digest=sha256-{digest[:56]}"
    assert names(cluster.kubectl("get", "mv", "-A", "-l", by_image, "-o", "json").stdout) == {
        (NS, "iris-1")
    }


def test_an_approval_records_the_approver_and_its_time(
    cluster: LocalCluster, env: Operator
) -> None:
    before = get(cluster, "mv", "iris-1", "-n", NS)
    assert before is not None
    out = as_user(cluster, "alice", "label", "mv", "iris-1", "modelops.dev/approved=true")
    assert out.returncode == 0, out.stderr
    mv = get(cluster, "mv", "iris-1", "-n", NS)
    assert mv is not None
    annotations = mv["metadata"]["annotations"]
    assert annotations["modelops.dev/approved-by"] == "alice"
    approved_at = datetime.fromisoformat(annotations["modelops.dev/approved-at"])
    assert approved_at >= datetime.fromisoformat(before["metadata"]["creationTimestamp"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ["annotate", "--overwrite", "mv", "iris-1", "modelops.dev/approved-by=bob"],
            "the approval record cannot be changed or removed while modelops.dev/approved=true",
        ),
        (
            ["annotate", "mv", "iris-1", "modelops.dev/approved-by-"],
            "the approval record cannot be changed or removed while modelops.dev/approved=true",
        ),
        (
            [
                "annotate",
                "--overwrite",
                "mv",
                "iris-1",
                "modelops.dev/approved-at=2020-01-01T00:00:00Z",
            ],
            "the time cannot be set by hand",
        ),
    ],
    ids=["taken-over", "removed", "backdated"],
)
def test_the_record_of_a_standing_approval_cannot_be_changed(
    cluster: LocalCluster, env: Operator, change: list[str], message: str
) -> None:
    out = as_user(cluster, "bob", *change)
    assert out.returncode != 0
    assert "ValidatingAdmissionPolicy 'modelops-approval-record'" in out.stderr
    assert message in out.stderr
    mv = get(cluster, "mv", "iris-1", "-n", NS)
    assert mv is not None
    assert mv["metadata"]["annotations"]["modelops.dev/approved-by"] == "alice"


def test_a_forged_record_is_refused_and_an_approval_names_its_real_author(
    cluster: LocalCluster, env: Operator
) -> None:
    forged = unapproved_version("forged", **{"modelops.dev/approved-by": "alice"})
    out = cluster.kubectl(
        "--as", "bob", "create", "-f", "-", input=yaml.safe_dump(forged), check=False
    )
    assert out.returncode != 0
    assert (
        "is written by the API server and names the approving user (bob), not alice" in out.stderr
    )
    assert get(cluster, "mv", "registry-forged", "-n", NS) is None
    # Approving with a record typed in: the API server writes the real one over it.
    apply(cluster, unapproved_version("v9"))
    patch = {
        "metadata": {
            "labels": {"modelops.dev/approved": "true"},
            "annotations": {"modelops.dev/approved-by": "alice"},
        }
    }
    out = as_user(
        cluster, "bob", "patch", "mv", "registry-v9", "--type=merge", "-p", json.dumps(patch)
    )
    assert out.returncode == 0, out.stderr
    mv = get(cluster, "mv", "registry-v9", "-n", NS)
    assert mv is not None
    assert mv["metadata"]["annotations"]["modelops.dev/approved-by"] == "bob"


def test_the_promotion_names_its_approver_and_the_model_its_data(
    cluster: LocalCluster, env: Operator
) -> None:
    model = wait_for(
        cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("productionVersion") == "1",
        timeout=180,
        what="the approved version 1 to be promoted",
    )
    promoted = [h for h in model["status"]["history"] if h["kind"] == "Promoted"]
    assert promoted[-1]["to"] == "1"
    assert promoted[-1]["approvedBy"] == "alice"
    assert model["status"]["datasets"] == [
        {"version": "1", "uri": "pvc://datasets/iris.csv", "digest": f"sha256:{IRIS_SHA256}"}
    ]


def test_a_retrained_version_names_its_parent(cluster: LocalCluster, env: Operator) -> None:
    mv = trained(cluster, "iris-2")
    assert mv["metadata"]["labels"]["modelops.dev/parent-version"] == "1"
    children = cluster.kubectl(
        "get", "mv", "-n", NS, "-l", "modelops.dev/parent-version=1", "-o", "json"
    ).stdout
    assert names(children) == {(NS, "iris-2")}
    assert names(cluster.kubectl("get", "mv", "-A", "-l", DATASET_LABEL, "-o", "json").stdout) == {
        (NS, "iris-1"),
        (NS, "iris-2"),
    }


# -- the kubectl plugin, found by kubectl on PATH ------------------------------------------------


def production(cluster: LocalCluster, version: str) -> dict[str, Any]:
    return wait_for(
        cluster,
        ["model", "iris", "-n", NS],
        lambda m: m.get("status", {}).get("productionVersion") == version,
        timeout=180,
        what=f"version {version} to serve production",
    )


def test_plugin_lineage_from_dataset_to_the_serving_model(
    cluster: LocalCluster, env: Operator
) -> None:
    tree = plugin(cluster, "lineage", "--dataset", f"sha256:{IRIS_SHA256}", "-n", NS).stdout
    assert tree.splitlines() == [
        f"dataset sha256:{IRIS_SHA256}  pvc://datasets/iris.csv",
        f"├── ModelVersion {NS}/iris-1  version 1  Serving  approved by alice",
        f"│   └── Model {NS}/iris  serves it (production)",
        f"└── ModelVersion {NS}/iris-2  version 2  Registered  parent 1",
    ]
    (group,) = json.loads(
        plugin(cluster, "lineage", "-n", NS, "--model", "iris", "-o", "json").stdout
    )
    assert group["digest"] == f"sha256:{IRIS_SHA256}"
    assert [(v["name"], v["servedAs"]) for v in group["versions"]] == [
        ("iris-1", "production"),
        ("iris-2", None),
    ]


def test_plugin_approve_records_the_user_and_automatic_promotion_follows(
    cluster: LocalCluster, env: Operator
) -> None:
    refused = plugin(cluster, "promote", "iris", "2", "-n", NS, check=False)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: Model {NS}/iris promotes automatically (spec.serving.promotion: Automatic); "
        "a version can be pinned only with promotion Manual\n"
    )
    out = plugin(cluster, "approve", "iris", "2", "-n", NS, "--as", "bob").stdout
    assert out.startswith(f"ModelVersion {NS}/iris-2 approved (recorded: approved by bob at ")
    model = production(cluster, "2")
    assert model["status"]["history"][-1]["approvedBy"] == "bob"
    history = yaml.safe_load(plugin(cluster, "history", "iris", "-n", NS, "-o", "yaml").stdout)
    assert [(h["kind"], h.get("from"), h["to"], h.get("approvedBy")) for h in history] == [
        ("Promoted", None, "1", "alice"),
        ("Promoted", "1", "2", "bob"),
    ]
    table = plugin(cluster, "history", "iris", "-n", NS).stdout.splitlines()
    assert table[0].split()[:6] == ["TIME", "KIND", "FROM", "TO", "APPROVED", "BY"]
    assert table[-1].split()[1:5] == ["Promoted", "1", "2", "bob"]


def test_plugin_rollback_and_promote_pin_the_version(cluster: LocalCluster, env: Operator) -> None:
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "iris"},
            "spec": {
                "serving": {
                    "version": "2",
                    "progressDeadlineSeconds": 60,
                    "command": ["python", "-m", "modelops.runtimes.server"],
                },
            },
        },
        namespace=NS,
    )
    out = plugin(cluster, "rollback", "iris", "-n", NS).stdout
    assert out == (
        f"Model {NS}/iris rolled back: spec.serving.version=1 "
        "(production is 2 until it rolls out)\n"
    )
    production(cluster, "1")
    missing = plugin(cluster, "promote", "iris", "7", "-n", NS, check=False)
    assert missing.returncode == 1
    assert missing.stderr == f"error: version 7 of Model {NS}/iris not found\n"
    plugin(cluster, "promote", "iris", "2", "-n", NS)
    model = production(cluster, "2")
    assert model["spec"]["serving"]["version"] == "2"
    assert [(h["from"], h["to"]) for h in model["status"]["history"][-2:]] == [
        ("2", "1"),
        ("1", "2"),
    ]


def test_plugin_drift_chart_from_the_policy_status(cluster: LocalCluster, env: Operator) -> None:
    # In a namespace no operator watches: the status is exactly what is written here.
    apply(
        cluster,
        {
            "apiVersion": "modelops.dev/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "iris-drift", "namespace": OTHER_NS},
            "spec": {"modelRef": {"name": "iris"}},
        },
    )
    status = {
        "version": "1",
        "samples": 400,
        "lastEvaluation": "2026-12-03T12:00:00Z",
        "datasetDrift": True,
        "driftedShare": 0.5,
        "topFeatures": [
            {
                "name": "petal_length",
                "method": "psi",
                "score": 0.3,
                "threshold": 0.1,
                "drifted": True,
            },
            {
                "name": "sepal_width",
                "method": "ks",
                "score": 0.5,
                "threshold": 0.05,
                "drifted": False,
            },
        ],
    }
    cluster.kubectl(
        "patch",
        "driftpolicy",
        "iris-drift",
        "-n",
        OTHER_NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    chart = plugin(cluster, "drift", "iris-drift", "-n", OTHER_NS).stdout.splitlines()
    assert chart[0].startswith(f"DriftPolicy {OTHER_NS}/iris-drift: version 1, 400 samples")
    assert chart[0].endswith("DATASET DRIFT")
    assert "█" * 20 + "│" + "█" * 20 + "  DRIFT" in chart[1]
    assert chart[2].endswith("  ok")
    as_json = json.loads(
        plugin(cluster, "drift", "iris-drift", "-n", OTHER_NS, "-o", "json").stdout
    )
    assert as_json["topFeatures"][0]["name"] == "petal_length"
    gone = plugin(cluster, "drift", "nope", "-n", OTHER_NS, check=False)
    assert gone.returncode == 1
    assert gone.stderr == f"error: DriftPolicy {OTHER_NS}/nope not found\n"
