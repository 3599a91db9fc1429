"""Inference traffic for the demo and end-to-end tests: rows of a dataset, optionally shifted,
sent to every ready serving pod of a model over the Open Inference Protocol v2.

Requests go to the pods' own addresses on the real nodes (the host routes each node's pod subnet
into that node's network namespace), not to a Service: Service IPs and cluster DNS names work
inside the nodes (kube-proxy and CoreDNS run there), not from the host. Traffic through a Model's
Service by its DNS name is sent from a client pod (tests/cluster/test_real_nodes.py).
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def read_rows(path: Path, features: list[str]) -> list[dict[str, float]]:
    """The numeric ``features`` of every row of a CSV file."""
    with path.open(newline="") as f:
        return [{k: float(row[k]) for k in features} for row in csv.DictReader(f)]


def ready_pod_ips(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], namespace: str, model: str
) -> list[str]:
    """Addresses of the model's serving pods that are Ready."""
    out = kubectl(
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        f"modelops.dev/model={model},app.kubernetes.io/component=model-server",
        "-o",
        "json",
        check=False,
    )
    if out.returncode != 0:
        return []
    ips = []
    for pod in json.loads(out.stdout)["items"]:
        ip = pod.get("status", {}).get("podIP", "")
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in pod.get("status", {}).get("conditions", [])
        )
        # KWOK's pods have addresses nothing answers on.
        fake = pod.get("spec", {}).get("nodeName", "").startswith("kwok-")
        if ip and ready and not fake and not pod["metadata"].get("deletionTimestamp"):
            ips.append(ip)
    return sorted(ips)


@dataclass
class Traffic:
    """A background thread sending batches to ``pods()`` until stopped.

    ``shift`` maps a feature to what is added to it (empty: traffic like the training data).
    ``on_pods`` is told the current pod addresses, e.g. to refresh Prometheus's target list.
    """

    model: str
    rows: list[dict[str, float]]
    pods: Callable[[], list[str]]
    shift: dict[str, float] = field(default_factory=dict)
    batch: int = 40
    pause: float = 0.1
    on_pods: Callable[[list[str]], None] | None = None
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sending."""
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        rng = random.Random(7)
        features = list(self.rows[0])
        while not self._stop.is_set():
            ips = self.pods()
            if self.on_pods is not None:
                self.on_pods(ips)
            if not ips:
                self._stop.wait(1)
                continue
            rows = rng.choices(self.rows, k=self.batch)
            body = json.dumps(
                {
                    "inputs": [
                        {
                            "name": f,
                            "shape": [len(rows)],
                            "datatype": "FP64",
                            "data": [r[f] + self.shift.get(f, 0.0) for r in rows],
                        }
                        for f in features
                    ]
                }
            ).encode()
            for ip in ips:
                try:
                    _post(f"http://{ip}:8080/v2/models/{self.model}/infer", body)
                    self.sent += len(rows)
                except OSError as e:
                    self.errors.append(f"{ip}: {e}")
            self._stop.wait(self.pause)


def _post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as r:
        return json.loads(r.read())
