"""The measuring half of every contender program (standard library only).

``run.py`` starts each contender as a fresh process: ``contender_*.py --data DIR --out FILE``.
:func:`measured_main` gives them one shape, so they are measured the same way:

1. pin the process to one CPU and cap its address space (before the heavy imports, so any
   thread pool a library starts inherits both);
2. ``prepare``: load the arrays into the contender's input format and warm up on a small slice
   (first-call costs such as lazy imports are not counted, for any contender);
3. reset the kernel's peak-RSS mark (``/proc/self/clear_refs``), note the RSS, start the clocks;
4. ``run``: the measured work, returning verdicts, scores and a per-phase breakdown;
5. read the clocks and the peak RSS since the reset, and write everything as JSON.

So ``peak_rss_mib`` is the process peak during the measured work only, ``baseline_rss_mib`` what
it held before (interpreter, libraries, the loaded data), and their difference the work's own
memory. The parent also records the whole process's peak from ``wait4``.
"""

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

Inputs = TypeVar("Inputs")

_KIB_PER_MIB = 1024


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (VmRSS, VmHWM), or None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _clear_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mib(kib: int | None) -> float | None:
    return None if kib is None else kib / _KIB_PER_MIB


class Breakdown:
    """Wall time per named phase of the measured work (phases may repeat and add up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the ``with`` block and add it to ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def arguments(description: str) -> argparse.Namespace:
    """The command line every contender takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, required=True, help="data directory (dataset.py)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON result")
    parser.add_argument("--variant", default="", help="contender variant, if it has several")
    parser.add_argument(
        "--methods",
        type=Path,
        help="JSON {feature: [method, threshold]} for a variant matched to another's choice",
    )
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: do not pin)")
    parser.add_argument(
        "--memory-limit-gib",
        type=float,
        default=0.0,
        help="address-space cap (RLIMIT_AS); 0 for none",
    )
    parser.add_argument("--warmup-rows", type=int, default=2000, help="rows of the warm-up slice")
    return parser.parse_args()


def measured_main(
    description: str,
    prepare: Callable[[argparse.Namespace], Inputs],
    run: Callable[[Inputs, argparse.Namespace, Breakdown], dict[str, Any]],
    versions: Callable[[], dict[str, str]],
) -> None:
    """Run one contender as described in the module docstring and write its JSON result.

    ``run`` returns ``{"columns": {name: {"verdicts": [...], "scores": [...], "methods": [...]}},
    ...}``; anything else it returns is kept as is. ``versions`` names the packages that did the
    work.
    """
    args = arguments(description)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    if args.memory_limit_gib > 0:
        cap = int(args.memory_limit_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    inputs = prepare(args)
    gc.collect()
    peak_reset = _clear_peak()
    baseline = _status_kib("VmRSS")
    breakdown = Breakdown()
    wall_start, cpu_start = time.perf_counter(), _cpu_seconds()
    outcome = run(inputs, args, breakdown)
    wall, cpu = time.perf_counter() - wall_start, _cpu_seconds() - cpu_start
    peak = _status_kib("VmHWM")

    result = {
        "wall_s": wall,
        "cpu_s": cpu,
        "baseline_rss_mib": _mib(baseline),
        "peak_rss_mib": _mib(peak) if peak_reset else None,
        "peak_reset": peak_reset,
        "breakdown_s": breakdown.seconds,
        "python": platform.python_version(),
        "executable": sys.executable,
        "versions": versions(),
        **outcome,
    }
    args.out.write_text(json.dumps(result))
