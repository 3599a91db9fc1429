"""Process start-up and shutdown: kopf settings, clients, the work queue."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from modelops.api import API_VERSION, GROUP
from modelops.core.plan import EventSpec, Notification, Obj
from modelops.handlers import events
from modelops.handlers.deps import Deps, utcnow
from modelops.handlers.reconcile import reconcile
from modelops.handlers.workqueue import Key, WorkQueue
from modelops.k8s.cache import Cache
from modelops.k8s.client import Kube
from modelops.notify import Notifier
from modelops.observability import OperatorMetrics
from modelops.settings import OperatorSettings


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
    # cache's informers do (see handlers/events.py), so it never needs to scan namespaces or
    # CRDs.
    settings.scanning.disabled = True

    metrics: OperatorMetrics = memo.metrics

    async def run(key: Key) -> float | None:
        return await reconcile(memo.deps, key)

    queue = WorkQueue(run, workers=op.workers)
    kube = Kube.connect(op.kubeconfig)

    def undelivered(notification: Notification, error: str) -> None:
        namespace, _, name = notification.subject.partition("/")
        raw = kube.get(API_VERSION, "Model", namespace, name)
        if raw is not None:
            message = f"Could not deliver {notification.type} notification: {error}"
            kube.post_event(raw, EventSpec("Warning", "NotificationFailed", message), utcnow())

    notifier = Notifier(metrics.notifications, on_failure=undelivered)
    deps = Deps(settings=op, kube=kube, metrics=metrics, queue=queue, notifier=notifier)
    memo.deps = deps
    namespaces, patterns = watch_scope(op)
    route = events.router(deps, patterns)
    loop = asyncio.get_running_loop()

    def on_event(event: str, obj: Obj) -> None:  # in an informer's thread
        loop.call_soon_threadsafe(route, event, obj)

    cache = Cache.for_client(kube.api, events.SOURCES, namespaces, on_event)
    kube.cache = cache
    memo.cache = cache
    cache.start()
    # No reconcile before every informer has listed once: a partial cache would look like
    # deleted versions and missing children.
    await asyncio.to_thread(cache.wait_synced)
    queue.start()


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
    """Stop the workers; a reconcile cut short is simply redone by the next operator."""
    deps: Deps | None = getattr(memo, "deps", None)
    if deps is not None:
        await deps.queue.stop()
        cache: Cache | None = getattr(memo, "cache", None)
        if cache is not None:
            await asyncio.to_thread(cache.stop)
        deps.notifier.close()
