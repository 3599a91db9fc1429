"""The operator at scale: modelops vs a null operator vs a minimal kopf operator (issue 12).

Usage (from the repository root, project venv)::

    .venv/bin/python benchmarks/operator/run.py            # 1,000 runs (make bench-operator)
    .venv/bin/python benchmarks/operator/run.py --quick    # 200 runs, a 2-minute soak

One local control plane (``harness.cluster``, reads audited too) with KWOK nodes only: training
pods are scheduled and "complete" without running anything, so no pod work competes. Parts:

1. **throughput**: per round and contender (modelops, ``null_operator.py``,
   ``kopf_operator.py``; the order reversed every other round), a fresh namespace, the
   contender started and proven ready by a warm-up run whose Job it creates, then ``--runs``
   TrainingRuns created at once. The driver's own watch records when it first sees each run
   and each Job; added latency = Job seen - run seen. CPU from /proc, requests from the audit
   log (by user agent), until the last Job exists.
2. **steady**: in modelops' last round, once its writes have stopped, the operator is
   restarted with ``MODELOPS_RESYNC_SECONDS`` low: requests over the start-up pass and over
   one periodic resync of every object.
3. **models**: ``--model-sizes`` Models with 10 ModelVersions each in one namespace: the
   start-up pass and one periodic resync; per Model reconcile: duration, requests, bytes read.
4. **memory**: modelops and the kopf operator (watching the same kinds) in turn on the last
   modelops throughput namespace and the largest Model namespace (about 2,000 custom objects
   plus Jobs and pods): RSS once everything is seen.
5. **soak**: waves of runs, Models and versions created and deleted for ``--soak-seconds``;
   RSS, threads and connections to the API server per wave; at the end, keys the work queue
   still holds for objects that are gone (``modelops_probe.py``).

``results.json`` (raw) and ``results.md`` (``report.py``) are written next to this file unless
``--out-dir`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import auditlog
import driver
import procfs
import report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from harness.cluster import LocalCluster, free_port  # noqa: E402

CONTENDERS = ("null", "kopf", "modelops", "modelops-w4", "modelops-w16")
"""The contenders one may pick; ``modelops-wN`` is modelops with ``--workers N`` (default 8), to
tell round trips from CPU. By default the three peers run."""
PEERS = ("null", "kopf", "modelops")
AGENTS = {
    "modelops": ("modelops/", "kopf/"),
    "null": ("bench-null-operator",),
    "kopf": ("bench-kopf-operator", "kopf/"),
}
"""User agents of each contender's requests (modelops' own client, and kopf's)."""


def agents(who: str) -> tuple[str, ...]:
    return AGENTS["modelops" if who.startswith("modelops") else who]


VERSIONS_PER_MODEL = 10


def log(message: str) -> None:
    print(f"{datetime.datetime.now(datetime.UTC):%H:%M:%S} {message}", flush=True)


