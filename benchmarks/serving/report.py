"""Summaries and the Markdown report of the serving benchmark, from the raw results.

The raw results (``results.json``) hold one entry per server session; everything here is
derived from them, so ``run.py --from-json results.json`` can re-render the report without
measuring again.
"""

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Session = dict[str, Any]

SERVERS = ("modelops", "mlserver")
LABELS = {"modelops": "modelops server", "mlserver": "MLServer"}


@dataclass(frozen=True)
class Metric:
    """One headline number: how to read it from a session and which direction is better."""

    key: str
    title: str
    unit: str
    better: str  # "higher" or "lower"
    read: Callable[[Session], float | None]


def _fixed(batch: str, field: str) -> Callable[[Session], float | None]:
    def read(session: Session) -> float | None:
        value: float | None = session["fixed"][batch][field]
        return value

    return read


METRICS = (
    Metric(
        "max_rps",
        "Max throughput with p99 ≤ 10 ms, batch 1",
        "req/s",
        "higher",
        lambda s: s["search"]["max_rate"],
    ),
    Metric(
        "saturation_rps",
        "Throughput, closed loop, no latency bound, batch 1",
        "req/s",
        "higher",
        lambda s: s["saturation"]["achieved_rps"],
    ),
    Metric(
        "b1_p50",
        "p50 latency at the fixed rate, batch 1",
        "ms",
        "lower",
        _fixed("batch1", "p50_ms"),
    ),
    Metric(
        "b1_p99",
        "p99 latency at the fixed rate, batch 1",
        "ms",
        "lower",
        _fixed("batch1", "p99_ms"),
    ),
    Metric(
        "b32_p50",
        "p50 latency at the fixed rate, batch 32",
        "ms",
        "lower",
        _fixed("batch32", "p50_ms"),
    ),
    Metric(
        "b32_p99",
        "p99 latency at the fixed rate, batch 32",
        "ms",
        "lower",
        _fixed("batch32", "p99_ms"),
    ),
    Metric(
        "cpu_per_request",
        "Server CPU time per request at the fixed rate, batch 1",
        "ms",
        "lower",
        lambda s: s["cpu_ms_per_request"],
    ),
    Metric(
        "idle_rss",
        "Idle RSS after the load",
        "MiB",
        "lower",
        lambda s: s["memory"]["after_load"]["rss_mib"],
    ),
    Metric(
        "peak_rss",
        "Peak RSS (VmHWM)",
        "MiB",
        "lower",
        lambda s: s["memory"]["after_load"]["peak_rss_mib"],
    ),
    Metric(
        "cold_ready",
        "Cold start: spawn → ready",
        "s",
        "lower",
        lambda s: s["cold_start"]["ready_s"],
    ),
    Metric(
        "cold_infer",
        "Cold start: spawn → first inference",
        "s",
        "lower",
        lambda s: s["cold_start"]["first_inference_s"],
    ),
)


def summarise(sessions: list[Session]) -> dict[str, Any]:
    """Per metric and server: the median, minimum and maximum over the rounds; two ratios
    (ours / MLServer), of the medians and of each server's best round; and a verdict that
    claims a winner only when every round of one server beat every round of the other.

    The best-round ratio is there because the noise of a shared machine is one-sided: other
    work can slow a server down, never speed it up, so a server's best round is its least
    disturbed one (the reasoning behind ``timeit`` reporting the minimum of its repeats)."""
    summary: dict[str, Any] = {}
    for metric in METRICS:
        per_server: dict[str, list[float]] = {}
        for server in SERVERS:
            read = (metric.read(s) for s in sessions if s["server"] == server)
            per_server[server] = [value for value in read if value is not None]
        entry: dict[str, Any] = {
            "title": metric.title,
            "unit": metric.unit,
            "better": metric.better,
        }
        for server, measured in per_server.items():
            entry[server] = (
                {"median": statistics.median(measured), "min": min(measured), "max": max(measured)}
                if measured
                else None
            )
        ours, theirs = entry["modelops"], entry["mlserver"]
        best = "max" if metric.better == "higher" else "min"
        entry["ratio"] = _ratio(ours, theirs, "median")
        entry["best_ratio"] = _ratio(ours, theirs, best)
        entry["verdict"] = _verdict(metric.better, per_server["modelops"], per_server["mlserver"])
        summary[metric.key] = entry
    return summary


