"""Tests of the load generator's logic: percentiles, schedules, HTTP framing, the rate search,
and request accounting against a tiny in-process server on 127.0.0.1.

Nothing here asserts on timing: the machine may be busy, and latency is what the benchmark
measures, not what its tests check. Run with
``.venv/bin/python -m pytest benchmarks/serving/test_loadgen.py``.
"""

import asyncio
import dataclasses
import math

import loadgen
import pytest


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert loadgen.percentile(values, 50) == 50.0
    assert loadgen.percentile(values, 99) == 99.0
    assert loadgen.percentile(values, 100) == 100.0
    assert loadgen.percentile([7.0], 99) == 7.0
    # Fewer than 100 samples: the p99 is the maximum.
    assert loadgen.percentile([1.0, 2.0, 3.0], 99) == 3.0


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(loadgen.percentile([], 50))


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_refuses_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        loadgen.percentile([1.0], q)


def test_schedule_spaces_requests_evenly() -> None:
    assert loadgen.schedule(100, 0.05) == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])
    assert len(loadgen.schedule(3, 1.5)) == 4  # round(4.5) == 4: banker's rounding


@pytest.mark.parametrize(("rate", "duration"), [(0, 1), (10, 0), (-5, 1)])
def test_schedule_refuses_non_positive(rate: float, duration: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        loadgen.schedule(rate, duration)


def test_build_post_frames_the_body() -> None:
    request = loadgen.build_post("127.0.0.1", 8080, "/v2/models/iris/infer", b'{"a":1}')
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v2/models/iris/infer HTTP/1.1\r\n")
    assert b"Content-Length: 7" in head
    assert b"Accept-Encoding" not in head
    assert body == b'{"a":1}'


def test_parse_head_reads_status_and_length() -> None:
    head = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: x\r\nCONTENT-LENGTH:  12"
    assert loadgen.parse_head(head) == (503, 12)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
        b"SPDY/3 200 OK\r\nContent-Length: 1",
        b"HTTP/1.1 OK\r\nContent-Length: 1",
    ],
)
def test_parse_head_refuses_what_it_cannot_frame(head: bytes) -> None:
    with pytest.raises(loadgen.ResponseError):
        loadgen.parse_head(head)


def _step(offered: float, achieved: float, p99: float, errors: int = 0) -> loadgen.StepResult:
    return loadgen.StepResult(
        offered_rps=offered,
        duration_s=1.0,
        sent=int(offered),
        ok=int(offered) - errors,
        errors=errors,
        achieved_rps=achieved,
        p50_ms=p99 / 2,
        p90_ms=p99,
        p99_ms=p99,
        max_ms=p99,
        p50_from_schedule_ms=p99 / 2,
        p99_from_schedule_ms=p99,
        send_lag_p99_ms=0.0,
        connections=1,
    )


def test_step_passes_only_within_the_slo() -> None:
    assert _step(100, 96, 10.0).passed(10.0, 0.95)
    assert not _step(100, 96, 10.1).passed(10.0, 0.95)
    assert not _step(100, 94, 5.0).passed(10.0, 0.95)
    assert not _step(100, 100, 5.0, errors=1).passed(10.0, 0.95)


def test_step_json_has_no_nan() -> None:
    empty = dataclasses.replace(_step(10, 0, 1.0, errors=10), p50_ms=math.nan, p99_ms=math.nan)
    assert empty.to_json()["p99_ms"] is None
    assert empty.to_json()["p50_ms"] is None


def _search(
    capacity: float,
    start: float,
    ceiling: float,
    refinements: int,
    attempts: int = 1,
    flaky: tuple[float, ...] = (),
) -> tuple[float, list[float]]:
    """Run the search against a fake server that passes every rate up to ``capacity``, except
    that the first step at each rate in ``flaky`` fails."""
    seen: set[float] = set()

    async def measure(rate: float) -> loadgen.StepResult:
        noisy = rate in flaky and rate not in seen
        seen.add(rate)
        return _step(rate, rate, 1.0 if rate <= capacity and not noisy else 50.0)

    result = asyncio.run(
        loadgen.find_max_rate(
            measure, lambda s: s.passed(10.0, 0.95), start, ceiling, refinements, attempts
        )
    )
    return result.max_rate, [step.offered_rps for step in result.steps]