class Contender:
    """One operator process under test."""

    def __init__(self, name: str, cluster: LocalCluster, namespaces: list[str], workdir: Path):
        self.name = name
        self.cluster = cluster
        self.namespaces = namespaces
        self.log = workdir / f"{name}-{'-'.join(namespaces)}.log"
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.status_file = workdir / f"{name}-status.json"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, mode: str) -> list[str]:
        kc = str(self.cluster.kubeconfig)
        ns_args = [a for ns in self.namespaces for a in ("--namespace", ns)]
        if self.name.startswith("modelops"):
            entry = ["-m", "modelops"] if mode != "probe" else [str(HERE / "modelops_probe.py")]
            workers = self.name.partition("-w")[2]
            return [
                sys.executable,
                *entry,
                "--kubeconfig",
                kc,
                *ns_args,
                "--metrics-port",
                str(self.metrics_port),
                "--health-port",
                str(self.health_port),
                *(["--workers", workers] if workers else []),
            ]
        if self.name == "null":
            return [
                sys.executable,
                str(HERE / "null_operator.py"),
                "--kubeconfig",
                kc,
                *ns_args,
                "--ready-file",
                str(self.status_file),
            ]
        return [
            sys.executable,
            str(HERE / "kopf_operator.py"),
            "--kubeconfig",
            kc,
            *ns_args,
            "--health-port",
            str(self.health_port),
            "--mode",
            "watch" if mode == "watch" else "create",
            "--status-file",
            str(self.status_file),
        ]

    def start(self, mode: str = "run", env: dict[str, str] | None = None) -> None:
        self.status_file.unlink(missing_ok=True)
        child_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(mode),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
            )
        self.started = time.time()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def metrics(self) -> dict[str, float]:
        """modelops' /metrics, summed by family and kind (``name{kind}``)."""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.startswith("modelops_"):
                continue
            name, _, value = line.rpartition(" ")
            family, _, labels = name.partition("{")
            kind = ""
            for part in labels.rstrip("}").split(","):
                if part.startswith("kind="):
                    kind = part.split("=", 1)[1].strip('"')
            key = f"{family}{{{kind}}}"
            out[key] = out.get(key, 0.0) + float(value)
        return out

    def reconciles(self, kind: str) -> float:
        """Reconciles of ``kind`` so far, whatever their result."""
        try:
            return self.metrics().get(f"modelops_reconciles_total{{{kind}}}", 0.0)
        except OSError:
            return 0.0

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@contextmanager
def running(contender: Contender, mode: str = "run", **env: str) -> Iterator[Contender]:
    contender.start(mode, env)
    try:
        yield contender
    finally:
        contender.stop()


