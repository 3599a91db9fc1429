"""Tainted-data quarantine on the local control plane, through the real operator, admission
policies and kubectl plugin.

Three Models serve versions trained on a dataset that is then declared tainted (by a person
holding the ``modelops-quarantine-admin`` role, through ``kubectl modelops quarantine``):

- ``fraud`` (automatic promotion) serves v3, trained from v2, which was trained on the tainted
  data: production goes back to v1, the newest clean version;
- ``legacy`` pins l2, trained on the tainted data: production moves to l1 and the Model says
  the pin must change; pinning l2 again is refused at admission;
- ``solo`` has no clean version: it serves nothing, and says why.

Serving pods go to a KWOK node (a MutatingAdmissionPolicy of the test), so Deployments become
available without running anything. The operator watches every namespace (it then records a
Quarantine's status). The Quarantine's digest is this module's own: other modules' versions,
trained on the bundled datasets in the same cluster, are never reached.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness.cluster import REPO, LocalCluster
from tests.cluster.kube import (
    Operator,
    Sink,
    apply,
    condition,
    events_of,
    get,
    install_crds,
    model_version,
    on_kwok,
    plugin,
    pvc,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

NS = "quarantine"
ON_KWOK = "test-quarantine-on-kwok"
TAINTED = "sha256:" + hashlib.sha256(b"modelops test_quarantine: the poisoned batch").hexdigest()
CLEAN = "sha256:" + hashlib.sha256(b"modelops test_quarantine: clean data").hexdigest()
POLICIES = [
    REPO / "manifests" / "admission" / name
    for name in (
        "quarantined_version_pin.yaml",
        "quarantine_record_stamp.yaml",
        "quarantine_record_guard.yaml",
    )
]
ROLES = REPO / "manifests" / "rbac" / "quarantine_role.yaml"
QUARANTINE = "poisoned-batch"
REACHED = {("fraud", "v2"), ("fraud", "v3"), ("legacy", "l2"), ("solo", "s1")}


def version(model: str, name: str, dataset: str, parent: str | None = None) -> dict[str, Any]:
    provenance: dict[str, Any] = {
        "dataset": {"uri": f"pvc://datasets/{name}.csv", "digest": dataset}
    }
    if parent is not None:
        provenance["parentVersion"] = parent
    return model_version(model, name, metrics={"accuracy": 0.9}, provenance=provenance)


def model(name: str, sink: Sink, **serving: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {
            "serving": {"replicas": 1, "progressDeadlineSeconds": 60, **serving},
            "notifications": {"sinks": [{"url": sink.url}]},
        },
    }


def production(name: str, cluster: LocalCluster, expected: str | None) -> dict[str, Any]:
    return wait_for(
        cluster,
        ["model", name, "-n", NS],
        lambda m: (
            m.get("status", {}).get("productionVersion") == expected
            and not m["status"].get("announcements")
        ),
        timeout=120,
        what=f"Model {name} to serve {expected or 'nothing'}",
    )


def quarantined(cluster: LocalCluster) -> set[tuple[str, str]]:
    out = cluster.kubectl(
        "get", "mv", "-A", "-l", "modelops.dev/quarantined=true", "-o", "json"
    ).stdout
    return {
        (o["spec"]["modelRef"]["name"], o["spec"]["version"])
        for o in json.loads(out)["items"]
        if o["metadata"]["namespace"] == NS
    }


def wait_until(what: str, check: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def serving(
    cluster: LocalCluster, sink: Sink, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    install_crds(cluster)
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("apply", "-f", "-", input=on_kwok(ON_KWOK, NS))
    cluster.kubectl("apply", "--server-side", "-f", str(ROLES))
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        "test-quarantine-alice",
        "--clusterrole=modelops-quarantine-admin",
        "--user=alice",
    )
    for policy in POLICIES:
        cluster.kubectl("apply", "--server-side", "-f", str(policy))
    apply(cluster, pvc("models"), namespace=NS)
    # Created together: automatic promotion orders versions created in the same second by
    # name, so v3 is the newest.
    apply(
        cluster,
        version("fraud", "v1", CLEAN),
        version("fraud", "v2", TAINTED),
        version("fraud", "v3", CLEAN, parent="v2"),
        version("legacy", "l1", CLEAN),
        version("legacy", "l2", TAINTED),
        version("solo", "s1", TAINTED),
        namespace=NS,
    )
    apply(
        cluster,
        model("fraud", sink, promotion="Automatic"),
        model("legacy", sink, version="l2"),
        model("solo", sink, version="s1"),
        namespace=NS,
    )
    op = Operator(
        cluster.kubeconfig,
        tmp_path_factory.mktemp("op") / "operator.log",
        args=["--leader-election-namespace", NS],
    )
    op.start()
    try:
        production("fraud", cluster, "v3")
        production("legacy", cluster, "l2")
        production("solo", cluster, "s1")
        yield op
    finally:
        op.stop()
        if op.log.exists():
            print(op.log.read_text()[-5000:])
        cluster.kubectl("delete", "quarantine", "--all", "--ignore-not-found", check=False)
        for policy in POLICIES:
            cluster.kubectl("delete", "-f", str(policy), "--ignore-not-found", check=False)
        cluster.kubectl(
            "delete",
            "clusterrolebinding",
            "test-quarantine-alice",
            "--ignore-not-found",
            check=False,
        )
        cluster.kubectl(
            "delete",
            "mutatingadmissionpolicybinding,mutatingadmissionpolicy",
            ON_KWOK,
            "--ignore-not-found",
            check=False,
        )
        cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def declared_policies_act(cluster: LocalCluster) -> None:
    """Admission policies act once the API server's informers have them: dry-run a
    Quarantine until it comes back stamped."""
    probe = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Quarantine",
        "metadata": {"name": "probe"},
        "spec": {"datasetDigest": CLEAN, "reason": "probe"},
    }

    def stamped() -> bool:
        out = cluster.kubectl(
            "create",
            "--dry-run=server",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(probe),
            check=False,
        )
        if out.returncode != 0:
            return False
        annotations = json.loads(out.stdout)["metadata"].get("annotations") or {}
        return "modelops.dev/declared-by" in annotations

    wait_until("the quarantine-record stamp to act", stamped, 30)


def test_a_declaration_takes_every_descendant_out_of_production(
    cluster: LocalCluster, serving: Operator, sink: Sink
) -> None:
    declared_policies_act(cluster)
    before = len(sink.events)
    out = plugin(
        cluster,
        "quarantine",
        "--dataset",
        TAINTED,
        "--reason",
        "label poisoning in the batch",
        "--name",
        QUARANTINE,
        "--as",
        "alice",
    ).stdout
    assert out.startswith(f"Quarantine {QUARANTINE} declared (recorded: declared by alice)")

    fraud = production("fraud", cluster, "v1")  # v3 descends from the tainted v2
    entry = fraud["status"]["history"][-1]
    assert (entry["kind"], entry["from"], entry["to"]) == ("Quarantined", "v3", "v1")
    assert f"Quarantine {QUARANTINE}" in entry["reason"]
    assert fraud["status"]["quarantinedVersions"] == ["v2", "v3"]

    legacy = production("legacy", cluster, "l1")
    degraded = condition(legacy, "Degraded")
    assert degraded is not None
    assert degraded["reason"] == "VersionQuarantined"

    solo = production("solo", cluster, None)
    ready = condition(solo, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "VersionQuarantined")
    assert get(cluster, "deployment", "solo-s1", "-n", NS) is None

    assert quarantined(cluster) == REACHED
    v3 = get(cluster, "mv", "fraud-v3", "-n", NS)
    assert v3 is not None
    mark = condition(v3, "Quarantined")
    assert mark is not None
    assert (mark["status"], mark["reason"]) == ("True", "ParentQuarantined")

    # Announced: Events on the Models, a CloudEvent per change, a metric.
    reasons = {e["reason"] for e in events_of(cluster, NS, "fraud")}
    assert {"Quarantined", "VersionQuarantined"} <= reasons
    wait_until("the 7 CloudEvents", lambda: len(sink.events) - before >= 7)
    types = sorted(
        (e["type"], e["data"].get("version") or e["data"].get("from"))
        for e in sink.events[before:]
        if e["subject"].startswith(f"{NS}/")
    )
    assert types == sorted(
        [("dev.modelops.modelversion.quarantined", v) for _, v in REACHED]
        + [
            ("dev.modelops.model.quarantined", "v3"),
            ("dev.modelops.model.quarantined", "l2"),
            ("dev.modelops.model.quarantined", "s1"),
        ]
    )
    metrics = serving.metrics()
    assert f'modelops_quarantined_versions{{model="fraud",namespace="{NS}"}} 2.0' in metrics

    # The declaration's own status: who, and how many versions.
    status = json.loads(cluster.kubectl("get", "quarantine", QUARANTINE, "-o", "json").stdout).get(
        "status", {}
    )
    assert status.get("declaredBy") == "alice"
    listing = json.loads(plugin(cluster, "quarantine", "--list", "-o", "json").stdout)
    assert QUARANTINE in [q["metadata"]["name"] for q in listing]
    wait_until(
        "the Quarantine's status to count 4 versions",
        lambda: (
            json.loads(cluster.kubectl("get", "quarantine", QUARANTINE, "-o", "json").stdout)
            .get("status", {})
            .get("affectedCount")
            == 4
        ),
    )


def test_a_quarantined_version_cannot_be_pinned_or_promoted(
    cluster: LocalCluster, serving: Operator
) -> None:
    refused = plugin(cluster, "promote", "legacy", "l2", "-n", NS, check=False)
    assert refused.returncode == 1
    assert "version l2 of Model quarantine/legacy is quarantined" in refused.stderr
    # Admission refuses a new pin of it, whoever writes it (l2 is pinned already: pin l1 first).
    pin = {"spec": {"serving": {"version": "l1"}}}
    cluster.kubectl("patch", "model", "legacy", "-n", NS, "--type=merge", "-p", json.dumps(pin))
    pin["spec"]["serving"]["version"] = "l2"
    refused = cluster.kubectl(
        "patch", "model", "legacy", "-n", NS, "--type=merge", "-p", json.dumps(pin), check=False
    )
    assert refused.returncode != 0
    assert "ValidatingAdmissionPolicy 'modelops-quarantined-version-pin'" in refused.stderr
    assert "spec.serving.version: version l2 of model legacy is quarantined" in refused.stderr
    legacy = get(cluster, "model", "legacy", "-n", NS)
    assert legacy is not None
    assert legacy["spec"]["serving"]["version"] == "l1"


def test_the_declarer_record_cannot_be_forged_or_changed(
    cluster: LocalCluster, serving: Operator
) -> None:
    forged = {
        "apiVersion": "modelops.dev/v1alpha1",
        "kind": "Quarantine",
        "metadata": {
            "name": "forged",
            "annotations": {"modelops.dev/declared-by": "mallory"},
        },
        "spec": {"imageDigest": CLEAN, "reason": "forged record"},
    }
    out = cluster.kubectl(
        "--as", "alice", "create", "-o", "json", "-f", "-", input=json.dumps(forged)
    ).stdout
    # The API server writes the real declarer over the typed-in one.
    assert json.loads(out)["metadata"]["annotations"]["modelops.dev/declared-by"] == "alice"
    changed = cluster.kubectl(
        "annotate",
        "--overwrite",
        "quarantine",
        "forged",
        "modelops.dev/declared-by=mallory",
        check=False,
    )
    assert changed.returncode != 0
    assert "ValidatingAdmissionPolicy 'modelops-quarantine-record'" in changed.stderr
    assert "the record cannot be changed or removed" in changed.stderr
    # People without the quarantine role may not declare one.
    bob = cluster.kubectl("--as", "bob", "delete", "quarantine", "forged", check=False)
    assert bob.returncode != 0
    assert "forbidden" in bob.stderr.lower()
    cluster.kubectl("delete", "quarantine", "forged")


def test_lifting_restores_eligibility_without_serving_anything_again(
    cluster: LocalCluster, serving: Operator, sink: Sink
) -> None:
    out = plugin(cluster, "quarantine", "--lift", QUARANTINE, "--as", "alice").stdout
    assert out.startswith(f"Quarantine {QUARANTINE} lifted (4 version(s) eligible again)")
    wait_until("the quarantine labels to go", lambda: quarantined(cluster) == set())
    v2 = wait_for(
        cluster,
        ["mv", "fraud-v2", "-n", NS],
        lambda mv: (condition(mv, "Quarantined") or {}).get("reason") == "Lifted",
        timeout=60,
        what="fraud-v2 to be lifted",
    )
    assert (condition(v2, "Quarantined") or {}).get("status") == "False"
    # Nothing serves again by itself: v3 is the newest, but automatic promotion skips it.
    fraud = production("fraud", cluster, "v1")
    assert "quarantinedVersions" not in fraud["status"]
    solo = production("solo", cluster, None)  # its pin still names s1: an edit re-serves it
    ready = condition(solo, "Ready")
    assert ready is not None
    assert ready["reason"] == "QuarantineLifted"
    assert "QuarantineLifted" in {e["reason"] for e in events_of(cluster, NS, "fraud")}
    # A person may pin a lifted version again.
    plugin(cluster, "promote", "legacy", "l2", "-n", NS)
    production("legacy", cluster, "l2")
