"""Running probes against a container, and the thread that schedules them.

``httpGet`` and ``tcpSocket`` dial the pod's loopback address (or ``host``); named ports are
resolved from the container's ``ports``. ``exec`` probes run the command inside the container's
mount and UTS namespaces (``nsenter`` into the container process, with its root and working
directory) with the container's environment; without isolation they run like the container
would. An HTTP status from 200 to 399 is a success, as with the kubelet.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.noderunner.containerenv import PYTHON_NAMES
from harness.noderunner.expansion import expand_all
from harness.noderunner.probestate import ProbeKind, ProbeSpec, ProbeTracker

USER_AGENT = "kube-probe/local-runner"
#: Output of an exec probe kept for the failure message.
MESSAGE_BYTES = 1024


@dataclass(frozen=True)
class ProbeTarget:
    """The container instance a probe checks."""

    pod_ip: str
    ports: Mapping[str, int]
    env: Mapping[str, str]
    pid: int
    isolate: bool
    python: str


def resolve_port(port: int | str, ports: Mapping[str, int]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if port in ports:
        return ports[port]
    raise ValueError(f"port {port!r} is not a named port of the container")


def container_ports(container: Mapping[str, Any]) -> dict[str, int]:
    """Named ``containerPort``s of a container."""
    return {
        p["name"]: int(p["containerPort"])
        for p in container.get("ports") or []
        if p.get("name") and p.get("containerPort")
    }


def _http(action: Mapping[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    host = action.get("host") or target.pod_ip
    port = resolve_port(action.get("port", 80), target.ports)
    path = action.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    scheme = str(action.get("scheme") or "HTTP").upper()
    url = f"{scheme.lower()}://{host}:{port}{path}"
    conn: http.client.HTTPConnection
    if scheme == "HTTPS":
        # Like the kubelet, probes do not verify the container's certificate.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    headers.update({h["name"]: h["value"] for h in action.get("httpHeaders") or []})
    try:
        conn.request("GET", path, headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        return False, f'Get "{url}": {e}'
    finally:
        conn.close()
    if 200 <= status < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {status}"


def _tcp(action: Mapping[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    host = action.get("host") or target.pod_ip
    port = resolve_port(action.get("port", 0), target.ports)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as e:
        return False, f"dial tcp {host}:{port}: {e.strerror or e}"


def exec_argv(command: Sequence[str], target: ProbeTarget) -> list[str]:
    """The host command line of an exec probe (entering the container's namespaces)."""
    argv = expand_all(list(command), target.env)
    if argv and argv[0] in PYTHON_NAMES:
        argv[0] = target.python
    if not target.isolate:
        return argv
    return ["nsenter", f"--target={target.pid}", "--mount", "--uts", "--root", "--wd", "--", *argv]


def _exec(action: Mapping[str, Any], target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    argv = exec_argv(action.get("command") or [], target)
    if not argv:
        return False, "exec probe without a command"
    try:
        done = subprocess.run(
            argv,
            env=dict(target.env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"command timed out after {timeout:g}s"
    except OSError as e:
        return False, f"exec failed: {e}"
    output = (done.stdout + done.stderr)[-MESSAGE_BYTES:].decode(errors="replace")
    return done.returncode == 0, output


def run_probe(spec: ProbeSpec, target: ProbeTarget) -> tuple[bool, str]:
    """Run a probe once: (success, message)."""
    try:
        if spec.handler == "httpGet":
            return _http(spec.action, target, spec.timeout)
        if spec.handler == "tcpSocket":
            return _tcp(spec.action, target, spec.timeout)
        return _exec(spec.action, target, spec.timeout)
    except ValueError as e:
        return False, str(e)


class Prober:
    """Runs a container instance's probes on their schedule, in a thread, until ``stop()``.

    ``on_change(kind, ok, message)`` is called (from this thread) with the latest outcome
    whenever a verdict flips or a streak of failures begins, so the pod worker can update
    readiness, restart the container, or record an event.
    """

    def __init__(
        self,
        name: str,
        specs: Sequence[ProbeSpec],
        target: ProbeTarget,
        on_change: Callable[[ProbeKind, bool, str], None],
        run: Callable[[ProbeSpec, ProbeTarget], tuple[bool, str]] = run_probe,
    ) -> None:
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self.trackers = {spec.kind: ProbeTracker(spec) for spec in specs}
        self._subject = target
        self._on_change = on_change
        self._run = run
        self._halt = threading.Event()
        self._began = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()

    def _startup_done(self) -> bool:
        startup = self.trackers.get("startup")
        return startup is None or startup.result is True

    @property
    def started(self) -> bool:
        """Whether the startup probe (if any) has succeeded."""
        return self._startup_done()

    @property
    def ready(self) -> bool:
        """Started, and the readiness probe (if any) says ready."""
        readiness = self.trackers.get("readiness")
        return self._startup_done() and (readiness is None or readiness.result is True)

    def _loop(self) -> None:
        due = {kind: self._began + t.spec.initial_delay for kind, t in self.trackers.items()}
        while not self._halt.is_set():
            now = time.monotonic()
            started = self._startup_done()
            active = [
                kind
                for kind in self.trackers
                if (kind == "startup") != started  # startup until it passes, the others after
            ]
            for kind in active:
                if now < due[kind] or self._halt.is_set():
                    continue
                tracker = self.trackers[kind]
                ok, message = self._run(tracker.spec, self._subject)
                due[kind] = time.monotonic() + tracker.spec.period
                changed = tracker.observe(ok, message)
                # A verdict that flips, and the first failure of a streak, are worth a look.
                if (changed or tracker.failures == 1) and not self._halt.is_set():
                    self._on_change(kind, ok, message)
            upcoming = [due[k] for k in self.trackers if (k == "startup") != self._startup_done()]
            wait = min(upcoming, default=now + 1.0) - time.monotonic()
            self._halt.wait(max(0.05, min(wait, 1.0)))