class Bench:
    """Shared state of one benchmark run."""

    def __init__(self, args: argparse.Namespace, cluster: LocalCluster, workdir: Path) -> None:
        self.args = args
        self.cluster = cluster
        self.workdir = workdir
        self.driver = driver.Driver(cluster.kubeconfig)
        self.audit = cluster.audit_log
        self.kept: list[str] = []

    def requests(self, start: int, end: int, who: str) -> list[auditlog.Request]:
        reqs, _ = auditlog.read(self.audit, start, end)
        return auditlog.by_agent(reqs, agents(who))

    def wait_quiet(self, who: str, quiet: float, cap: float, since: float) -> float:
        """Wait until ``who`` has written nothing for ``quiet`` seconds (at most ``cap``);
        return the epoch time of its last write after ``since`` (``since`` if none)."""
        offset = auditlog.offset(self.audit)
        last = since
        started = time.monotonic()
        while time.monotonic() - started < cap:
            time.sleep(1)
            reqs, offset = auditlog.read(self.audit, offset)
            writes = [r.time for r in auditlog.by_agent(reqs, agents(who)) if r.write]
            if writes:
                last = max(last, *writes)
            if time.time() - max(last, since) >= quiet and time.monotonic() - started >= quiet:
                break
        return last

    def ready_by_warmup(self, contender: Contender, ns: str, jobs: driver.Watcher) -> None:
        """The contender is ready once it has created the warm-up run's Job."""
        self.driver.create(ns, [driver.training_run("warmup")])
        deadline = time.monotonic() + 180
        while "warmup" not in jobs.added:
            if not contender.alive():
                raise RuntimeError(f"{contender.name} exited: {contender.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{contender.name} made no Job in 180 s: {contender.tail()}")
            time.sleep(0.2)

    # -- part 1 and 2 -------------------------------------------------------------------------

    def throughput(self, rnd: int, who: str, *, keep: bool, steady: bool) -> dict[str, Any]:
        n = self.args.runs
        ns = f"tp-{rnd}-{who}"
        log(f"throughput round {rnd}: {who}, {n} TrainingRuns in {ns}")
        self.driver.namespace(ns)
        contender = Contender(who, self.cluster, [ns], self.workdir)
        runs = driver.Watcher(self.driver.api, ns, driver.GROUP, driver.VERSION, "trainingruns")
        jobs = driver.Watcher(self.driver.api, ns, "batch", "v1", "jobs")
        record: dict[str, Any] = {"round": rnd, "contender": who, "runs": n, "namespace": ns}
        try:
            contender.start()
            self.ready_by_warmup(contender, ns, jobs)
            profiler = None
            if self.args.profile and who == "modelops":
                profiler = Profiler(contender.pid, self.workdir / f"profile-{rnd}.txt")
            cpu0, off0, t0 = (
                procfs.cpu_seconds(contender.pid),
                auditlog.offset(self.audit),
                (time.time()),
            )
            names = [f"run-{i:05d}" for i in range(n)]
            self.driver.create(
                ns, (driver.training_run(x) for x in names), rate=self.args.create_rate
            )
            created = time.time()
            jobs.wait(
                f"{n} Jobs from {who}",
                lambda w: all(x in w.added for x in names),
                self.args.job_timeout,
            )
            t1 = time.time()
            cpu1 = procfs.cpu_seconds(contender.pid)
            if profiler is not None:
                record["profile"] = profiler.stop()
            rss, hwm = procfs.memory_mib(contender.pid)
            # The watch can show a Job before the API server has written the audit line of the
            # request that made it: wait (bounded) until every Job's create is in the log.
            deadline = time.monotonic() + 30
            while True:
                off1 = auditlog.offset(self.audit)
                reqs = self.requests(off0, off1, who)
                made = auditlog.tally(reqs).get("create jobs", 0)
                if made >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            first = min(runs.added[x] for x in names)
            last_run = max(runs.added[x] for x in names)
            last_job = max(jobs.added[x] for x in names)
            latencies = sorted(jobs.added[x] - runs.added[x] for x in names)
            record.update(
                {
                    "create_s": created - t0,
                    "runs_seen_s": last_run - first,
                    "all_jobs_s": last_job - first,
                    "jobs_per_s": n / (last_job - first),
                    "latency_s": latencies,
                    "cpu_s": cpu1 - cpu0,
                    "rss_mib": rss,
                    "peak_rss_mib": hwm,
                    "requests": auditlog.counts(reqs),
                    "requests_by_what": auditlog.tally(reqs),
                    "window_s": t1 - t0,
                }
            )
            # How long it keeps writing afterwards (status, events as pods come and go).
            last = self.wait_quiet(who, quiet=10, cap=self.args.settle_cap, since=t1)
            after = self.requests(off0, auditlog.offset(self.audit), who)
            record["writes_until_quiet"] = sum(1 for r in after if r.write)
            record["requests_until_quiet"] = len(after)
            record["last_write_after_s"] = max(0.0, last - first)
            record["cpu_until_quiet_s"] = procfs.cpu_seconds(contender.pid) - cpu0
            contender.stop()
            if steady:
                record["steady"] = self.steady(ns, n + 1)
        finally:
            contender.stop()
            runs.stop()
            jobs.stop()
        if keep:
            self.kept.append(ns)
        else:
            record["namespace_delete_s"] = self.driver.delete_namespace(ns, 900)
        log(
            f"  {who}: {record.get('jobs_per_s', 0):.1f} Jobs/s, "
            f"p50 {report.percentile(record.get('latency_s', [0]), 50):.3f} s"
        )
        return record

    def steady(self, ns: str, runs: int) -> dict[str, Any]:
        """modelops restarted on settled objects: the start-up pass, then one periodic resync."""
        resync = self.args.resync_seconds
        # Nothing may be left to do: every run finished (its pod completed on KWOK and the
        # status recorded it), then no write for 15 s.
        started = time.monotonic()
        contender = Contender("modelops", self.cluster, [ns], self.workdir)
        with running(contender):
            try:
                driver.wait(
                    "every run finished",
                    lambda: self.driver.unfinished_runs(ns) == 0,
                    self.args.settle_cap,
                    5.0,
                )
                finished = True
            except TimeoutError:
                finished = False
            self.wait_quiet("modelops", quiet=15, cap=300, since=time.time())
        settled_s = time.monotonic() - started
        log(f"  steady state: restart, then a resync after {resync:.0f} s")
        off0 = auditlog.offset(self.audit)
        objects = runs + 1  # the runs and Model bench
        with running(contender, MODELOPS_RESYNC_SECONDS=str(resync)):

            def reconciled() -> float:
                return contender.reconciles("TrainingRun") + contender.reconciles("Model")

            driver.wait("the start-up pass", lambda: reconciled() >= objects, 300, 0.5)
            startup_s = time.time() - contender.started
            off1 = auditlog.offset(self.audit)
            at1 = reconciled()
            driver.wait(
                "a periodic resync of every object",
                lambda: reconciled() >= at1 + objects,
                resync + 300,
                0.5,
            )
            time.sleep(3)
            off2 = auditlog.offset(self.audit)
            at2 = reconciled()
        startup = self.requests(off0, off1, "modelops")
        resync_reqs = self.requests(off1, off2, "modelops")
        return {
            "objects": objects,
            "all_finished": finished,
            "settle_s": settled_s,
            "resync_seconds": resync,
            "startup_s": startup_s,
            "startup_reconciles": at1,
            "startup": auditlog.counts(startup),
            "startup_by_what": auditlog.tally(startup),
            "resync_reconciles": at2 - at1,
            "resync": auditlog.counts(resync_reqs),
            "resync_by_what": auditlog.tally(resync_reqs),
        }

    # -- part 3 -------------------------------------------------------------------------------

    def models(self, count: int, keep: bool) -> dict[str, Any]:
        ns = f"models-{count}"
        versions = count * VERSIONS_PER_MODEL
        log(f"models: {count} Models, {versions} ModelVersions in {ns}")
        self.driver.namespace(ns, training=False)
        objs: list[dict[str, Any]] = [driver.model(f"m{i:04d}") for i in range(count)]
        objs += [
            driver.model_version(f"m{i:04d}", f"v{j}")
            for i in range(count)
            for j in range(VERSIONS_PER_MODEL)
        ]
        self.driver.create(ns, objs)
        resync = self.args.resync_seconds
        contender = Contender("modelops", self.cluster, [ns], self.workdir)
        off0 = auditlog.offset(self.audit)
        with running(contender, MODELOPS_RESYNC_SECONDS=str(resync)):
            driver.wait(
                "every Model reconciled",
                lambda: contender.reconciles("Model") >= count,
                600,
                0.2,
            )
            startup_s = time.time() - contender.started
            self.wait_quiet("modelops", quiet=3, cap=120, since=time.time())
            m0 = contender.metrics()
            off1, rchar0, cpu0 = (
                auditlog.offset(self.audit),
                procfs.bytes_read(contender.pid),
                procfs.cpu_seconds(contender.pid),
            )
            base = m0.get("modelops_reconciles_total{Model}", 0.0)
            ticks = pass_times(contender, base, count, resync + 300)
            time.sleep(2)
            m1 = contender.metrics()
            off2, rchar1, cpu1 = (
                auditlog.offset(self.audit),
                procfs.bytes_read(contender.pid),
                procfs.cpu_seconds(contender.pid),
            )
            rss, _ = procfs.memory_mib(contender.pid)
        done = m1["modelops_reconciles_total{Model}"] - base
        seconds = m1["modelops_reconcile_duration_seconds_sum{Model}"] - m0.get(
            "modelops_reconcile_duration_seconds_sum{Model}", 0.0
        )
        startup = self.requests(off0, off1, "modelops")
        resync_reqs = self.requests(off1, off2, "modelops")
        if keep:
            self.kept.append(ns)
        else:
            self.driver.delete_namespace(ns, 600)
        return {
            "models": count,
            "versions": versions,
            "startup_s": startup_s,
            "startup": auditlog.counts(startup),
            "startup_by_what": auditlog.tally(startup),
            "resync_reconciles": done,
            "resync_pass_s": ticks,
            "reconcile_mean_s": seconds / done if done else None,
            "cpu_per_reconcile_s": (cpu1 - cpu0) / done if done else None,
            "bytes_per_reconcile": (rchar1 - rchar0) / done if done else None,
            "resync": auditlog.counts(resync_reqs),
            "resync_by_what": auditlog.tally(resync_reqs),
            "requests_per_reconcile": len(resync_reqs) / done if done else None,
            "rss_mib": rss,
        }

    # -- part 4 -------------------------------------------------------------------------------

    def memory(self, rnd: int) -> list[dict[str, Any]]:
        namespaces = list(self.kept)
        expected = self.object_counts(namespaces)
        own = sum(v for k, v in expected.items() if k in ("trainingruns", "models"))
        total = sum(expected.values())
        log(f"memory round {rnd}: {total} objects in {', '.join(namespaces)}")
        out = []
        for who in ("modelops", "kopf"):
            contender = Contender(who, self.cluster, namespaces, self.workdir)
            with running(contender, "watch"):
                started = time.time()
                if who == "modelops":
                    driver.wait(
                        "every object reconciled",
                        lambda c=contender: (
                            c.reconciles("TrainingRun") + c.reconciles("Model") >= own
                        ),
                        600,
                        0.5,
                    )
                    self.wait_quiet("modelops", quiet=5, cap=300, since=time.time())
                else:
                    driver.wait(
                        "every object seen",
                        lambda c=contender: seen(c.status_file) >= total,
                        600,
                        0.5,
                    )
                ready_s = time.time() - started
                samples = []
                for _ in range(5):
                    time.sleep(1)
                    samples.append(procfs.memory_mib(contender.pid))
            out.append(
                {
                    "round": rnd,
                    "contender": who,
                    "objects": expected,
                    "ready_s": ready_s,
                    "rss_mib": sorted(s[0] for s in samples)[2],
                    "peak_rss_mib": samples[-1][1],
                }
            )
            log(f"  {who}: {out[-1]['rss_mib']:.0f} MiB")
        return out

    def object_counts(self, namespaces: list[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        kinds = [
            (driver.GROUP, driver.VERSION, p)
            for p in ("trainingruns", "models", "modelversions", "driftpolicies")
        ] + [("batch", "v1", "jobs")]
        for ns in namespaces:
            for group, version, plural in kinds:
                counts[plural] = counts.get(plural, 0) + self.driver.count(
                    group, version, ns, plural
                )
            pods = self.driver.core.list_namespaced_pod(
                ns, label_selector="modelops.dev/model", _preload_content=False
            )
            counts["pods"] = counts.get("pods", 0) + len(json.loads(pods.data)["items"])
        return counts

    # -- part 5 -------------------------------------------------------------------------------

    def soak(self) -> dict[str, Any]:
        ns = "soak"
        wave_runs = self.args.soak_wave
        log(f"soak: waves of {wave_runs} runs for {self.args.soak_seconds:.0f} s")
        self.driver.namespace(ns)
        contender = Contender("modelops", self.cluster, [ns], self.workdir)
        probe = self.workdir / "probe.json"
        runs = driver.Watcher(self.driver.api, ns, driver.GROUP, driver.VERSION, "trainingruns")
        jobs = driver.Watcher(self.driver.api, ns, "batch", "v1", "jobs")
        port = self.cluster.ports["apiserver"]
        waves = []
        created = 0
        with running(
            contender,
            "probe",
            MODELOPS_BENCH_PROBE=str(probe),
            MODELOPS_RESYNC_SECONDS=str(self.args.resync_seconds),
        ):
            self.ready_by_warmup(contender, ns, jobs)
            self.driver.delete(ns, "TrainingRun", ["warmup"])
            started = time.monotonic()
            wave = 0
            while time.monotonic() - started < self.args.soak_seconds:
                names = [f"w{wave}-{i:04d}" for i in range(wave_runs)]
                model_name = f"soak-{wave}"
                self.driver.create(
                    ns,
                    [driver.model(model_name)]
                    + [driver.model_version(model_name, f"v{j}") for j in range(VERSIONS_PER_MODEL)]
                    + [driver.training_run(x) for x in names],
                )
                jobs.wait(
                    "the wave's Jobs",
                    lambda w, names=names: all(x in w.added for x in names),
                    self.args.job_timeout,
                )
                self.driver.delete(ns, "TrainingRun", names)
                self.driver.delete(
                    ns, "ModelVersion", [f"{model_name}-v{j}" for j in range(VERSIONS_PER_MODEL)]
                )
                self.driver.delete(ns, "Model", [model_name])
                runs.wait("the wave's runs gone", lambda w: not (w.live - {"warmup"}), 600)
                jobs.wait("the wave's Jobs gone", lambda w: not w.live, 600)
                created += 3 * wave_runs + 1 + VERSIONS_PER_MODEL
                rss, hwm = procfs.memory_mib(contender.pid)
                waves.append(
                    {
                        "wave": wave,
                        "t_s": time.monotonic() - started,
                        "objects_created": created,
                        "rss_mib": rss,
                        "peak_rss_mib": hwm,
                        "threads": procfs.threads(contender.pid),
                        "connections": procfs.connections_to(contender.pid, port),
                        "probe": json.loads(probe.read_text()) if probe.exists() else None,
                    }
                )
                log(
                    f"  wave {wave}: {rss:.0f} MiB, {waves[-1]['threads']} threads, "
                    f"{waves[-1]['connections']} connections"
                )
                wave += 1
            # Every deletion reconciled; then what is left queued should be the live objects.
            self.wait_quiet("modelops", quiet=10, cap=300, since=time.time())
            time.sleep(3)
            final = json.loads(probe.read_text())
            pods = self.driver.core.list_namespaced_pod(ns, _preload_content=False)
            final["pods_in_api"] = len(json.loads(pods.data)["items"])
        runs.stop()
        jobs.stop()
        self.driver.delete_namespace(ns, 900)
        return {
            "wave_runs": wave_runs,
            "seconds": self.args.soak_seconds,
            "objects_created": created,
            "waves": waves,
            "final_probe": final,
        }


class Profiler:
    """py-spy (from PyPI) sampling a process from outside, collapsed stacks to a file."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which(
            "py-spy"
        )
        if exe is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.out = out
        self.proc = subprocess.Popen(
            [
                *(exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "50"),
                *("--function", "--nonblocking", "--output", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the functions with the most samples, on the stack and on top."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        return summarize_profile(self.out.read_text() if self.out.exists() else "")


def summarize_profile(collapsed: str, top: int = 20) -> dict[str, Any]:
    """From py-spy's raw output (``frame;frame;... count`` per line): total samples, and the
    frames most often on the stack (inclusive) and on its top (self)."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def best(d: dict[str, int]) -> list[tuple[str, int]]:
        return sorted(d.items(), key=lambda kv: -kv[1])[:top]

    return {"samples": total, "inclusive": best(inclusive), "self": best(own)}


def seen(status_file: Path) -> int:
    try:
        return int(json.loads(status_file.read_text())["objects"])
    except (OSError, ValueError, KeyError):
        return 0


def pass_times(contender: Contender, base: float, count: int, timeout: float) -> float:
    """Seconds from the first to the last of ``count`` reconciles after ``base`` (polled)."""
    first: float | None = None
    deadline = time.monotonic() + timeout
    while True:
        done = contender.reconciles("Model") - base
        now = time.monotonic()
        if done > 0 and first is None:
            first = now
        if done >= count:
            return now - (first or now)
        if now > deadline:
            raise TimeoutError("no full resync of the Models")
        time.sleep(0.2)


def machine() -> dict[str, Any]:
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
    }


def git_revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = git("status", "--porcelain", "--", "operator").strip()
    return f"{head}+dirty" if dirty else head


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="200 runs, 2-minute soak")
    parser.add_argument("--runs", type=int, help="TrainingRuns per throughput round (1000)")
    parser.add_argument("--rounds", type=int, default=2, help="throughput rounds (2)")
    parser.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(PEERS))
    parser.add_argument("--model-sizes", type=int, nargs="+", help="Models per namespace (25 100)")
    parser.add_argument("--soak-seconds", type=float, help="soak duration (1800; quick 120)")
    parser.add_argument("--soak-wave", type=int, help="runs per soak wave (500; quick 100)")
    parser.add_argument(
        "--create-rate",
        type=float,
        default=0.0,
        help="create the throughput runs at this many per second (default 0: all at once)",
    )
    parser.add_argument("--resync-seconds", type=float, default=30.0)
    parser.add_argument("--job-timeout", type=float, default=900.0)
    parser.add_argument("--settle-cap", type=float, default=600.0)
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=("throughput", "steady", "models", "memory", "soak"),
        default=["throughput", "steady", "models", "memory", "soak"],
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample modelops with py-spy during its throughput windows",
    )
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument("--keep-logs", type=Path, help="keep cluster and operator logs here")
    args = parser.parse_args(argv)
    quick = args.quick
    args.runs = args.runs or (200 if quick else 1000)
    args.model_sizes = args.model_sizes or ([10, 40] if quick else [25, 100])
    args.soak_seconds = (
        args.soak_seconds if args.soak_seconds is not None else (120.0 if quick else 1800.0)
    )
    args.soak_wave = args.soak_wave or (100 if quick else 500)
    return args


