"""Pod status from the runner's view of its containers: phase, conditions, container statuses.

A pure function of a ``PodView`` and the clock, following the kubelet:

* phase: ``Pending`` until every init container succeeded and every container started at least
  once; ``Running`` while any runs (or is being restarted); once all stopped, ``Succeeded`` if
  all exited 0, ``Failed`` under ``restartPolicy: Never`` otherwise. A pod that is being deleted
  ends ``Succeeded`` or ``Failed`` by the same rule, and a pod-level failure (deadline exceeded,
  a feature the runner lacks) is ``Failed``.
* conditions ``PodReadyToStartContainers``, ``Initialized``, ``ContainersReady``, ``Ready``,
  ``PodScheduled``, each keeping its ``lastTransitionTime`` while its status does not change.
* ``containerStatuses``/``initContainerStatuses`` in spec order, times as RFC 3339 seconds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Status = dict[str, Any]


def rfc3339(epoch: float) -> str:
    """An API timestamp (second precision, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True)
class Waiting:
    """Not running yet, or waiting to be restarted."""

    reason: str
    message: str = ""


@dataclass(frozen=True)
class Running:
    """The process runs; ``started_at`` is when it was exec'd."""

    started_at: float


@dataclass(frozen=True)
class Terminated:
    """The process exited (``signal`` set when a signal killed it)."""

    exit_code: int
    reason: str
    finished_at: float
    started_at: float | None = None
    message: str = ""
    signal: int | None = None
    container_id: str = ""

    def as_api(self) -> Status:
        out: Status = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "finishedAt": rfc3339(self.finished_at),
            "startedAt": rfc3339(
                self.started_at if self.started_at is not None else self.finished_at
            ),
        }
        if self.message:
            out["message"] = self.message
        if self.signal is not None:
            out["signal"] = self.signal
        if self.container_id:
            out["containerID"] = self.container_id
        return out


State = Waiting | Running | Terminated


@dataclass(frozen=True)
class ContainerView:
    """What the runner knows about one container (its current instance and the one before)."""

    name: str
    image: str = ""
    state: State = Waiting("ContainerCreating")
    last_state: Terminated | None = None
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""

    @property
    def succeeded(self) -> bool:
        return isinstance(self.state, Terminated) and self.state.exit_code == 0

    def as_api(self, init: bool) -> Status:
        state: Status
        if isinstance(self.state, Waiting):
            waiting: Status = {"reason": self.state.reason}
            if self.state.message:
                waiting["message"] = self.state.message
            state = {"waiting": waiting}
        elif isinstance(self.state, Running):
            state = {"running": {"startedAt": rfc3339(self.state.started_at)}}
        else:
            state = {"terminated": self.state.as_api()}
        out: Status = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "state": state,
            "lastState": {"terminated": self.last_state.as_api()} if self.last_state else {},
            # A completed init container counts as ready, as with the kubelet.
            "ready": self.succeeded if init else self.ready,
            "restartCount": self.restart_count,
            "started": self.started and isinstance(self.state, Running),
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


@dataclass(frozen=True)
class PodView:
    """The runner's whole view of one pod at one moment."""

    restart_policy: str
    init_containers: Sequence[ContainerView]
    containers: Sequence[ContainerView]
    pod_ip: str
    host_ip: str
    start_time: float
    #: The pod is being deleted and every process has stopped.
    terminal: bool = False
    #: A pod-level failure: (reason, message), e.g. ("DeadlineExceeded", "...").
    failure: tuple[str, str] | None = None
    #: ``spec.readinessGates`` condition types, and the pod's conditions as others set them.
    readiness_gates: Sequence[str] = ()
    other_conditions: Mapping[str, str] = field(default_factory=dict)


def _all_succeeded(views: Sequence[ContainerView]) -> bool:
    return all(v.succeeded for v in views)


def phase(view: PodView) -> str:
    """The pod phase (see the module docstring)."""
    if view.failure:
        return "Failed"
    if view.terminal:
        everything = [*view.init_containers, *view.containers]
        ran_clean = _all_succeeded(view.containers) and _all_succeeded(view.init_containers)
        return "Succeeded" if everything and ran_clean else "Failed"
    for init in view.init_containers:
        if init.succeeded:
            continue
        failed = isinstance(init.state, Terminated) and init.state.exit_code != 0
        return "Failed" if failed and view.restart_policy == "Never" else "Pending"
    waiting = running = stopped = succeeded = 0
    for c in view.containers:
        if isinstance(c.state, Running):
            running += 1
        elif isinstance(c.state, Terminated):
            stopped += 1
            succeeded += c.state.exit_code == 0
        elif c.last_state is not None:
            stopped += 1  # waiting to be restarted
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    if view.restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if view.restart_policy == "Never" else "Running"


def _condition(
    kind: str,
    ok: bool,
    previous: Mapping[str, Mapping[str, Any]],
    now: float,
    reason: str = "",
    message: str = "",
) -> Status:
    status = "True" if ok else "False"
    before = previous.get(kind)
    if before and before.get("status") == status and before.get("lastTransitionTime"):
        since = before["lastTransitionTime"]
    else:
        since = rfc3339(now)
    out: Status = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if not ok and reason:
        out["reason"] = reason
        if message:
            out["message"] = message
    return out


def conditions(
    view: PodView, pod_phase: str, previous: Sequence[Mapping[str, Any]], now: float
) -> list[Status]:
    """The conditions the runner owns, keeping transition times from ``previous``."""
    before = {c.get("type", ""): c for c in previous}
    completed = pod_phase in ("Succeeded", "Failed")
    unfinished = [c.name for c in view.init_containers if not c.succeeded]
    initialized = not unfinished
    unready = [c.name for c in view.containers if not (c.ready and isinstance(c.state, Running))]
    containers_ready = not unready and not completed
    if completed:
        reason, message = "PodCompleted", ""
    else:
        reason = "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    gates_missing = [g for g in view.readiness_gates if view.other_conditions.get(g) != "True"]
    if containers_ready and gates_missing:
        ready_reason = "ReadinessGatesNotReady"
        ready_message = (
            f'corresponding condition of pod readiness gate "{gates_missing[0]}" is not True'
        )
    else:
        ready_reason, ready_message = reason, message
    return [
        _condition("PodReadyToStartContainers", not view.terminal, before, now),
        _condition(
            "Initialized",
            initialized,
            before,
            now,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(unfinished)}]",
        ),
        _condition(
            "Ready",
            containers_ready and not gates_missing,
            before,
            now,
            ready_reason,
            ready_message,
        ),
        _condition("ContainersReady", containers_ready, before, now, reason, message),
        _condition("PodScheduled", True, before, now),
    ]


def pod_status(
    view: PodView, previous_conditions: Sequence[Mapping[str, Any]], now: float
) -> Status:
    """The status fields the runner owns, ready for ``patch_namespaced_pod_status``."""
    pod_phase = phase(view)
    status: Status = {
        "phase": pod_phase,
        "conditions": conditions(view, pod_phase, previous_conditions, now),
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "podIP": view.pod_ip,
        "podIPs": [{"ip": view.pod_ip}],
        "startTime": rfc3339(view.start_time),
        "containerStatuses": [c.as_api(init=False) for c in view.containers],
    }
    if view.init_containers:
        status["initContainerStatuses"] = [c.as_api(init=True) for c in view.init_containers]
    if view.failure:
        status["reason"], status["message"] = view.failure
    return status
