"""Probe settings and results: when a container counts as started, ready or dead.

Kubelet semantics: a result flips to success after ``successThreshold`` consecutive successes
and to failure after ``failureThreshold`` consecutive failures. Before the first verdict a
readiness probe reads "not ready", a liveness probe "alive" and a startup probe "not started".
Readiness and liveness probes only run once the startup probe (if any) has succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ProbeKind = Literal["startup", "readiness", "liveness"]
HANDLERS = ("httpGet", "tcpSocket", "exec")


class UnsupportedProbeError(ValueError):
    """The probe uses a handler the runner cannot run (``grpc``) or none at all."""


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a container, with the API defaults filled in."""

    kind: ProbeKind
    handler: str
    action: Mapping[str, Any]
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None

    @classmethod
    def parse(cls, kind: ProbeKind, probe: Mapping[str, Any]) -> ProbeSpec:
        """Read a probe from the container spec; ``UnsupportedProbeError`` if it cannot be run."""
        handler = next((h for h in HANDLERS if probe.get(h) is not None), None)
        if handler is None:
            other = [k for k in ("grpc",) if probe.get(k) is not None]
            what = f"{other[0]} probes are" if other else "a probe without a handler is"
            raise UnsupportedProbeError(f"{kind} probe: {what} not supported by the local runner")
        grace = probe.get("terminationGracePeriodSeconds")
        return cls(
            kind=kind,
            handler=handler,
            action=probe[handler],
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            # Liveness and startup probes must use 1 (API validation); keep whatever came.
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
            termination_grace=float(grace) if grace is not None else None,
        )


def container_probes(container: Mapping[str, Any]) -> list[ProbeSpec]:
    """The container's probes (startup first); ``UnsupportedProbeError`` for one that cannot run."""
    kinds: tuple[tuple[ProbeKind, str], ...] = (
        ("startup", "startupProbe"),
        ("readiness", "readinessProbe"),
        ("liveness", "livenessProbe"),
    )
    return [ProbeSpec.parse(kind, container[key]) for kind, key in kinds if container.get(key)]


@dataclass
class ProbeTracker:
    """Consecutive-result bookkeeping for one probe of one running container instance."""

    spec: ProbeSpec
    result: bool | None = field(default=None)
    message: str = ""
    _successes: int = 0
    _failures: int = 0

    def __post_init__(self) -> None:
        if self.result is None and self.spec.kind != "startup":
            self.result = self.spec.kind == "liveness"

    @property
    def failures(self) -> int:
        """Consecutive failures so far (0 after a success)."""
        return self._failures

    def observe(self, ok: bool, message: str = "") -> bool:
        """Record one probe outcome; return True when the verdict changed."""
        before = self.result
        if ok:
            self._successes += 1
            self._failures = 0
            if self._successes >= self.spec.success_threshold:
                self.result = True
        else:
            self._failures += 1
            self._successes = 0
            self.message = message
            if self._failures >= self.spec.failure_threshold:
                self.result = False
        return self.result != before
