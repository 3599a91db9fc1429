"""Drift evaluation from raw rows: ours vs Evidently's DataDriftPreset vs a scipy loop.

Usage (from the repository root, project venv)::

    .venv/bin/python benchmarks/drift/run.py            # 10k, 100k, 1M rows (make bench-drift)
    .venv/bin/python benchmarks/drift/run.py --quick    # 10k and 100k rows only

Every contender gets the same seeded arrays (``dataset.py``: 100 features, the reference as
large as the current window, 10 features shifted by 0.5 sigma) and runs in a fresh process
pinned to one CPU (``measure.py``); the driver stays on another CPU. Repetitions are
interleaved (ours, scipy, Evidently defaults, Evidently matched, then again), so slow drift in
the machine's load hits every contender alike.

By default, below 1M rows: three rounds, Evidently matched in the first only (with these data
it runs the very test Evidently picks by itself, normed Wasserstein at 0.1, so one run checks
that and times it once); at 1M rows one run each of ours, the scipy loop and Evidently's
defaults. An Evidently run is stopped after 180 s and recorded as a timeout, and a contender
that timed out is not started again; a process out of memory is recorded as failed with its
error. ``results.json`` (raw) and ``results.md`` (``report.py``) are written next to this file
unless ``--out-dir`` says otherwise.

Evidently runs in its own venv (``requirements-evidently.txt``, made by ``make bench-drift``);
without it, its contenders are recorded as skipped with the reason.
"""

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dataset
import report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path.home() / ".cache" / "modelops" / "bench"
EVIDENTLY_PYTHON = CACHE / "evidently-venv" / "bin" / "python"

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
LARGE = 1_000_000
"""From this size on, ``--large-reps`` repetitions instead of ``--reps``."""

# Our method names in Evidently's stat-test registry (evidently.legacy.calculations.stattests).
EVIDENTLY_METHODS = {
    "wasserstein": "wasserstein",
    "ks": "ks",
    "js": "jensenshannon",
    "psi": "psi",
    "chi2": "chisquare",
}
P_VALUE_METHODS = {"ks", "chi2"}

# Some machines set these because older OpenBLAS builds misbehave on their CPUs; they slow a
# current numpy. Unset, both together, for the contenders only; the run records what they were.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Contender:
    """One program to measure: a script of this directory, its variant, and its venv."""

    name: str
    script: str
    variant: str = ""
    evidently: bool = False


CONTENDERS = (
    Contender("ours", "contender_ours.py"),
    Contender("scipy-loop", "contender_scipy.py"),
    Contender("evidently-defaults", "contender_evidently.py", "defaults", evidently=True),
    Contender("evidently-matched", "contender_evidently.py", "matched", evidently=True),
)


def child_environment() -> dict[str, str]:
    """The contenders' environment: one thread per library, no telemetry."""
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
    env.update(
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        # Evidently's telemetry (used by its UI service, not by Report.run) stays off anyway.
        DO_NOT_TRACK="1",
        ITERATIVE_DO_NOT_TRACK="1",
    )
    return env


