"""Watch events → work-queue keys. Events on children reconcile the object that owns them.

The events come from the cache's informers (``modelops.k8s.cache``), which watch the five kinds
and, by label, the children the operator creates; one watch per kind feeds both the cache the
reconciles read and the queue.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Final

from modelops.api import API_VERSION
from modelops.core.labels import MODEL, TRAININGRUN
from modelops.core.plan import Obj
from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key
from modelops.k8s.cache import Source

SOURCES: Final = (
    Source(API_VERSION, "TrainingRun"),
    Source(API_VERSION, "Model"),
    Source(API_VERSION, "ModelVersion"),
    Source(API_VERSION, "DriftPolicy"),
    Source(API_VERSION, "Quarantine"),
    Source("batch/v1", "Job", TRAININGRUN),
    Source("apps/v1", "Deployment", MODEL),
    Source("v1", "Pod", MODEL),
    Source("v1", "Service", MODEL),
)
"""Everything reconciles read: the five kinds (Quarantine cluster-scoped), and the children the
operator labels (so the cache holds what the operator owns, not every Job and Pod of the
cluster). Every pod the operator creates, training or serving, carries
``modelops.dev/model``."""

_OWN_KINDS: Final = frozenset({"TrainingRun", "Model", "DriftPolicy", "Quarantine"})
_GENERATIONS: Final = "generations"


def router(deps: Deps, patterns: Sequence[str] = ()) -> Callable[[str, Obj], None]:
    """The function that turns one watch event into work-queue keys (call it on the event
    loop). ``patterns``: namespace globs an object's namespace must match, if any."""

    def watched(namespace: str) -> bool:
        return not patterns or any(fnmatch.fnmatchcase(namespace, p) for p in patterns)

    def route(event: str, obj: Obj) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        kind = obj["kind"]
        if kind == "Quarantine":
            # Declared, changed or lifted: every Model decides again which of its versions
            # may serve (from the cache: no request), and the Quarantine's status follows —
            # written only by an operator that watches every namespace (one that watches
            # some sees only some of the versions it reaches).
            if deps.settings.all_namespaces:
                _own(deps, Key(kind, "", meta["name"]), event, meta.get("generation"))
            if event not in ("ADDED", "DELETED"):
                return  # the spec is immutable: a change is the operator's own status write
            for model in deps.kube.list(API_VERSION, "Model", None):
                model_ns = model["metadata"].get("namespace", "")
                if watched(model_ns):
                    deps.queue.add(Key("Model", model_ns, model["metadata"]["name"]))
            return
        if not watched(namespace):
            return
        if kind in _OWN_KINDS:
            _own(deps, Key(kind, namespace, meta["name"]), event, meta.get("generation"))
            return
        labels = meta.get("labels") or {}
        if kind == "ModelVersion":
            # A version appeared, changed (labels: approval) or went: its Model decides again.
            model = (obj.get("spec") or {}).get("modelRef", {}).get("name")
            if model:
                deps.queue.add(Key("Model", namespace, model))
        elif TRAININGRUN in labels and kind in ("Job", "Pod"):
            # A training Job or its pod moved: its TrainingRun's status follows.
            deps.queue.add(Key("TrainingRun", namespace, labels[TRAININGRUN]))
        elif MODEL in labels:
            # A serving Deployment, pod or Service changed: the Model's rollout follows.
            deps.queue.add(Key("Model", namespace, labels[MODEL]))

    return route


def _own(deps: Deps, key: Key, event: str, generation: int | None) -> None:
    """Queue the object's key. A new ``metadata.generation`` (a spec edit, perhaps the fix
    for what made its reconcile fail) is urgent and skips an error backoff; status and
    metadata changes, the operator's own writes among them, are not."""
    seen = deps.state.setdefault(_GENERATIONS, {})
    assert isinstance(seen, dict)
    if event == "DELETED":
        seen.pop(key, None)
        deps.queue.forget(key)
        deps.queue.add(key)
        return
    urgent = seen.get(key) != generation
    seen[key] = generation
    deps.queue.add(key, urgent=urgent)
