"""What every reconcile needs, built once at start-up and kept in kopf's memo."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from modelops.handlers.workqueue import WorkQueue
from modelops.k8s.client import Kube
from modelops.notify import Notifier
from modelops.observability import OperatorMetrics
from modelops.settings import OperatorSettings


def utcnow() -> datetime:
    """The operator's clock (injected into every pure decision)."""
    return datetime.now(UTC)


@dataclass
class Deps:
    """Process-wide collaborators of the reconcilers."""

    settings: OperatorSettings
    kube: Kube
    metrics: OperatorMetrics
    queue: WorkQueue
    notifier: Notifier
    clock: Callable[[], datetime] = utcnow
    state: dict[str, object] = field(default_factory=dict)
    """What a reconciler keeps in memory for the life of the process, by kind (the drift
    windows of DriftPolicies); each reconciler creates its entry on first use."""
    threads: ThreadPoolExecutor | None = None
    """Where reconciles run: one thread per work-queue worker, apart from the event loop's
    default executor (which Python sizes by CPU count, and which the Lease renewals use: a
    burst of reconciles must neither be capped by it nor delay a renewal). None: the
    default executor (tests)."""
