"""Leader election in the operator process: only the Lease holder's work-queue workers run.

Every replica receives watch events and queues their keys; :func:`start` starts the workers
at once with election off, else once this replica acquires the Lease. A leader that loses the
Lease ends the process (see :data:`LOST_LEADERSHIP_EXIT`). At shutdown, :func:`step_down`
releases the Lease after the reconciles in flight (:class:`InFlight`) have ended, so that the
next leader never overlaps with their writes. Documented in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from modelops.k8s import leader
from modelops.observability import LeaderMetric, OperatorMetrics
from modelops.settings import OperatorSettings

log = logging.getLogger(__name__)

LOST_LEADERSHIP_EXIT = 3
"""Exit status of a leader that lost its Lease. Reconciles run in threads that cannot be
interrupted: ending the process is the only way to stop them writing at once. Its Deployment
starts it again, as a follower."""


class InFlight:
    """The reconciles under way. A worker cancelled at shutdown leaves its reconcile running
    to its end in its thread; :meth:`wait` waits for those."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[float | None]] = set()

    async def run(self, reconcile: Awaitable[float | None]) -> float | None:
        """Run ``reconcile``, shielded from the cancellation of its caller."""
        task = asyncio.ensure_future(reconcile)
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[float | None]) -> None:
        self._tasks.discard(task)
        # Its worker reported the outcome, or was cancelled and the outcome no longer matters.
        if not task.cancelled():
            task.exception()

    async def wait(self) -> None:
        """Return once every reconcile under way has ended."""
        if self._tasks:
            log.info("Waiting for %d reconcile(s) in flight", len(self._tasks))
            await asyncio.wait(set(self._tasks))


async def start(
    memo: kopf.Memo,
    op: OperatorSettings,
    metrics: OperatorMetrics,
    start_workers: Callable[[], None],
) -> None:
    """Start the workers now (election off), or from a background task once this replica
    holds the Lease."""
    gauge = LeaderMetric(metrics.registry, op.identity())
    memo.leader_gauge = gauge
    memo.elector = None
    if not op.leader_election:
        log.warning("Leader election is off: start no other replica of this operator")
        gauge.set(True)
        start_workers()
        return
    namespace = op.lease_namespace()
    if namespace is None:  # __main__ refuses to start without one; kopf's own runner does not
        raise kopf.PermanentError("No namespace for the leader Lease: see docs/operations.md")
    timing = leader.LeaseTiming(
        op.lease_duration_seconds, op.renew_deadline_seconds, op.retry_period_seconds
    )
    lock = leader.LeaseLock(
        leader.connect(op.kubeconfig),
        namespace,
        op.leader_election_lease,
        op.renew_deadline_seconds,
    )
    elector = leader.LeaderElector(lock, op.identity(), timing)
    memo.elector = elector

    def lead() -> None:
        gauge.set(True)
        start_workers()

    async def elect() -> None:
        await elector.run(lead)
        gauge.set(False)
        log.error("Exiting: this process may no longer reconcile")
        logging.shutdown()
        os._exit(LOST_LEADERSHIP_EXIT)

    memo.election = asyncio.create_task(elect(), name="modelops-leader-election")


async def stop_electing(memo: kopf.Memo) -> None:
    """Stop trying to acquire or renew the Lease (first thing at shutdown)."""
    election: asyncio.Task[None] | None = getattr(memo, "election", None)
    if election is not None:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)


async def step_down(memo: kopf.Memo) -> None:
    """Release the Lease if this replica holds it: call it once no reconcile runs any more."""
    elector: leader.LeaderElector | None = getattr(memo, "elector", None)
    if elector is None or not elector.leading:
        return
    try:
        if await asyncio.to_thread(elector.release):
            log.info("Released %s", elector.lock)
    except Exception as e:  # the next leader then waits out the lease duration
        log.warning("Could not release %s: %s", elector.lock, e)
    memo.leader_gauge.set(False)


@kopf.on.probe(id="leader")
async def leading(memo: kopf.Memo, **_: Any) -> dict[str, object]:
    """/healthz says who this replica is and whether it leads (followers are healthy too)."""
    elector: leader.LeaderElector | None = getattr(memo, "elector", None)
    if elector is None:
        return {"election": False}
    return {"identity": elector.identity, "leading": elector.leading, "lease": str(elector.lock)}