def matched_methods(
    ours: dict[str, Any], names: tuple[str, ...], correction: str
) -> dict[str, Any]:
    """Evidently per-column ``[method, threshold]`` equal to what our ``auto`` chose.

    Evidently corrects nothing, so Bonferroni becomes a per-column p-value threshold of
    ``alpha / m``, ``m`` being the number of p-value features — the same rule.
    """
    methods, thresholds = ours["methods"], ours["thresholds"]
    tests = sum(1 for m in methods if m in P_VALUE_METHODS)
    if correction not in {"none", "bonferroni"} and tests:
        raise ValueError(f"Correction {correction} has no per-column equivalent in Evidently")
    matched = {}
    for name, method, threshold in zip(names, methods, thresholds, strict=True):
        if method in P_VALUE_METHODS and correction == "bonferroni":
            threshold = threshold / tests
        matched[name] = [EVIDENTLY_METHODS[method], threshold]
    return matched


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_one(command: list[str], limit_s: float, workdir: Path) -> dict[str, Any]:
    """Run one contender process; return its JSON result plus how the process ended.

    ``wait4`` gives the process's own peak RSS (loading and warm-up included). A process over
    ``limit_s`` is killed (by its pid) and recorded as a timeout; one killed by a signal
    otherwise (e.g. the OOM killer) or exiting non-zero as failed, with its stderr's tail.
    """
    out, stdout, stderr = workdir / "result.json", workdir / "stdout", workdir / "stderr"
    out.unlink(missing_ok=True)
    started = time.monotonic()
    with stdout.open("wb") as so, stderr.open("wb") as se:
        process = subprocess.Popen(
            [*command, "--out", str(out)], stdout=so, stderr=se, env=child_environment(), cwd=REPO
        )
    status, usage, timed_out = 0, None, False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > limit_s:
            timed_out = True
            os.kill(process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    record: dict[str, Any] = {
        "elapsed_s": time.monotonic() - started,
        "limit_s": limit_s,
        "exit_code": process.returncode,
        "process_peak_rss_mib": usage.ru_maxrss / 1024 if usage else None,
    }
    if timed_out:
        return {**record, "status": "timeout"}
    if process.returncode != 0 or not out.exists():
        return {**record, "status": "failed", "error": _tail(stderr)}
    return {**record, "status": "ok", **json.loads(out.read_text())}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu_model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kib = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "python": platform.python_version(),
        "openblas_overrides_unset": {k: os.environ.get(k) for k in OPENBLAS_OVERRIDES},
    }


def git_revision() -> str:
    """HEAD of the repository, with ``+dirty`` if the drift package has local changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", "operator/modelops/core/drift").strip()
    return f"{head}+dirty" if dirty else head


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [c.name for c in CONTENDERS]
    parser.add_argument("--quick", action="store_true", help="10k and 100k rows, one run each")
    parser.add_argument("--sizes", type=int, nargs="+", help="row counts (overrides --quick)")
    parser.add_argument("--reps", type=int, help="runs per contender below 1M rows (default 3)")
    parser.add_argument("--large-reps", type=int, default=1, help="runs per contender at 1M rows")
    parser.add_argument(
        "--matched-reps",
        type=int,
        default=1,
        help="runs of evidently-matched per size (it runs the same test as the defaults here)",
    )
    parser.add_argument("--contenders", nargs="+", choices=names, default=names)
    parser.add_argument(
        "--large-contenders",
        nargs="+",
        choices=names,
        default=["ours", "scipy-loop", "evidently-defaults"],
        help="contenders at 1M rows",
    )
    parser.add_argument(
        "--limit", type=float, default=600.0, help="seconds per run of ours and the scipy loop"
    )
    parser.add_argument(
        "--evidently-limit", type=float, default=180.0, help="seconds per Evidently run"
    )
    parser.add_argument(
        "--memory-limit-gib",
        type=float,
        default=12.0,
        help="address-space cap per contender process",
    )
    parser.add_argument("--evidently-python", type=Path, default=EVIDENTLY_PYTHON)
    parser.add_argument("--data-dir", type=Path, default=CACHE / "drift-data")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    return args


def schedule(args: argparse.Namespace) -> list[tuple[int, int, Contender]]:
    """The runs in order: by size, then repetition, then contender (interleaved)."""
    sizes = tuple(args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES))
    runs = []
    for size in sizes:
        large = size >= LARGE
        chosen = [
            c
            for c in CONTENDERS
            if c.name in args.contenders and (not large or c.name in args.large_contenders)
        ]
        for rep in range(args.large_reps if large else args.reps):
            for contender in chosen:
                if contender.variant != "matched" or rep < args.matched_reps:
                    runs.append((size, rep, contender))
    return runs


def skip_reason(
    contender: Contender, args: argparse.Namespace, methods_file: Path, timed_out: set[str]
) -> str | None:
    """Why a scheduled run is not started, if it is not."""
    if contender.evidently and not args.evidently_python.exists():
        return f"no Evidently venv at {args.evidently_python}"
    if contender.variant == "matched" and not methods_file.exists():
        return "no choice of ours to match (ours did not run)"
    if contender.name in timed_out:
        return "timed out at a smaller size or an earlier run"
    return None


def command_for(
    contender: Contender, args: argparse.Namespace, directory: Path, methods_file: Path, cpu: int
) -> list[str]:
    """The contender's command line, without ``--out``."""
    python = args.evidently_python if contender.evidently else Path(sys.executable)
    command = [str(python), str(HERE / contender.script), "--data", str(directory)]
    command += ["--cpu", str(cpu), "--memory-limit-gib", str(args.memory_limit_gib)]
    if contender.variant:
        command += ["--variant", contender.variant]
    if contender.variant == "matched":
        command += ["--methods", str(methods_file)]
    return command


