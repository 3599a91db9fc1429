"""Process start-up and shutdown: kopf settings, clients, the work queue."""

from __future__ import annotations

from typing import Any

import kopf

from modelops.api import API_VERSION, GROUP
from modelops.core.plan import EventSpec, Notification
from modelops.handlers.deps import Deps, utcnow
from modelops.handlers.reconcile import reconcile
from modelops.handlers.workqueue import Key, WorkQueue
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
    # Least privilege: the operator's RBAC has no list/watch on Namespaces or CRDs (in a
    # namespaced install no cluster-wide permission at all). Without scanning kopf watches the
    # namespaces it is given and the kinds it finds at start-up, so the CRDs must exist
    # before the operator starts; the Helm chart and manifests/default install them first.
    # Only namespace globs ('ml-*', '!ml-test') need scanning, and whoever uses them must
    # grant namespace list/watch.
    settings.scanning.disabled = not any(c in ns for ns in op.namespaces for c in "*?[!,")

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
    memo.deps = Deps(settings=op, kube=kube, metrics=metrics, queue=queue, notifier=notifier)
    queue.start()


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
        deps.notifier.close()