def schedule(args: argparse.Namespace) -> list[tuple[int, str]]:
    """(round, contender) in order: the contenders' order reversed every other round, so
    drift in the machine's load hits each alike."""
    plan = []
    for rnd in range(args.rounds):
        order = list(args.contenders) if rnd % 2 == 0 else list(reversed(args.contenders))
        plan += [(rnd, who) for who in order]
    return plan


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "revision": git_revision(),
        "command": " ".join(["python", "benchmarks/operator/run.py", *(argv or sys.argv[1:])]),
        "machine": machine(),
        "loadavg_start": os.getloadavg(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    kwok_nodes = max(1, math.ceil(max(args.runs, args.soak_wave) / 100))
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        workdir = Path(tmp)
        cluster = LocalCluster(
            state_dir=workdir / "cluster", kwok_nodes=kwok_nodes, audit_reads=True
        )
        try:
            log(f"cluster up ({kwok_nodes} KWOK nodes)")
            cluster.up(timeout=180)
            for crd in sorted((REPO / "crds").glob("modelops.dev_*.yaml")):
                cluster.kubectl("apply", "--server-side", "-f", str(crd))
            cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
            bench = Bench(args, cluster, workdir)
            plan = schedule(args)
            last_modelops = max((i for i, (_, w) in enumerate(plan) if w == "modelops"), default=-1)
            try:
                steady = "steady" in args.parts  # measured on the last modelops round
                if "throughput" in args.parts:
                    results["throughput"] = []
                    for i, (rnd, who) in enumerate(plan):
                        keep = i == last_modelops and "memory" in args.parts
                        results["throughput"].append(
                            bench.throughput(
                                rnd, who, keep=keep, steady=i == last_modelops and steady
                            )
                        )
                if "models" in args.parts:
                    sizes = sorted(args.model_sizes)
                    results["models"] = []
                    for m in sizes:
                        keep = m == sizes[-1] and "memory" in args.parts
                        results["models"].append(bench.models(m, keep=keep))
                if "memory" in args.parts and bench.kept:
                    results["memory"] = [r for rnd in range(2) for r in bench.memory(rnd)]
                if "soak" in args.parts:
                    results["soak"] = bench.soak()
            except (Exception, KeyboardInterrupt) as e:
                # What was measured before a failure (or Ctrl-C) is still written, with it.
                results["error"] = repr(e)
                log(f"failed: {e!r}")
        finally:
            if args.keep_logs:
                subprocess.run(["cp", "-r", str(workdir), str(args.keep_logs)], check=False)
            cluster.down()
    results["loadavg_end"] = os.getloadavg()
    results["total_s"] = time.monotonic() - started
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out_dir / "results.md").write_text(report.render(results))
    log(f"wrote {args.out_dir / 'results.md'} in {results['total_s']:.0f} s")
    if "error" in results:
        sys.exit(1)


if __name__ == "__main__":
    main()
