"""The only code that talks to the Kubernetes API server.

A thin, synchronous layer over the official client's transport: objects are plain dicts in
their wire form, so what the pure ``core`` builds is exactly what is sent. Children are written
with server-side apply under one field manager (``modelops``); the objects users own are only
ever touched through their ``status`` subresource, their events, and our own annotations.

Every method blocks: call them from a worker thread (``asyncio.to_thread``), never directly on
the operator's event loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from modelops import __version__
from modelops.core.plan import EventSpec, ObjectRef, contains

if TYPE_CHECKING:
    from modelops.k8s.cache import Cache

FIELD_MANAGER: Final = "modelops"
CRASH_AFTER_WRITES: Final = "MODELOPS_TEST_CRASH_AFTER_WRITES"
"""Tests only: exit the process right after this many successful writes, to land a crash in
every window between two writes (tests/cluster/test_faults.py)."""
CRASH_EXIT_CODE: Final = 86
ANNOUNCEMENT: Final = "modelops.dev/announcement"
log = logging.getLogger(__name__)

Obj = dict[str, Any]


class ConflictError(Exception):
    """A write lost a race or met an object that is not ours.

    Raised when a write preconditioned on a ``resourceVersion`` finds the object changed since
    it was read (someone else wrote in between: the decision is stale), and when a create finds
    the name taken by an object this operator did not write. The reconcile is redone from a
    fresh read; nothing is overwritten.
    """


class NameTakenError(Exception):
    """A child's name is held by an object its owner did not create: never taken over."""


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the REST API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The collection path, or the object path when ``name`` is given."""
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return f"{base}/{name}" if name else base


_KNOWN: Final = {
    (r.api_version, r.kind): r
    for r in (
        Resource("v1", "Pod", "pods"),
        Resource("v1", "Service", "services"),
        Resource("v1", "Event", "events"),
        Resource("v1", "ConfigMap", "configmaps"),
        Resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Resource("v1", "Namespace", "namespaces", namespaced=False),
        Resource("apps/v1", "Deployment", "deployments"),
        Resource("batch/v1", "Job", "jobs"),
        Resource("modelops.dev/v1alpha1", "Model", "models"),
        Resource("modelops.dev/v1alpha1", "ModelVersion", "modelversions"),
        Resource("modelops.dev/v1alpha1", "TrainingRun", "trainingruns"),
        Resource("modelops.dev/v1alpha1", "DriftPolicy", "driftpolicies"),
        Resource("modelops.dev/v1alpha1", "Quarantine", "quarantines", namespaced=False),
    )
}


_PLURALS: Final = frozenset(r.plural for r in _KNOWN.values())
_VERBS: Final = {
    ("GET", True): "list",
    ("POST", True): "create",
    ("GET", False): "get",
    ("PATCH", False): "patch",
    ("DELETE", False): "delete",
}


def _describe(method: str, path: str) -> tuple[str, str]:
    """(verb, resource) of a request, as RBAC and the audit log name them: ``list pods``,
    ``patch models/status``."""
    parts = path.strip("/").split("/")
    i = max((n for n, p in enumerate(parts) if p in _PLURALS), default=len(parts) - 1)
    collection = i == len(parts) - 1
    resource = parts[i] + (f"/{parts[i + 2]}" if len(parts) > i + 2 else "")
    return _VERBS.get((method, collection), method.lower()), resource


def resource(api_version: str, kind: str) -> Resource:
    """The REST location of a kind the operator works with."""
    try:
        return _KNOWN[(api_version, kind)]
    except KeyError:
        raise ValueError(f"modelops does not work with {kind}.{api_version}") from None


def api_client(kubeconfig: str | None, user_agent: str) -> client.ApiClient:
    """A client for ``kubeconfig``, else ``$KUBECONFIG``/``~/.kube/config``, else the in-cluster
    service account; ``user_agent`` names the caller in audit logs and API server metrics."""
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except config.ConfigException:
        if kubeconfig:
            raise
        config.load_incluster_config(client_configuration=configuration)
    api = client.ApiClient(configuration)
    api.user_agent = user_agent
    return api


@dataclass(frozen=True)
class Connection:
    """How to reach and authenticate to the API server (shared with kopf's own client)."""

    server: str
    ca_path: str | None
    insecure: bool
    certificate_path: str | None
    private_key_path: str | None
    token: str | None


class Kube:
    """A Kubernetes API client bound to one cluster and one field manager."""

    def __init__(self, api: client.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self._api = api
        self.field_manager = field_manager
        self.cache: Cache | None = None
        """Where reads are served from once set (see ``modelops.k8s.cache``); writes feed it."""
        self.requests: Counter | None = None
        """Counts every request by verb and resource, once set (``modelops_api_requests``)."""
        self._crash_after = int(os.environ.get(CRASH_AFTER_WRITES) or 0)
        self._writes = 0
        self._writes_lock = threading.Lock()

    @property
    def api(self) -> client.ApiClient:
        """The underlying client (for the cache's informers, which share its configuration)."""
        return self._api

    @classmethod
    def connect(cls, kubeconfig: str | None = None) -> Kube:
        """Connect with ``kubeconfig``, else ``$KUBECONFIG``/``~/.kube/config``, else in-cluster."""
        return cls(api_client(kubeconfig, f"modelops/{__version__}"))

    def connection(self) -> Connection:
        """The server and credentials this client uses (a token is re-read from file by the
        client when it rotates; take a fresh one for each login)."""
        cfg = self._api.configuration
        header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
            "authorization"
        )
        token = header.split(" ", 1)[-1] if header else None
        return Connection(
            server=cfg.host,
            ca_path=cfg.ssl_ca_cert,
            insecure=not cfg.verify_ssl,
            certificate_path=cfg.cert_file,
            private_key_path=cfg.key_file,
            token=token,
        )

    # -- requests --------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if self.requests is not None:
            self.requests.labels(*_describe(method, path)).inc()
        method_, url, headers_, body_, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(
            method_, url, header_params=headers_, body=body_, _request_timeout=60
        )
        response.read()
        data: bytes = response.data or b""
        if response.status >= 400:
            raise ApiException(http_resp=response, body=data.decode(errors="replace"))
        if self._crash_after and method != "GET":
            self._count_write(method, path)
        return cast(Obj, json.loads(data)) if data else {}

    def _count_write(self, method: str, path: str) -> None:
        with self._writes_lock:
            self._writes += 1
            if self._writes == self._crash_after:
                log.warning("Exiting after write %d (%s %s), as told", self._writes, method, path)
                logging.shutdown()
                os._exit(CRASH_EXIT_CODE)

    def get(
        self, api_version: str, kind: str, namespace: str, name: str, *, live: bool = False
    ) -> Obj | None:
        """The object, or None when it does not exist (it may have been deleted meanwhile).

        Served from the cache when it holds the kind, unless ``live``: a decision that an
        absent object would make final is confirmed against the API server first.
        """
        source = None if live or self.cache is None else self.cache.source_for(api_version, kind)
        if source is not None:
            assert self.cache is not None
            return self.cache.get(source, namespace, name)
        try:
            return self._seen(
                self._request("GET", resource(api_version, kind).path(namespace, name))
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        labels: Mapping[str, str] | None = None,
        model: str | None = None,
        live: bool = False,
    ) -> list[Obj]:
        """Objects of a kind in ``namespace`` (all namespaces when None) with ``labels``, and
        with ``model``, those whose ``spec.modelRef.name`` is that Model.

        Served from the cache when it holds the kind (by its index for ``model``: the cost is
        the Model's own objects, not the namespace's), unless ``live``; otherwise listed,
        labels filtered by the server.
        """
        if self.cache is not None and not live:
            source = self.cache.source_for(api_version, kind, labels)
            if source is not None:
                return self.cache.list(source, namespace, labels, model)
        query = {}
        if labels:
            query["labelSelector"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        out = self._request("GET", resource(api_version, kind).path(namespace), query=query)
        items = cast(list[Obj], out.get("items", []))
        for item in items:  # list items come without them; every other object has them
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            self._seen(item)  # a live read that found the cache behind brings it up to date
        if model is not None:
            items = [
                i for i in items if (i.get("spec") or {}).get("modelRef", {}).get("name") == model
            ]
        return items

    def _seen(self, obj: Obj) -> Obj:
        """Hand what a write returned, or a live read found, to the cache (which keeps what it
        holds if that is newer), so the next read sees our own write, and a lagging cache does
        not send every following reconcile to the API server for the same object."""
        if self.cache is not None and obj.get("metadata"):
            self.cache.observe(obj)
        return obj

    def apply(self, manifest: Obj, *, new: bool = False) -> Obj:
        """Server-side apply ``manifest`` as the operator's field manager (taking over conflicts:
        the operator is the only intended writer of the fields it sets on its children).

        ``new``: the caller saw no such child of this owner, so the object is created rather
        than applied; if the name is taken by an object without the manifest's owner
        references, :class:`NameTakenError` is raised and nothing is written — someone
        else's object is never adopted or overwritten.
        """
        meta = manifest["metadata"]
        res = resource(manifest["apiVersion"], manifest["kind"])
        if new:
            created, existing = self._post(manifest)
            if created is not None:
                return created
            owners = {r.get("uid") for r in meta.get("ownerReferences", [])}
            held = {
                r.get("uid")
                for r in (existing or {}).get("metadata", {}).get("ownerReferences", [])
            }
            if existing is not None and not owners & held:
                raise NameTakenError(
                    f"{manifest['kind']} {meta.get('namespace')}/{meta['name']} exists and was "
                    "not created for this owner; it is left alone"
                )
        return self._seen(
            self._request(
                "PATCH",
                res.path(meta.get("namespace"), meta["name"]),
                query={"fieldManager": self.field_manager, "force": "true"},
                body=manifest,
                content_type="application/apply-patch+yaml",
            )
        )

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        """Create ``manifest``; if this operator already created it, return the existing object.

        Returns the object and whether this call created it. Used for records that are
        written once and never changed (ModelVersions), so a repeated reconcile is harmless.
        An existing object of that name counts as ours only when it holds everything the
        manifest sets (owner references and spec included); anything else raises
        :class:`ConflictError` rather than pass someone else's object off as the one created.
        """
        meta = manifest["metadata"]
        created, existing = self._post(manifest)
        if created is not None:
            return created, True
        if existing is None:  # deleted between our POST and GET: let the next reconcile retry
            raise ConflictError(f"{manifest['kind']} {meta['name']} vanished while created")
        owners = {"ownerReferences": meta["ownerReferences"]} if "ownerReferences" in meta else {}
        mine = contains(existing.get("spec"), manifest.get("spec")) and contains(
            existing["metadata"], owners
        )
        if not mine:
            raise ConflictError(
                f"{manifest['kind']} {meta.get('namespace')}/{meta['name']} already exists "
                "and was not created by this operator for this owner"
            )
        return existing, False

    def _post(self, manifest: Obj) -> tuple[Obj | None, Obj | None]:
        """Create ``manifest``: (the created object, None), or when the name is taken (None,
        the object that holds it, read live; None if it went meanwhile)."""
        meta = manifest["metadata"]
        res = resource(manifest["apiVersion"], manifest["kind"])
        try:
            created = self._request(
                "POST",
                res.path(meta.get("namespace")),
                query={"fieldManager": self.field_manager},
                body=manifest,
            )
        except ApiException as e:
            if e.status != 409:
                raise
            existing = self.get(
                manifest["apiVersion"],
                manifest["kind"],
                meta.get("namespace", ""),
                meta["name"],
                live=True,
            )
            return None, existing
        return self._seen(created), None

    def delete(self, ref: ObjectRef) -> bool:
        """Delete an object with background propagation; False when it was already gone."""
        try:
            self._request(
                "DELETE",
                resource(ref.api_version, ref.kind).path(ref.namespace, ref.name),
                body={"propagationPolicy": "Background"},
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    def patch_status(self, ref: ObjectRef, status: Obj, *, resource_version: str | None) -> Obj:
        """Replace the fields of ``status`` given here (JSON merge patch on the subresource).

        With ``resource_version`` (the version the status was computed from) the write is
        refused with :class:`ConflictError` if the object changed since: a decision taken on a stale
        read never overwrites a newer one (appended history entries included).
        """
        path = resource(ref.api_version, ref.kind).path(ref.namespace, ref.name) + "/status"
        return self._patch(path, {"status": status}, resource_version)

    def patch_metadata(
        self,
        ref: ObjectRef,
        *,
        labels: Mapping[str, str | None] | None = None,
        annotations: Mapping[str, str | None] | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """Set (or with None remove) labels and annotations: the only metadata we write.
        ``resource_version`` makes it conditional, as for :meth:`patch_status`."""
        meta: Obj = {}
        if labels:
            meta["labels"] = dict(labels)
        if annotations:
            meta["annotations"] = dict(annotations)
        path = resource(ref.api_version, ref.kind).path(ref.namespace, ref.name)
        return self._patch(path, {"metadata": meta}, resource_version)

    def _patch(self, path: str, body: Obj, resource_version: str | None) -> Obj:
        if resource_version is not None:
            # In a merge patch, metadata.resourceVersion is a precondition: 409 when it differs.
            body = {
                **body,
                "metadata": {**body.get("metadata", {}), "resourceVersion": resource_version},
            }
        try:
            return self._seen(
                self._request(
                    "PATCH",
                    path,
                    query={"fieldManager": self.field_manager},
                    body=body,
                    content_type="application/merge-patch+json",
                )
            )
        except ApiException as e:
            if e.status == 409:
                raise ConflictError(f"{path} changed since it was read") from e
            raise

    def post_event(self, regarding: Obj, event: EventSpec, now: datetime) -> bool:
        """Record a core/v1 Event about ``regarding`` (shown by ``kubectl describe``); whether
        it is recorded.

        Events are aggregated as kubectl and the kubelet expect: the same type, reason and
        message about the same object is one Event whose ``count`` and ``lastTimestamp`` move,
        not a new object each time. Its name is derived from those fields, so a repeat (a
        retried reconcile, a restarted operator) finds it. An Event that delivers an
        announcement (``event.id``) records its id in the annotation ``modelops.dev/
        announcement``: sending the same announcement again changes nothing.
        """
        meta = regarding["metadata"]
        # Events are namespaced; one about a cluster-scoped object (a Quarantine) goes to
        # "default", as kubectl and the kubelet do.
        where = meta.get("namespace") or "default"
        stamp = now.isoformat().replace("+00:00", "Z")
        identity = "\0".join(
            (meta.get("uid") or meta["name"], event.type, event.reason, event.message)
        )
        name = f"{meta['name']}.{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
        events = resource("v1", "Event")
        annotations = {ANNOUNCEMENT: event.id} if event.id else {}
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": where, "annotations": annotations},
            "involvedObject": {
                "apiVersion": regarding["apiVersion"],
                "kind": regarding["kind"],
                "name": meta["name"],
                "namespace": meta.get("namespace", ""),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "action": event.reason,
            "source": {"component": "modelops"},
            "reportingComponent": "modelops.dev/operator",
            "reportingInstance": "modelops",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            try:
                self._request("POST", events.path(where), body=body)
            except ApiException as e:
                if e.status != 409:
                    raise
                existing = self._request("GET", events.path(where, name))
                seen = (existing["metadata"].get("annotations") or {}).get(ANNOUNCEMENT)
                if event.id is not None and seen == event.id:
                    return True  # this very announcement was recorded before a restart
                self._patch(
                    events.path(where, name),
                    {
                        "metadata": {"annotations": annotations},
                        "count": int(existing.get("count") or 1) + 1,
                        "lastTimestamp": stamp,
                    },
                    existing["metadata"]["resourceVersion"],
                )
        except (ApiException, ConflictError) as e:
            # An event is a courtesy: losing one must never fail a reconcile.
            log.warning(
                "Could not record event %s on %s/%s: %s",
                event.reason,
                where,
                meta["name"],
                getattr(e, "reason", e),
            )
            return False
        return True