def test_search_doubles_then_bisects() -> None:
    best, tried = _search(capacity=1000, start=50, ceiling=12800, refinements=3)
    assert tried == [50, 100, 200, 400, 800, 1600, 1200, 1000, 1100]
    assert best == 1000


def test_search_reports_zero_when_the_start_fails() -> None:
    assert _search(capacity=10, start=50, ceiling=12800, refinements=3) == (0.0, [50])


def test_search_stops_at_the_ceiling() -> None:
    best, tried = _search(capacity=1e9, start=50, ceiling=400, refinements=3)
    assert (best, tried) == (400, [50, 100, 200, 400])


def test_search_retries_a_failed_rate() -> None:
    best, tried = _search(
        capacity=300, start=50, ceiling=800, refinements=1, attempts=2, flaky=(100,)
    )
    assert tried == [50, 100, 100, 200, 400, 400, 300]
    assert best == 300


def test_search_without_retries_stops_at_the_first_noisy_step() -> None:
    best, tried = _search(capacity=300, start=50, ceiling=800, refinements=1, flaky=(100,))
    assert (best, tried) == (75, [50, 100, 75])


def test_search_stops_bisecting_at_whole_rates() -> None:
    best, tried = _search(capacity=2, start=1, ceiling=100, refinements=5)
    assert (best, tried) == (2, [1, 2, 4, 3])


class _TinyServer:
    """An HTTP/1.1 keep-alive server on 127.0.0.1 that answers every request with
    ``status`` and ``{}`` and counts the requests it read."""

    def __init__(self) -> None:
        self.status = 200
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                self.requests += 1
                writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 2\r\n\r\n{{}}".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _load(statuses: list[int]) -> tuple[list[loadgen.StepResult], int]:
    """Run one 20-request step per status against a :class:`_TinyServer`; return the steps
    and how many requests the server read."""
    tiny = _TinyServer()
    server = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = loadgen.OpenLoopClient("127.0.0.1", port, "/infer", b"{}", max_connections=4)
    steps = []
    try:
        for status in statuses:
            tiny.status = status
            steps.append(await client.run_step(rate=200, duration=0.1))
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
    return steps, tiny.requests


def test_client_counts_every_request_once() -> None:
    steps, served = asyncio.run(_load([200, 200, 500, 200]))
    assert [step.sent for step in steps] == [20, 20, 20, 20]
    assert [step.ok for step in steps] == [20, 20, 0, 20]
    assert [step.errors for step in steps] == [0, 0, 20, 0]
    assert served == 80
    assert 1 <= steps[-1].connections <= 4


def test_client_counts_refused_connections_as_errors() -> None:
    async def refused() -> loadgen.StepResult:
        # A port that was free a moment ago: nothing listens there.
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = loadgen.OpenLoopClient("127.0.0.1", port, "/infer", b"{}", max_connections=2)
        try:
            return await client.run_step(rate=100, duration=0.05)
        finally:
            await client.close()

    step = asyncio.run(refused())
    assert (step.sent, step.ok, step.errors) == (5, 0, 5)


def test_saturation_counts_answers_and_errors() -> None:
    async def saturate(status: int) -> loadgen.SaturationResult:
        tiny = _TinyServer()
        tiny.status = status
        server = await asyncio.start_server(tiny.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            result = await loadgen.saturate("127.0.0.1", port, "/infer", b"{}", 3, 0.05)
        finally:
            server.close()
            await server.wait_closed()
        assert result.ok + result.errors == tiny.requests
        return result

    good = asyncio.run(saturate(200))
    assert good.ok > 0
    assert good.errors == 0
    bad = asyncio.run(saturate(503))
    assert bad.ok == 0
    assert bad.errors > 0
    assert bad.to_json()["p50_ms"] is None
