"""Summaries and the Markdown report of a drift benchmark run (``results.json``).

``run.py`` calls :func:`summarize` and :func:`render`; to re-render a stored run::

    .venv/bin/python benchmarks/drift/report.py benchmarks/drift/results.json

Conventions: a ratio is peer cost / our cost, so above 1 means ours is cheaper; its range
pairs the extremes (slowest peer run / fastest ours, and the reverse), a conservative interval
for a handful of runs. Verdicts are scored against the known shift; agreement counts the
features (of 100) on which two verdict columns say the same.
"""

import json
import statistics
import sys
from pathlib import Path
from typing import Any

OURS = "ours"
PEERS = ("scipy-loop", "evidently-defaults", "evidently-matched")
COLUMNS = (
    "ours",
    "ours-ks",
    "ours-js",
    "scipy-ks",
    "scipy-ks-plain",
    "scipy-wasserstein",
    "scipy-js",
    "evidently-defaults",
    "evidently-matched",
)
# (a, b, field, what): score comparisons, reported as the range of b - a over the features.
SCORE_PAIRS = (
    ("ours-js", "scipy-js", "scores", "JS distance, same decile buckets"),
    ("ours", "scipy-wasserstein", "scores", "normed Wasserstein, binned (ours) vs raw"),
    ("scipy-wasserstein", "evidently-defaults", "scores", "normed Wasserstein, both raw"),
    ("ours-ks", "scipy-ks", "statistics", "K-S D, binned (ours) vs raw"),
)


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _ok_runs(results: dict[str, Any], size: int, contender: str) -> list[dict[str, Any]]:
    return [
        r
        for r in results["runs"]
        if r["size"] == size and r["contender"] == contender and r["status"] == "ok"
    ]


def _peaks(runs: list[dict[str, Any]]) -> list[float]:
    """Peak RSS during the work, where the kernel let the peak mark be reset."""
    return [r["peak_rss_mib"] for r in runs if r["peak_rss_mib"] is not None]


def _works(runs: list[dict[str, Any]]) -> list[float]:
    """Peak RSS during the work minus the RSS before it."""
    return [
        r["peak_rss_mib"] - r["baseline_rss_mib"] for r in runs if r["peak_rss_mib"] is not None
    ]


