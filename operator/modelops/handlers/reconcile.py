"""Dispatch queued keys to the reconciler of their kind, off the event loop, with metrics."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from typing import Final

from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key
from modelops.k8s.client import ConflictError

log = logging.getLogger(__name__)

CONFLICT_RETRY: Final = 1.0
"""Seconds before a reconcile whose write met a newer object runs again (from a fresh read)."""


class Gone(enum.Enum):
    """What a reconciler returns when its object no longer exists (or is being deleted)."""

    GONE = "gone"


GONE: Final = Gone.GONE

# A reconciler observes, decides and acts for one object, synchronously (it runs in a worker
# thread), and returns after how many seconds it wants to look again, None when it has nothing
# to wait for (the periodic resync still comes), or GONE when its object is gone.
SyncReconciler = Callable[[Deps, Key], float | Gone | None]
RECONCILERS: dict[str, SyncReconciler] = {}


def reconciler(kind: str) -> Callable[[SyncReconciler], SyncReconciler]:
    """Register the reconciler of ``kind``."""

    def register(fn: SyncReconciler) -> SyncReconciler:
        RECONCILERS[kind] = fn
        return fn

    return register


async def reconcile(deps: Deps, key: Key) -> float | None:
    """Run one reconcile of ``key``; returns when to run it again: within the resync period at
    most while the object exists, never (None) once it is gone — a deleted object keeps no
    timer and costs no further reads."""
    fn = RECONCILERS[key.kind]
    started = time.perf_counter()
    try:
        requeue = await asyncio.get_running_loop().run_in_executor(deps.threads, fn, deps, key)
    except ConflictError as e:
        # Not a failure: someone wrote first. Decide again on what they wrote, without the
        # error backoff and without a traceback.
        deps.metrics.reconciles.labels(key.kind, "conflict").inc()
        log.info("Reconcile of %s met a newer write (%s); reconciling again", key, e)
        return CONFLICT_RETRY
    except Exception:
        deps.metrics.reconciles.labels(key.kind, "error").inc()
        raise
    finally:
        deps.metrics.reconcile_duration.labels(key.kind).observe(time.perf_counter() - started)
    deps.metrics.reconciles.labels(key.kind, "success").inc()
    if requeue is GONE:
        return None
    resync = deps.settings.resync_seconds
    return resync if requeue is None else min(requeue, resync)
