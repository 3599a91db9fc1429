"""The local runner without a cluster.

Most tests here are table tests of the pure modules (env building, ``$(VAR)`` expansion,
volumes, status, back-off, addresses, probes, logs). The classes at the end start real local
processes (``TestContainerProcess``: the ``nsexec`` set-up as root; ``TestPodWorker``: a whole
pod against an in-memory fake of the API calls a worker makes), still without an API server:
what they fake is only ``podworker.PodApi``.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from harness.noderunner import (
    containerenv,
    fieldpath,
    hostnet,
    ipam,
    logfiles,
    podstatus,
    process,
    quantity,
    sync,
    volumedirs,
    volumes,
)
from harness.noderunner.backoff import CrashBackoff, go_duration
from harness.noderunner.containerenv import ConfigError, EnvInputs
from harness.noderunner.expansion import expand
from harness.noderunner.logserver import LogServer
from harness.noderunner.podstatus import (
    ContainerView,
    PodView,
    Running,
    Terminated,
    Waiting,
)
from harness.noderunner.podworker import NodeContext, PodWorker, should_restart
from harness.noderunner.probes import Prober, ProbeTarget, exec_argv, resolve_port, run_probe
from harness.noderunner.probestate import (
    ProbeSpec,
    ProbeTracker,
    UnsupportedProbeError,
    container_probes,
)

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "uid": "u-1",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": 'say "hi"'},
        },
        "spec": {"nodeName": "local-0", "serviceAccountName": "runner", **spec},
    }


# -- $(VAR) expansion -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "alpha"),
        ("x$(A)y$(B)z", "xalphaybetaz"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$A ${A}", "$A ${A}"),
        ("$(A", "$(A"),
        ("end$", "end$"),
        ("$()", "$()"),
        ("$($(A))", "$($(A))"),
        ("$(A)$(A)", "alphaalpha"),
    ],
)
def test_expand_follows_kubelet_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "alpha", "B": "beta"}) == expected


# -- container environment ------------------------------------------------------------------------


def env_inputs(**kwargs: Any) -> EnvInputs:
    defaults: dict[str, Any] = {
        "pod": pod(),
        "pod_ip": "127.77.0.2",
        "host_ip": "127.0.0.1",
        "configmaps": {"settings": {"data": {"MODE": "fast", "LEVEL": "3"}}},
        "secrets": {"creds": {"data": {"TOKEN": b64("s3cret")}}},
        "allocatable": {"cpu": "8", "memory": "16Gi"},
    }
    return EnvInputs(**{**defaults, **kwargs})


def test_env_precedence_and_references() -> None:
    container = {
        "name": "main",
        "envFrom": [
            {"configMapRef": {"name": "settings"}},
            {"prefix": "S_", "secretRef": {"name": "creds"}},
        ],
        "env": [
            {"name": "MODE", "value": "slow"},
            {"name": "URL", "value": "http://$(POD_IP):8080/$(MODE)"},
            {"name": "LATER", "value": "$(DEFINED_AFTER)"},
            {"name": "DEFINED_AFTER", "value": "x"},
        ],
    }
    env = containerenv.build_env(container, {"POD_IP": "127.77.0.2", "MODE": "base"}, env_inputs())
    assert env["MODE"] == "slow"  # env beats envFrom beats the base
    assert env["LEVEL"] == "3"
    assert env["S_TOKEN"] == "s3cret"
    assert env["URL"] == "http://127.77.0.2:8080/slow"
    assert env["LATER"] == "$(DEFINED_AFTER)"  # only variables defined before are expanded


def test_env_value_from_sources() -> None:
    container = {
        "name": "main",
        "resources": {"limits": {"memory": "512Mi"}, "requests": {"cpu": "250m"}},
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "NOTE",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}},
            },
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {
                "name": "MEM_MI",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {
                "name": "CPU_REQ_M",
                "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}},
            },
            {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "TOKEN"}}},
            {
                "name": "OPT",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
        ],
    }
    env = containerenv.build_env(container, {}, env_inputs())
    assert env == {
        "NAME": "web-1",
        "NS": "shop",
        "UID": "u-1",
        "APP": "web",
        "NOTE": 'say "hi"',
        "NODE": "local-0",
        "SA": "runner",
        "IP": "127.77.0.2",
        "HOST": "127.0.0.1",
        "MEM_MI": "512",
        "CPU_LIMIT": "8",  # no limit: the node's allocatable, like the kubelet
        "CPU_REQ_M": "250",
        "CM": "fast",
        "SECRET": "s3cret",
    }


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
        (
            {"configMapKeyRef": {"name": "settings", "key": "k"}},
            "couldn't find key k in ConfigMap shop/settings",
        ),
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        (
            {"secretKeyRef": {"name": "creds", "key": "k"}},
            "couldn't find key k in Secret shop/creds",
        ),
        ({"fieldRef": {"fieldPath": "spec.bogus"}}, "unsupported fieldPath"),
        ({"resourceFieldRef": {"resource": "limits.gpu"}}, "unsupported container resource"),
    ],
)
def test_env_errors_are_config_errors(var: dict[str, Any], message: str) -> None:
    container = {"name": "main", "env": [{"name": "X", "valueFrom": var}]}
    with pytest.raises(ConfigError, match=message):
        containerenv.build_env(container, {}, env_inputs())


def test_env_from_missing_object() -> None:
    missing = {"name": "m", "envFrom": [{"configMapRef": {"name": "absent"}}]}
    optional = {"name": "m", "envFrom": [{"secretRef": {"name": "absent", "optional": True}}]}
    with pytest.raises(ConfigError, match='configmap "absent" not found'):
        containerenv.build_env(missing, {}, env_inputs())
    assert containerenv.build_env(optional, {"A": "1"}, env_inputs()) == {"A": "1"}


def test_referenced_objects() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "a"}}, {"secretRef": {"name": "b"}}],
        "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
            {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "d", "key": "k"}}},
            {"name": "Z", "value": "plain"},
        ],
    }
    assert containerenv.referenced_objects(container) == (
        frozenset({"a", "c"}),
        frozenset({"b", "d"}),
    )


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        ({"command": ["python", "-c", "print($(N))"]}, ["/venv/bin/python", "-c", "print(42)"]),
        (
            {"command": ["python3", "-m", "x"], "args": ["--n=$(N)"]},
            ["/venv/bin/python", "-m", "x", "--n=42"],
        ),
        ({"command": ["sh", "-c", "python -V"]}, ["sh", "-c", "python -V"]),
        ({"args": ["echo", "$(N)"]}, ["echo", "42"]),
        ({"command": ["/usr/bin/python3", "-V"]}, ["/usr/bin/python3", "-V"]),
    ],
)
def test_command_line(container: dict[str, Any], argv: list[str]) -> None:
    assert containerenv.command_line(container, {"N": "42"}, "/venv/bin/python") == argv


def test_command_line_needs_a_command() -> None:
    with pytest.raises(ConfigError, match="ignores images"):
        containerenv.command_line({"name": "main", "image": "nginx"}, {}, "/p")


# -- quantities and field paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("1.5", Fraction(3, 2)),
        ("1Ki", Fraction(1024)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1k", Fraction(1000)),
        ("1e3", Fraction(1000)),
        ("100n", Fraction(1, 10**7)),
        (3, Fraction(3)),
    ],
)
def test_parse_quantity(text: str | int, value: Fraction) -> None:
    assert quantity.parse_quantity(text) == value


def test_parse_quantity_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        quantity.parse_quantity("12 apples")


def test_resource_field_rounds_up() -> None:
    resources = {"limits": {"cpu": "1500m", "memory": "100M"}}
    assert quantity.resource_field_value(resources, "limits.cpu", None, {}) == "2"
    assert quantity.resource_field_value(resources, "limits.memory", "1Mi", {}) == "96"
    assert quantity.resource_field_value({}, "requests.memory", None, {"memory": "1Gi"}) == "0"
    assert quantity.resource_field_value({}, "limits.memory", "1Gi", {"memory": "16Gi"}) == "16"


def test_field_path_maps_use_downward_api_format() -> None:
    assert fieldpath.resolve(pod(), "metadata.labels", "", "") == 'app="web"\ntier="front"'
    assert fieldpath.resolve(pod(), "metadata.annotations", "", "") == 'note="say \\"hi\\""'
    assert fieldpath.resolve(pod(), "metadata.labels['missing']", "", "") == ""


# -- addresses ------------------------------------------------------------------------------------


def test_addresses_start_at_2_and_go_round_robin() -> None:
    alloc = ipam.Allocator("127.77")
    first = alloc.allocate(set())
    second = alloc.allocate({first})
    assert (first, second) == ("127.77.0.2", "127.77.0.3")
    # Freed .2 is not handed out again while newer addresses are free.
    assert alloc.allocate({second}) == "127.77.0.4"


def test_addresses_never_reuse_a_live_pod_address() -> None:
    alloc = ipam.Allocator("127.9.3")
    live: set[str] = set()
    for _ in range(253):
        live.add(alloc.allocate(live))
    assert len(live) == 253
    assert all(a.startswith("127.9.3.") and a not in ("127.9.3.1", "127.9.3.255") for a in live)
    with pytest.raises(ipam.AddressPoolExhaustedError):
        alloc.allocate(live)
    live.discard("127.9.3.100")
    assert alloc.allocate(live) == "127.9.3.100"


def test_addresses_keep_a_preferred_one_when_free() -> None:
    alloc = ipam.Allocator("127.77")
    assert alloc.allocate(set(), preferred="127.77.4.9") == "127.77.4.9"
    assert alloc.allocate({"127.77.4.9"}, preferred="127.77.4.9") == "127.77.0.2"
    assert alloc.allocate(set(), preferred="10.244.0.7") == "127.77.0.3"  # not ours


@pytest.mark.parametrize("prefix", ["10.1", "127", "127.1.2.3", "127.300", "127.a"])
def test_addresses_reject_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="ip-prefix"):
        ipam.Allocator(prefix)


def test_prefix_claims_keep_runners_apart() -> None:
    first = hostnet.claim("127.213")
    try:
        assert first.prefix == "127.213"
        second = hostnet.claim("127.213")  # held: another free prefix instead
        try:
            assert second.prefix not in ("127.213", "127.0", "127.1")
            assert hostnet.try_claim(second.prefix) is None
        finally:
            second.release()
    finally:
        first.release()
    again = hostnet.try_claim("127.213")  # released with the socket
    assert again is not None
    again.release()


def test_listening_addresses_are_seen() -> None:
    with socket.socket() as s:
        s.bind(("127.213.0.9", 0))
        assert "127.213.0.9" not in hostnet.listening_addresses()
        s.listen()
        assert "127.213.0.9" in hostnet.listening_addresses()


# -- back-off -------------------------------------------------------------------------------------


def test_backoff_doubles_from_10s_to_5min_then_resets() -> None:
    b = CrashBackoff()
    now = 1000.0
    assert b.remaining(finished_at=now, now=now) == 0  # the first restart is immediate
    waits = []
    for _ in range(8):
        b.restarted(now)
        waits.append(b.remaining(finished_at=now, now=now))
        now += waits[-1]
    assert waits == [10, 20, 40, 80, 160, 300, 300, 300]
    assert b.remaining(finished_at=now - 100, now=now) == 200  # counted from the exit
    now += 601  # up for twice the cap since the last restart: start over
    assert b.remaining(finished_at=now, now=now) == 0
    b.restarted(now)
    assert b.duration == 10


@pytest.mark.parametrize(
    ("seconds", "text"), [(10, "10s"), (80, "1m20s"), (300, "5m0s"), (3700, "1h1m40s")]
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("policy", "init", "code", "restart"),
    [
        ("Always", False, 0, True),
        ("Always", False, 1, True),
        ("OnFailure", False, 0, False),
        ("OnFailure", False, 1, True),
        ("Never", False, 1, False),
        ("Always", True, 0, False),
        ("Always", True, 1, True),
        ("Never", True, 1, False),
    ],
)
def test_should_restart(policy: str, init: bool, code: int, restart: bool) -> None:
    assert should_restart(policy, init, code) is restart


# -- probes ---------------------------------------------------------------------------------------


def test_probe_defaults_and_unsupported_handlers() -> None:
    [readiness] = container_probes({"readinessProbe": {"httpGet": {"port": 8080}}})
    assert (readiness.period, readiness.timeout, readiness.failure_threshold) == (10, 1, 3)
    with pytest.raises(UnsupportedProbeError, match="grpc probes are not supported"):
        container_probes({"livenessProbe": {"grpc": {"port": 9000}}})


def test_probe_tracker_thresholds() -> None:
    spec = ProbeSpec("readiness", "exec", {}, success_threshold=2, failure_threshold=2)
    t = ProbeTracker(spec)
    assert t.result is False  # not ready before the first verdict
    assert [t.observe(ok) for ok in (True, True, False, True, False, False)] == [
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert t.result is False
    assert ProbeTracker(ProbeSpec("liveness", "exec", {})).result is True
    assert ProbeTracker(ProbeSpec("startup", "exec", {})).result is None


def test_probe_ports_and_exec_command() -> None:
    assert resolve_port("http", {"http": 8080}) == 8080
    assert resolve_port("9090", {}) == 9090
    with pytest.raises(ValueError, match="not a named port"):
        resolve_port("metrics", {})
    target = ProbeTarget(
        "127.77.0.2", {}, {"F": "/ready"}, pid=42, isolate=True, python="/v/python"
    )
    assert exec_argv(["python", "-c", "$(F)"], target) == [
        "nsenter",
        "--target=42",
        "--mount",
        "--uts",
        "--root",
        "--wd",
        "--",
        "/v/python",
        "-c",
        "/ready",
    ]


@pytest.fixture
def http_server() -> Iterator[tuple[str, int]]:
    """A tiny HTTP server on 127.0.0.1: /ok answers 200, anything else 503."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_and_tcp_probes(http_server: tuple[str, int]) -> None:
    host, port = http_server
    target = ProbeTarget(host, {"web": port}, {}, pid=0, isolate=False, python=sys.executable)
    assert run_probe(ProbeSpec("readiness", "httpGet", {"path": "/ok", "port": "web"}), target) == (
        True,
        "",
    )
    ok, message = run_probe(ProbeSpec("readiness", "httpGet", {"path": "/x", "port": port}), target)
    assert not ok
    assert "statuscode: 503" in message
    assert run_probe(ProbeSpec("liveness", "tcpSocket", {"port": port}), target)[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert not run_probe(ProbeSpec("liveness", "tcpSocket", {"port": closed}), target)[0]
    assert run_probe(ProbeSpec("liveness", "exec", {"command": ["true"]}), target)[0]
    assert not run_probe(ProbeSpec("liveness", "exec", {"command": ["false"]}), target)[0]


def test_prober_runs_readiness_only_after_startup() -> None:
    calls: list[str] = []
    startup_ok = threading.Event()

    def fake(spec: ProbeSpec, _: ProbeTarget) -> tuple[bool, str]:
        calls.append(spec.kind)
        return (startup_ok.is_set() if spec.kind == "startup" else True), ""

    changes: list[tuple[str, bool]] = []
    prober = Prober(
        "test",
        [
            ProbeSpec("startup", "exec", {}, period=0.05),
            ProbeSpec("readiness", "exec", {}, period=0.05),
        ],
        ProbeTarget("127.0.0.1", {}, {}, 0, False, sys.executable),
        lambda kind, ok, _: changes.append((kind, ok)),
        run=fake,
    )
    prober.start()
    try:
        wait_until(lambda: calls.count("startup") >= 2)
        assert (prober.started, prober.ready) == (False, False)
        assert "readiness" not in calls
        startup_ok.set()
        wait_until(lambda: prober.ready)
        assert prober.started
        assert ("startup", True) in changes
        assert ("readiness", True) in changes
    finally:
        prober.stop()


# -- pod status -----------------------------------------------------------------------------------

T0 = 1_800_000_000.0
RUN = Running(T0)
OK = Terminated(0, "Completed", T0 + 5, T0)
FAIL = Terminated(3, "Error", T0 + 5, T0)


def view(containers: list[ContainerView], policy: str = "Always", **kwargs: Any) -> PodView:
    return PodView(
        policy, kwargs.pop("init", []), containers, "127.77.0.2", "127.0.0.1", T0, **kwargs
    )


@pytest.mark.parametrize(
    ("policy", "states", "phase"),
    [
        ("Always", [Waiting("ContainerCreating")], "Pending"),
        ("Always", [RUN, Waiting("ContainerCreating")], "Pending"),
        ("Always", [RUN, RUN], "Running"),
        ("Never", [OK], "Succeeded"),
        ("Never", [FAIL], "Failed"),
        ("Never", [OK, RUN], "Running"),
        ("Never", [OK, FAIL], "Failed"),
        ("OnFailure", [OK], "Succeeded"),
        ("Always", [OK], "Running"),
    ],
)
def test_phase(policy: str, states: list[Any], phase: str) -> None:
    containers = [ContainerView(f"c{i}", state=s) for i, s in enumerate(states)]
    assert podstatus.phase(view(containers, policy)) == phase


def test_phase_of_restarting_and_initialising_pods() -> None:
    backoff = ContainerView("main", state=Waiting("CrashLoopBackOff"), last_state=FAIL)
    assert podstatus.phase(view([backoff], "OnFailure")) == "Running"
    waiting = ContainerView("main", state=Waiting("PodInitializing"))
    init_running = ContainerView("init", state=RUN)
    init_failed = ContainerView("init", state=FAIL)
    assert podstatus.phase(view([waiting], init=[init_running])) == "Pending"
    assert podstatus.phase(view([waiting], "Never", init=[init_failed])) == "Failed"
    assert podstatus.phase(view([waiting], "OnFailure", init=[init_failed])) == "Pending"


def test_phase_of_deleted_and_failed_pods() -> None:
    stopped = ContainerView("main", state=Terminated(143, "Error", T0, T0, signal=15))
    assert podstatus.phase(view([stopped], terminal=True)) == "Failed"
    assert podstatus.phase(view([ContainerView("main", state=OK)], terminal=True)) == "Succeeded"
    running = ContainerView("main", state=RUN, ready=True)
    assert podstatus.phase(view([running], failure=("DeadlineExceeded", "late"))) == "Failed"


def test_status_of_a_ready_pod() -> None:
    main = ContainerView(
        "main", "img", RUN, ready=True, started=True, container_id="local-runner://7"
    )
    status = podstatus.pod_status(view([main]), [], T0 + 9)
    assert status["phase"] == "Running"
    assert status["podIP"] == "127.77.0.2"
    assert status["podIPs"] == [{"ip": "127.77.0.2"}]
    assert status["hostIP"] == "127.0.0.1"
    assert status["startTime"] == podstatus.rfc3339(T0)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    [cs] = status["containerStatuses"]
    assert cs == {
        "name": "main",
        "image": "img",
        "imageID": "",
        "containerID": "local-runner://7",
        "state": {"running": {"startedAt": podstatus.rfc3339(T0)}},
        "lastState": {},
        "ready": True,
        "restartCount": 0,
        "started": True,
    }


def test_status_reports_crash_loop_with_last_termination() -> None:
    c = ContainerView(
        "main",
        state=Waiting(
            "CrashLoopBackOff", "back-off 10s restarting failed container=main pod=p_ns(u)"
        ),
        last_state=Terminated(3, "Error", T0 + 1, T0, "boom", container_id="local-runner://9"),
        restart_count=1,
    )
    [cs] = podstatus.pod_status(view([c]), [], T0)["containerStatuses"]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "message": "boom",
        "startedAt": podstatus.rfc3339(T0),
        "finishedAt": podstatus.rfc3339(T0 + 1),
        "containerID": "local-runner://9",
    }
    assert cs["restartCount"] == 1
    assert cs["ready"] is False


