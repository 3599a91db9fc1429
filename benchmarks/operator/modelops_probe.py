"""``python -m modelops`` with a probe of its work queue, for the soak only.

The operator exports no gauge of its work queue, and the soak must show that no key stays
queued (or timed for a re-add) once its object is gone. This runs the unchanged operator's
``main`` with one more kopf start-up handler, which every second, on the operator's own event
loop, writes to ``$MODELOPS_BENCH_PROBE`` (JSON): how many keys are queued, being reconciled
or waiting on a timer, which of them name an object the operator's cache no longer holds, and
the sizes of the cache's stores. It reads the queue's private sets (the queue's public
``pending(key)`` needs the keys to ask about, and the stale ones are what we are looking for).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import kopf

import modelops.handlers.wiring  # noqa: F401  (registers the operator's handlers first)
from modelops.__main__ import main
from modelops.api import API_VERSION

_tasks: list[asyncio.Task[None]] = []


def snapshot(memo: kopf.Memo) -> dict[str, Any]:
    """The queue's keys, and those of them whose object is no longer in the cache."""
    queue, cache = memo.deps.queue, memo.cache
    keys = set(queue._queued) | set(queue._processing) | set(queue._timers)
    stale = []
    for key in sorted(keys):
        source = cache.source_for(API_VERSION, key.kind)
        if source is None or cache.get(source, key.namespace, key.name) is None:
            stale.append(str(key))
    return {
        "queued": len(queue._queued),
        "processing": len(queue._processing),
        "timers": len(queue._timers),
        "failing": len(queue._failures),
        "stale": stale,
        "cache": cache.sizes(),
        "generations": len(memo.deps.state.get("generations", {})),
    }


@kopf.on.startup()
async def probe(memo: kopf.Memo, **_: Any) -> None:
    """Start writing snapshots once the operator's start-up handler has built its queue."""
    path = Path(os.environ["MODELOPS_BENCH_PROBE"])

    async def loop() -> None:
        while True:
            if getattr(memo, "cache", None) is None or getattr(memo, "deps", None) is None:
                # The operator's own start-up handler has not built them yet.
                await asyncio.sleep(0.2)
                continue
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(snapshot(memo)))
            tmp.replace(path)
            await asyncio.sleep(1)

    _tasks.append(asyncio.create_task(loop()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