def _ratio(
    ours: dict[str, float] | None, theirs: dict[str, float] | None, statistic: str
) -> float | None:
    if not ours or not theirs or not theirs[statistic]:
        return None
    return ours[statistic] / theirs[statistic]


def _verdict(better: str, ours: list[float], theirs: list[float]) -> str:
    if not ours or not theirs:
        return "no data"
    if len(ours) < 2 or len(theirs) < 2:
        return "one round: no claim"
    if better == "lower":
        ours, theirs = [-v for v in ours], [-v for v in theirs]
    if min(ours) > max(theirs):
        return "modelops better in every round"
    if min(theirs) > max(ours):
        return "MLServer better in every round"
    return "rounds overlap: no claim"


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}"


def _cell(stats: dict[str, float] | None) -> str:
    if stats is None:
        return "n/a"
    return f"{_number(stats['median'])} [{_number(stats['min'])}, {_number(stats['max'])}]"


def render(results: dict[str, Any]) -> str:
    """The Markdown report: headline ratios, how to reproduce, method, and every step."""
    meta, config = results["meta"], results["config"]
    summary = summarise(results["sessions"])
    machine = meta["machine"]
    lines = [
        "# Serving benchmark: modelops server vs MLServer",
        "",
        f"Measured {meta['date']} on this project's machine: {machine['nproc']} CPUs "
        f"({machine['cpu_model']}), {machine['memory_gib']:.0f} GiB, Linux "
        f"{machine['kernel']}; load average (1 / 5 / 15 min) {meta['load_average_before']} "
        f"before the run and {meta['load_average_after']} after; the hypervisor took "
        f"{meta['steal_percent']:.1f} % of the CPU time during the run (steal). Profile "
        f"`{config['profile']}`, {config['rounds']} interleaved rounds "
        f"({' → '.join(config['order'])}), wall time {meta['wall_seconds']:.0f} s.",
        "",
        "Reproduce (from the repository root):",
        "",
        "```sh",
        "make bench-serving                          # or:",
        ".venv/bin/python benchmarks/serving/run.py  # --quick: 1 short round, a smoke run",
        "```",
        "",
        f"This report came from `{meta['command']}`.",
        "",
        "## Results",
        "",
        "Median over the rounds, [min, max] in brackets. **Ratios are modelops / MLServer**: "
        "above 1 is better for throughput, below 1 for everything else. The ratio of best "
        "rounds compares each server's best round (highest throughput, lowest latency, CPU, "
        "memory or start time): other work on a shared machine only ever slows a server down, "
        "so its best round is its least disturbed one. A winner is named only if every round "
        "of one server beat every round of the other.",
        "",
        "| metric | modelops server | MLServer | ratio of medians | ratio of best rounds "
        "| better | verdict |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for entry in summary.values():
        lines.append(
            f"| {entry['title']} ({entry['unit']}) | {_cell(entry['modelops'])} | "
            f"{_cell(entry['mlserver'])} | {_times(entry['ratio'])} | "
            f"{_times(entry['best_ratio'])} | {entry['better']} | {entry['verdict']} |"
        )
    agreement = results["agreement"]
    lines += [
        "",
        f"Fixed rate: {_number(config['fixed_rate'])} req/s for {config['fixed_seconds']:g} s "
        f"(batch 1) and {config['batch32_seconds']:g} s (batch 32). Both servers answered the "
        f"same 32-row request with the same classes: {agreement['same_predictions']}; largest "
        f"difference between their probabilities: {agreement['max_abs_proba_diff']:.1e}.",
        "",
        *_noise_lines(results),
        "## What was measured, and how",
        "",
        "- **Same model, same bytes.** The reference trainer trains `modelops-linear/v1` on "
        "`iris.csv` once per run; both servers load that artifact. Ours is "
        "`python -m modelops.runtimes.server` with its defaults (digest verification, request "
        "metrics and per-feature histograms on, access log off). MLServer runs "
        "`benchmarks/serving/mlserver_runtime.py`, a custom `MLModel` that loads the same "
        "`model.json` with numpy and computes the same softmax, decoding and encoding with "
        "MLServer's `NumpyCodec`/`StringCodec`. Requests: one OIP v2 JSON tensor "
        "`input-0` of shape [1, 4] (an iris row) or [32, 4], FP64.",
        f"- **One worker each.** {_placement(config)} MLServer settings: "
        "`parallel_workers: 0` (inference in the HTTP process; its default of 1 adds a worker "
        "process), `debug: false` (its default turns on uvicorn's per-request access log; ours "
        "logs no requests), adaptive batching "
        "off (its default). MLServer 1.7.1 always starts its gRPC server and, by default, a "
        "metrics server on a separate port; both stay up, idle. uvicorn runs on uvloop "
        "(installed with MLServer); ours runs aiohttp on the standard asyncio loop. "
        "`OMP_NUM_THREADS`/`OPENBLAS_NUM_THREADS`/`MKL_NUM_THREADS=1` for both; "
        f"`OPENBLAS_CORETYPE` was {meta['env']['OPENBLAS_CORETYPE'] or 'unset'} and "
        f"`OPENBLAS_L2_SIZE` {meta['env']['OPENBLAS_L2_SIZE'] or 'unset'}, untouched.",
        "- **Load generator** (`loadgen.py`): open loop on asyncio, keep-alive HTTP/1.1, at most "
        f"{config['max_connections']} connections, requests evenly spaced at the offered rate. "
        "Latency runs from the moment the generator issues a request to the end of its "
        "response, including any wait for a free connection, so a server that falls behind "
        "cannot hide its queue (no coordinated omission). The generator's own lateness "
        "against its schedule (asyncio's millisecond timer: 0 to 2 ms; stalls of its process "
        "on this machine: more) is left out and shown per step, next to the latency measured "
        "from the scheduled time, which includes it. The generator runs on its own CPU, so "
        "the server cannot cause that lateness.",
        "- **Max throughput**: offered rate doubled from "
        f"{_number(config['search_start'])} req/s, {config['step_seconds']:g} s per step, then "
        f"{config['refinements']} bisection steps between the last pass and the first failure. "
        "A step passes with no errors, p99 ≤ 10 ms and ≥ 95 % of the offered rate answered. "
        f"{_attempts(config['attempts'])} The figure is as coarse as the last bisection "
        "interval.",
        f"- **Closed-loop throughput**: {config['saturation_connections']} connections, each "
        "sending its next request as soon as the last answer is in, for "
        f"{config['step_seconds']:g} s after the search: the server's capacity without a "
        "latency bound, and less sensitive to scheduling noise than the p99 search.",
        "- **Server CPU per request**: user + system time of the server process during the "
        "batch-1 fixed-rate step, divided by its requests (less sensitive to the shared "
        "machine's noise than latency).",
        "- **Memory**: `VmRSS` (and `VmHWM`, the peak) from `/proc/<pid>/status`, summed over "
        f"the server's process tree, {config['settle_seconds']:g} s after the last step.",
        "- **Cold start**: from spawning the process to the first 200 on `/v2/health/ready` "
        f"(polled every {config['ready_poll_ms']:g} ms) and to the first successful inference. "
        "Each server was started once before the rounds and not measured, so every measured "
        "start finds its Python files in the page cache.",
        "",
        "## Versions",
        "",
        "| side | versions |",
        "|---|---|",
    ]
    for side, versions in meta["versions"].items():
        listed = ", ".join(f"{name} {version}" for name, version in versions.items())
        lines.append(f"| {side} | {listed} |")
    lines += ["", "## Every session", ""]
    for session in results["sessions"]:
        lines += _session_lines(session)
    return "\n".join(lines) + "\n"


def _noise_lines(results: dict[str, Any]) -> list[str]:
    """How noisy the run was, from its own numbers: the generator's lateness and the spread
    between rounds of the same server."""
    sessions = results["sessions"]
    lags = [s["fixed"]["batch1"]["send_lag_p99_ms"] for s in sessions]
    spreads = []
    names = {
        "saturation_rps": "closed-loop throughput",
        "b1_p99": "batch-1 p99 at the fixed rate",
        "cpu_per_request": "CPU per request",
        "idle_rss": "idle RSS",
        "cold_ready": "time to ready",
    }
    for key, name in names.items():
        metric = next(m for m in METRICS if m.key == key)
        worst = 1.0
        for server in SERVERS:
            values = [v for s in sessions if s["server"] == server and (v := metric.read(s))]
            if values:
                worst = max(worst, max(values) / min(values))
        spreads.append(f"{name} {worst:.2f}x")
    return [
        "**How noisy this run was.** The generator's own lateness (p99 of how late it issued "
        f"requests, batch-1 fixed-rate steps) was {_number(min(lags))} to "
        f"{_number(max(lags))} ms. Latency is measured from the issue, so that lateness is not "
        "charged to the servers, but a stall of the generator while a request is in flight "
        "still is. Largest ratio between two rounds of the same server: "
        f"{'; '.join(spreads)}. On a shared 2-CPU machine, latency tails and both throughput "
        "figures move with whatever else runs; CPU time per request, memory and the "
        "comparison of cold starts are the steadier numbers.",
        "",
    ]


def _attempts(attempts: int) -> str:
    if attempts == 1:
        return "Each rate is measured once."
    return (
        f"A rate passes if one of up to {attempts} steps at it passes: one burst of other work "
        "on the shared machine should not end the search, and a rate the server cannot sustain "
        "fails every time."
    )


def _placement(config: dict[str, Any]) -> str:
    if config["server_cpu"] is None:
        where = "Each server is one process; neither it nor the load generator is pinned to a CPU"
    else:
        where = (
            f"Each server is one process pinned to CPU {config['server_cpu']} (`taskset`), the "
            f"load generator is pinned to CPU {config['generator_cpu']}"
        )
    return (
        f"{where}. The server under test and the generator run with {config['scheduling']}, "
        "so that other work on the machine delays them less (`--scheduling`)."
    )


def _session_lines(session: Session) -> list[str]:
    cold, memory = session["cold_start"], session["memory"]
    lines = [
        f"### Round {session['round']}, {LABELS[session['server']]}",
        "",
        f"Ready after {cold['ready_s']:.2f} s, first inference after "
        f"{cold['first_inference_s']:.2f} s; RSS {memory['ready']['rss_mib']:.1f} MiB when "
        f"ready, {memory['after_load']['rss_mib']:.1f} MiB after the load "
        f"(peak {memory['after_load']['peak_rss_mib']:.1f} MiB, "
        f"{memory['after_load']['processes']} process(es)); "
        f"server CPU {session['cpu_ms_per_request']:.3f} ms per request at the fixed rate; "
        f"max throughput {_number(session['search']['max_rate'])} req/s at p99 ≤ 10 ms; "
        f"closed loop {_number(session['saturation']['achieved_rps'])} req/s "
        f"(p50 {_number(session['saturation']['p50_ms'])} ms, "
        f"{session['saturation']['errors']} errors).",
        "",
        "| step | offered | achieved | errors | p50 | p90 | p99 | max | p50 / p99 from schedule "
        "| generator lag p99 | pass |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [
        ("fixed, batch 1", session["fixed"]["batch1"]),
        ("fixed, batch 32", session["fixed"]["batch32"]),
        *((f"search {i + 1}", step) for i, step in enumerate(session["search"]["steps"])),
    ]
    for name, step in rows:
        lines.append(
            f"| {name} | {_number(step['offered_rps'])} | {_number(step['achieved_rps'])} | "
            f"{step['errors']} | {_number(step['p50_ms'])} | {_number(step['p90_ms'])} | "
            f"{_number(step['p99_ms'])} | {_number(step['max_ms'])} | "
            f"{_number(step['p50_from_schedule_ms'])} / {_number(step['p99_from_schedule_ms'])} | "
            f"{_number(step['send_lag_p99_ms'])} | {'yes' if step['passed'] else 'no'} |"
        )
    lines.append("")
    return lines