def test_conditions_keep_transition_times_while_unchanged() -> None:
    unready = ContainerView("main", state=RUN)
    first = podstatus.pod_status(view([unready]), [], T0)
    ready = podstatus.conditions(
        view([ContainerView("main", state=RUN, ready=True)]),
        "Running",
        first["conditions"],
        T0 + 30,
    )
    times = {c["type"]: c["lastTransitionTime"] for c in ready}
    assert times["PodScheduled"] == podstatus.rfc3339(T0)
    assert times["Ready"] == podstatus.rfc3339(T0 + 30)
    unready_ready = next(c for c in first["conditions"] if c["type"] == "Ready")
    assert unready_ready["reason"] == "ContainersNotReady"
    assert unready_ready["message"] == "containers with unready status: [main]"


def test_conditions_of_init_gates_and_completion() -> None:
    main = ContainerView("main", state=RUN, ready=True)
    pending = view(
        [ContainerView("main", state=Waiting("PodInitializing"))],
        init=[ContainerView("prep", state=RUN)],
    )
    initialized = next(
        c for c in podstatus.conditions(pending, "Pending", [], T0) if c["type"] == "Initialized"
    )
    assert initialized["status"] == "False"
    assert initialized["message"] == "containers with incomplete status: [prep]"
    gated = view([main], readiness_gates=["example.com/lb"], other_conditions={})
    ready = next(c for c in podstatus.conditions(gated, "Running", [], T0) if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ReadinessGatesNotReady")
    done = view([ContainerView("main", state=OK)], "Never")
    ready = next(c for c in podstatus.conditions(done, "Succeeded", [], T0) if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")


def test_init_container_counts_as_ready_when_done() -> None:
    status = podstatus.pod_status(
        view([ContainerView("main", state=RUN)], init=[ContainerView("prep", state=OK)]), [], T0
    )
    assert status["initContainerStatuses"][0]["ready"] is True
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


# -- volumes --------------------------------------------------------------------------------------


def test_volume_plans(tmp_path: Path) -> None:
    spec = pod(
        volumes=[
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": "/srv/data"}},
            {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
            {"name": "cfg", "configMap": {"name": "settings"}},
            {
                "name": "token",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
            },
        ]
    )
    plans = volumes.plan(spec, tmp_path, lambda claim: Path("/claims") / claim)
    assert plans["scratch"] == volumes.VolumePlan(
        "scratch", "emptyDir", tmp_path / "volumes" / "scratch"
    )
    assert plans["host"].path == Path("/srv/data")
    assert not plans["host"].read_only
    assert plans["models"] == volumes.VolumePlan(
        "models", "persistentVolumeClaim", Path("/claims/models"), True
    )
    assert plans["cfg"].rendered
    assert plans["cfg"].read_only
    assert plans["token"].path == tmp_path / "volumes" / "token"


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"name": "n", "nfs": {"server": "x", "path": "/"}}, "nfs volumes are not supported"),
        ({"name": "c", "csi": {"driver": "x"}}, "csi volumes are not supported"),
        (
            {"name": "p", "projected": {"sources": [{"clusterTrustBundle": {}}]}},
            "clusterTrustBundle",
        ),
    ],
)
def test_unsupported_volumes(volume: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(volumes.UnsupportedVolumeError, match=message):
        volumes.plan(pod(volumes=[volume]), tmp_path, lambda c: tmp_path)


def render_inputs(**kwargs: Any) -> volumes.RenderInputs:
    defaults: dict[str, Any] = {
        "pod": pod(containers=[{"name": "main", "resources": {"limits": {"cpu": "2"}}}]),
        "pod_ip": "127.77.0.2",
        "host_ip": "127.0.0.1",
        "configmaps": {
            "settings": {"data": {"a.yaml": "x: 1"}, "binaryData": {"blob": b64("\x00\x01")}},
            "kube-root-ca.crt": {"data": {"ca.crt": "PEM"}},
        },
        "secrets": {"creds": {"data": {"password": b64("pw")}}},
        "tokens": {volumes.TokenRequest(None, 3607): "jwt"},
    }
    return volumes.RenderInputs(**{**defaults, **kwargs})


def test_render_configmap_secret_and_items() -> None:
    inputs = render_inputs()
    cm = volumes.render({"name": "c", "configMap": {"name": "settings"}}, inputs)
    assert cm == {"a.yaml": volumes.FileContent(b"x: 1"), "blob": volumes.FileContent(b"\x00\x01")}
    secret = volumes.render(
        {"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400}}, inputs
    )
    assert secret == {"password": volumes.FileContent(b"pw", 0o400)}
    items = volumes.render(
        {
            "name": "c",
            "configMap": {
                "name": "settings",
                "items": [{"key": "a.yaml", "path": "conf/app.yaml", "mode": 0o600}],
            },
        },
        inputs,
    )
    assert items == {"conf/app.yaml": volumes.FileContent(b"x: 1", 0o600)}


def test_render_service_account_projection() -> None:
    # What the ServiceAccount admission plugin injects into every pod.
    projected = {
        "name": "kube-api-access-x",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
            ],
        },
    }
    assert volumes.references(pod(volumes=[projected])) == volumes.References(
        frozenset({"kube-root-ca.crt"}), frozenset(), frozenset({volumes.TokenRequest(None, 3607)})
    )
    assert volumes.render(projected, render_inputs()) == {
        "token": volumes.FileContent(b"jwt", 0o644),
        "ca.crt": volumes.FileContent(b"PEM", 0o644),
        "namespace": volumes.FileContent(b"shop", 0o644),
    }


