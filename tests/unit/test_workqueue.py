"""The reconcile work queue: dedup, no concurrent reconcile of a key, requeue, backoff."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from modelops.handlers.workqueue import Key, WorkQueue

A = Key("Model", "ns", "a")
B = Key("Model", "ns", "b")


async def _until(pred: object) -> None:
    """Poll ``pred`` for up to 2 s (the queue has no hook to wait on)."""
    assert callable(pred)
    for _ in range(2000):
        if pred():
            return
        await asyncio.sleep(0.001)
    pytest.fail("condition not reached in time")


def test_adds_collapse_and_keys_never_run_concurrently() -> None:
    calls: list[Key] = []
    running: set[Key] = set()
    overlap: list[Key] = []
    gate = asyncio.Event()

    async def reconcile(key: Key) -> float | None:
        if key in running:
            overlap.append(key)
        running.add(key)
        calls.append(key)
        await gate.wait()
        running.discard(key)
        return None

    async def scenario() -> None:
        q = WorkQueue(reconcile, workers=4)
        q.start()
        for _ in range(5):
            q.add(A)
        q.add(B)
        await _until(lambda: len(calls) == 2)
        q.add(A)  # while A runs: exactly one more run afterwards, never in parallel
        q.add(A)
        gate.set()
        await _until(lambda: len(calls) == 3)
        await asyncio.sleep(0.05)  # give a wrong implementation time to run A a 4th time
        await q.stop()

    asyncio.run(scenario())
    assert sorted(calls) == [A, A, B]
    assert overlap == []


def test_requeue_after_and_error_backoff() -> None:
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def reconcile(key: Key) -> float | None:
            calls.append(loop.time())
            if len(calls) == 1:
                raise RuntimeError("boom")  # retried after base_backoff
            if len(calls) == 2:
                return 0.05  # asked to look again
            return None

        q = WorkQueue(reconcile, workers=1, base_backoff=0.05)
        q.start()
        q.add(A)
        await _until(lambda: len(calls) == 3)
        await q.stop()

    asyncio.run(scenario())
    assert calls[1] - calls[0] >= 0.04
    assert calls[2] - calls[1] >= 0.04


def test_forget_cancels_pending_requeue() -> None:
    calls: list[Key] = []

    async def scenario() -> None:
        async def reconcile(key: Key) -> float | None:
            calls.append(key)
            return 0.05

        q = WorkQueue(reconcile, workers=1)
        q.start()
        q.add(A)
        await _until(lambda: len(calls) == 1)
        q.forget(A)
        await asyncio.sleep(0.15)
        await q.stop()

    asyncio.run(scenario())
    assert calls == [A]


def test_a_gone_object_keeps_no_timer() -> None:
    """Regression (issue 11.2): a reconcile that finds its object gone returns None, and the
    queue must not keep re-adding the key every resync until the process restarts."""
    calls: list[Key] = []

    async def scenario() -> None:
        async def reconcile(key: Key) -> float | None:
            calls.append(key)
            return 0.01 if len(calls) == 1 else None  # second run: the object is gone

        q = WorkQueue(reconcile, workers=1)
        q.start()
        q.add(A)
        await _until(lambda: len(calls) == 2 and not q.pending(A))
        await asyncio.sleep(0.05)  # a wrong implementation would run A again meanwhile
        assert not q.pending(A)
        await q.stop()

    asyncio.run(scenario())
    assert calls == [A, A]


def test_a_failing_key_waits_out_its_backoff_unless_its_spec_changes() -> None:
    """Regression (issue 11.12): the failing reconcile's own writes come back as watch events;
    they must not start the next attempt before the backoff, or it retries as fast as it
    writes. A spec change (urgent) runs at once; the backoff keeps growing otherwise."""
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def reconcile(key: Key) -> float | None:
            calls.append(loop.time())
            raise RuntimeError("boom")

        q = WorkQueue(reconcile, workers=1, base_backoff=0.25, max_backoff=10)
        q.start()
        q.add(A)
        await _until(lambda: len(calls) == 1)
        for _ in range(20):  # events caused by the failed attempt's writes
            q.add(A)
            await asyncio.sleep(0.002)
        assert len(calls) == 1
        await _until(lambda: len(calls) == 2)  # the backoff timer
        assert calls[1] - calls[0] >= 0.24
        q.add(A, urgent=True)  # the spec changed: try now
        await _until(lambda: len(calls) == 3)
        assert calls[2] - calls[1] < 0.5  # before the second backoff (0.5 s) was due
        await q.stop()

    asyncio.run(scenario())


def test_backoff_grows_across_timer_retries() -> None:
    calls: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def reconcile(key: Key) -> float | None:
            calls.append(loop.time())
            raise RuntimeError("boom")

        q = WorkQueue(reconcile, workers=1, base_backoff=0.05, max_backoff=10)
        q.start()
        q.add(A)
        await _until(lambda: len(calls) == 4)
        await q.stop()

    asyncio.run(scenario())
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[2] >= 0.19  # 0.05, 0.1, 0.2: the timer's retry does not reset the count


def test_urgent_keys_go_first_and_a_queued_key_moves_up() -> None:
    """Issue 12: what a user just asked for (urgent: a new object, a spec change) is served
    before follow-ups (children's and status changes, timers), so a burst of new
    TrainingRuns gets its Jobs before earlier runs' status is recorded."""
    calls: list[Key] = []
    gate = asyncio.Event()
    keys = [Key("TrainingRun", "ns", str(i)) for i in range(5)]

    async def scenario() -> None:
        async def reconcile(key: Key) -> float | None:
            if not calls:
                await gate.wait()  # hold the only worker while the queue fills
            calls.append(key)
            return None

        q = WorkQueue(reconcile, workers=1)
        q.start()
        q.add(A)
        await asyncio.sleep(0.01)  # A is being reconciled
        q.add(keys[0])  # follow-ups, queued first...
        q.add(keys[1])
        q.add(keys[2], urgent=True)  # ...then new objects
        q.add(keys[3], urgent=True)
        q.add(keys[1], urgent=True)  # a queued follow-up whose spec changed moves up
        q.add(keys[4])
        q.add(keys[2])  # a plain add never moves an urgent key down
        gate.set()
        await _until(lambda: len(calls) == 6)
        await asyncio.sleep(0.02)  # a wrong implementation would run a superseded entry
        await q.stop()

    asyncio.run(scenario())
    assert calls == [A, keys[2], keys[3], keys[1], keys[0], keys[4]]


def test_an_urgent_add_while_running_reruns_the_key_urgently() -> None:
    calls: list[Key] = []
    gate = asyncio.Event()

    async def scenario() -> None:
        async def reconcile(key: Key) -> float | None:
            if not calls:
                await gate.wait()
            calls.append(key)
            return None

        q = WorkQueue(reconcile, workers=1)
        q.start()
        q.add(A)
        await asyncio.sleep(0.01)
        q.add(B)  # a follow-up
        q.add(A, urgent=True)  # A's spec changed while it was reconciled
        gate.set()
        await _until(lambda: len(calls) == 3)
        await q.stop()

    asyncio.run(scenario())
    assert calls == [A, A, B]
