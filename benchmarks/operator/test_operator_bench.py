"""Checks of the operator benchmark's own logic, and one end-to-end run at a tiny size.

Run with ``.venv/bin/python -m pytest benchmarks/operator``. Nothing here asserts a timing or a
target: the end-to-end test (a cluster test, it starts its own control plane) checks that every
part ran, that each contender's requests were told apart in the audit log, and that the report
was written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import auditlog
import procfs
import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    """``run.py`` and ``report.py`` under names of their own: the drift benchmark has modules
    called ``run`` and ``report`` too, in the same pytest session."""
    spec = importlib.util.spec_from_file_location(f"operator_bench_{name}", HERE / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


report = _load("report")


def _event(audit_id: str, stage: str, verb: str, **ref: str) -> str:
    event: dict[str, Any] = {
        "auditID": audit_id,
        "stage": stage,
        "verb": verb,
        "requestReceivedTimestamp": "2026-12-03T12:00:00.250000Z",
        "userAgent": ref.pop("agent", "modelops/0.1.0"),
        "responseStatus": {"code": 200},
    }
    if ref:
        event["objectRef"] = ref
    return json.dumps(event)


def test_audit_counts_a_watch_once_and_names_discovery(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    lines = [
        _event("a", "ResponseStarted", "watch", resource="trainingruns", namespace="ns"),
        _event("b", "ResponseComplete", "patch", resource="trainingruns", subresource="status"),
        _event("a", "ResponseComplete", "watch", resource="trainingruns", namespace="ns"),
        _event("c", "ResponseComplete", "get"),
        _event("d", "ResponseComplete", "create", resource="jobs", agent="bench-null-operator"),
    ]
    log.write_text("\n".join(lines) + "\n" + lines[0][:20])  # a line still being written
    requests, end = auditlog.read(log, 0)
    assert end == len("\n".join(lines)) + 1
    assert [r.what for r in requests] == [
        "watch trainingruns",
        "patch trainingruns/status",
        "get (discovery)",
        "create jobs",
    ]
    assert requests[0].time == 1796299200.25
    ours = auditlog.by_agent(requests, ("modelops/", "kopf/"))
    assert auditlog.counts(ours) == {"requests": 3, "writes": 1, "get": 1, "list": 0, "watch": 1}
    # Reading on from where the last read stopped sees only what came after.
    with log.open("a") as f:
        f.write(lines[0][20:] + "\n")
    more, _ = auditlog.read(log, end)
    assert [r.what for r in more] == ["watch trainingruns"]


def test_procfs_sees_cpu_memory_and_a_connection() -> None:
    pid = os.getpid()
    before = procfs.cpu_seconds(pid)
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert procfs.cpu_seconds(pid) > before
    rss, peak = procfs.memory_mib(pid)
    assert 0 < rss <= peak
    assert procfs.threads(pid) >= 1
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert procfs.connections_to(pid, port) == 0
        with socket.create_connection(("127.0.0.1", port)):
            assert procfs.connections_to(pid, port) == 1


def test_percentile_interpolates() -> None:
    assert report.percentile([3, 1, 2], 50) == 2
    assert report.percentile([0, 10], 99) == pytest.approx(9.9)
    assert report.spread([1.0, 3.0, 2.0]) == "2.0 (1.0-3.0)"


def _throughput(rnd: int, who: str, jobs_per_s: float, p50: float) -> dict[str, Any]:
    return {
        "round": rnd,
        "contender": who,
        "runs": 4,
        "runs_seen_s": 1.0,
        "jobs_per_s": jobs_per_s,
        "latency_s": [p50 / 2, p50, p50, 2 * p50],
        "cpu_s": 2.0,
        "peak_rss_mib": 80.0,
        "requests": {"requests": 8, "writes": 8, "get": 0, "list": 0, "watch": 0},
        "requests_by_what": {"create jobs": 4, "patch trainingruns/status": 4},
        "writes_until_quiet": 12,
        "last_write_after_s": 5.0,
    }


def _results() -> dict[str, Any]:
    """Two rounds: modelops at 40% of the null operator in round 1, memory 1.6x kopf's."""
    counts = {"requests": 0, "writes": 0, "get": 0, "list": 0, "watch": 0}
    return {
        "date": "2026-12-03T12:00:00+00:00",
        "revision": "abc1234",
        "command": "python benchmarks/operator/run.py",
        "machine": {"cpu_model": "CPU", "nproc": 2, "memory_gib": 8, "kernel": "6", "python": "3"},
        "loadavg_start": [1.0, 1.0, 1.0],
        "loadavg_end": [1.0, 1.0, 1.0],
        "total_s": 100.0,
        "config": {"settle_cap": 60.0},
        "throughput": [
            _throughput(0, "null", 100.0, 0.01),
            _throughput(0, "modelops", 60.0, 0.5),
            _throughput(1, "modelops", 40.0, 0.8),
            _throughput(1, "null", 100.0, 0.01),
        ],
        "models": [
            {
                "models": m,
                "versions": 10 * m,
                "startup_s": 3.0,
                "resync_pass_s": 0.1,
                "reconcile_mean_s": 0.002,
                "cpu_per_reconcile_s": 0.001,
                "bytes_per_reconcile": 0.0,
                "requests_per_reconcile": 0.0,
                "resync": counts,
            }
            for m in (10, 40)
        ],
        "memory": [
            {"round": 0, "contender": "modelops", "rss_mib": 160.0, "objects": {"models": 1}},
            {"round": 0, "contender": "kopf", "rss_mib": 100.0, "objects": {"models": 1}},
        ],
    }