def test_render_downward_api_files() -> None:
    files = volumes.render(
        {
            "name": "info",
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {
                        "path": "cpu",
                        "resourceFieldRef": {
                            "containerName": "main",
                            "resource": "limits.cpu",
                            "divisor": "1m",
                        },
                    },
                ]
            },
        },
        render_inputs(),
    )
    assert files["labels"].data == b'app="web"\ntier="front"'
    assert files["cpu"].data == b"2000"


@pytest.mark.parametrize(
    ("volume", "error", "message"),
    [
        (
            {"configMap": {"name": "absent"}},
            volumes.VolumeNotReadyError,
            'configmap "absent" not found',
        ),
        (
            {"secret": {"secretName": "absent"}},
            volumes.VolumeNotReadyError,
            'secret "absent" not found',
        ),
        (
            {"configMap": {"name": "settings", "items": [{"key": "nope", "path": "x"}]}},
            volumes.VolumeNotReadyError,
            "non-existent config key: nope",
        ),
        (
            {"configMap": {"name": "settings", "items": [{"key": "a.yaml", "path": "../x"}]}},
            volumes.UnsupportedVolumeError,
            "without '..'",
        ),
        (
            {
                "projected": {
                    "sources": [{"serviceAccountToken": {"path": "t", "audience": "vault"}}]
                }
            },
            volumes.VolumeNotReadyError,
            "no service account token",
        ),
    ],
)
def test_render_errors(volume: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        volumes.render({"name": "v", **volume}, render_inputs())


def test_render_optional_objects_are_empty() -> None:
    assert (
        volumes.render(
            {"name": "v", "configMap": {"name": "absent", "optional": True}}, render_inputs()
        )
        == {}
    )


def test_container_mounts_with_sub_paths() -> None:
    plans = {
        "data": volumes.VolumePlan("data", "persistentVolumeClaim", Path("/claims/data")),
        "cfg": volumes.VolumePlan("cfg", "configMap", Path("/pod/volumes/cfg"), read_only=True),
    }
    container = {
        "volumeMounts": [
            {"name": "data", "mountPath": "/models", "subPathExpr": "$(POD_NAME)"},
            {"name": "data", "mountPath": "/readonly", "readOnly": True},
            {"name": "cfg", "mountPath": "/etc/app/app.yaml", "subPath": "a.yaml"},
        ]
    }
    assert volumes.container_mounts(container, plans, {"POD_NAME": "web-1"}) == [
        volumes.Mount("/claims/data/web-1", "/models", False, "data"),
        volumes.Mount("/claims/data", "/readonly", True, "data"),
        volumes.Mount("/pod/volumes/cfg/a.yaml", "/etc/app/app.yaml", True, "cfg"),
    ]
    with pytest.raises(volumes.UnsupportedVolumeError, match=r"without '\.\.'"):
        volumes.container_mounts(
            {"volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../../etc"}]},
            plans,
            {},
        )
    with pytest.raises(volumes.UnsupportedVolumeError, match="no such volume"):
        volumes.container_mounts(
            {"volumeMounts": [{"name": "ghost", "mountPath": "/x"}]}, plans, {}
        )


