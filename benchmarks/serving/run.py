"""Benchmark the modelops reference model server against MLServer on this machine.

Run from the repository root with the project's venv::

    .venv/bin/python benchmarks/serving/run.py [--quick]

It installs MLServer (pinned in ``requirements-mlserver.txt``) into its own venv outside the
repository on first use, trains the iris model once with the reference trainer, then measures
both servers in interleaved rounds (ours, MLServer, ours, MLServer, ...) and writes
``results.json`` (raw numbers) and ``results.md`` (the report) next to this file. The method
is described in the report. Every request goes to 127.0.0.1, and every loop is bounded. As
root, the generator and the server under test run SCHED_FIFO for the length of the run
(``--scheduling``), ahead of other work on the machine.
"""

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import loadgen
import report
import servers

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DATASET = REPO / "operator" / "modelops" / "datasets" / "iris.csv"
SCHEMA = REPO / "operator" / "modelops" / "datasets" / "iris.schema.json"
REQUIREMENTS = HERE / "requirements-mlserver.txt"
DEFAULT_MLSERVER_VENV = Path.home() / ".cache" / "modelops" / "bench" / "mlserver-venv"
#: The SLO of the throughput search: the p99 bound and the share of the offered rate that
#: must be answered.
P99_LIMIT_MS = 10.0
MIN_ACHIEVED_SHARE = 0.95
MAX_CONNECTIONS = 64
#: Clients of the closed-loop saturation run.
SATURATION_CONNECTIONS = 16


@dataclass(frozen=True)
class Profile:
    """Durations and rates of one run; ``FULL`` takes about 4-5 minutes, ``QUICK`` (one round,
    short steps, no second attempts: a smoke run, not a result) about 1 (plus about a minute to
    build MLServer's venv the first time)."""

    name: str
    rounds: int
    warmup_seconds: float
    fixed_rate: float
    fixed_seconds: float
    batch32_seconds: float
    search_start: float
    search_ceiling: float
    step_seconds: float
    refinements: int
    #: Steps at a rate before it counts as failed (see loadgen.find_max_rate).
    attempts: int
    #: Pause before each search step, so the previous step's backlog does not carry over.
    pause_seconds: float
    #: Idle time after the last step before memory is read.
    settle_seconds: float


FULL = Profile(
    name="full",
    rounds=2,
    warmup_seconds=2,
    fixed_rate=100,
    fixed_seconds=10,
    batch32_seconds=5,
    search_start=50,
    search_ceiling=12800,
    step_seconds=2,
    refinements=3,
    attempts=2,
    pause_seconds=0.5,
    settle_seconds=2,
)
QUICK = Profile(
    name="quick",
    rounds=1,
    warmup_seconds=1,
    fixed_rate=100,
    fixed_seconds=3,
    batch32_seconds=2,
    search_start=50,
    search_ceiling=12800,
    step_seconds=1,
    refinements=2,
    attempts=1,
    pause_seconds=0.3,
    settle_seconds=1,
)


@dataclass(frozen=True)
class Bodies:
    """The two request bodies, identical bytes for both servers."""

    batch1: bytes
    batch32: bytes


def log(message: str) -> None:
    """Progress on stderr, in the project's log style."""
    print(f"{datetime.now(UTC):%H:%M:%S} {message}", file=sys.stderr, flush=True)


def request_bodies() -> Bodies:
    """OIP v2 bodies with one ``[N, 4]`` FP64 tensor: the first iris row, and 32 rows spread
    evenly over the dataset (so all three classes appear)."""
    lines = DATASET.read_text(encoding="utf-8").splitlines()[1:]
    rows = [[float(value) for value in line.split(",")[:4]] for line in lines if line]

    def body(selected: list[list[float]]) -> bytes:
        tensor = {
            "name": "input-0",
            "shape": [len(selected), 4],
            "datatype": "FP64",
            "data": [value for row in selected for value in row],
        }
        return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()

    spread = [rows[round(i * (len(rows) - 1) / 31)] for i in range(32)]
    return Bodies(batch1=body(rows[:1]), batch32=body(spread))


