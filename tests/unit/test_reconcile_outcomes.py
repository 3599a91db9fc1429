"""What the reconcile dispatcher makes of a reconciler's outcome: when the key runs again."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from modelops.handlers import reconcile as dispatch
from modelops.handlers.deps import Deps
from modelops.handlers.workqueue import Key
from modelops.k8s.client import ConflictError
from modelops.observability import OperatorMetrics
from modelops.settings import OperatorSettings

KIND = "TestKind"
KEY = Key(KIND, "ns", "a")


def _run(outcome: Any) -> float | None:
    def reconciler(deps: Deps, key: Key) -> Any:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    dispatch.RECONCILERS[KIND] = reconciler
    try:
        settings = OperatorSettings(resync_seconds=300)
        deps = Deps(
            settings=settings,
            kube=cast(Any, None),  # the reconciler above makes no request
            metrics=OperatorMetrics.create(),
            queue=cast(Any, None),
            notifier=cast(Any, None),
        )
        return asyncio.run(dispatch.reconcile(deps, KEY))
    finally:
        del dispatch.RECONCILERS[KIND]


def test_a_gone_object_is_not_requeued() -> None:
    """Regression (issue 11.2): 'gone' used to become the resync delay, so every deleted
    object kept a timer and a GET per resync until the operator restarted."""
    assert _run(dispatch.GONE) is None


def test_nothing_to_wait_for_means_the_periodic_resync() -> None:
    assert _run(None) == 300


def test_an_earlier_requeue_wins_over_the_resync() -> None:
    assert _run(5.0) == 5.0
    assert _run(10_000.0) == 300


def test_a_conflict_is_retried_soon_without_error_backoff() -> None:
    assert _run(ConflictError("Model ns/a changed since it was read")) == dispatch.CONFLICT_RETRY


def test_other_errors_propagate_to_the_queue_backoff() -> None:
    with pytest.raises(RuntimeError):
        _run(RuntimeError("boom"))