def test_volume_env_names() -> None:
    assert volumes.env_name("kube-api-access-x2") == "MODELOPS_VOLUME_KUBE_API_ACCESS_X2"


def test_write_files_replaces_content_and_removes_stale_files(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert volumedirs.write_files(
        target, {"a": volumes.FileContent(b"1"), "d/b": volumes.FileContent(b"2", 0o600)}
    )
    assert (target / "d" / "b").stat().st_mode & 0o777 == 0o600
    assert not volumedirs.write_files(
        target, {"a": volumes.FileContent(b"1"), "d/b": volumes.FileContent(b"2", 0o600)}
    )
    assert volumedirs.write_files(target, {"a": volumes.FileContent(b"3")})
    assert sorted(p.name for p in target.rglob("*")) == ["a"]
    assert (target / "a").read_bytes() == b"3"


# -- logs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "lines", "limit", "expected"),
    [
        (b"a\nb\nc\n", 2, None, b"b\nc\n"),
        (b"a\nb\nc", 2, None, b"b\nc"),
        (b"a\nb\n", 5, None, b"a\nb\n"),
        (b"a\nb\n", 0, None, b""),
        (b"", 3, None, b""),
        (b"abcdef", None, 3, b"def"),
        (b"x\nabcdef\n", 1, 4, b"def\n"),
    ],
)
def test_tail(data: bytes, lines: int | None, limit: int | None, expected: bytes) -> None:
    assert logfiles.tail(data, lines, limit) == expected