def ensure_mlserver_venv(venv: Path) -> None:
    """Create ``venv`` from ``requirements-mlserver.txt`` unless it was built from exactly
    this file before (a stamp holds the file's sha256). Uses the interpreter behind the
    project's venv; mlserver 1.7.1 supports Python 3.9 to 3.12."""
    if not (3, 9) <= sys.version_info[:2] < (3, 13):
        raise SystemExit(
            f"mlserver 1.7.1 needs Python 3.9-3.12, this is {platform.python_version()}"
        )
    stamp = venv / ".requirements-sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text(encoding="ascii") == wanted:
        return
    log(f"Installing MLServer into {venv} from {REQUIREMENTS.name} (once, about 30 s)")
    shutil.rmtree(venv, ignore_errors=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
        check=True,
    )  # fmt: skip
    stamp.write_text(wanted, encoding="ascii")


def train(work: Path) -> tuple[Path, str]:
    """Train the iris model with the reference trainer; return the artifact dir and digest."""
    artifact = work / "artifact"
    termination_log = work / "termination-log"
    env = {
        **os.environ,
        "MODELOPS_TRAINER_DATASET": str(DATASET),
        "MODELOPS_TRAINER_SCHEMA": str(SCHEMA),
        "MODELOPS_TRAINER_OUTPUT_DIR": str(artifact),
        "MODELOPS_TRAINER_TERMINATION_LOG": str(termination_log),
    }
    trainer = subprocess.run(
        [sys.executable, "-m", "modelops.runtimes.trainer"], env=env, capture_output=True, text=True
    )
    if trainer.returncode != 0:
        raise SystemExit(f"The trainer failed ({trainer.returncode}):\n{trainer.stderr}")
    result = json.loads(termination_log.read_text(encoding="utf-8"))
    return artifact, result["artifact"]["digest"]


async def measure_session(
    spec: servers.ServerSpec, profile: Profile, bodies: Bodies
) -> dict[str, Any]:
    """Start one server, measure it (cold start, fixed rates, throughput search, memory) and
    stop it; return the raw numbers and its answer to the 32-row request."""
    server, cold = await servers.RunningServer.start(spec, bodies.batch1)
    try:
        answer = await server.infer(bodies.batch32)
        memory_ready = server.memory()
        single = loadgen.OpenLoopClient(
            servers.HOST, spec.port, servers.INFER_PATH, bodies.batch1, MAX_CONNECTIONS
        )
        batched = loadgen.OpenLoopClient(
            servers.HOST, spec.port, servers.INFER_PATH, bodies.batch32, MAX_CONNECTIONS
        )
        try:
            await single.run_step(profile.fixed_rate, profile.warmup_seconds)
            cpu_before = server.cpu_seconds()
            fixed1 = await single.run_step(profile.fixed_rate, profile.fixed_seconds)
            cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / fixed1.sent
            fixed32 = await batched.run_step(profile.fixed_rate, profile.batch32_seconds)

            async def measure(rate: float) -> loadgen.StepResult:
                await asyncio.sleep(profile.pause_seconds)
                return await single.run_step(rate, profile.step_seconds)

            search = await loadgen.find_max_rate(
                measure,
                _passed,
                profile.search_start,
                profile.search_ceiling,
                profile.refinements,
                profile.attempts,
            )
        finally:
            await single.close()
            await batched.close()
        await asyncio.sleep(profile.pause_seconds)
        saturation = await loadgen.saturate(
            servers.HOST,
            spec.port,
            servers.INFER_PATH,
            bodies.batch1,
            SATURATION_CONNECTIONS,
            profile.step_seconds,
        )
        await asyncio.sleep(profile.settle_seconds)
        memory_after = server.memory()
    finally:
        await server.stop()
    log(
        f"{spec.label}: ready {cold.ready_s:.2f}s, p50/p99 {fixed1.p50_ms:.2f}/"
        f"{fixed1.p99_ms:.2f} ms at {profile.fixed_rate:g} req/s, max {search.max_rate:g} req/s "
        f"at p99 <= {P99_LIMIT_MS:g} ms, {saturation.achieved_rps:.0f} req/s closed loop, "
        f"RSS {memory_after.rss_mib:.0f} MiB"
    )
    return {
        "server": spec.key,
        "cold_start": asdict(cold),
        "memory": {"ready": asdict(memory_ready), "after_load": asdict(memory_after)},
        "cpu_ms_per_request": cpu_ms,
        "fixed": {"batch1": _step_json(fixed1), "batch32": _step_json(fixed32)},
        "search": {
            "max_rate": search.max_rate,
            "steps": [_step_json(step) for step in search.steps],
        },
        "saturation": saturation.to_json(),
        "answer32": {output["name"]: output["data"] for output in answer["outputs"]},
    }


