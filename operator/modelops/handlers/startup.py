"""Process start-up and shutdown: kopf settings, clients, the work queue, leader election."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from modelops.api import API_VERSION, GROUP, VERSION
from modelops.core.plan import EventSpec, Notification, Obj
from modelops.handlers import election, events
from modelops.handlers.deps import Deps, utcnow
from modelops.handlers.reconcile import reconcile
from modelops.handlers.workqueue import Key, WorkQueue
from modelops.k8s import leader
from modelops.k8s.cache import Cache
from modelops.k8s.client import Kube
from modelops.k8s.discovery import missing_resources
from modelops.notify import Notifier
from modelops.observability import OperatorMetrics
from modelops.settings import OperatorSettings

log = logging.getLogger(__name__)

WATCHED = {
    f"{GROUP}/{VERSION}": (
        "trainingruns",
        "models",
        "modelversions",
        "driftpolicies",
        "quarantines",
    ),
    "batch/v1": ("jobs",),
    "apps/v1": ("deployments",),
}
"""The kinds the operator's cache lists and watches (handlers/events.py: SOURCES), by API group:
start-up waits until discovery lists each, and says which it still waits for."""


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
    # kopf runs the process (start-up, login, health, shutdown) but watches nothing: the
    # cache's informers do (handlers/events.py), so it never needs to scan namespaces or CRDs.
    settings.scanning.disabled = True

    metrics: OperatorMetrics = memo.metrics
    await _wait_until_served(leader.connect(op.kubeconfig), op.retry_period_seconds)
    in_flight = election.InFlight()
    memo.in_flight = in_flight

    async def run(key: Key) -> float | None:
        return await in_flight.run(reconcile(memo.deps, key))

    queue = WorkQueue(run, workers=op.workers)
    kube = Kube.connect(op.kubeconfig)
    kube.requests = metrics.api_requests

    def undelivered(notification: Notification, error: str) -> None:
        namespace, _, name = notification.subject.partition("/")
        raw = kube.get(API_VERSION, "Model", namespace, name)
        if raw is not None:
            message = f"Could not deliver {notification.type} notification: {error}"
            kube.post_event(raw, EventSpec("Warning", "NotificationFailed", message), utcnow())

    notifier = Notifier(metrics.notifications, on_failure=undelivered)
    threads = ThreadPoolExecutor(op.workers, thread_name_prefix="modelops-reconcile")
    deps = Deps(
        settings=op, kube=kube, metrics=metrics, queue=queue, notifier=notifier, threads=threads
    )
    memo.deps = deps
    namespaces, patterns = watch_scope(op)
    route = events.router(deps, patterns)
    loop = asyncio.get_running_loop()

    def on_event(event: str, obj: Obj) -> None:  # in an informer's thread
        loop.call_soon_threadsafe(route, event, obj)

    cache = Cache.for_client(kube.api, events.SOURCES, namespaces, on_event)
    kube.cache = cache
    memo.cache = cache
    # Every replica keeps its cache warm (a new leader starts at once); no reconcile runs
    # before every informer has listed once: a partial cache would look like deleted versions
    # and missing children.
    cache.start()
    await asyncio.to_thread(cache.wait_synced)
    # Watch events reach the queue on every replica; its workers run only on the leader.
    await election.start(memo, op, metrics, queue.start)


def watch_scope(op: OperatorSettings) -> tuple[list[str], list[str]]:
    """The namespaces to watch (empty: all) and the globs an object's namespace must match.
    Globs ('ml-*') are matched against a cluster-wide watch, which needs cluster-wide list
    and watch permissions on what the operator reads."""
    if op.all_namespaces:
        return [], []
    wanted = op.namespaces or ([op.pod_namespace] if op.pod_namespace else [])
    patterns = [ns for ns in wanted if any(c in ns for c in "*?[!")]
    if patterns:
        return [], wanted
    return wanted, []


async def _wait_until_served(api: Any, period: float) -> None:
    """Return once discovery lists every watched resource. An API server that is starting, or
    CRDs created a moment ago, are not served yet: until they are, the operator says what it
    waits for, and does not report healthy."""
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


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf (which watches nothing, but posts its own errors) uses the same server and
    credentials as our own client (the kubeconfig given on the command line, or the in-cluster
    service account)."""
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
    await election.stop_electing(memo)
    await deps.queue.stop()
    await memo.in_flight.wait()
    if deps.threads is not None:
        deps.threads.shutdown(wait=False)  # idle: the reconciles in flight have ended
    await election.step_down(memo)
    cache: Cache | None = getattr(memo, "cache", None)
    if cache is not None:
        await asyncio.to_thread(cache.stop)
    left = await asyncio.to_thread(deps.notifier.close)
    if left:
        # Their intent stays in the Models' status: the next leader sends them again.
        log.warning("Stopped with %d CloudEvent(s) undelivered; the next leader sends them", left)
    else:
        log.info("Stopped with every CloudEvent delivered")