def test_termination_message_rules() -> None:
    log_lines = b"".join(b"line %d\n" % i for i in range(200))
    assert logfiles.termination_message(b"x" * 5000, b"", "File", 1) == "x" * 4096
    assert logfiles.termination_message(b"", log_lines, "File", 1) == ""
    assert logfiles.termination_message(b"", log_lines, "FallbackToLogsOnError", 0) == ""
    fallback = logfiles.termination_message(b"", log_lines, "FallbackToLogsOnError", 1)
    assert fallback.endswith("line 199\n")
    assert len(fallback) <= 2048
    assert fallback.count("\n") <= 80
    assert logfiles.termination_message(b"ok", log_lines, "FallbackToLogsOnError", 1) == "ok"


def test_find_pod_dir_picks_the_newest(tmp_path: Path) -> None:
    old = logfiles.pod_dir(tmp_path, "ns", "web", "u1")
    new = logfiles.pod_dir(tmp_path, "ns", "web", "u2")
    other = logfiles.pod_dir(tmp_path, "ns", "web-2", "u3")
    for i, d in enumerate((old, new, other)):
        d.mkdir(parents=True)
        os.utime(d, (T0 + i, T0 + i))
    assert logfiles.find_pod_dir(tmp_path, "ns", "web") == new
    assert logfiles.find_pod_dir(tmp_path, "ns", "nope") is None


# -- the agent's decisions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "deleting", "has_worker", "finished", "action"),
    [
        ("Pending", False, False, False, "start"),
        ("Running", False, False, False, "start"),  # a restarted runner picks it up again
        ("Running", False, True, False, "update"),
        ("Running", True, True, False, "update"),
        ("Succeeded", False, False, False, "ignore"),
        ("Running", False, False, True, "ignore"),  # finished here; the API lags behind
        ("Failed", True, False, False, "delete"),
        ("Pending", True, False, False, "delete"),
    ],
)
def test_sync_action(
    phase: str, deleting: bool, has_worker: bool, finished: bool, action: str
) -> None:
    p = pod()
    p["status"] = {"phase": phase}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert sync.action_for(p, has_worker, finished) == action


