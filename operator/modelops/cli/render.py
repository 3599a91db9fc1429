"""What ``kubectl modelops`` prints: pure functions from API objects (plain dicts) to text or
to the documents ``--output json|yaml`` prints. No API access here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelops.core import labels

Obj = dict[str, Any]

BAR_WIDTH = 40
"""Columns of a drift bar; the threshold sits in the middle, so a bar reaching past it drifted."""
P_VALUE_METHODS = frozenset({"ks", "chi2"})
"""Methods whose score is a p-value: a feature drifts when it is at most the threshold."""


# -- lineage ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """How a Model serves a version: ``production`` or ``canary``."""

    namespace: str
    model: str
    role: str


def serving_roles(models: Iterable[Obj]) -> dict[tuple[str, str, str], Served]:
    """(namespace, model, version) -> how that Model serves it, from the Models' status."""
    out: dict[tuple[str, str, str], Served] = {}
    for m in models:
        ns, name = m["metadata"].get("namespace", ""), m["metadata"]["name"]
        status = m.get("status") or {}
        for role, key in (("production", "productionVersion"), ("canary", "canaryVersion")):
            if status.get(key):
                out[(ns, name, status[key])] = Served(ns, name, role)
    return out


def lineage(versions: Iterable[Obj], models: Iterable[Obj]) -> list[Obj]:
    """Group ModelVersions by the dataset they were trained on, each with the Model that serves
    it (if any): the document ``lineage --output json|yaml`` prints, datasets sorted by digest,
    versions by namespace and name."""
    served = serving_roles(models)
    groups: dict[str, Obj] = {}
    for mv in versions:
        spec, meta = mv.get("spec") or {}, mv["metadata"]
        provenance = spec.get("provenance") or {}
        dataset = provenance.get("dataset") or {}
        digest = dataset.get("digest") or ""
        group = groups.setdefault(digest, {"digest": digest or None, "uris": [], "versions": []})
        if dataset.get("uri") and dataset["uri"] not in group["uris"]:
            group["uris"].append(dataset["uri"])
        ns = meta.get("namespace", "")
        model = (spec.get("modelRef") or {}).get("name", "")
        version = spec.get("version", "")
        how = served.get((ns, model, version))
        group["versions"].append(
            {
                "namespace": ns,
                "name": meta["name"],
                "model": model,
                "version": version,
                "phase": (mv.get("status") or {}).get("phase"),
                "parentVersion": provenance.get("parentVersion"),
                "trainingRun": (provenance.get("trainingRun") or {}).get("name"),
                "approvedBy": (meta.get("annotations") or {}).get(labels.APPROVED_BY),
                "servedAs": how.role if how else None,
            }
        )
    out = sorted(groups.values(), key=lambda g: (g["digest"] is None, g["digest"] or ""))
    for g in out:
        g["versions"].sort(key=lambda v: (v["namespace"], v["name"]))
    return out


def lineage_tree(groups: Sequence[Obj]) -> str:
    """The lineage document as a tree: dataset, then each version trained on it, then the
    Model serving that version."""
    if not groups:
        return "No ModelVersions found.\n"
    lines: list[str] = []
    for group in groups:
        uris = ", ".join(group["uris"])
        head = f"dataset {group['digest']}" if group["digest"] else "dataset not recorded"
        lines.append(head + (f"  {uris}" if uris else ""))
        versions = group["versions"]
        for i, v in enumerate(versions):
            last = i == len(versions) - 1
            facts = [f"version {v['version']}", v["phase"] or "not reconciled yet"]
            if v["parentVersion"]:
                facts.append(f"parent {v['parentVersion']}")
            if v["approvedBy"]:
                facts.append(f"approved by {v['approvedBy']}")
            lines.append(
                f"{'└── ' if last else '├── '}ModelVersion {v['namespace']}/{v['name']}  "
                + "  ".join(facts)
            )
            if v["servedAs"]:
                lines.append(
                    f"{'    ' if last else '│   '}└── Model {v['namespace']}/{v['model']}  "
                    f"serves it ({v['servedAs']})"
                )
    return "\n".join(lines) + "\n"


# -- drift ------------------------------------------------------------------------------------


