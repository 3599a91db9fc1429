"""The serving benchmark's HTTP/1.1 load generator, on plain asyncio: an open-loop client
(:class:`OpenLoopClient`), the rate search built on it (:func:`find_max_rate`), a closed-loop
capacity run (:func:`saturate`) and a one-off request helper for probes (:func:`fetch`).

Open loop means the send times are fixed in advance (``rate`` requests per second, evenly
spaced) and never wait for answers: a slow server gets more requests in flight, not fewer,
so its stalls show up in the latencies instead of silently lowering the load (the
"coordinated omission" of closed-loop generators). Each request is measured twice, to the end
of its response:

- **from the moment the generator issued it** (the headline): the time the request spent
  waiting for a free connection counts, so a server that falls behind cannot hide its queue;
  what does not count is the generator's own lateness against its schedule;
- **from its scheduled time**: the same plus that lateness. asyncio sleeps with millisecond
  granularity, so a request is typically issued 0 to 2 ms after its scheduled time, and when
  the machine stalls the generator's process, later still. That lateness is reported per
  step (``send_lag_p99_ms``), so a generator that could not keep to its schedule is visible.

The generator runs on a CPU of its own, so nothing the server does can delay it; its
lateness comes from the timer and from the rest of the machine, which is why it is not charged
to the server.

The client speaks just enough HTTP/1.1 for the two servers measured: keep-alive connections
(at most ``max_connections``, opened on demand), one request in flight per connection, the
same pre-encoded request bytes every time, responses framed by ``Content-Length`` (a
chunked response is counted as an error). No ``Accept-Encoding`` header is sent, so neither
server compresses. Every loop is bounded: a step sends ``round(rate * duration)`` requests
and then waits at most ``drain_timeout`` seconds for the answers, after which unanswered
requests count as errors and their connections are dropped. The generator runs outside
both servers' processes, and sends only to the address it is given (127.0.0.1 here).
"""

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile (0 < q <= 100) of ascending values.

    The nearest-rank definition always returns an observed value: the p99 of 100 samples is
    the 99th smallest, of 50 samples the 50th (the maximum). Returns NaN for no values.
    """
    if not 0 < q <= 100:
        raise ValueError(f"Percentile {q} is outside (0, 100]")
    if not sorted_values:
        return math.nan
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[rank - 1]


def schedule(rate: float, duration: float) -> list[float]:
    """Return the send offsets in seconds of a step: ``round(rate * duration)`` evenly spaced
    requests, the first at 0."""
    if rate <= 0 or duration <= 0:
        raise ValueError(f"Rate {rate} and duration {duration} must be positive")
    return [i / rate for i in range(round(rate * duration))]


def build_post(host: str, port: int, path: str, body: bytes) -> bytes:
    """Return the bytes of a keep-alive JSON ``POST`` request (no compression offered)."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


class ResponseError(Exception):
    """A response the client cannot frame (no ``Content-Length``, or a malformed head)."""