# -- real processes (no API server) ---------------------------------------------------------------


def wait_until(check: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def launch(
    tmp_path: Path, argv: list[str], isolate: bool, mounts: list[volumes.Mount] | None = None
) -> process.LaunchSpec:
    return process.LaunchSpec(
        argv=argv,
        env={"PATH": os.environ["PATH"], "GREETING": "hi"},
        cwd="/",
        log_path=tmp_path / "main.log",
        spec_path=tmp_path / "main.spec.json",
        scratch=tmp_path / "rootfs",
        isolate=isolate,
        hostname="web-1",
        mounts=mounts or [],
    )


class TestContainerProcess:
    def test_exit_code_log_and_rotation(self, tmp_path: Path) -> None:
        for code in (0, 3):
            proc = process.start(
                launch(tmp_path, ["sh", "-c", f"echo $GREETING {code}; exit {code}"], False),
                os.getpid(),
            )
            ended = proc.wait(10)
            assert ended is not None
            assert ended.exit_code == code
            assert ended.signal is None
        assert (tmp_path / "main.log").read_text() == "hi 3\n"
        assert (tmp_path / "main.log.1").read_text() == "hi 0\n"
        assert not (tmp_path / "main.spec.json").exists()  # it may hold Secret values

    def test_exec_failure_is_a_start_error(self, tmp_path: Path) -> None:
        with pytest.raises(
            process.ContainerStartError, match='exec: "no-such-cmd": executable file not found'
        ):
            process.start(launch(tmp_path, ["no-such-cmd"], False), os.getpid())

    def test_signal_exit_code(self, tmp_path: Path) -> None:
        proc = process.start(launch(tmp_path, ["sleep", "60"], False), os.getpid())
        proc.signal_group(signal.SIGTERM)
        ended = proc.wait(10)
        assert ended is not None
        assert (ended.exit_code, ended.signal) == (143, 15)

    @ROOT_ONLY
    def test_mounts_appear_only_inside_the_container(self, tmp_path: Path) -> None:
        # Another program on this host may have left one; the test only checks it makes none.
        termination_log_existed = os.path.exists("/dev/termination-log")
        volume = tmp_path / "vol"
        volume.mkdir()
        (volume / "data.txt").write_text("payload")
        message = tmp_path / "main.termination-log"
        message.write_text("")
        private_tmp = tmp_path / "tmp"
        private_tmp.mkdir()
        (private_tmp / "marker").touch()
        target = f"/nr-unit-test-{os.getpid()}/deep/models"
        script = (
            f"cat {target}/data.txt; hostname; "
            "echo done > /dev/termination-log; "
            f"ls /var/run/secrets/nr-test-{os.getpid()}; "
            f"touch {target}/ro 2>/dev/null || echo read-only; "
            "ls /tmp"
        )
        mounts = [
            volumes.Mount(str(volume), target, read_only=True),
            # Mounted first (shallowest), it hides the host /tmp that holds the other sources.
            volumes.Mount(str(private_tmp), "/tmp"),
            volumes.Mount(str(message), "/dev/termination-log"),
            volumes.Mount(str(volume), f"/var/run/secrets/nr-test-{os.getpid()}"),
        ]
        proc = process.start(launch(tmp_path, ["sh", "-c", script], True, mounts), os.getpid())
        ended = proc.wait(10)
        assert ended is not None
        assert ended.exit_code == 0, (tmp_path / "main.log").read_text()
        log = (tmp_path / "main.log").read_text()
        assert log == "payloadweb-1\ndata.txt\nread-only\nmarker\n"
        assert message.read_text() == "done\n"
        # Nothing was created on the host outside the scratch directory.
        assert not os.path.exists(f"/nr-unit-test-{os.getpid()}")
        assert os.path.exists("/dev/termination-log") == termination_log_existed
        assert not os.path.exists(f"/run/secrets/nr-test-{os.getpid()}")

    @ROOT_ONLY
    def test_runtime_stays_visible_under_a_volume(self, tmp_path: Path) -> None:
        # A clone under /tmp: its venv sits where a pod's /tmp emptyDir goes (issue 10).
        venv = tmp_path / "clone" / ".venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        empty_dir = tmp_path / "emptydir"
        empty_dir.mkdir()
        covering = "/" + tmp_path.parts[1]  # the top-level directory that holds the venv
        script = "import os, sys; print(sys.prefix, os.access(sys.prefix, os.W_OK))"
        argv = [str(venv / "bin" / "python"), "-c", script]
        mounts = [volumes.Mount(str(empty_dir), covering)]
        hidden = launch(tmp_path, argv, True, mounts)
        with pytest.raises(process.ContainerStartError, match="no such file or directory"):
            process.start(hidden, os.getpid())
        kept = dataclasses.replace(hidden, keep=[str(venv.parent)])
        ended = process.start(kept, os.getpid()).wait(30)
        assert ended is not None
        assert ended.exit_code == 0, (tmp_path / "main.log").read_text()
        assert (tmp_path / "main.log").read_text() == f"{venv} False\n"
        # Read-only inside (False above); its mount point was made in the volume.
        assert (empty_dir / tmp_path.relative_to(covering) / "clone").is_dir()

    def test_runtime_paths_cover_the_interpreter_and_the_project(self) -> None:
        paths = process.runtime_paths()
        project = str(Path(__file__).resolve().parents[2])
        for needed in (os.path.realpath(sys.prefix), project):
            assert any(needed == p or needed.startswith(p + "/") for p in paths), needed

    @ROOT_ONLY
    def test_mount_errors_are_start_errors(self, tmp_path: Path) -> None:
        mounts = [volumes.Mount(str(tmp_path / "missing"), "/mnt/x")]
        with pytest.raises(process.ContainerStartError, match="does not exist"):
            process.start(launch(tmp_path, ["true"], True, mounts), os.getpid())

    def test_container_dies_with_the_runner(self, tmp_path: Path) -> None:
        # A stand-in runner that starts a container and is then SIGKILLed.
        code = (
            "import os, sys, time; from pathlib import Path;"
            "from harness.noderunner import process;"
            f"p = Path({str(tmp_path)!r});"
            "s = process.LaunchSpec(['sleep', '300'], {'PATH': os.environ['PATH']}, '/',"
            " p / 'main.log', p / 'spec.json', p / 'rootfs', False);"
            "print(process.start(s, os.getpid()).pid, flush=True); time.sleep(300)"
        )
        runner = subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
        )
        try:
            assert runner.stdout is not None
            child = int(runner.stdout.readline())
            assert alive(child)
            runner.kill()
            runner.wait()
            wait_until(lambda: not alive(child))
        finally:
            runner.kill()
            runner.wait()
            if runner.stdout:
                runner.stdout.close()


