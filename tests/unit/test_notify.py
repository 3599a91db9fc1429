"""CloudEvents delivery: retries with backoff, failures counted and reported, never silent."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from harness.cluster import free_port
from modelops.core.plan import Notification
from modelops.notify import Notifier
from modelops.observability import OperatorMetrics

EVENT = Notification("dev.modelops.model.promoted", "ml/iris", {"model": "iris", "to": "2"})


class FlakySink:
    """Answers 503 to the first ``failures`` requests, then 202; keeps what it accepted."""

    def __init__(self, failures: int) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.attempts = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sink.attempts += 1
                ok = sink.attempts > failures
                if ok:
                    sink.accepted.append({"body": body, "headers": dict(self.headers)})
                self.send_response(202 if ok else 503)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def metrics() -> OperatorMetrics:
    return OperatorMetrics.create(CollectorRegistry())


@pytest.fixture
def sink() -> Iterator[FlakySink]:
    s = FlakySink(failures=2)
    yield s
    s.server.shutdown()
    s.server.server_close()


def counted(metrics: OperatorMetrics, result: str) -> float:
    value = metrics.registry.get_sample_value("modelops_notifications_total", {"result": result})
    return value or 0.0


def wait(pred: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_retries_until_delivered(metrics: OperatorMetrics, sink: FlakySink) -> None:
    notifier = Notifier(metrics.notifications, attempts=5, first_backoff=0.01)
    notifier.send(EVENT, [sink.url], {sink.url: {"Authorization": "Bearer x"}})
    wait(lambda: counted(metrics, "delivered") == 1)
    notifier.close()
    assert sink.attempts == 3
    (accepted,) = sink.accepted
    event = accepted["body"]
    assert event["specversion"] == "1.0"
    assert event["type"] == "dev.modelops.model.promoted"
    assert event["subject"] == "ml/iris"
    assert event["data"] == {"model": "iris", "to": "2"}
    assert accepted["headers"]["Content-Type"] == "application/cloudevents+json"
    assert accepted["headers"]["Authorization"] == "Bearer x"
    assert counted(metrics, "failed") == 0


def test_exhausted_retries_are_counted_and_reported(metrics: OperatorMetrics) -> None:
    reported: list[tuple[Notification, str]] = []
    dead = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    notifier = Notifier(
        metrics.notifications,
        attempts=2,
        first_backoff=0.01,
        timeout=1,
        on_failure=lambda n, error: reported.append((n, error)),
    )
    notifier.send(EVENT, [dead], {})
    wait(lambda: counted(metrics, "failed") == 1)
    notifier.close()
    assert counted(metrics, "delivered") == 0
    assert [n for n, _ in reported] == [EVENT]
    assert dead in reported[0][1]


def test_send_never_blocks_and_drops_are_counted(metrics: OperatorMetrics) -> None:
    """A sink that accepts connections and never answers holds the delivery thread; sending
    meanwhile must return at once (a blocked send would hang here until the test timeout)
    and count what the full queue cannot take."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        notifier = Notifier(metrics.notifications, attempts=1, capacity=1, timeout=1)
        notifier.send(EVENT, [url], {})
        wait(lambda: notifier._queue.qsize() == 0)  # the thread took it and is waiting
        for _ in range(50):
            notifier.send(EVENT, [url], {})
        assert counted(metrics, "dropped") == 49  # one fits in the queue
        notifier.close(timeout=10)


def test_close_says_how_many_deliveries_are_left(metrics: OperatorMetrics) -> None:
    """The one under way to a sink that never answers and the two queued behind it are
    lost when the operator stops: close() returns their number for the shutdown log."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        notifier = Notifier(metrics.notifications, attempts=1, timeout=5)
        notifier.send(EVENT, [url], {})
        wait(lambda: notifier._queue.qsize() == 0)
        notifier.send(EVENT, [url, url], {})
        assert notifier.close(timeout=0.2) == 3


def test_close_after_everything_was_delivered_leaves_nothing(
    metrics: OperatorMetrics, sink: FlakySink
) -> None:
    notifier = Notifier(metrics.notifications, attempts=5, first_backoff=0.01)
    notifier.send(EVENT, [sink.url], {})
    wait(lambda: counted(metrics, "delivered") == 1)
    assert notifier.close() == 0
