"""Prometheus and Alertmanager on loopback, for the end-to-end tests and the demo.

Both come from Debian's packages (unpacked by ``hack/build-tools.sh``; never installed, so no
daemon starts on the default ports). Prometheus scrapes the operator's ``/metrics`` and the
model servers listed in a file-based target list, evaluates the project's rules
(``manifests/prometheus/modelops-rules.yaml``) and sends alerts to Alertmanager. Processes are
recorded like the cluster's own (``<run-dir>/<name>.pid``), so ``LocalCluster.down`` stops them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.cluster import REPO, ClusterError, die_with_parent, free_port, record_pid

RULES = REPO / "manifests" / "prometheus" / "modelops-rules.yaml"


@dataclass(frozen=True)
class Monitoring:
    """Where Prometheus and Alertmanager answer, and the processes behind them."""

    prometheus: str
    alertmanager: str
    processes: tuple[subprocess.Popen[bytes], ...] = field(default=(), compare=False)
    run_dir: Path | None = None

    def stop(self) -> None:
        """Stop both (also done by ``LocalCluster.down`` through their pid files)."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=20)
        if self.run_dir is not None:
            for name in ("prometheus", "alertmanager"):
                (self.run_dir / f"{name}.pid").unlink(missing_ok=True)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        answer = _get_json(
            f"{self.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        )
        if answer.get("status") != "success":
            raise ClusterError(f"Prometheus query {promql!r} failed: {answer}")
        return list(answer["data"]["result"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        """The alerts named ``name`` that Alertmanager holds."""
        return [
            a
            for a in _get_json(f"{self.alertmanager}/api/v2/alerts")
            if a["labels"].get("alertname") == name
        ]


def start(
    bin_dir: Path,
    work: Path,
    run_dir: Path,
    *,
    operator_metrics: str | list[str],
    server_targets: Path,
    interval: str = "2s",
    detached: bool = False,
) -> Monitoring:
    """Start Alertmanager, then Prometheus; wait until both are ready.

    ``operator_metrics`` is the operator's ``host:port`` (or those of all its replicas: only the
    leader exports drift); ``server_targets`` a file-SD JSON file
    that lists the model servers (the packaged Prometheus has no Kubernetes discovery, and the
    harness's pod IPs are loopback addresses that EndpointSlices refuse).
    """
    operators = [operator_metrics] if isinstance(operator_metrics, str) else operator_metrics
    templates = bin_dir / "alertmanager-templates"
    if not (templates / "default.tmpl").is_file():
        raise ClusterError(f"Alertmanager templates missing in {templates}: run `make tools`")
    work.mkdir(parents=True, exist_ok=True)
    if not server_targets.exists():
        server_targets.write_text("[]")
    am_port, prom_port = free_port(), free_port()
    (work / "alertmanager.yml").write_text(
        yaml.safe_dump(
            {
                "route": {
                    "receiver": "log",
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [{"name": "log"}],
            }
        )
    )
    shutil.copy(RULES, work / "modelops-rules.yaml")
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "rule_files": ["modelops-rules.yaml"],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {"job_name": "modelops", "static_configs": [{"targets": operators}]},
                    {
                        "job_name": "model-servers",
                        "file_sd_configs": [
                            {"files": [str(server_targets)], "refresh_interval": "2s"}
                        ],
                    },
                ],
            }
        )
    )
    share = work / "share"
    if not share.exists():
        shutil.copytree(templates, share / "prometheus" / "alertmanager")
    alertmanager = _spawn(
        "alertmanager",
        [
            # Debian's build reads its templates from /usr/share/prometheus/alertmanager: give it
            # a private mount namespace where /usr/share holds just those.
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" /usr/share && exec "$@"',
            str(share),
            str(bin_dir / "alertmanager"),
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        work,
        run_dir,
        detached,
    )
    prometheus = _spawn(
        "prometheus",
        [
            str(bin_dir / "prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        work,
        run_dir,
        detached,
    )
    monitoring = Monitoring(
        f"http://127.0.0.1:{prom_port}",
        f"http://127.0.0.1:{am_port}",
        (alertmanager, prometheus),
        run_dir,
    )
    for url in (monitoring.alertmanager, monitoring.prometheus):
        _wait_ready(url, work)
    return monitoring


def write_targets(path: Path, addresses: list[str]) -> None:
    """Replace the model-server target list atomically (Prometheus re-reads it)."""
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps([{"targets": addresses}]))
    staged.replace(path)


def _spawn(
    name: str, argv: list[str], work: Path, run_dir: Path, detached: bool
) -> subprocess.Popen[bytes]:
    with (work / f"{name}.log").open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=None if detached else die_with_parent,
        )
    record_pid(run_dir, name, proc.pid)
    return proc


def _wait_ready(url: str, work: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    logs = {p.name: p.read_text(errors="replace")[-1500:] for p in work.glob("*.log")}
    raise ClusterError(f"{url} not ready in {timeout:.0f}s; logs: {logs}")


def _get_json(url: str) -> Any:
    host = urllib.parse.urlsplit(url).hostname or ""
    if not host.startswith("127."):
        raise ValueError(f"monitoring only talks to loopback addresses, not {url}")
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())