class FakeApi:
    """The API calls of a pod worker, answered from memory."""

    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.configmaps: dict[str, dict[str, Any]] = {}

    def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses.append(status)

    def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        self.deleted.append(f"{namespace}/{name}")

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.configmaps.get(name)

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def get_pvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def get_pv(self, name: str) -> dict[str, Any] | None:
        return None

    def request_token(
        self,
        namespace: str,
        service_account: str,
        audience: str | None,
        seconds: int,
        pod: tuple[str, str],
    ) -> tuple[str, float]:
        return f"token-for-{service_account}", time.time() + seconds

    def create_event(self, namespace: str, event: dict[str, Any]) -> None:
        self.events.append(event)

    @property
    def last(self) -> dict[str, Any]:
        return self.statuses[-1] if self.statuses else {}


class TestPodWorker:
    @pytest.fixture
    def run_pod(self, tmp_path: Path) -> Iterator[Callable[..., tuple[PodWorker, FakeApi]]]:
        workers: list[PodWorker] = []

        def start(spec: dict[str, Any], api: FakeApi | None = None) -> tuple[PodWorker, FakeApi]:
            api = api or FakeApi()
            ctx = NodeContext(
                node_name="local-0",
                state_dir=tmp_path,
                api_host="127.0.0.1",
                api_port=6443,
                isolate=False,
                allocatable={"cpu": "8", "memory": "16Gi"},
                python=sys.executable,
                runner_pid=os.getpid(),
                retry_seconds=0.2,
            )
            worker = PodWorker(pod(**spec), "127.77.0.2", ctx, api, lambda w: None)
            workers.append(worker)
            worker.start()
            return worker, api

        yield start
        for w in workers:
            w.shutdown(0)
            w.join(10)

    def test_job_pod_succeeds_with_output_and_message(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]], tmp_path: Path
    ) -> None:
        worker, api = run_pod(
            {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "command": [
                            "python",
                            "-c",
                            "import os; e = os.environ;"
                            "print(6*7, e['POD_IP'], e['KUBERNETES_SERVICE_PORT'])",
                        ],
                    }
                ],
            }
        )
        wait_until(lambda: api.last.get("phase") == "Succeeded")
        worker.join(5)
        [cs] = api.last["containerStatuses"]
        assert cs["state"]["terminated"]["exitCode"] == 0
        assert cs["state"]["terminated"]["reason"] == "Completed"
        assert (worker.dir / "main.log").read_text() == "42 127.77.0.2 6443\n"
        phases = [s["phase"] for s in api.statuses]
        assert phases[-1] == "Succeeded"
        assert len(phases) == len(set(map(str, api.statuses)))

    def test_final_status_is_retried_until_written(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]]
    ) -> None:
        """The API server restarting just as a Job pod ends must not leave the pod Running."""

        class RefusesFinalStatus(FakeApi):
            refused = 0

            def patch_pod_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
                if status["phase"] == "Succeeded" and self.refused < 2:
                    self.refused += 1
                    raise ConnectionRefusedError("API server restarting")
                super().patch_pod_status(namespace, name, status)

        worker, api = run_pod(
            {"restartPolicy": "Never", "containers": [{"name": "main", "command": ["true"]}]},
            RefusesFinalStatus(),
        )
        wait_until(lambda: api.last.get("phase") == "Succeeded")
        worker.join(5)
        assert not worker.is_alive()
        assert isinstance(api, RefusesFinalStatus)
        assert api.refused == 2

    def test_failing_pod_reports_exit_code_and_log_fallback(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]]
    ) -> None:
        _, api = run_pod(
            {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "command": ["python", "-c", "import sys; print('bad input'); sys.exit(3)"],
                    }
                ],
            }
        )
        wait_until(lambda: api.last.get("phase") == "Failed")
        terminated = api.last["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert terminated["message"] == "bad input\n"

    def test_crash_loop_back_off(self, run_pod: Callable[..., tuple[PodWorker, FakeApi]]) -> None:
        _, api = run_pod({"containers": [{"name": "main", "command": ["sh", "-c", "exit 1"]}]})
        wait_until(
            lambda: (
                api.last.get("containerStatuses", [{}])[0]
                .get("state", {})
                .get("waiting", {})
                .get("reason")
                == "CrashLoopBackOff"
            )
        )
        cs = api.last["containerStatuses"][0]
        assert cs["restartCount"] == 1  # the first restart is immediate
        assert cs["lastState"]["terminated"]["exitCode"] == 1
        assert cs["state"]["waiting"]["message"].startswith(
            "back-off 10s restarting failed container=main"
        )
        assert api.last["phase"] == "Running"

    def test_missing_config_map_waits_then_starts(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]]
    ) -> None:
        api = FakeApi()
        _, api = run_pod(
            {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "command": ["sh", "-c", "echo $MODE"],
                        "env": [
                            {
                                "name": "MODE",
                                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}},
                            }
                        ],
                    }
                ],
            },
            api,
        )
        wait_until(
            lambda: (
                api.last.get("containerStatuses", [{}])[0]
                .get("state", {})
                .get("waiting", {})
                .get("reason")
                == "CreateContainerConfigError"
            )
        )
        assert (
            api.last["containerStatuses"][0]["state"]["waiting"]["message"]
            == 'configmap "cfg" not found'
        )
        api.configmaps["cfg"] = {"data": {"mode": "fast"}}
        wait_until(lambda: api.last.get("phase") == "Succeeded")

    def test_init_containers_then_readiness(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]], http_server: tuple[str, int]
    ) -> None:
        host, port = http_server
        worker, api = run_pod(
            {
                "initContainers": [
                    {
                        "name": "prep",
                        "command": [
                            "sh",
                            "-c",
                            "echo $MODELOPS_VOLUME_SCRATCH > $MODELOPS_VOLUME_SCRATCH/where",
                        ],
                    }
                ],
                "containers": [
                    {
                        "name": "main",
                        "command": ["sleep", "60"],
                        "readinessProbe": {
                            "httpGet": {"host": host, "port": port, "path": "/ok"},
                            "periodSeconds": 1,
                        },
                    }
                ],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
            }
        )
        wait_until(
            lambda: api.last.get("phase") == "Running" and api.last["containerStatuses"][0]["ready"]
        )
        assert api.last["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
        scratch = worker.dir / "volumes" / "scratch"
        assert (scratch / "where").read_text().strip() == str(scratch)
        conditions = {c["type"]: c["status"] for c in api.last["conditions"]}
        assert conditions["Ready"] == conditions["Initialized"] == "True"

    def test_deletion_stops_the_process_and_deletes_the_pod(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]]
    ) -> None:
        worker, api = run_pod(
            {
                "terminationGracePeriodSeconds": 5,
                "containers": [{"name": "main", "command": ["sleep", "60"]}],
            }
        )
        wait_until(lambda: api.last.get("phase") == "Running")
        pid = int(api.last["containerStatuses"][0]["containerID"].rsplit("/", 1)[1])
        deleted = pod(
            terminationGracePeriodSeconds=5,
            containers=[{"name": "main", "command": ["sleep", "60"]}],
        )
        deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        deleted["metadata"]["deletionGracePeriodSeconds"] = 5
        worker.update(deleted)
        wait_until(lambda: api.deleted == ["shop/web-1"])
        assert not alive(pid)
        assert api.last["phase"] == "Failed"  # killed by SIGTERM: exit 143
        assert api.last["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143

    def test_pre_stop_hook_runs_before_sigterm(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]], tmp_path: Path
    ) -> None:
        record = tmp_path / "hooks" / "order"
        hook = {"exec": {"command": ["sh", "-c", "echo pre-stop >> $MODELOPS_VOLUME_DATA/order"]}}
        main = "trap 'echo sigterm >> $MODELOPS_VOLUME_DATA/order; exit 0' TERM; sleep 60 & wait"
        spec = {
            "containers": [
                {"name": "main", "command": ["sh", "-c", main], "lifecycle": {"preStop": hook}}
            ],
            "volumes": [
                {
                    "name": "data",
                    "hostPath": {"path": str(record.parent), "type": "DirectoryOrCreate"},
                }
            ],
        }
        worker, api = run_pod(spec)
        wait_until(lambda: api.last.get("phase") == "Running")
        deleted = pod(**spec)
        deleted["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        worker.update(deleted)
        wait_until(lambda: api.deleted == ["shop/web-1"])
        assert record.read_text() == "pre-stop\nsigterm\n"
        assert api.last["phase"] == "Succeeded"  # it exited 0 on SIGTERM

    def test_sidecar_init_containers_are_refused(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]]
    ) -> None:
        _, api = run_pod(
            {
                "initContainers": [
                    {"name": "proxy", "restartPolicy": "Always", "command": ["true"]}
                ],
                "containers": [{"name": "main", "command": ["true"]}],
            }
        )
        wait_until(lambda: "sidecar" in str(api.last.get("initContainerStatuses")))
        waiting = api.last["initContainerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "CreateContainerConfigError"
        assert api.last["phase"] == "Pending"

    def test_unsupported_volume_fails_a_job_pod(
        self, run_pod: Callable[..., tuple[PodWorker, FakeApi]]
    ) -> None:
        _, api = run_pod(
            {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "command": ["true"]}],
                "volumes": [{"name": "remote", "nfs": {"server": "nfs", "path": "/"}}],
            }
        )
        wait_until(lambda: api.last.get("phase") == "Failed")
        assert api.last["reason"] == "UnsupportedByLocalRunner"
        assert "nfs volumes are not supported" in api.last["message"]


