"""Process start-up and shutdown: kopf settings, clients, the work queue, leader election."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf

from modelops.api import API_VERSION, GROUP, VERSION
from modelops.core.plan import EventSpec, Notification
from modelops.handlers.deps import Deps, utcnow
from modelops.handlers.reconcile import reconcile
from modelops.handlers.workqueue import Key, WorkQueue
from modelops.k8s import leader
from modelops.k8s.client import Kube
from modelops.k8s.discovery import missing_resources
from modelops.notify import Notifier
from modelops.observability import LeaderMetric, OperatorMetrics
from modelops.settings import OperatorSettings

log = logging.getLogger(__name__)

WATCHED = {
    f"{GROUP}/{VERSION}": ("trainingruns", "models", "modelversions", "driftpolicies"),
    "batch/v1": ("jobs",),
    "apps/v1": ("deployments",),
}
"""What the operator's kopf handlers watch (handlers/events.py). kopf resolves them once, when
it starts: each must be discoverable by then."""

LOST_LEADERSHIP_EXIT = 3
"""Exit status of a leader that lost its Lease (its Deployment restarts it as a follower)."""


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's own bookkeeping under our domain, then build the reconcile machinery."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    # Reconcile outcomes are reported as our own Events and conditions; kopf's are noise.
    settings.posting.level = 40  # logging.ERROR
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60

    op: OperatorSettings = memo.settings
    # Least privilege: the operator's RBAC has no list/watch on Namespaces or CRDs (in a
    # namespaced install no cluster-wide permission at all). Without scanning kopf watches the
    # namespaces it is given and the kinds it finds at start-up, so the CRDs must exist
    # before the operator starts; the Helm chart and manifests/default install them first.
    # Only namespace globs ('ml-*', '!ml-test') need scanning, and whoever uses them must
    # grant namespace list/watch.
    settings.scanning.disabled = not any(c in ns for ns in op.namespaces for c in "*?[!,")

    metrics: OperatorMetrics = memo.metrics
    api = leader.connect(op.kubeconfig)
    await _wait_until_served(api, op.retry_period_seconds)

    # A reconcile whose worker is cancelled at shutdown still runs to its end in its thread;
    # the Lease is released only after it, so the next leader never overlaps with its writes.
    in_flight: set[asyncio.Task[float | None]] = set()

    async def run(key: Key) -> float | None:
        task = asyncio.create_task(reconcile(memo.deps, key))
        in_flight.add(task)
        task.add_done_callback(_settled(in_flight))
        return await asyncio.shield(task)

    memo.in_flight = in_flight
    queue = WorkQueue(run, workers=op.workers)
    kube = Kube.connect(op.kubeconfig)

    def undelivered(notification: Notification, error: str) -> None:
        namespace, _, name = notification.subject.partition("/")
        raw = kube.get(API_VERSION, "Model", namespace, name)
        if raw is not None:
            message = f"Could not deliver {notification.type} notification: {error}"
            kube.post_event(raw, EventSpec("Warning", "NotificationFailed", message), utcnow())

    notifier = Notifier(metrics.notifications, on_failure=undelivered)
    memo.deps = Deps(settings=op, kube=kube, metrics=metrics, queue=queue, notifier=notifier)
    memo.elector = None
    gauge = LeaderMetric(metrics.registry, op.identity())
    if not op.leader_election:
        log.warning("Leader election is off: start no other replica of this operator")
        gauge.set(True)
        queue.start()
        return
    namespace = op.lease_namespace()
    if namespace is None:
        raise kopf.PermanentError(
            "Say where the leader Lease lives: --leader-election-namespace NS "
            "(or MODELOPS_LEADER_ELECTION_NAMESPACE), or turn election off"
        )
    timing = leader.LeaseTiming(
        op.lease_duration_seconds, op.renew_deadline_seconds, op.retry_period_seconds
    )
    lock = leader.LeaseLock(api, namespace, op.leader_election_lease, op.renew_deadline_seconds)
    elector = leader.LeaderElector(lock, op.identity(), timing)
    memo.elector = elector

    def lead() -> None:
        # Watch events reached the queue all along; only now do workers take keys from it.
        gauge.set(True)
        queue.start()

    async def elect() -> None:
        await elector.run(lead)
        gauge.set(False)
        # Reconciles in flight run in threads that cannot be cancelled: only ending the
        # process stops them writing at once. The Deployment starts it again as a follower.
        log.error("Exiting: this process may no longer reconcile")
        logging.shutdown()
        os._exit(LOST_LEADERSHIP_EXIT)

    memo.election = asyncio.create_task(elect(), name="modelops-leader-election")
    memo.gauge = gauge


def _settled(in_flight: set[asyncio.Task[float | None]]) -> Any:
    def done(task: asyncio.Task[float | None]) -> None:
        in_flight.discard(task)
        # Its worker reported the outcome, or was cancelled and the outcome no longer matters.
        if not task.cancelled():
            task.exception()

    return done


async def _wait_until_served(api: Any, period: float) -> None:
    """Return once discovery lists every watched resource. An API server that is starting, or
    CRDs created a moment ago, are not served yet; kopf, which resolves the resources right
    after start-up, would otherwise never watch them, and would report healthy all the same."""
    waiting = None
    while True:
        try:
            missing = await asyncio.to_thread(missing_resources, api, WATCHED)
        except Exception as e:  # the API server is not reachable yet: the same as not served
            missing = [f"API discovery ({e})"]
        if not missing:
            if waiting is not None:
                log.info("The API server serves every watched resource now")
            return
        if missing != waiting:
            log.warning("Waiting until the API server serves %s", ", ".join(missing))
            waiting = missing
        await asyncio.sleep(period)


@kopf.on.probe(id="leader")
async def leading(memo: kopf.Memo, **_: Any) -> dict[str, object]:
    """/healthz says who this replica is and whether it leads (followers are healthy too)."""
    elector: leader.LeaderElector | None = getattr(memo, "elector", None)
    if elector is None:
        return {"election": False}
    return {"identity": elector.identity, "leading": elector.leading, "lease": str(elector.lock)}


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf watches with the same server and credentials as our own client (the kubeconfig
    given on the command line, or the in-cluster service account)."""
    c = memo.deps.kube.connection()
    return kopf.ConnectionInfo(
        server=c.server,
        ca_path=c.ca_path,
        insecure=c.insecure,
        certificate_path=c.certificate_path,
        private_key_path=c.private_key_path,
        token=c.token,
        scheme="Bearer" if c.token else None,
    )


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    """See :func:`stop`."""
    await stop(memo)


async def stop(memo: kopf.Memo) -> None:
    """Stop the workers, let the reconciles in flight end, hand the Lease over, then flush
    notifications (off the event loop: that can take seconds)."""
    deps: Deps | None = getattr(memo, "deps", None)
    if deps is None:
        return
    election: asyncio.Task[None] | None = getattr(memo, "election", None)
    if election is not None:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
    await deps.queue.stop()
    in_flight: set[asyncio.Task[float | None]] = memo.in_flight
    if in_flight:
        log.info("Waiting for %d reconcile(s) in flight", len(in_flight))
        await asyncio.wait(set(in_flight))
    elector: leader.LeaderElector | None = memo.elector
    if elector is not None and elector.leading:
        try:
            if await asyncio.to_thread(elector.release):
                log.info("Released %s", elector.lock)
        except Exception as e:  # the next leader then waits out the lease duration
            log.warning("Could not release %s: %s", elector.lock, e)
        memo.gauge.set(False)
    left = await asyncio.to_thread(deps.notifier.close)
    if left:
        log.warning("Stopped with %d CloudEvent(s) undelivered: they are lost", left)
    else:
        log.info("Stopped with every CloudEvent delivered")