def _passed(step: loadgen.StepResult) -> bool:
    return step.passed(P99_LIMIT_MS, MIN_ACHIEVED_SHARE)


def _step_json(step: loadgen.StepResult) -> dict[str, Any]:
    return {**step.to_json(), "passed": _passed(step)}


def agreement(sessions: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare the two servers' answers to the 32-row request (first session of each)."""
    first = {s["server"]: s["answer32"] for s in reversed(sessions)}
    ours, theirs = first["modelops"], first["mlserver"]
    return {
        "same_predictions": ours["predict"] == theirs["predict"],
        "max_abs_proba_diff": max(
            abs(a - b) for a, b in zip(ours["predict_proba"], theirs["predict_proba"], strict=True)
        ),
    }


def machine() -> dict[str, Any]:
    """CPU count and model, memory and kernel of this machine."""
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    meminfo = Path("/proc/meminfo").read_text(encoding="ascii", errors="replace")
    total_kib = int(meminfo.split("MemTotal:", 1)[1].split()[0])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": models[0] if models else platform.processor(),
        "memory_gib": total_kib / 2**20,
        "kernel": platform.release(),
    }


def versions(venv: Path) -> dict[str, dict[str, str]]:
    """Python and the packages that matter, on each side."""
    ours = {"python": platform.python_version()}
    ours |= {name: metadata.version(name) for name in ("modelops-operator", "aiohttp", "numpy")}
    probe = (
        "import json, platform; from importlib import metadata; "
        "names = ('mlserver', 'fastapi', 'uvicorn', 'uvloop', 'numpy'); "
        "print(json.dumps({'python': platform.python_version(), "
        "**{n: metadata.version(n) for n in names}}))"
    )
    theirs = json.loads(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe], check=True, capture_output=True, text=True
        ).stdout
    )
    return {"modelops server": ours, "MLServer": theirs}


def _cpu_times() -> list[int]:
    """The machine-wide CPU time counters of ``/proc/stat`` (user, nice, system, idle, iowait,
    irq, softirq, steal), in clock ticks."""
    with open("/proc/stat", encoding="ascii") as stat:
        return [int(value) for value in stat.readline().split()[1:9]]


def _steal_percent(before: list[int], after: list[int]) -> float:
    """Share of CPU time the hypervisor gave to other guests between two ``_cpu_times``."""
    deltas = [b - a for a, b in zip(before, after, strict=True)]
    return 100 * deltas[7] / max(1, sum(deltas))


def _load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


#: Niceness for ``--scheduling nice``, and the fallback when real-time scheduling is refused.
NICENESS = -10


def set_scheduling(mode: str) -> str:
    """Give this process (the load generator) and, by inheritance, each server it starts
    priority over other work on the machine; return what is in force, for the report.

    ``realtime``: SCHED_FIFO at priority 1, so that a server or the generator runs as soon as
    it is woken instead of waiting for other processes' time slices, which otherwise adds
    milliseconds to every latency on a busy machine. The kernel's real-time throttling still
    leaves other work 5 % of each CPU. ``nice``: niceness -10, a bigger share of the CPU but no
    preemption. ``normal``: as started. Both need root; without it the run falls back to
    what it is allowed.
    """
    if mode == "realtime":
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            return "real-time (SCHED_FIFO, priority 1)"
        except PermissionError:
            log("Cannot use SCHED_FIFO (not root): trying niceness instead")
            mode = "nice"
    if mode == "nice":
        try:
            os.setpriority(os.PRIO_PROCESS, 0, NICENESS)
        except PermissionError:
            log(f"Cannot set niceness {NICENESS} (not root): running as started")
    niceness = os.nice(0)
    return f"niceness {niceness}" if niceness else "normal scheduling (niceness 0)"