def parse_head(head: bytes) -> tuple[int, int]:
    """Return ``(status, content_length)`` from a response head (without the final CRLFCRLF).

    Raises :class:`ResponseError` for a malformed status line or a response framed any other
    way than by ``Content-Length``.
    """
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ResponseError(f"Malformed status line {lines[0]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(parts[1]), int(value.strip())
    raise ResponseError("Response has no Content-Length (chunked responses are not supported)")


@dataclass(frozen=True)
class StepResult:
    """What one step at a fixed offered rate measured. Latencies are in milliseconds over the
    successful (HTTP 200) requests; ``errors`` counts every other outcome (other statuses,
    connection failures, answers still missing after the drain timeout)."""

    offered_rps: float
    duration_s: float
    sent: int
    ok: int
    errors: int
    #: Successful answers per second, over the step's duration or, if answers were still
    #: arriving after it, until the last one arrived.
    achieved_rps: float
    #: Latency from the moment each request was issued (see the module docstring).
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    #: Latency from each request's scheduled time: the above plus the generator's lateness.
    p50_from_schedule_ms: float
    p99_from_schedule_ms: float
    #: How late the generator issued requests relative to their schedule, 99th percentile.
    send_lag_p99_ms: float
    connections: int

    def passed(self, p99_limit_ms: float, min_achieved_share: float) -> bool:
        """True if the step met the SLO: no errors, p99 within the limit, and at least
        ``min_achieved_share`` of the offered rate answered successfully."""
        return (
            self.errors == 0
            and self.p99_ms <= p99_limit_ms
            and self.achieved_rps >= min_achieved_share * self.offered_rps
        )

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (NaN, for a step without successes, becomes None)."""
        return {
            key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in asdict(self).items()
        }


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, client: "OpenLoopClient") -> None:
        self._client = client
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._expected: int | None = None  # total bytes of head + body, once the head is in
        self._status = 0
        #: (scheduled, issued) times of the request in flight, if any.
        self.in_flight: tuple[float, float] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def send(self, timing: tuple[float, float], request: bytes) -> None:
        """Write one request with its (scheduled, issued) times; the client hears about its
        answer through ``_on_response``."""
        assert self._transport is not None
        assert self.in_flight is None
        self.in_flight = timing
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._expected is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                self._status, length = parse_head(bytes(self._buffer[:end]))
            except ResponseError:
                self.abort()
                return
            self._expected = end + 4 + length
        if len(self._buffer) < self._expected:
            return
        if len(self._buffer) > self._expected or self.in_flight is None:
            # Bytes nobody asked for: the connection is out of step, drop it.
            self.abort()
            return
        timing, self.in_flight = self.in_flight, None
        self._buffer.clear()
        self._expected = None
        self._client._on_response(self, timing, self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._on_connection_lost(self)

    def abort(self) -> None:
        """Close the connection at once; an unanswered request counts as an error."""
        if self._transport is not None:
            self._transport.abort()


class OpenLoopClient:
    """Sends one fixed request to one server at scheduled times; see the module docstring.

    The connections stay open from one step to the next (as a real client's would), so call
    :meth:`close` when done.
    """

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        body: bytes,
        max_connections: int = 64,
        drain_timeout: float = 3.0,
    ) -> None:
        self._host = host
        self._port = port
        self._request = build_post(host, port, path, body)
        self._max_connections = max_connections
        self._drain_timeout = drain_timeout
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._connecting: set[asyncio.Task[None]] = set()
        #: (scheduled, issued) times of requests waiting for a connection.
        self._backlog: deque[tuple[float, float]] = deque()
        self._reset_step()

    def _reset_step(self) -> None:
        self._from_issue: list[float] = []
        self._from_schedule: list[float] = []
        self._last_done = 0.0
        self._outstanding = 0
        self._idle_event = asyncio.Event()

    async def run_step(self, rate: float, duration: float) -> StepResult:
        """Offer ``rate`` requests per second for ``duration`` seconds and measure them."""
        self._reset_step()
        offsets = schedule(rate, duration)
        lags: list[float] = []
        start = time.perf_counter() + 0.001
        index = 0
        while index < len(offsets):
            now = time.perf_counter()
            due = start + offsets[index]
            if due > now:
                await asyncio.sleep(due - now)
                continue
            # Send everything that is due; after a late wake-up that is several requests.
            while index < len(offsets) and start + offsets[index] <= now:
                scheduled = start + offsets[index]
                lags.append(now - scheduled)
                self._submit((scheduled, now))
                index += 1
        await self._drain()
        return self._summarise(rate, duration, start, len(offsets), lags)

    async def close(self) -> None:
        """Close every connection, forgetting the requests still in flight on them."""
        for task in self._connecting:
            task.cancel()
        for connection in list(self._open):
            connection.in_flight = None
            connection.abort()
        self._open.clear()
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks

    def _submit(self, timing: tuple[float, float]) -> None:
        self._outstanding += 1
        if self._idle:
            self._idle.pop().send(timing, self._request)
            return
        self._backlog.append(timing)
        if len(self._open) + len(self._connecting) < self._max_connections:
            task = asyncio.get_running_loop().create_task(self._connect())
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self._host, self._port
            )
        except OSError:
            # A server that refuses connections fails the request that asked for one.
            if self._backlog:
                self._backlog.popleft()
                self._finish()
            return
        self._open.add(connection)
        self._dispatch(connection)

    def _dispatch(self, connection: _Connection) -> None:
        if self._backlog:
            connection.send(self._backlog.popleft(), self._request)
        else:
            self._idle.append(connection)

    def _on_response(
        self, connection: _Connection, timing: tuple[float, float], status: int
    ) -> None:
        done = time.perf_counter()
        scheduled, issued = timing
        if status == 200:
            self._from_issue.append(done - issued)
            self._from_schedule.append(done - scheduled)
            self._last_done = done
        self._finish()
        self._dispatch(connection)

    def _on_connection_lost(self, connection: _Connection) -> None:
        self._open.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)
        if connection.in_flight is not None:
            connection.in_flight = None
            self._finish()

    def _finish(self) -> None:
        """Count one request as answered (successfully or not) or given up on."""
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle_event.set()

    async def _drain(self) -> None:
        if self._outstanding == 0:
            return
        # The event may still be set from a moment during the step when every request had
        # been answered; only the moment the last one is answered counts now.
        self._idle_event.clear()
        try:
            await asyncio.wait_for(self._idle_event.wait(), self._drain_timeout)
        except TimeoutError:
            # Give up on the stragglers: drop the queued requests and every connection (an
            # answer that arrives later must not be counted in the next step).
            self._backlog.clear()
            await self.close()

    def _summarise(
        self, rate: float, duration: float, start: float, sent: int, lags: list[float]
    ) -> StepResult:
        from_issue = sorted(self._from_issue)
        from_schedule = sorted(self._from_schedule)
        lags.sort()
        elapsed = max(duration, self._last_done - start)
        ms = 1000.0
        return StepResult(
            offered_rps=rate,
            duration_s=duration,
            sent=sent,
            ok=len(from_issue),
            errors=sent - len(from_issue),
            achieved_rps=len(from_issue) / elapsed,
            p50_ms=percentile(from_issue, 50) * ms,
            p90_ms=percentile(from_issue, 90) * ms,
            p99_ms=percentile(from_issue, 99) * ms,
            max_ms=from_issue[-1] * ms if from_issue else math.nan,
            p50_from_schedule_ms=percentile(from_schedule, 50) * ms,
            p99_from_schedule_ms=percentile(from_schedule, 99) * ms,
            send_lag_p99_ms=percentile(lags, 99) * ms,
            connections=len(self._open),
        )


@dataclass(frozen=True)
class SearchResult:
    """The highest offered rate that passed, and every step tried on the way (in order)."""

    max_rate: float
    steps: list[StepResult]


async def find_max_rate(
    measure: Callable[[float], Awaitable[StepResult]],
    passed: Callable[[StepResult], bool],
    start: float,
    ceiling: float,
    refinements: int,
    attempts: int = 1,
) -> SearchResult:
    """Find the highest rate that passes: double from ``start`` until a rate fails (or the
    next doubling would exceed ``ceiling``), then bisect ``refinements`` times between the last
    pass and the first failure, rounding rates to whole requests per second.

    A rate passes if one of up to ``attempts`` steps at it passes, so that one burst of other
    work on a shared machine does not end the search early; a rate the server really cannot
    sustain fails every attempt. ``max_rate`` is 0 if even ``start`` failed. At most
    ``(log2(ceiling / start) + 1 + refinements) * attempts`` steps are measured.
    """
    steps: list[StepResult] = []

    async def sustains(rate: float) -> bool:
        for _ in range(attempts):
            steps.append(await measure(rate))
            if passed(steps[-1]):
                return True
        return False

    best = 0.0
    failed: float | None = None
    rate = start
    while rate <= ceiling:
        if not await sustains(rate):
            failed = rate
            break
        best = rate
        rate *= 2
    if failed is None or best == 0.0:
        return SearchResult(best, steps)
    for _ in range(refinements):
        rate = float(round((best + failed) / 2))
        if rate in (best, failed):
            break
        if await sustains(rate):
            best = rate
        else:
            failed = rate
    return SearchResult(best, steps)


@dataclass(frozen=True)
class SaturationResult:
    """What a closed-loop run measured: each connection sends its next request as soon as
    the previous answer is in, so ``achieved_rps`` is the server's capacity with that many
    clients. Its latencies (ms, successful requests) are queueing under overload, measured
    from the actual send: not comparable with the open-loop steps."""

    connections: int
    duration_s: float
    ok: int
    errors: int
    achieved_rps: float
    p50_ms: float
    p99_ms: float

    def to_json(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (NaN, for a run without successes, becomes None)."""
        return {
            key: None if isinstance(value, float) and math.isnan(value) else value
            for key, value in asdict(self).items()
        }


async def saturate(
    host: str, port: int, path: str, body: bytes, connections: int, duration: float
) -> SaturationResult:
    """Run ``connections`` closed-loop clients for ``duration`` seconds (see
    :class:`SaturationResult`). A connection that fails stops its client and counts as one
    error; the run is cut off ``duration + 10`` seconds after it started in any case."""
    request = build_post(host, port, path, body)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    deadline = start + duration

    async def client() -> None:
        nonlocal errors
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            errors += 1
            return
        try:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                writer.write(request)
                status, length = parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
                await reader.readexactly(length)
                if status == 200:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1
        except (OSError, asyncio.IncompleteReadError, ResponseError):
            errors += 1
        finally:
            writer.close()

    async with asyncio.timeout(duration + 10):
        await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return SaturationResult(
        connections=connections,
        duration_s=duration,
        ok=len(latencies),
        errors=errors,
        achieved_rps=len(latencies) / elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
    )


async def fetch(
    host: str, port: int, method: str, path: str, body: bytes = b"", time_limit: float = 5.0
) -> tuple[int, bytes]:
    """One request on a fresh connection: return ``(status, body)``.

    For probes and checks outside the measured steps. Raises ``OSError`` if the connection
    is refused or reset, ``TimeoutError`` after ``time_limit`` seconds, :class:`ResponseError`
    for a response without ``Content-Length``.
    """
    async with asyncio.timeout(time_limit):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            status, length = parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
            return status, await reader.readexactly(length)
        finally:
            writer.close()