class TestLogServer:
    """The kubelet-style ``/containerLogs`` endpoint, over HTTPS, without an API server."""

    @pytest.fixture
    def server(self, tmp_path: Path) -> Iterator[tuple[LogServer, dict[str, str | None], Path]]:
        states: dict[str, str | None] = {"main": None}
        directory = logfiles.pod_dir(tmp_path, "shop", "web-1", "u-1")
        directory.mkdir(parents=True)
        (directory / "main.log").write_bytes(b"one\ntwo\nthree\n")
        (directory / "main.log.1").write_bytes(b"before\n")
        server = LogServer(tmp_path, "local-0", lambda ns, pod, c: states.get(c))
        server.start()
        yield server, states, directory
        server.stop()

    @staticmethod
    def get(server: LogServer, path: str) -> tuple[int, bytes]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # self-signed, as the API server accepts it
        url = f"https://127.0.0.1:{server.port}{path}"
        try:
            with urllib.request.urlopen(url, context=context, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_logs_tail_previous_and_limits(
        self, server: tuple[LogServer, dict[str, str | None], Path]
    ) -> None:
        srv, states, _ = server
        base = "/containerLogs/shop/web-1/main"
        assert self.get(srv, base) == (200, b"one\ntwo\nthree\n")
        assert self.get(srv, base + "?tailLines=2") == (200, b"two\nthree\n")
        assert self.get(srv, base + "?limitBytes=3") == (200, b"one")
        assert self.get(srv, base + "?previous=true") == (200, b"before\n")
        # While waiting to be restarted, "previous" is the run that just ended.
        states["main"] = "restarting"
        assert self.get(srv, base + "?previous=true") == (200, b"one\ntwo\nthree\n")
        assert self.get(srv, "/containerLogs/shop/web-1/other")[0] == 400
        assert self.get(srv, "/containerLogs/shop/nope/main")[0] == 404
        assert self.get(srv, "/exec/shop/web-1/main")[0] == 501
        assert self.get(srv, "/metrics")[0] == 404

    def test_follow_streams_until_the_container_stops(
        self, server: tuple[LogServer, dict[str, str | None], Path]
    ) -> None:
        srv, states, directory = server
        states["main"] = "running"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=10, context=context)
        try:
            conn.request("GET", "/containerLogs/shop/web-1/main?follow=true&tailLines=1")
            response = conn.getresponse()
            received = b""

            def read_until(expected: bytes) -> None:
                nonlocal received
                while not received.endswith(expected):
                    chunk = response.read1(65536)
                    assert chunk, f"stream ended early after {received!r}"
                    received += chunk

            read_until(b"three\n")
            with (directory / "main.log").open("ab") as log:
                log.write(b"four\n")
            read_until(b"four\n")
            states["main"] = None  # the container stopped: the stream ends
            assert response.read() == b""
            assert received == b"three\nfour\n"
        finally:
            conn.close()