def test_summary_names_targets_met_and_missed() -> None:
    summary = report.summarize(_results())
    assert summary["ratios"]["null"]["throughput"] == [0.6, 0.4]
    targets = summary["targets"]
    assert not targets["throughput"]["met"]
    assert "40%" in targets["throughput"]["value"]
    assert targets["latency"]["met"]
    assert targets["models"]["met"]
    assert not targets["memory"]["met"]
    page = report.render(_results())
    assert page.startswith("# Operator benchmark")
    assert (
        "| memory <= 1.5x the minimal kopf operator | 1.60x in the worst round | **no** |" in page
    )


def test_schedule_reverses_every_other_round() -> None:
    run = _load("run")
    args = run.parse_args(["--rounds", "3", "--quick", "--contenders", "null", "kopf", "modelops"])
    assert args.runs == 200
    assert run.schedule(args) == [
        (0, "null"),
        (0, "kopf"),
        (0, "modelops"),
        (1, "modelops"),
        (1, "kopf"),
        (1, "null"),
        (2, "null"),
        (2, "kopf"),
        (2, "modelops"),
    ]


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_end_to_end_at_a_tiny_size(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(HERE / "run.py"),
        "--runs",
        "4",
        "--rounds",
        "1",
        "--contenders",
        "null",
        "kopf",
        "modelops",
        "--model-sizes",
        "2",
        "4",
        "--soak-seconds",
        "1",
        "--soak-wave",
        "3",
        "--resync-seconds",
        "5",
        "--settle-cap",
        "30",
        "--out-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=850)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    rows = {r["contender"]: r for r in results["throughput"]}
    assert set(rows) == {"modelops", "null", "kopf"}
    for who, row in rows.items():
        assert len(row["latency_s"]) == 4, who
        # Each contender's own Job creations, told apart by user agent.
        assert row["requests_by_what"].get("create jobs") == 4, (who, row["requests_by_what"])
    steady = rows["modelops"]["steady"]
    # Reads are audited: the restarted operator's informers list and watch 8 sources.
    assert steady["startup"]["list"] >= 8
    assert steady["startup"]["watch"] >= 8
    assert steady["resync_reconciles"] >= steady["objects"]
    assert [m["versions"] for m in results["models"]] == [20, 40]
    assert {m["contender"] for m in results["memory"]} == {"modelops", "kopf"}
    soak = results["soak"]
    assert soak["waves"]
    assert soak["waves"][0]["connections"] > 0
    assert "stale" in soak["final_probe"]
    assert (tmp_path / "results.md").read_text().startswith("# Operator benchmark")
