"""A work queue of object keys, in the manner of controller-runtime.

kopf delivers watch events; reconciles run from this queue instead of from kopf's per-object
handlers so that (1) an event on a child (a Job, a Deployment) reconciles its parent, (2) many
events for one object collapse into one reconcile, (3) one object is never reconciled by two
workers at once, and (4) a reconcile can ask to run again later (a canary's ready time, a drift
interval) or be retried with backoff after an error, without kopf writing progress annotations
onto user objects.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Key:
    """One object to reconcile."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


Reconciler = Callable[[Key], Awaitable[float | None]]

URGENT = 0
"""Priority of what a user just asked for: a new object, a spec change."""
NORMAL = 1
"""Priority of everything else: children's and status changes, timers, retries."""


class WorkQueue:
    """Deduplicating queue with delayed re-adds and per-key exponential error backoff.

    A key added while it is being processed is processed once more afterwards (the event may
    carry a change the running reconcile did not see), never concurrently.

    A key whose last reconcile failed waits out its backoff: plain adds (watch events, among
    them the failing reconcile's own writes) are folded into the pending retry, or a failing
    object would be retried as fast as it writes. An ``urgent`` add — a change of the
    object's spec, which may be the fix — runs at once and restarts the backoff.

    Two priorities, served strictly in order (as controller-runtime's priority queue does):
    ``urgent`` adds — an object seen for the first time or whose spec changed, that is what
    a user just asked for — go before all other work: follow-ups of children's status, the
    operator's own status writes, timers and retries. A burst of new objects is served
    first (each TrainingRun's Job is created before earlier runs' status is recorded), and
    the follow-ups run once the burst is served. A key queued at low priority and then added
    urgently moves up.
    """

    def __init__(
        self,
        reconcile: Reconciler,
        *,
        workers: int = 8,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> None:
        self._reconcile = reconcile
        self._workers = workers
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        # (priority, sequence, key): URGENT before NORMAL, first come first served within one.
        self._queue: asyncio.PriorityQueue[tuple[int, int, Key]] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._queued: dict[Key, int] = {}  # key -> the priority it is queued at
        self._processing: set[Key] = set()
        self._dirty: dict[Key, int] = {}  # added while processing -> priority of the re-add
        self._failures: dict[Key, int] = {}
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, key: Key, *, urgent: bool = False) -> None:
        """Reconcile ``key`` soon (at most once more, however often it is added)."""
        if key in self._failures:
            if not urgent:
                return  # the backoff timer brings it back
            self.forget(key)
        self._enqueue(key, URGENT if urgent else NORMAL)

    def add_threadsafe(self, key: Key) -> None:
        """:meth:`add`, from another thread (a delivery thread's callback)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.add, key)

    def _enqueue(self, key: Key, priority: int = NORMAL) -> None:
        if key in self._processing:
            self._dirty[key] = min(priority, self._dirty.get(key, priority))
            return
        if self._queued.get(key, priority + 1) <= priority:
            return  # already queued, at this priority or a higher one
        # A key moving up leaves its older entry behind; _work skips entries that no longer
        # match the priority the key is queued at.
        self._queued[key] = priority
        self._queue.put_nowait((priority, next(self._seq), key))

    def add_after(self, key: Key, delay: float) -> None:
        """Reconcile ``key`` after ``delay`` seconds; an earlier pending re-add wins."""
        loop = asyncio.get_running_loop()
        timer = self._timers.get(key)
        when = loop.time() + delay
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def forget(self, key: Key) -> None:
        """Drop pending re-adds and failure history (of a deleted object, or of one whose
        spec changed and deserves a fresh start)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    def pending(self, key: Key) -> bool:
        """Whether ``key`` is queued, being reconciled, or has a re-add scheduled."""
        return key in self._queued or key in self._processing or key in self._timers

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self._enqueue(key)

    def start(self) -> None:
        """Start the workers on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._work(), name=f"modelops-worker-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        """Cancel the workers and pending timers."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            priority, _, key = await self._queue.get()
            self._queue.task_done()
            if self._queued.get(key) != priority:
                continue  # superseded by an entry at a higher priority
            del self._queued[key]
            self._processing.add(key)
            try:
                requeue = await self._reconcile(key)
            except Exception:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self._base_backoff * 2 ** (failures - 1), self._max_backoff)
                log.exception(
                    "Reconcile of %s failed (attempt %d); retrying in %.0fs", key, failures, delay
                )
                self.add_after(key, delay)
            else:
                self._failures.pop(key, None)
                if requeue is None:
                    self.forget(key)  # gone: no timer, no further reads
                else:
                    self.add_after(key, requeue)
            finally:
                self._processing.discard(key)
                again = self._dirty.pop(key, None)
                if again is not None:
                    self.add(key, urgent=again == URGENT)