async def run(profile: Profile, venv: Path, pin: bool, scheduling: str) -> dict[str, Any]:
    """Measure both servers in interleaved rounds; return the raw results."""
    started = time.perf_counter()
    load_before = _load_average()
    cpu_before = _cpu_times()
    ensure_mlserver_venv(venv)
    server_cpu: int | None = None
    generator_cpu: int | None = None
    if pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        server_cpu, generator_cpu = 0, 1
        os.sched_setaffinity(0, {generator_cpu})
    elif pin:
        log("Not pinning to CPUs: it needs 2 CPUs and taskset (util-linux)")
    scheduling = set_scheduling(scheduling)
    bodies = request_bodies()
    sessions: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="modelops-bench-serving-") as tmp:
        work = Path(tmp)
        artifact, digest = train(work)
        log(f"Trained the iris model into {artifact} ({digest})")

        def specs() -> list[servers.ServerSpec]:
            return [
                servers.ours(sys.executable, artifact, digest, work, server_cpu),
                servers.mlserver(venv, HERE, artifact, work, server_cpu),
            ]

        for spec in specs():
            # Not measured: brings each server's files into the page cache.
            running, _ = await servers.RunningServer.start(spec, bodies.batch1)
            await running.stop()
        for round_number in range(1, profile.rounds + 1):
            for spec in specs():
                log(f"Round {round_number}/{profile.rounds}: measuring {spec.label}")
                session = await measure_session(spec, profile, bodies)
                sessions.append({"round": round_number, **session})
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "wall_seconds": time.perf_counter() - started,
        "machine": machine(),
        "versions": versions(venv),
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "steal_percent": _steal_percent(cpu_before, _cpu_times()),
        "env": {name: os.environ.get(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")},
        "command": " ".join([".venv/bin/python", "benchmarks/serving/run.py", *sys.argv[1:]]),
    }
    config = {
        "profile": profile.name,
        **asdict(profile),
        "order": [report.LABELS[key] for key in report.SERVERS],
        "server_cpu": server_cpu,
        "generator_cpu": generator_cpu,
        "scheduling": scheduling,
        "max_connections": MAX_CONNECTIONS,
        "saturation_connections": SATURATION_CONNECTIONS,
        "p99_limit_ms": P99_LIMIT_MS,
        "min_achieved_share": MIN_ACHIEVED_SHARE,
        "ready_poll_ms": servers.READY_POLL_SECONDS * 1000,
        "mlserver_settings": servers.MLSERVER_SETTINGS,
    }
    return {"meta": meta, "config": config, "sessions": sessions}


def main() -> int:
    """Parse the command line, run the benchmark (or re-render a report) and write files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter steps: about 1 minute")
    parser.add_argument(
        "--rounds", type=int, help="interleaved rounds (default 2; each adds about 2 minutes)"
    )
    parser.add_argument("--out-dir", type=Path, default=HERE, help="where to write results.*")
    parser.add_argument(
        "--mlserver-venv", type=Path, default=DEFAULT_MLSERVER_VENV, help="MLServer's own venv"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--scheduling",
        choices=("realtime", "nice", "normal"),
        default="realtime",
        help="priority of the generator and the server under test over other work (default "
        "realtime: SCHED_FIFO; nice: niceness -10; both need root)",
    )
    parser.add_argument(
        "--from-json", type=Path, help="only re-render results.md from this results.json"
    )
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        profile = QUICK if args.quick else FULL
        if args.rounds:
            profile = replace(profile, rounds=args.rounds)
        results = asyncio.run(
            run(profile, args.mlserver_venv, pin=not args.no_pin, scheduling=args.scheduling)
        )
    # Derived from the sessions, so a re-render picks up changes to the summary's rules.
    results["agreement"] = agreement(results["sessions"])
    results["summary"] = report.summarise(results["sessions"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(
        json.dumps(results, indent=1) + "\n", encoding="utf-8"
    )
    (args.out_dir / "results.md").write_text(report.render(results), encoding="utf-8")
    log(f"Wrote {args.out_dir / 'results.md'} and results.json")
    for entry in results["summary"].values():
        if entry["ratio"] is not None:
            log(f"{entry['title']}: modelops/MLServer = {entry['ratio']:.2f} ({entry['verdict']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
