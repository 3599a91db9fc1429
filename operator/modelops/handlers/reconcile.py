"""Dispatch queued keys to the reconciler of their kind, off the event loop, with metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key

log = logging.getLogger(__name__)

# A reconciler observes, decides and acts for one object, synchronously (it runs in a worker
# thread), and returns after how many seconds it wants to look again, or None.
SyncReconciler = Callable[[Deps, Key], float | None]
RECONCILERS: dict[str, SyncReconciler] = {}


def reconciler(kind: str) -> Callable[[SyncReconciler], SyncReconciler]:
    """Register the reconciler of ``kind``."""

    def register(fn: SyncReconciler) -> SyncReconciler:
        RECONCILERS[kind] = fn
        return fn

    return register


async def reconcile(deps: Deps, key: Key) -> float | None:
    """Run one reconcile of ``key``; the next one is due within the resync period at most."""
    fn = RECONCILERS[key.kind]
    started = time.perf_counter()
    try:
        requeue = await asyncio.to_thread(fn, deps, key)
    except Exception:
        deps.metrics.reconciles.labels(key.kind, "error").inc()
        raise
    finally:
        deps.metrics.reconcile_duration.labels(key.kind).observe(time.perf_counter() - started)
    deps.metrics.reconciles.labels(key.kind, "success").inc()
    resync = deps.settings.resync_seconds
    return resync if requeue is None else min(requeue, resync)
