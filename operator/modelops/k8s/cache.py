"""A watch-fed cache of everything reconciles read (the informer pattern).

One informer per watched kind (and namespace) lists the objects once, then follows a watch from
the list's ``resourceVersion``; a watch that expires (410 Gone) or breaks starts over with a
fresh list. Reconciles read from the stores instead of the API server, so a full resync costs
no requests, and the Model's versions come from an index by ``spec.modelRef.name``: a Model
reconcile touches its own versions, not the namespace's.

Children are watched by label (``modelops.dev/trainingrun``, ``modelops.dev/model``), so the
cache holds what the operator owns, not the cluster's Jobs and Pods; ``managedFields``, the
last-applied annotation and pod specs are dropped to keep memory near the size of what is read.

Staleness, and how it is handled:

- **Read your own writes.** :class:`~modelops.k8s.client.Kube` hands every object a write
  returns to :meth:`Cache.observe`, so the next reconcile sees it even before the watch event
  arrives; an event older than what the store holds (by ``resourceVersion``) is ignored.
- **Decisions on stale reads** cannot overwrite anything: status and label writes carry the
  ``resourceVersion`` they were computed from, and a 409 redoes the reconcile.
- **Terminal decisions** that an absent object would trigger (a training Job gone while its run
  is active) are confirmed with a live read first (``Kube.get(..., live=True)``).

Informers run in threads and call ``on_event`` from there; the store is updated before the
callback, so a reconcile queued by an event sees that event's object.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from modelops.k8s.client import Obj, Resource, resource

log = logging.getLogger(__name__)

MODEL_REF: Final = "spec.modelRef.name"
"""The one field selector the cache indexes: a ModelVersion's (or DriftPolicy's) Model."""
WATCH_SECONDS: Final = 300
RETRY_SECONDS: Final = (1.0, 2.0, 5.0, 10.0, 30.0)

EventCallback = Callable[[str, Obj], None]


@dataclass(frozen=True)
class Source:
    """One watched kind: its API version and kind, and the label that must be present on
    the objects (None: every object of the kind)."""

    api_version: str
    kind: str
    label: str | None = None

    @property
    def resource(self) -> Resource:
        return resource(self.api_version, self.kind)


def trim(obj: Obj) -> Obj:
    """The object without what no reconcile reads (kept small: it stays in memory)."""
    meta = dict(obj.get("metadata", {}))
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        meta["annotations"] = {
            k: v
            for k, v in annotations.items()
            if k != "kubectl.kubernetes.io/last-applied-configuration"
        }
    out = {**obj, "metadata": meta}
    if obj.get("kind") == "Pod":
        out["spec"] = {"nodeName": obj.get("spec", {}).get("nodeName")}
    return out


def _rv(obj: Obj) -> int:
    """The resourceVersion as a number, for ordering a write's response against watch events
    of the same object (etcd revisions; an unparsable one orders first)."""
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


class Store:
    """Objects of one kind by (namespace, name), with an index by Model for the kinds that
    reference one. Thread-safe; objects are replaced, never modified in place, so a reader
    may keep what it got."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], Obj] = {}
        self._by_model: dict[tuple[str, str], set[str]] = {}

    def get(self, namespace: str, name: str) -> Obj | None:
        return self._objects.get((namespace, name))

    def list(
        self,
        namespace: str | None,
        labels: Mapping[str, str] | None = None,
        model: str | None = None,
    ) -> list[Obj]:
        with self._lock:
            if model is not None:
                if namespace is None:
                    raise ValueError("a Model is looked up within its namespace")
                names = self._by_model.get((namespace, model), set())
                candidates: Iterable[Obj] = [self._objects[(namespace, n)] for n in sorted(names)]
            else:
                candidates = [
                    o for (ns, _), o in sorted(self._objects.items()) if namespace in (None, ns)
                ]
        if not labels:
            return list(candidates)
        return [
            o
            for o in candidates
            if all((o["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())
        ]

    def put(self, obj: Obj, *, force: bool = False) -> bool:
        """Store ``obj`` unless the store already holds a newer version; whether it did."""
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        with self._lock:
            current = self._objects.get(key)
            if current is not None and not force and _rv(current) > _rv(obj):
                return False
            self._unindex(key, current)
            self._objects[key] = obj
            model = (obj.get("spec") or {}).get("modelRef", {}).get("name")
            if model:
                self._by_model.setdefault((key[0], model), set()).add(key[1])
            return True

    def delete(self, obj: Obj) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        with self._lock:
            self._unindex(key, self._objects.pop(key, None))

    def replace(self, namespace: str | None, objs: Iterable[Obj]) -> None:
        """Make the store hold exactly ``objs`` within ``namespace`` (None: everywhere)."""
        fresh = {(o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objs}
        with self._lock:
            for key in [k for k in self._objects if namespace in (None, k[0])]:
                if key not in fresh:
                    self._unindex(key, self._objects.pop(key))
        for obj in fresh.values():
            self.put(obj, force=True)

    def __len__(self) -> int:
        return len(self._objects)

    def _unindex(self, key: tuple[str, str], obj: Obj | None) -> None:
        if obj is None:
            return
        model = (obj.get("spec") or {}).get("modelRef", {}).get("name")
        names = self._by_model.get((key[0], model)) if model else None
        if names is not None:
            names.discard(key[1])
            if not names:
                del self._by_model[(key[0], model)]


class Informer:
    """List and watch one :class:`Source` in one namespace (None: all), keeping a
    :class:`Store` current and calling ``on_event(type, object)`` after each change."""

    def __init__(
        self,
        api: client.ApiClient,
        source: Source,
        namespace: str | None,
        store: Store,
        on_event: EventCallback,
    ) -> None:
        self.source = source
        self.namespace = namespace
        self.store = store
        self.synced = threading.Event()
        self._api = api
        self._on_event = on_event
        self._stop = threading.Event()
        self._response: Any = None
        where = namespace or "all namespaces"
        label = f" with label {source.label}" if source.label else ""
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{source.kind}-{where}", daemon=True
        )
        self._what = f"{source.kind}s in {where}{label}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):  # already closed
                response.shutdown()  # unblocks a read waiting on the watch
        self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version: str | None = self._list()
                failures = 0
                while version is not None and not self._stop.is_set():
                    version = self._watch(version)  # None: expired, list again
            except Exception as e:  # any failure: list again after a pause
                if self._stop.is_set():
                    return
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("Watching %s failed (%s); listing again in %.0fs", self._what, e, delay)
                self._stop.wait(delay)

    def _query(self) -> dict[str, str]:
        return {"labelSelector": self.source.label} if self.source.label else {}

    def _list(self) -> str:
        path = self.source.resource.path(self.namespace)
        data = self._call("GET", path, self._query(), timeout=60)
        items = [
            trim({**o, "apiVersion": self.source.api_version, "kind": self.source.kind})
            for o in data.get("items", [])
        ]
        before = {
            (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o
            for o in self.store.list(self.namespace)
        }
        self.store.replace(self.namespace, items)
        first = not self.synced.is_set()
        self.synced.set()
        for obj in items:
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if first or key not in before or _rv(before[key]) != _rv(obj):
                self._on_event("ADDED" if key not in before else "MODIFIED", obj)
        for key, obj in before.items():
            if self.store.get(*key) is None:
                self._on_event("DELETED", obj)
        return str(data.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, version: str) -> str | None:
        """Follow the watch until it ends; the version to resume from, or None to re-list."""
        query = {
            **self._query(),
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        try:
            response = self._open(self.source.resource.path(self.namespace), query)
        except _ExpiredError:
            return None
        self._response = response
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    return version
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return None
                    raise RuntimeError(obj.get("message", "watch error"))
                version = obj.get("metadata", {}).get("resourceVersion", version)
                if kind == "BOOKMARK":
                    continue
                obj = trim({**obj, "apiVersion": self.source.api_version, "kind": self.source.kind})
                if kind == "DELETED":
                    self.store.delete(obj)
                elif not self.store.put(obj):
                    continue  # older than what our own write already stored
                self._on_event(str(kind), obj)
        finally:
            self._response = None
            response.release_conn()
        return version

    def _open(self, path: str, query: Mapping[str, str]) -> Any:
        method, url, headers, body, _ = self._api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        # The server ends the watch after timeoutSeconds; the read timeout only catches a
        # connection that went silent.
        rest = self._api.call_api(
            method, url, header_params=headers, body=body, _request_timeout=(10, WATCH_SECONDS + 30)
        )
        if rest.status == 410:
            rest.response.release_conn()
            raise _ExpiredError()
        if rest.status >= 400:
            data = rest.read()
            raise ApiException(http_resp=rest, body=data.decode(errors="replace"))
        return rest.response

    def _call(self, method: str, path: str, query: Mapping[str, str], timeout: float) -> Obj:
        method_, url, headers, body, _ = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query.items()),
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        rest = self._api.call_api(
            method_, url, header_params=headers, body=body, _request_timeout=timeout
        )
        data = rest.read() or b"{}"
        if rest.status >= 400:
            raise ApiException(http_resp=rest, body=data.decode(errors="replace"))
        result: Obj = json.loads(data)
        return result


class _ExpiredError(Exception):
    """The watch's resourceVersion is too old: list again."""


class Cache:
    """The informers of every :class:`Source`, in the namespaces watched, and their stores.

    ``namespaces`` empty means all namespaces (one cluster-wide watch per source)."""

    def __init__(
        self,
        api: client.ApiClient,
        sources: Iterable[Source],
        namespaces: Iterable[str],
        on_event: EventCallback,
    ) -> None:
        self.sources = tuple(sources)
        self._stores = {s: Store() for s in self.sources}
        scopes: list[str | None] = list(namespaces) or [None]
        # A cluster-scoped kind (Quarantine) has one informer whatever the namespaces.
        self._informers = [
            Informer(api, s, ns, self._stores[s], on_event)
            for s in self.sources
            for ns in (scopes if s.resource.namespaced else [None])
        ]

    @classmethod
    def for_client(
        cls,
        api: client.ApiClient,
        sources: Iterable[Source],
        namespaces: Iterable[str],
        on_event: EventCallback,
    ) -> Cache:
        """A cache whose informers share ``api``'s server and credentials on a connection
        pool of their own (a watch holds its connection for minutes)."""
        sources, namespaces = tuple(sources), tuple(namespaces)
        configuration = copy.copy(api.configuration)
        configuration.connection_pool_maxsize = max(1, len(sources) * max(1, len(namespaces)))
        watch_api = client.ApiClient(configuration)
        watch_api.user_agent = api.user_agent
        return cls(watch_api, sources, namespaces, on_event)

    def start(self) -> None:
        for informer in self._informers:
            informer.start()

    def stop(self) -> None:
        for informer in self._informers:
            informer._stop.set()
        for informer in self._informers:
            informer.stop()

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Block until every informer has listed once; whether they all did in time."""
        return all(i.synced.wait(timeout) for i in self._informers)

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self._informers)

    def source_for(
        self, api_version: str, kind: str, labels: Mapping[str, str] | None = None
    ) -> Source | None:
        """Where reads of ``kind`` are served from: for a list with ``labels``, the source that
        holds every object the selector can match (its label is among them); for a read by
        name (``labels`` None), the kind's source — an object of that name outside it (without
        the operator's label) is not the operator's, and is treated as absent."""
        for s in self.sources:
            if (
                s.api_version == api_version
                and s.kind == kind
                and (labels is None or s.label is None or s.label in labels)
            ):
                return s
        return None

    def get(self, source: Source, namespace: str, name: str) -> Obj | None:
        return self._stores[source].get(namespace, name)

    def list(
        self,
        source: Source,
        namespace: str | None,
        labels: Mapping[str, str] | None = None,
        model: str | None = None,
    ) -> list[Obj]:
        return self._stores[source].list(namespace, labels, model)

    def observe(self, obj: Obj) -> None:
        """Take in an object a write returned (read-your-writes); ignored when the cache does
        not hold its kind, or already holds something newer."""
        labels = obj.get("metadata", {}).get("labels") or {}
        for s in self.sources:
            if (
                s.api_version == obj.get("apiVersion")
                and s.kind == obj.get("kind")
                and (s.label is None or s.label in labels)
            ):
                self._stores[s].put(trim(obj))

    def sizes(self) -> dict[str, int]:
        """Objects held per source (for metrics and tests)."""
        return {f"{s.kind}:{s.label or '*'}": len(self._stores[s]) for s in self.sources}
