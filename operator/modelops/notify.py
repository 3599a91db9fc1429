"""CloudEvents delivery to a Model's notification sinks, off the reconcile path.

``Notifier.send`` only enqueues: a slow or dead sink never delays a reconcile. A background
thread POSTs each event (CloudEvents 1.0, structured JSON mode) to every sink, retrying with
exponential backoff. Every outcome is counted in ``modelops_notifications_total{result}``; an
event that exhausts its retries is logged as an error and reported through ``on_failure`` (the
operator records a Warning Event on the Model), so it is never lost silently. ``on_settled``
says when every sink has an outcome: until then the intent stays in the Model's status
(``core.announce``), so an operator restart sends it again under the same CloudEvent id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from prometheus_client import Counter

from modelops.core.plan import Notification

log = logging.getLogger(__name__)
SOURCE = "modelops.dev/operator"


class _Settle:
    """Calls ``callback`` once the last of ``remaining`` deliveries has an outcome."""

    def __init__(self, remaining: int, callback: Callable[[], None] | None) -> None:
        self._remaining = remaining
        self._callback = callback
        self._lock = threading.Lock()

    def done(self) -> None:
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last and self._callback is not None:
            self._callback()


@dataclass(frozen=True)
class _Delivery:
    event: dict[str, object]
    url: str
    headers: Mapping[str, str]
    settle: _Settle


def cloudevent(notification: Notification, now: datetime) -> dict[str, object]:
    """The structured-mode CloudEvent for ``notification``."""
    return {
        "specversion": "1.0",
        "id": notification.id or str(uuid.uuid4()),
        "source": f"{SOURCE}/{notification.subject}",
        "type": notification.type,
        "subject": notification.subject,
        "time": now.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": notification.data,
    }


class Notifier:
    """Delivers notifications in a background thread; see the module docstring."""

    def __init__(
        self,
        counter: Counter,
        *,
        on_failure: Callable[[Notification, str], None] | None = None,
        attempts: int = 5,
        first_backoff: float = 1.0,
        timeout: float = 5.0,
        capacity: int = 1000,
    ) -> None:
        self._counter = counter
        self._on_failure = on_failure
        self._attempts = attempts
        self._first_backoff = first_backoff
        self._timeout = timeout
        self._queue: queue.Queue[tuple[_Delivery, Notification] | None] = queue.Queue(capacity)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelops-notifier", daemon=True)
        self._thread.start()

    def send(
        self,
        notification: Notification,
        sinks: Sequence[str],
        headers: Mapping[str, Mapping[str, str]],
        *,
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        """Queue ``notification`` for every sink; never blocks. ``on_settled`` is called (from
        the delivery thread) once every sink has been delivered to or given up on; at once
        when there is no sink. A notification dropped for a full queue never settles."""
        event = cloudevent(notification, datetime.now(UTC))
        settle = _Settle(len(sinks), on_settled)
        if not sinks and on_settled is not None:
            on_settled()
        for url in sinks:
            try:
                self._queue.put_nowait(
                    (_Delivery(event, url, headers.get(url, {}), settle), notification)
                )
            except queue.Full:
                self._counter.labels("dropped").inc()
                log.error(
                    "Dropped %s event for %s: the notification queue is full",
                    notification.type,
                    notification.subject,
                )

    def close(self, timeout: float = 5.0) -> int:
        """Stop after the deliveries under way (blocks up to twice ``timeout``); return how
        many deliveries are left undelivered (lost: the queue lives in memory only)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):  # a full queue: the thread sees the stop flag
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        # The stop marker is no delivery; one still being attempted is.
        queued = sum(1 for item in list(self._queue.queue) if item is not None)
        return queued + int(self._thread.is_alive())

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            delivery, notification = item
            error = self._deliver(delivery)
            if error is None:
                self._counter.labels("delivered").inc()
                delivery.settle.done()
                continue
            if self._stop.is_set():
                continue  # not settled: the intent stays recorded for the next operator
            self._counter.labels("failed").inc()
            log.error(
                "Could not deliver %s event for %s to %s after %d attempts: %s",
                notification.type,
                notification.subject,
                delivery.url,
                self._attempts,
                error,
            )
            if self._on_failure is not None:
                self._on_failure(notification, f"{delivery.url}: {error}")
            delivery.settle.done()

    def _deliver(self, delivery: _Delivery) -> str | None:
        body = json.dumps(delivery.event).encode()
        error = "not attempted"
        for attempt in range(self._attempts):
            if attempt and self._stop.wait(self._first_backoff * 2 ** (attempt - 1)):
                return f"operator stopping ({error})"
            request = urllib.request.Request(
                delivery.url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/cloudevents+json", **delivery.headers},
            )
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:
                    if 200 <= response.status < 300:
                        return None
                    error = f"HTTP {response.status}"
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code}"
            except (urllib.error.URLError, OSError) as e:
                error = str(getattr(e, "reason", e))
        return error