def _severity(method: str, score: float, threshold: float) -> float:
    """How far a score is towards (1.0) and past its threshold, capped at 2."""
    if method in P_VALUE_METHODS:
        ratio = threshold / score if score > 0 else 2.0
    else:
        ratio = score / threshold if threshold > 0 else 2.0
    return min(max(ratio, 0.0), 2.0)


def drift_chart(policy: Obj) -> str:
    """Per-feature drift scores of a DriftPolicy's last evaluation against their thresholds,
    as one bar per feature: the threshold is the ``│`` in the middle of each bar."""
    meta, status = policy["metadata"], policy.get("status") or {}
    title = f"DriftPolicy {meta.get('namespace', '')}/{meta['name']}"
    features = status.get("topFeatures") or []
    if not status.get("lastEvaluation"):
        return f"{title}: not evaluated yet\n"
    share = status.get("driftedShare")
    summary = [
        f"version {status.get('version', '?')}",
        f"{status.get('samples', 0)} samples",
        f"evaluated {status['lastEvaluation']}",
    ]
    if share is not None:
        summary.append(f"drifted share {share:.2f}")
    summary.append("DATASET DRIFT" if status.get("datasetDrift") else "no dataset drift")
    lines = [f"{title}: " + ", ".join(summary)]
    if not features:
        lines.append("  no feature scores in the last window")
        return "\n".join(lines) + "\n"
    width = max(len(f["name"]) for f in features)
    half = BAR_WIDTH // 2
    for f in features:
        method, score, threshold = f["method"], float(f["score"]), float(f["threshold"])
        filled = round(_severity(method, score, threshold) * half)
        cells = ["█" if i < filled else " " for i in range(BAR_WIDTH)]
        cells.insert(half, "│")
        compare = "≤" if method in P_VALUE_METHODS else "≥"
        verdict = "DRIFT" if f.get("drifted") else "ok"
        lines.append(
            f"  {f['name']:<{width}}  {method:<11} {score:8.4f} {compare} {threshold:<7.4g} "
            f"{''.join(cells)}  {verdict}"
        )
    lines.append("  (each bar is the score relative to its threshold, the │; past it is drift)")
    return "\n".join(lines) + "\n"


# -- history ----------------------------------------------------------------------------------


def history_table(model: Obj) -> str:
    """The Model's served-version history as a table, oldest first."""
    entries: Sequence[Mapping[str, Any]] = (model.get("status") or {}).get("history") or []
    if not entries:
        meta = model["metadata"]
        return f"Model {meta.get('namespace', '')}/{meta['name']} has no history yet.\n"
    rows = [("TIME", "KIND", "FROM", "TO", "APPROVED BY", "REASON")]
    rows += [
        (
            e.get("time", ""),
            e.get("kind", ""),
            e.get("from") or "-",
            e.get("to") or "-",
            e.get("approvedBy") or "-",
            e.get("reason", ""),
        )
        for e in entries
    ]
    return _table(rows)


def quarantine_table(items: Sequence[Mapping[str, Any]]) -> str:
    """The Quarantines in force as a table, by name."""
    if not items:
        return "No Quarantine in force.\n"
    rows = [("NAME", "TAINTED", "AFFECTED", "DECLARED BY", "REASON")]
    for q in sorted(items, key=lambda q: q["metadata"]["name"]):
        spec, status = q.get("spec") or {}, q.get("status") or {}
        tainted = (
            f"dataset {spec['datasetDigest']}"
            if spec.get("datasetDigest")
            else f"image {spec.get('imageDigest', '')}"
        )
        count = status.get("affectedCount")
        rows.append(
            (
                q["metadata"]["name"],
                tainted,
                "-" if count is None else str(count),
                status.get("declaredBy") or "-",
                spec.get("reason", ""),
            )
        )
    return _table(rows)


def _table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last one (free text) is not padded."""
    last = len(rows[0]) - 1
    widths = [max(len(r[i]) for r in rows) for i in range(last)]
    return (
        "\n".join(
            "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:last]))
            + "   "
            + row[last]
            for row in rows
        )
        + "\n"
    )


def previous_version(model: Obj) -> str | None:
    """The version that served production before the current one: the ``from`` of the newest
    promotion to the current production version, or None if there was none."""
    status = model.get("status") or {}
    current = status.get("productionVersion")
    for entry in reversed(status.get("history") or []):
        if entry.get("kind") == "Promoted" and entry.get("to") == current:
            return entry.get("from") or None
    return None