def _timing(runs: list[dict[str, Any]], all_runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    phases = list(dict.fromkeys(p for r in runs for p in r["breakdown_s"]))
    return {
        "outcomes": [r["status"] for r in all_runs],
        "limit_s": max((r.get("limit_s") or 0 for r in all_runs), default=None),
        "errors": sorted({r["error"] for r in all_runs if r.get("error")}),
        "runs": len(runs),
        "wall_median_s": _median(walls),
        "wall_min_s": min(walls, default=None),
        "wall_max_s": max(walls, default=None),
        "cpu_median_s": _median([r["cpu_s"] for r in runs]),
        "peak_rss_mib": _median(_peaks(runs)),
        "work_rss_mib": _median(_works(runs)),
        "process_peak_rss_mib": max(
            (r["process_peak_rss_mib"] for r in all_runs if r.get("process_peak_rss_mib")),
            default=None,
        ),
        "breakdown_median_s": {
            p: _median([r["breakdown_s"][p] for r in runs if p in r["breakdown_s"]]) for p in phases
        },
    }


def _ratio(peer: float | None, ours: float | None) -> float | None:
    return peer / ours if peer is not None and ours else None


def _ratios(peer: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    pw, ow = [r["wall_s"] for r in peer], [r["wall_s"] for r in ours]
    pc, oc = [r["cpu_s"] for r in peer], [r["cpu_s"] for r in ours]
    windows = [r["window_s"] for r in ours]
    return {
        "wall": _ratio(_median(pw), _median(ow)),
        "window": _ratio(_median(pw), _median(windows)),
        "wall_range": [min(pw) / max(ow), max(pw) / min(ow)],
        "cpu": _ratio(_median(pc), _median(oc)),
        "cpu_range": [min(pc) / max(oc), max(pc) / min(oc)],
        "peak_rss": _ratio(_median(_peaks(peer)), _median(_peaks(ours))),
        "work_rss": _ratio(_median(_works(peer)), _median(_works(ours))),
    }


def _columns(results: dict[str, Any], size: int) -> dict[str, list[dict[str, Any]]]:
    """Every verdict column of this size, one entry per successful run that produced it."""
    columns: dict[str, list[dict[str, Any]]] = {}
    for run in results["runs"]:
        if run["size"] == size and run["status"] == "ok":
            for name, column in run["columns"].items():
                columns.setdefault(name, []).append(column)
    return columns


def _verdict_scores(column: list[dict[str, Any]], truth: list[bool]) -> dict[str, Any]:
    verdicts = column[0]["verdicts"]
    tp = sum(v and t for v, t in zip(verdicts, truth, strict=True))
    fp = sum(v and not t for v, t in zip(verdicts, truth, strict=True))
    fn = sum(t and not v for v, t in zip(verdicts, truth, strict=True))
    return {
        "methods": sorted(set(column[0]["methods"])),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": len(truth) - tp - fp - fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "stable": all(c["verdicts"] == verdicts for c in column),
    }


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians, ratios, verdict quality and agreement per size (keys are sizes as strings)."""
    features = results["config"]["features"]
    shifted = set(results["config"]["shifted"])
    truth = [j in shifted for j in range(features)]
    summary: dict[str, Any] = {"timing": {}, "ratios": {}, "verdicts": {}, "agreement": {}}
    summary["scores"] = {}
    for size in results["config"]["sizes"]:
        key = str(size)
        contenders = dict.fromkeys(r["contender"] for r in results["runs"] if r["size"] == size)
        summary["timing"][key] = {
            c: _timing(
                _ok_runs(results, size, c),
                [r for r in results["runs"] if r["size"] == size and r["contender"] == c],
            )
            for c in contenders
        }
        ours = _ok_runs(results, size, OURS)
        ratios: dict[str, Any] = {}
        for peer in PEERS if ours else ():
            if runs := _ok_runs(results, size, peer):
                ratios[peer] = _ratios(runs, ours)
            elif limits := [
                r["limit_s"]
                for r in results["runs"]
                if r["size"] == size and r["contender"] == peer and r["status"] == "timeout"
            ]:
                # Not finished within the limit: the ratio is at least limit / ours.
                ratios[peer] = {
                    "wall_at_least": min(limits) / statistics.median(r["wall_s"] for r in ours)
                }
        summary["ratios"][key] = ratios
        columns = _columns(results, size)
        present = [c for c in COLUMNS if c in columns]
        summary["verdicts"][key] = {c: _verdict_scores(columns[c], truth) for c in present}
        summary["agreement"][key] = {
            "columns": present,
            "matrix": [
                [
                    sum(
                        x == y
                        for x, y in zip(
                            columns[a][0]["verdicts"], columns[b][0]["verdicts"], strict=True
                        )
                    )
                    for b in present
                ]
                for a in present
            ],
        }
        comparisons = []
        for a, b, field, what in SCORE_PAIRS:
            if a in columns and b in columns:
                diffs = [
                    y - x for x, y in zip(columns[a][0][field], columns[b][0][field], strict=True)
                ]
                comparisons.append(
                    {"a": a, "b": b, "what": what, "min": min(diffs), "max": max(diffs)}
                )
        summary["scores"][key] = comparisons
    return summary


def _rows(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _outcome(timing: dict[str, Any]) -> str:
    outcomes = timing["outcomes"]
    ok = outcomes.count("ok")
    others = [o for o in dict.fromkeys(outcomes) if o != "ok"]
    text = f"{ok}/{len(outcomes)}"
    for other in others:
        suffix = f" > {timing['limit_s']:.0f} s" if other == "timeout" else ""
        text += f", {outcomes.count(other)} {other}{suffix}"
    return text


def progress_line(run: dict[str, Any]) -> str:
    """One line per finished run, printed while the benchmark goes."""
    head = f"{_rows(run['size']):>4} rep {run['rep']} {run['contender']:<19} {run['status']:<8}"
    if run["status"] != "ok":
        detail = run.get("error", "").splitlines()[-1:] or [
            f"after {run.get('elapsed_s', 0):.0f} s"
        ]
        return f"{head} {detail[0]}"
    return (
        f"{head} wall {run['wall_s']:8.2f} s  cpu {run['cpu_s']:8.2f} s  "
        f"peak {_num(run['peak_rss_mib'], 0)} MiB  load {run['loadavg']:.1f}"
    )


def _time_table(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    lines = [
        "| rows | contender | runs ok | wall median (min-max), s | CPU median, s "
        "| peak RSS, MiB | work RSS, MiB | process peak, MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in results["config"]["sizes"]:
        for contender, t in summary["timing"][str(size)].items():
            wall = (
                f"{_num(t['wall_median_s'])} ({_num(t['wall_min_s'])}-{_num(t['wall_max_s'])})"
                if t["runs"]
                else "-"
            )
            lines.append(
                f"| {_rows(size)} | {contender} | {_outcome(t)} | {wall} | "
                f"{_num(t['cpu_median_s'])} | {_num(t['peak_rss_mib'], 0)} | "
                f"{_num(t['work_rss_mib'], 0)} | {_num(t['process_peak_rss_mib'], 0)} |"
            )
    return lines


def _ratio_table(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    lines = [
        "| rows | peer | wall ratio (range) | CPU ratio (range) | wall ratio, window only "
        "| peak RSS ratio | work RSS ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in results["config"]["sizes"]:
        timing = summary["timing"][str(size)]
        for peer in PEERS:
            ratio = summary["ratios"][str(size)].get(peer)
            if ratio is not None and "wall_at_least" in ratio:
                lines.append(
                    f"| {_rows(size)} | {peer} | **> {_num(ratio['wall_at_least'], 0)}x** "
                    f"({_outcome(timing[peer])}) | | | | |"
                )
                continue
            if ratio is None:
                if peer in timing:
                    lines.append(
                        f"| {_rows(size)} | {peer} | no ratio: {_outcome(timing[peer])} | | | | |"
                    )
                continue
            wall_lo, wall_hi = ratio["wall_range"]
            cpu_lo, cpu_hi = ratio["cpu_range"]
            lines.append(
                f"| {_rows(size)} | {peer} | **{_num(ratio['wall'], 1)}x** "
                f"({_num(wall_lo, 1)}-{_num(wall_hi, 1)}) | {_num(ratio['cpu'], 1)}x "
                f"({_num(cpu_lo, 1)}-{_num(cpu_hi, 1)}) | {_num(ratio['window'], 1)}x | "
                f"{_num(ratio['peak_rss'], 1)}x | "
                f"{_num(ratio['work_rss'], 1)}x |"
            )
    return lines


def _verdict_table(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    lines = [
        "| rows | verdict column | method | drifted: true / false positives | missed "
        "| precision | recall | same in every run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size in results["config"]["sizes"]:
        for column, v in summary["verdicts"][str(size)].items():
            lines.append(
                f"| {_rows(size)} | {column} | {', '.join(v['methods'])} | {v['tp']} / {v['fp']} "
                f"| {v['fn']} | {_num(v['precision'])} | {_num(v['recall'])} | "
                f"{'yes' if v['stable'] else '**no**'} |"
            )
    return lines


def _agreement_tables(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for size in results["config"]["sizes"]:
        agreement = summary["agreement"][str(size)]
        columns = agreement["columns"]
        if not columns:
            continue
        lines += [
            "",
            f"{_rows(size)} rows:",
            "",
            "| | " + " | ".join(str(i + 1) for i in range(len(columns))) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for i, (name, row) in enumerate(zip(columns, agreement["matrix"], strict=True)):
            lines.append(f"| {i + 1} {name} | " + " | ".join(str(x) for x in row) + " |")
    return lines


def _score_table(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    lines = ["| rows | a | b | quantity | b - a over the features |", "|---|---|---|---|---|"]
    for size in results["config"]["sizes"]:
        for c in summary["scores"][str(size)]:
            lines.append(
                f"| {_rows(size)} | {c['a']} | {c['b']} | {c['what']} | "
                f"{c['min']:.3g} … {c['max']:.3g} |"
            )
    return lines


def _breakdown_table(results: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    lines = ["| rows | contender | phase medians, s |", "|---|---|---|"]
    for size in results["config"]["sizes"]:
        for contender, t in summary["timing"][str(size)].items():
            if t["breakdown_median_s"]:
                phases = ", ".join(
                    f"{p} {_num(s, 3)}" for p, s in t["breakdown_median_s"].items() if s is not None
                )
                lines.append(f"| {_rows(size)} | {contender} | {phases} |")
    return lines


def _versions(results: dict[str, Any]) -> str:
    seen: dict[str, str] = {}
    for run in results["runs"]:
        if run["status"] == "ok":
            seen.update(run["versions"])
    return ", ".join(f"{k} {v}" for k, v in sorted(seen.items()))


def _matched(results: dict[str, Any]) -> str:
    parts = []
    for size in results["config"]["sizes"]:
        pairs = results["data"].get(str(size), {}).get("matched_methods")
        if pairs:
            choice = "; ".join(f"`{method}` at {threshold:g}" for method, threshold in pairs)
            parts.append(f"{_rows(size)}: {choice}")
    return ", ".join(parts) or "not run"


def _contenders(results: dict[str, Any]) -> list[str]:
    return [
        "## Contenders and verdict columns",
        "",
        "- **ours**: `modelops.core.drift` from raw rows. Reference statistics as the trainer "
        "makes them (`numeric_reference(name, column, 20)`: 20 quantile buckets between "
        "values plus two out-of-range buckets, bin means, std, distinct and missing counts, "
        "read back with `parse_reference`), `window_counts` of the current window (the "
        "buckets plus the missing, out-of-range, offset and exact-value counters the server "
        "keeps), then `evaluate` with the default `DriftConfig` (`auto`, no correction; column "
        "`ours`), with `method='ks'` (`ours-ks`) and with `method='js'` (`ours-js`). All of it "
        "is measured; *window only* is `window_counts` plus the `auto` evaluation, the part "
        "the operator repeats for every window (a model version's reference statistics are "
        "computed once, at training).",
        "- **scipy-loop**: per feature on the raw columns, `ks_2samp` (`scipy-ks`: Bonferroni, "
        "`min(1, 100 p) <= 0.05`; `scipy-ks-plain`: `p <= 0.05`), `wasserstein_distance` / "
        "reference std `>= 0.1` (`scipy-wasserstein`), `jensenshannon` of the histograms over "
        "the reference deciles `>= 0.1` (`scipy-js`). Runs in the project venv.",
        "- **evidently-defaults**: `Report([DataDriftPreset()], include_tests=True)"
        ".run(current, reference)` on DataFrames; a column drifted when its Value Drift test "
        "failed. Runs in its own venv.",
        "- **evidently-matched**: `DataDriftPreset(per_column_method=..., "
        "per_column_threshold=...)` set to what our `auto` chose, with our thresholds "
        f"(Bonferroni as `alpha / m` for p-value tests): {_matched(results)}.",
    ]


def render(results: dict[str, Any]) -> str:
    """The Markdown page for one run (``results.md``)."""
    summary = results.get("summary") or summarize(results)
    m, c = results["machine"], results["config"]
    load_start = ", ".join(f"{x:.1f}" for x in results["loadavg_start"])
    load_end = ", ".join(f"{x:.1f}" for x in results["loadavg_end"])
    data_s = sum(d["prepare_s"] for d in results["data"].values())
    errors = [
        f"- {_rows(s)} {name}: {error}"
        for s in c["sizes"]
        for name, t in summary["timing"][str(s)].items()
        for error in t["errors"]
    ]
    lines = [
        "# Drift benchmark: ours vs Evidently DataDriftPreset vs a scipy loop",
        "",
        "Generated by `benchmarks/drift/run.py` (do not edit; re-run to update). Verdict "
        "fidelity on real and synthetic shifts (agreement with Evidently, power, false alarms) "
        "is in [fidelity.md](fidelity.md).",
        "",
        f"- **Date** {results['date']}; revision `{results['revision']}`.",
        f"- **Machine** {m['cpu_model']}, {m['nproc']} CPUs, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}. Each contender pinned to CPU "
        f"{c['contender_cpu']}, one thread per library.",
        f"- **Load average** (1, 5, 15 min) at start {load_start}, at end {load_end}.",
        f"- **Versions** {_versions(results)}.",
        f"- **Command** `{results['command']}`; the whole run took {results['total_s']:.0f} s "
        f"({data_s:.0f} s of it preparing data).",
        f"- **Data** {c['features']} numeric features, reference rows = current rows, seed "
        f"{c['seed']}; features {', '.join(str(j) for j in c['shifted'])} shifted by "
        f"+{c['shift_sigmas']} sigma in the current window. Runs per contender: {c['reps']} "
        f"below 1M rows (evidently-matched: {c['matched_reps']}), {c['large_reps']} at 1M "
        f"({', '.join(c['large_contenders'])}). Time limits: {c['limit_s']:.0f} s (ours, "
        f"scipy), {c['evidently_limit_s']:.0f} s (Evidently); address space "
        f"{c['memory_limit_gib']:.0f} GiB per process.",
        "",
        *_contenders(results),
        "",
        "## Time and memory",
        "",
        "Wall and CPU time of the measured work only (data loading, imports and a warm-up on a "
        "2000-row slice excluded). Peak RSS is the process peak during the work; work RSS is "
        "that peak minus the RSS before it (interpreter, libraries, loaded data); process peak "
        "is the whole process's (`wait4`), loading included.",
        "",
        *_time_table(results, summary),
        "",
        "## Ratios: peer cost / our cost (above 1: ours is cheaper)",
        "",
        *_ratio_table(results, summary),
        "",
        "## Verdicts against the known shift",
        "",
        *_verdict_table(results, summary),
        "",
        "## Agreement between verdict columns (features with the same verdict, of "
        f"{c['features']})",
        *_agreement_tables(results, summary),
        "",
        "## Scores side by side",
        "",
        *_score_table(results, summary),
        "",
        "## Where the time goes",
        "",
        *_breakdown_table(results, summary),
        "",
    ]
    if errors:
        lines += ["## Runs that did not finish", "", *errors, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    stored = json.loads(Path(sys.argv[1]).read_text())
    print(render(stored), end="")
