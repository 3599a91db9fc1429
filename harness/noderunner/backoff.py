"""Crash-loop back-off for restarting containers, with the kubelet's timing.

The first restart after an exit is immediate; each later one waits twice as long as the one
before (10 s, 20 s, 40 s ... capped at 5 min), counted from the moment the container exited.
A container that stays up for twice the cap without restarting starts over at 10 s. While a
container waits, its status shows ``waiting.reason: CrashLoopBackOff``.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_SECONDS = 10.0
CAP_SECONDS = 300.0


def go_duration(seconds: float) -> str:
    """``seconds`` the way Go prints a ``time.Duration`` of whole seconds: ``1m20s``, ``5m0s``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass
class CrashBackoff:
    """Back-off state of one container; times are ``time.monotonic``-style seconds."""

    initial: float = INITIAL_SECONDS
    cap: float = CAP_SECONDS
    duration: float = 0.0
    last_update: float | None = None

    def remaining(self, finished_at: float, now: float) -> float:
        """Seconds to wait before restarting a container that exited at ``finished_at``."""
        if self.last_update is None or self._expired(now):
            return 0.0
        return max(0.0, self.duration - (now - finished_at))

    def restarted(self, now: float) -> None:
        """Record a restart: the next exit waits twice as long (up to the cap)."""
        if self.last_update is None or self._expired(now):
            self.duration = self.initial
        else:
            self.duration = min(self.duration * 2, self.cap)
        self.last_update = now

    def _expired(self, now: float) -> bool:
        assert self.last_update is not None
        return now - self.last_update > 2 * self.cap
