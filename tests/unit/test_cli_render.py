"""What ``kubectl modelops`` prints, from plain API objects: lineage grouping and tree, the drift
bar chart, the history table, the version a rollback goes back to. No cluster; the commands
themselves run against a real API server in ``tests/cluster/test_governance.py``."""

from __future__ import annotations

from typing import Any

from modelops.cli import render

JUNE = "sha256:" + "a" * 64
JULY = "sha256:" + "b" * 64


def mv(ns: str, model: str, version: str, dataset: str | None, **extra: Any) -> dict[str, Any]:
    provenance: dict[str, Any] = {}
    if dataset:
        provenance["dataset"] = {"uri": f"pvc://datasets/{dataset[-4:]}.csv", "digest": dataset}
    if "parent" in extra:
        provenance["parentVersion"] = extra["parent"]
    meta: dict[str, Any] = {"name": f"{model}-{version}", "namespace": ns}
    if "approved_by" in extra:
        meta["annotations"] = {"modelops.dev/approved-by": extra["approved_by"]}
    return {
        "metadata": meta,
        "spec": {"modelRef": {"name": model}, "version": version, "provenance": provenance},
        "status": {"phase": extra.get("phase", "Registered")},
    }


def model(ns: str, name: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "status": status}


def test_lineage_groups_versions_by_dataset_and_names_what_serves_them() -> None:
    versions = [
        mv("b", "iris", "2", JUNE, parent="1", phase="Canary"),
        mv("a", "iris", "1", JUNE, phase="Serving", approved_by="alice"),
        mv("a", "wine", "1", JULY),
        mv("a", "hand", "1", None),
    ]
    models = [
        model("a", "iris", productionVersion="1"),
        model("b", "iris", productionVersion="0", canaryVersion="2"),
    ]
    groups = render.lineage(versions, models)
    assert [g["digest"] for g in groups] == [JUNE, JULY, None]
    june = groups[0]
    assert june["uris"] == ["pvc://datasets/aaaa.csv"]
    assert [(v["namespace"], v["name"], v["servedAs"]) for v in june["versions"]] == [
        ("a", "iris-1", "production"),
        ("b", "iris-2", "canary"),
    ]
    assert june["versions"][0]["approvedBy"] == "alice"
    assert june["versions"][1]["parentVersion"] == "1"
    assert groups[1]["versions"][0]["servedAs"] is None

    tree = render.lineage_tree(groups)
    assert tree.splitlines()[:5] == [
        f"dataset {JUNE}  pvc://datasets/aaaa.csv",
        "├── ModelVersion a/iris-1  version 1  Serving  approved by alice",
        "│   └── Model a/iris  serves it (production)",
        "└── ModelVersion b/iris-2  version 2  Canary  parent 1",
        "    └── Model b/iris  serves it (canary)",
    ]
    assert "dataset not recorded" in tree


def test_lineage_of_nothing_says_so() -> None:
    assert render.lineage_tree(render.lineage([], [])) == "No ModelVersions found.\n"


def policy(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "iris-drift", "namespace": "ml"}, "status": status}


def test_drift_chart_puts_each_score_against_its_threshold() -> None:
    chart = render.drift_chart(
        policy(
            version="1",
            samples=500,
            lastEvaluation="2026-12-03T12:00:00Z",
            driftedShare=0.5,
            datasetDrift=True,
            topFeatures=[
                # distance 2x its threshold: a full bar, past the marker
                {
                    "name": "petal_length",
                    "method": "psi",
                    "score": 0.2,
                    "threshold": 0.1,
                    "drifted": True,
                },
                # p-value 4x its threshold: a quarter bar, short of the marker
                {
                    "name": "sepal_width",
                    "method": "ks",
                    "score": 0.2,
                    "threshold": 0.05,
                    "drifted": False,
                },
            ],
        )
    )
    lines = chart.splitlines()
    assert lines[0] == (
        "DriftPolicy ml/iris-drift: version 1, 500 samples, evaluated 2026-12-03T12:00:00Z, "
        "drifted share 0.50, DATASET DRIFT"
    )
    petal, sepal = lines[1], lines[2]
    assert "█" * 20 + "│" + "█" * 20 + "  DRIFT" in petal
    assert "0.2000 ≥ 0.1" in petal
    assert "█" * 5 + " " * 15 + "│" + " " * 20 + "  ok" in sepal
    assert "0.2000 ≤ 0.05" in sepal


def test_drift_chart_before_the_first_evaluation() -> None:
    assert render.drift_chart(policy()) == "DriftPolicy ml/iris-drift: not evaluated yet\n"


def test_history_table_and_the_version_a_rollback_returns_to() -> None:
    history = [
        {"time": "t1", "kind": "Promoted", "to": "1", "reason": "pinned"},
        {
            "time": "t2",
            "kind": "Promoted",
            "from": "1",
            "to": "2",
            "approvedBy": "alice",
            "reason": "gates passed",
        },
        {"time": "t3", "kind": "RolledBack", "from": "3", "to": "2", "reason": "crash"},
    ]
    m = model("ml", "iris", productionVersion="2", history=history)
    table = render.history_table(m).splitlines()
    assert table[0].split() == ["TIME", "KIND", "FROM", "TO", "APPROVED", "BY", "REASON"]
    assert table[2].split()[:5] == ["t2", "Promoted", "1", "2", "alice"]
    assert table[3].split()[:5] == ["t3", "RolledBack", "3", "2", "-"]
    # The failed 3 is not where a rollback goes: 2 was promoted from 1.
    assert render.previous_version(m) == "1"
    assert (
        render.previous_version(model("ml", "iris", productionVersion="1", history=history[:1]))
        is None
    )
    assert "has no history yet" in render.history_table(model("ml", "iris"))
