"""Windowing of cumulative histogram counters scraped from several serving pods.

Each serving pod exports one histogram per feature; its bucket counters only grow, from pod
(or container) start. The operator scrapes the pods now and then and needs the counts observed
during the last ``window`` seconds, summed over pods. :class:`Windower` turns successive
scrapes into those counts, the way Prometheus' ``increase()`` turns a counter into increments:

- **Increments.** A pod's contribution at a scrape is its counters minus the ones of its
  previous scrape, stamped with the scrape time ``t``; it covers ``(t_previous, t]``. An
  increment is in the window at time ``now`` while ``t > now - window``. The window therefore
  has the resolution of the scrape interval: it may include up to one interval of
  observations made just before ``now - window``.
- **Counter resets.** If any bucket of any feature of a pod went down, the pod restarted (a
  container restart keeps the pod name): its new counters are all increase since the reset, so
  they count in full — Prometheus treats a decrease the same way. Per pod rather than per
  bucket, because a restart resets every counter at once and a bucket that happens to be
  higher again after the restart would otherwise be under-counted. A pod id that shows a new
  start time is a new pod under a reused name, and is treated as reset too.
- **New pods.** The first scrape of a pod counts its counters in full if the pod started
  within the window (``started_at > now - window``): all its observations were made since, and
  a new replica's first minutes of traffic are not lost. Otherwise — start time unknown, or a
  pod that was running before the window (e.g. after an operator restart) — the first scrape
  is a baseline and counts nothing; counting it would put hours of history into the window.
- **Pods that go away** (deleted, or not scraped this time) keep the increments they already
  contributed until those age out. Their last counters are kept for one window, so a pod
  that misses a scrape and comes back continues from where it was rather than being counted
  in full twice; after a window of silence it is forgotten and treated as new.

State is plain Python and numpy kept in operator memory, bounded by the window: increments and
pods older than the window are dropped on every :meth:`Windower.observe`. Time is injected
(seconds, any epoch, never decreasing), so the class is deterministic under test.
"""

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


def buckets_from_le(cumulative: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Turn Prometheus ``_bucket`` values (cumulative over ``le``, ending with ``+Inf``) into
    per-bucket counts, the form :class:`Windower` and the reference histograms use."""
    values = np.asarray(cumulative, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("Histogram buckets must be a non-empty 1-D sequence")
    counts = np.diff(values, prepend=0.0)
    if not np.all(np.isfinite(values)) or np.any(counts < 0):
        raise ValueError("Histogram buckets must be finite and non-decreasing in le")
    return counts


@dataclass(frozen=True)
class PodScrape:
    """One pod's histograms at one scrape.

    ``counts`` maps a feature to its per-bucket counter values (not cumulative over ``le``;
    see :func:`buckets_from_le`). ``started_at`` is the pod's start time on the same clock as
    the ``now`` passed to :meth:`Windower.observe`, or None if unknown.
    """

    counts: Mapping[str, npt.ArrayLike]
    started_at: float | None = None


@dataclass
class _PodState:
    counters: npt.NDArray[np.float64]
    seen_at: float
    started_at: float | None


def _replaced(state: _PodState, scrape: PodScrape) -> bool:
    """A pod name reused by a new pod (a StatefulSet's, say) shows a new start time."""
    return (
        state.started_at is not None
        and scrape.started_at is not None
        and scrape.started_at != state.started_at
    )


class Windower:
    """Counts per feature and bucket observed by all pods in the last ``window_seconds``.

    ``buckets`` gives each watched feature's number of buckets (the reference's); scrapes
    must report every watched feature with that many buckets, and may report others, which
    are ignored. A new reference (another model version) needs a new ``Windower``.
    """

    def __init__(self, window_seconds: float, buckets: Mapping[str, int]) -> None:
        if not window_seconds > 0:
            raise ValueError(f"The window must be positive, got {window_seconds}")
        if not buckets or any(n < 1 for n in buckets.values()):
            raise ValueError("Every watched feature needs at least one bucket")
        self._window = float(window_seconds)
        self._slices: dict[str, slice] = {}
        offset = 0
        for feature, n in buckets.items():
            self._slices[feature] = slice(offset, offset + n)
            offset += n
        self._size = offset
        self._pods: dict[str, _PodState] = {}
        # Increments summed over pods, one flat vector per scrape, oldest first.
        self._increments: deque[tuple[float, npt.NDArray[np.float64]]] = deque()
        self._last_now: float | None = None

    @property
    def window_seconds(self) -> float:
        """The window length in seconds."""
        return self._window

    @property
    def pods(self) -> frozenset[str]:
        """Pods whose last counters are remembered (seen within the window)."""
        return frozenset(self._pods)

    def observe(self, now: float, scrapes: Mapping[str, PodScrape]) -> None:
        """Take in the scrapes made at ``now``, one per pod id that answered.

        Raises :class:`ValueError` — before changing any state — if ``now`` is earlier than the
        previous call's or a scrape lacks a watched feature or has the wrong number of buckets.
        """
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"Scrape time went backwards: {now} < {self._last_now}")
        vectors = {pod: self._flatten(pod, scrape) for pod, scrape in scrapes.items()}
        cutoff = now - self._window
        total = np.zeros(self._size)
        for pod, counters in vectors.items():
            state = self._pods.get(pod)
            if state is None:
                started_at = scrapes[pod].started_at
                if started_at is not None and started_at > cutoff:
                    total += counters
            elif np.any(counters < state.counters) or _replaced(state, scrapes[pod]):
                total += counters
            else:
                total += counters - state.counters
            self._pods[pod] = _PodState(counters, now, scrapes[pod].started_at)
        if np.any(total):
            self._increments.append((now, total))
        self._last_now = now
        while self._increments and self._increments[0][0] <= cutoff:
            self._increments.popleft()
        for pod in [p for p, s in self._pods.items() if s.seen_at <= cutoff]:
            del self._pods[pod]

    def counts(self, now: float) -> dict[str, npt.NDArray[np.float64]]:
        """Return, per watched feature, the bucket counts observed in ``(now - window, now]``."""
        cutoff = now - self._window
        total = np.zeros(self._size)
        for stamp, increment in self._increments:
            if cutoff < stamp <= now:
                total += increment
        return {feature: total[part].copy() for feature, part in self._slices.items()}

    def _flatten(self, pod: str, scrape: PodScrape) -> npt.NDArray[np.float64]:
        flat = np.empty(self._size)
        for feature, part in self._slices.items():
            if feature not in scrape.counts:
                raise ValueError(f"Pod {pod} exports no histogram for feature {feature}")
            values = np.asarray(scrape.counts[feature], dtype=np.float64)
            expected = part.stop - part.start
            if values.shape != (expected,):
                raise ValueError(
                    f"Pod {pod} exports {values.size} buckets for feature {feature}, "
                    f"expected {expected}"
                )
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise ValueError(f"Pod {pod} exports invalid counters for feature {feature}")
            flat[part] = values
        return flat
