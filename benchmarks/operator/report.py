"""``results.md`` from ``results.json``: the five parts as ratios with their spread, and the
targets of issue 12 met or missed."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile by linear interpolation (as numpy's default)."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def spread(values: Sequence[float], fmt: str = "{:.1f}") -> str:
    """``median (min-max)``, or the one value."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    med = statistics.median(values)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _per_run(rows: list[dict[str, Any]], field: str) -> list[float]:
    return [r["requests"][field] / r["runs"] for r in rows]


def _by_round(rows: list[dict[str, Any]], who: str) -> dict[int, dict[str, Any]]:
    return {r["round"]: r for r in rows if r["contender"] == who and "jobs_per_s" in r}


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Per contender medians and ranges, per round ratios to the null operator, targets."""
    out: dict[str, Any] = {"contenders": {}, "ratios": {}, "targets": {}}
    rows = results.get("throughput", [])
    runs = rows[0]["runs"] if rows else 0
    order = ["modelops", *sorted({r["contender"] for r in rows} - {"modelops", "null", "kopf"})]
    for who in [*order, "null", "kopf"]:
        mine = [r for r in rows if r["contender"] == who and "jobs_per_s" in r]
        if not mine:
            continue
        n = [r["runs"] for r in mine]
        out["contenders"][who] = {
            "rounds": len(mine),
            "jobs_per_s": [r["jobs_per_s"] for r in mine],
            "p50_s": [percentile(r["latency_s"], 50) for r in mine],
            "p99_s": [percentile(r["latency_s"], 99) for r in mine],
            "cpu_s": [r["cpu_s"] for r in mine],
            "peak_rss_mib": [r["peak_rss_mib"] for r in mine],
            "requests_per_run": _per_run(mine, "requests"),
            "writes_per_run": _per_run(mine, "writes"),
            "writes_until_quiet_per_run": [
                r["writes_until_quiet"] / k for r, k in zip(mine, n, strict=True)
            ],
            "last_write_after_s": [r["last_write_after_s"] for r in mine],
            "runs_seen_s": [r["runs_seen_s"] for r in mine],
        }
    null, kopf = _by_round(rows, "null"), _by_round(rows, "kopf")
    for variant in order:
        ours = _by_round(rows, variant)
        for name, peer in (("null", null), ("kopf", kopf)):
            same = sorted(set(ours) & set(peer))
            if same:
                # Keyed by the peer alone for modelops with its defaults (the targets').
                key = name if variant == "modelops" else f"{variant} vs {name}"
                out["ratios"][key] = {
                    "throughput": [ours[r]["jobs_per_s"] / peer[r]["jobs_per_s"] for r in same],
                    "cpu": [ours[r]["cpu_s"] / peer[r]["cpu_s"] for r in same],
                    "p50_over_s": [
                        percentile(ours[r]["latency_s"], 50) - percentile(peer[r]["latency_s"], 50)
                        for r in same
                    ],
                }
    targets = out["targets"]
    if "null" in out["ratios"]:
        worst = min(out["ratios"]["null"]["throughput"])
        targets["throughput"] = {
            "target": "throughput >= 50% of the null operator's",
            "value": f"{worst:.0%} in the worst round",
            "met": worst >= 0.5,
        }
    if "modelops" in out["contenders"]:
        p50 = max(out["contenders"]["modelops"]["p50_s"])
        targets["latency"] = {
            "target": f"p50 added latency <= 1 s at {runs} runs",
            "value": f"{p50:.3f} s in the worst round",
            "met": p50 <= 1.0,
        }
    steady = next((r["steady"] for r in rows if "steady" in r), None)
    if steady is not None:
        writes = steady["resync"]["writes"] + steady["startup"]["writes"]
        targets["steady"] = {
            "target": "zero writes on a no-op resync (restart pass and periodic pass)",
            "value": f"{writes} writes",
            "met": writes == 0,
        }
    models = results.get("models", [])
    if len(models) >= 2:
        small, large = models[0], models[-1]
        reads = [m["resync"]["get"] + m["resync"]["list"] for m in models]
        ratio = (large["reconcile_mean_s"] or 0) / (small["reconcile_mean_s"] or 1)
        targets["models"] = {
            "target": "Model reconcile reads independent of the namespace's version count",
            "value": (
                f"reads in the resync pass {reads[0]} at {small['versions']} versions, "
                f"{reads[-1]} at {large['versions']}; mean reconcile time x{ratio:.2f} for "
                f"x{large['versions'] / small['versions']:.0f} versions"
            ),
            "met": all(r == 0 for r in reads),
        }
    memory = results.get("memory", [])
    mem_rounds = sorted({m["round"] for m in memory})
    mem_ratios = []
    for rnd in mem_rounds:
        by = {m["contender"]: m for m in memory if m["round"] == rnd}
        if "modelops" in by and "kopf" in by:
            mem_ratios.append(by["modelops"]["rss_mib"] / by["kopf"]["rss_mib"])
    if mem_ratios:
        out["ratios"]["memory"] = mem_ratios
        targets["memory"] = {
            "target": "memory <= 1.5x the minimal kopf operator",
            "value": f"{max(mem_ratios):.2f}x in the worst round",
            "met": max(mem_ratios) <= 1.5,
        }
    soak = results.get("soak")
    if soak and soak["waves"]:
        final = soak["final_probe"]
        rss = [w["rss_mib"] for w in soak["waves"]]
        conns = [w["connections"] for w in soak["waves"]]
        half = max(1, len(rss) // 2)
        # Flat: the second half of the waves never above the first half's highest (plus 10%
        # of RSS for the allocator's noise); connections include pooled request connections,
        # which come and go, so only growth counts.
        flat = max(rss[half:] or rss) <= 1.1 * max(rss[:half]) and max(
            conns[half:] or conns
        ) <= max(conns[:half])
        targets["soak"] = {
            "target": "soak: no key queued for a deleted object; RSS and watches flat",
            "value": (
                f"{len(final['stale'])} stale keys; RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB "
                f"(max {max(rss):.0f}); connections {min(conns)}-{max(conns)}"
            ),
            "met": not final["stale"] and flat,
        }
    return out


def _f(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def _settled(steady: dict[str, Any]) -> str:
    if "all_finished" not in steady:  # results of a run before the part waited for the runs
        return "Settled only until the throughput part's wait for quiet ended (its cap)."
    if not steady["all_finished"]:
        return "**Not every run had finished** when the wait for that ended (its cap)."
    return f"Settled: every run finished, then 15 s without a write ({steady['settle_s']:.0f} s)."


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def render(results: dict[str, Any]) -> str:
    """The report."""
    s = summarize(results)
    m = results["machine"]
    cfg = results["config"]
    lines = [
        "# Operator benchmark: modelops vs a null operator vs a minimal kopf operator",
        "",
        "Generated by `benchmarks/operator/run.py` (re-run to update); a section written by hand "
        "about the committed run, if any, is the last one.",
        "",
        f"- **Date** {results['date']}; revision `{results['revision']}`.",
        f"- **Machine** {m['cpu_model']}, {m['nproc']} CPUs, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}; control plane, KWOK, driver and contender "
        "share the CPUs.",
        "- **Load average** at start {:.1f}, {:.1f}, {:.1f}, at end {:.1f}, {:.1f}, {:.1f}.".format(
            *results["loadavg_start"], *results.get("loadavg_end", [0, 0, 0])
        ),
        f"- **Command** `{results['command']}`; the whole run took "
        f"{results.get('total_s', 0):.0f} s.",
        "",
        *(
            [f"**The run failed**: `{results['error']}`; what was measured before is shown.", ""]
            if results.get("error")
            else []
        ),
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in s["targets"].values():
        lines.append(f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |")
    if s["contenders"]:
        runs = results["throughput"][0]["runs"]
        lines += [
            "",
            f"## 1. Throughput and added latency: {runs} TrainingRuns created "
            + (f"at {cfg['create_rate']:g} per second" if cfg.get("create_rate") else "at once"),
            "",
            "Median (min-max) over rounds. Jobs/s = runs / (last Job seen - first run seen). "
            "Latency = Job seen - its run seen, by the driver's own watches. Requests and CPU "
            "from the start of creation until the last Job exists; *writes until quiet* counts "
            f"until the contender wrote nothing for 10 s (at most {cfg['settle_cap']:.0f} s).",
            "",
            "| contender | runs created over, s | Jobs/s | p50 latency, s | p99 latency, s "
            "| CPU, s | peak RSS, MiB | requests/run | writes/run | writes/run until quiet "
            "| last write after, s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for who, c in s["contenders"].items():
            lines.append(
                f"| {who} | {spread(c['runs_seen_s'])} | {spread(c['jobs_per_s'])} | "
                f"{spread(c['p50_s'], '{:.3f}')} | "
                f"{spread(c['p99_s'], '{:.3f}')} | {spread(c['cpu_s'])} | "
                f"{spread(c['peak_rss_mib'], '{:.0f}')} | "
                f"{spread(c['requests_per_run'], '{:.2f}')} | "
                f"{spread(c['writes_per_run'], '{:.2f}')} | "
                f"{spread(c['writes_until_quiet_per_run'], '{:.2f}')} | "
                f"{spread(c['last_write_after_s'], '{:.0f}')} |"
            )
        lines += ["", "Ratios modelops / peer, per round (same round, back to back):", ""]
        for key, r in s["ratios"].items():
            if key == "memory":
                continue
            name = f"modelops vs {key}" if key in ("null", "kopf") else key
            lines.append(
                f"- {name}: throughput {spread(r['throughput'], '{:.2f}')}, "
                f"CPU {spread(r['cpu'], '{:.2f}')}, "
                f"p50 latency minus the peer's {spread(r['p50_over_s'], '{:+.2f}')} s"
            )
        mine = [r for r in results["throughput"] if r["contender"] == "modelops"]
        last = mine[-1] if mine else {}
        if last:
            lines += ["", "Requests of modelops until the last Job existed (last round):", ""]
            lines.append(
                ", ".join(f"{k} {v}" for k, v in list(last["requests_by_what"].items())[:12])
            )
        profiled = [r for r in results["throughput"] if r.get("profile")]
        if profiled:
            prof = profiled[-1]["profile"]
            lines += [
                "",
                f"Where modelops' CPU went in round {profiled[-1]['round']} (py-spy, 50 Hz, "
                f"{prof['samples']} samples of busy threads, from creation to the last Job); "
                "share of samples with the function on the stack:",
                "",
                "| function | on stack | on top |",
                "|---|---|---|",
            ]
            own = dict(prof["self"])
            for frame, count in prof["inclusive"]:
                lines.append(
                    f"| `{frame}` | {count / prof['samples']:.0%} | "
                    f"{own.get(frame, 0) / prof['samples']:.0%} |"
                )
        steady = last.get("steady")
        if steady:
            lines += [
                "",
                "## 2. Steady state: a no-op resync",
                "",
                f"modelops restarted on the settled namespace ({steady['objects']} objects), "
                f"`MODELOPS_RESYNC_SECONDS={steady['resync_seconds']:.0f}`. " + _settled(steady),
                "",
                "| pass | reconciles | requests | writes | GET | LIST | WATCH |",
                "|---|---|---|---|---|---|---|",
            ]
            for name, n, c in (
                (
                    f"start-up ({steady['startup_s']:.1f} s)",
                    steady["startup_reconciles"],
                    steady["startup"],
                ),
                ("periodic resync", steady["resync_reconciles"], steady["resync"]),
            ):
                lines.append(
                    f"| {name} | {n:.0f} | {c['requests']} | {c['writes']} | {c['get']} | "
                    f"{c['list']} | {c['watch']} |"
                )
            lines += [
                "",
                "Start-up requests: "
                + ", ".join(f"{k} {v}" for k, v in steady["startup_by_what"].items()),
            ]
    if results.get("models"):
        lines += [
            "",
            "## 3. Scale of Model reconciles",
            "",
            "Models with 10 ModelVersions each in one namespace. Start-up: from process start "
            "until every Model was reconciled once. Resync: one periodic pass over every Model "
            "with nothing changed; per reconcile: mean duration (the operator's histogram), CPU, "
            "bytes the process read (`rchar`, sockets included), requests.",
            "",
            "| Models | versions in namespace | start-up, s | resync pass, s | reconcile mean, ms "
            "| CPU/reconcile, ms | bytes read/reconcile | requests/reconcile | writes |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["models"]:
            lines.append(
                f"| {r['models']} | {r['versions']} | {r['startup_s']:.1f} | "
                f"{r['resync_pass_s']:.2f} | {_ms(r['reconcile_mean_s'])} | "
                f"{_ms(r['cpu_per_reconcile_s'])} | "
                f"{_f(r['bytes_per_reconcile'], '{:.0f}')} | "
                f"{_f(r['requests_per_reconcile'])} | {r['resync']['writes']} |"
            )
    if results.get("memory"):
        objs = results["memory"][0]["objects"]
        lines += [
            "",
            "## 4. Memory",
            "",
            "Objects: " + ", ".join(f"{v} {k}" for k, v in objs.items()) + ". RSS is the "
            "median of 5 samples, 1 s apart, once modelops had reconciled everything and gone "
            "quiet / kopf had seen every object (no-op `on.event` handlers).",
            "",
            "| round | modelops RSS, MiB | kopf RSS, MiB | ratio |",
            "|---|---|---|---|",
        ]
        for rnd in sorted({x["round"] for x in results["memory"]}):
            by = {x["contender"]: x for x in results["memory"] if x["round"] == rnd}
            lines.append(
                f"| {rnd} | {by['modelops']['rss_mib']:.0f} | {by['kopf']['rss_mib']:.0f} | "
                f"{by['modelops']['rss_mib'] / by['kopf']['rss_mib']:.2f} |"
            )
    soak = results.get("soak")
    if soak:
        final = soak["final_probe"]
        lines += [
            "",
            "## 5. Soak",
            "",
            f"Waves of {soak['wave_runs']} TrainingRuns (with their Jobs and pods) plus a Model "
            f"and 10 ModelVersions, each created and then deleted, for {soak['seconds']:.0f} s: "
            f"{soak['objects_created']} objects created and deleted. After each wave:",
            "",
            "| wave | t, s | objects so far | RSS, MiB | threads | connections to API server "
            "| queued keys | timers | stale keys |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for w in soak["waves"]:
            p = w["probe"] or {}
            lines.append(
                f"| {w['wave']} | {w['t_s']:.0f} | {w['objects_created']} | {w['rss_mib']:.0f} | "
                f"{w['threads']} | {w['connections']} | {p.get('queued', '-')} | "
                f"{p.get('timers', '-')} | {len(p.get('stale', []))} |"
            )
        lines += [
            "",
            f"At the end, once quiet: {final['queued']} queued, {final['processing']} "
            f"reconciling, {final['timers']} timers (the live objects' resyncs), stale keys "
            f"{final['stale'] or 'none'}; cache {final['cache']}; pods still in the API "
            f"server (their deletion by the garbage collector under way): "
            f"{final.get('pods_in_api', '-')}.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    sys.stdout.write(render(data))