def main() -> None:
    """Generate the data, run every contender, write results.json and results.md."""
    args = parse_args()
    plan = schedule(args)
    sizes = list(dict.fromkeys(size for size, _, _ in plan))
    # The driver keeps off the contenders' CPU where there is another one.
    cpus = sorted(os.sched_getaffinity(0))
    contender_cpu = cpus[0]
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[1:]))

    start = time.monotonic()
    results: dict[str, Any] = {
        "schema": 1,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "revision": git_revision(),
        "loadavg_start": os.getloadavg(),
        "config": {
            "sizes": sizes,
            "reps": args.reps,
            "large_reps": args.large_reps,
            "matched_reps": args.matched_reps,
            "large_contenders": args.large_contenders,
            "features": dataset.FEATURES,
            "shifted": list(dataset.shifted_features()),
            "shift_sigmas": dataset.SHIFT_SIGMAS,
            "seed": dataset.SEED,
            "contender_cpu": contender_cpu,
            "limit_s": args.limit,
            "evidently_limit_s": args.evidently_limit,
            "memory_limit_gib": args.memory_limit_gib,
        },
        "data": {},
        "runs": [],
    }
    timed_out: set[str] = set()
    detailed: set[tuple[int, str]] = set()
    data: dict[int, tuple[Path, dataset.Meta]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        workdir = Path(tmp)
        for size, rep, contender in plan:
            key = str(size)
            if size not in data:
                prepared = time.monotonic()
                data[size] = (path := dataset.ensure(args.data_dir, size)), dataset.read_meta(path)
                results["data"][key] = {
                    "directory": str(path),
                    "sha256": data[size][1].sha256,
                    "prepare_s": time.monotonic() - prepared,
                }
                print(f"Data for {size} rows ready in {path}", flush=True)
            directory, meta = data[size]
            methods_file = workdir / f"matched-{size}.json"
            record = {"size": size, "rep": rep, "contender": contender.name}
            record["loadavg"] = os.getloadavg()[0]
            reason = skip_reason(contender, args, methods_file, timed_out)
            if reason:
                results["runs"].append({**record, "status": "skipped", "error": reason})
                print(report.progress_line(results["runs"][-1]), flush=True)
                continue
            command = command_for(contender, args, directory, methods_file, contender_cpu)
            limit = args.evidently_limit if contender.evidently else args.limit
            outcome = run_one(command, limit, workdir)
            if outcome["status"] == "ok" and (size, contender.name) in detailed:
                # Later runs keep only their verdicts (for the stability check): the scores
                # and methods are the same numbers again.
                outcome["columns"] = {
                    name: {"verdicts": column["verdicts"]}
                    for name, column in outcome["columns"].items()
                }
            elif outcome["status"] == "ok":
                detailed.add((size, contender.name))
            results["runs"].append({**record, **outcome})
            print(report.progress_line(results["runs"][-1]), flush=True)
            if outcome["status"] == "timeout":
                timed_out.add(contender.name)
            if contender.name == "ours" and outcome["status"] == "ok" and rep == 0:
                choice = matched_methods(
                    outcome["columns"]["ours"], meta.names, outcome["correction"]
                )
                methods_file.write_text(json.dumps(choice))
                results["data"][key]["matched_methods"] = sorted(
                    {tuple(v) for v in choice.values()}
                )
    results["loadavg_end"] = os.getloadavg()
    results["total_s"] = time.monotonic() - start
    results["summary"] = report.summarize(results)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out_dir / "results.md").write_text(report.render(results))
    print(f"Wrote {args.out_dir / 'results.md'} after {results['total_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
