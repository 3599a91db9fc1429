"""The operator's shutdown handler (handlers/startup.py), with real collaborators and no
cluster: nothing it does at shutdown talks to the API server when election is off."""

from __future__ import annotations

import asyncio
import logging
import socket

import kopf
import pytest
from kubernetes import client

from modelops.core.plan import Notification
from modelops.handlers.deps import Deps
from modelops.handlers.election import InFlight
from modelops.handlers.startup import stop
from modelops.handlers.workqueue import Key, WorkQueue
from modelops.k8s.client import Kube
from modelops.notify import Notifier
from modelops.observability import OperatorMetrics
from modelops.settings import OperatorSettings

EVENT = Notification("dev.modelops.model.promoted", "ml/iris", {"model": "iris", "to": "2"})


async def nothing(key: Key) -> None:
    return None


@pytest.mark.slow
def test_shutdown_leaves_the_event_loop_free_while_notifications_drain(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A sink that never answers holds the notifier for seconds at shutdown; the event loop
    must go on meanwhile (kopf stops its other tasks on it), and the log says what is left."""
    metrics = OperatorMetrics.create()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"

        async def main() -> bool:
            notifier = Notifier(metrics.notifications, attempts=1, timeout=30)
            notifier.send(EVENT, [url], {})
            memo = kopf.Memo()
            memo.deps = Deps(
                settings=OperatorSettings(leader_election=False),
                kube=Kube(client.ApiClient()),
                metrics=metrics,
                queue=WorkQueue(nothing),
                notifier=notifier,
            )
            memo.in_flight = InFlight()
            stopping = asyncio.create_task(stop(memo))
            # close() waits up to 5 s for the stuck delivery: were it called on the loop,
            # this wait would only return after it, with shutdown long done.
            await asyncio.wait({stopping}, timeout=0.2)
            free = not stopping.done()
            await stopping
            return free

        with caplog.at_level(logging.INFO, logger="modelops.handlers.startup"):
            assert asyncio.run(main()), "shutdown blocked the event loop"
    assert "Stopped with 1 CloudEvent(s) undelivered; the next leader sends them" in caplog.messages
