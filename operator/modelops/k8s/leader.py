"""Leader election with a ``coordination.k8s.io/v1`` Lease, the way client-go does it.

Every replica runs a :class:`LeaderElector`. The one whose identity is in the Lease's
``holderIdentity`` is the leader: it renews ``renewTime`` every retry period and is the only
one that reconciles. The others try to take the Lease every retry period, and may take it only
when it is free (released, or never held) or when it has not changed for a whole lease
duration *as measured by their own clock* since they last saw it change — the holder's
``renewTime`` is never compared with the local time, so clock skew between nodes does not
matter. Every write carries the ``resourceVersion`` it was computed from: of two replicas that
try at once, the API server lets exactly one through (the other gets 409 Conflict).

A leader that has not renewed for the renew deadline (shorter than the lease duration) stops
leading before any follower may take over. A leader that stops gracefully releases the Lease,
so a follower takes over at its next retry instead of waiting out the duration.

The decisions are pure functions over the observed Lease and an injected clock; the
:class:`LeaseLock` is the only code here that talks to the API server.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelops import __version__
from modelops.k8s.client import api_client

log = logging.getLogger(__name__)

USER_AGENT = f"modelops-leader-election/{__version__}"
"""The elector's own client says who it is: audit logs tell its Lease writes apart from the
reconciles' (``modelops/…``)."""


@dataclass(frozen=True)
class LeaseTiming:
    """How leadership is kept and taken (seconds); see ``OperatorSettings``."""

    duration: int
    renew_deadline: float
    retry_period: float


@dataclass(frozen=True)
class LeaseRecord:
    """What election reads of a Lease."""

    holder: str | None
    duration: int | None
    acquire_time: datetime | None
    transitions: int
    resource_version: str


# -- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """A Lease as this replica last saw it, and when (local monotonic seconds) it last saw it
    *change*: expiry is measured from there, never from the holder's ``renewTime``."""

    record: LeaseRecord | None
    changed_at: float


def observe(previous: Observation | None, record: LeaseRecord | None, now: float) -> Observation:
    """Fold a fresh read of the Lease into what was observed before."""
    if previous is not None and _same(previous.record, record):
        return previous
    return Observation(record, now)


def _same(a: LeaseRecord | None, b: LeaseRecord | None) -> bool:
    if a is None or b is None:
        return a is b
    # Every write changes the resourceVersion, a renewal included.
    return a.resource_version == b.resource_version


def may_take(observed: Observation, identity: str, timing: LeaseTiming, now: float) -> bool:
    """Whether ``identity`` may write itself into the Lease now: it is free, already ours, or
    its holder has not renewed it for a whole lease duration."""
    record = observed.record
    if record is None or not record.holder or record.holder == identity:
        return True
    duration = record.duration or timing.duration
    return now - observed.changed_at >= duration


def claim(current: LeaseRecord | None, identity: str, timing: LeaseTiming, now: datetime) -> Any:
    """The Lease spec that makes ``identity`` the holder (a renewal if it holds it already)."""
    ours = current is not None and current.holder == identity
    transitions = current.transitions if current is not None else 0
    return client.V1LeaseSpec(
        holder_identity=identity,
        lease_duration_seconds=timing.duration,
        acquire_time=current.acquire_time if ours and current is not None else now,
        renew_time=now,
        lease_transitions=transitions if ours or current is None else transitions + 1,
    )


def released(current: LeaseRecord, now: datetime) -> Any:
    """The Lease spec of a leader that steps down: no holder, and a duration of one second for
    clients that do not treat an empty holder as free."""
    return client.V1LeaseSpec(
        lease_duration_seconds=1,
        acquire_time=now,
        renew_time=now,
        lease_transitions=current.transitions,
    )


def deadline_passed(last_renewed: float, timing: LeaseTiming, now: float) -> bool:
    """Whether a leader that last renewed at ``last_renewed`` must stop leading."""
    return now - last_renewed >= timing.renew_deadline


def jittered(period: float, rng: Callable[[], float] = random.random) -> float:
    """A follower's wait between attempts, spread so that replicas do not retry in step."""
    return period * (1.0 + 0.2 * rng())


# -- the API server ----------------------------------------------------------------------------


def connect(kubeconfig: str | None = None) -> client.ApiClient:
    """A client of its own for the Lease, so that renewals never queue behind reconciles in a
    shared connection pool (same kubeconfig/in-cluster rules as ``Kube.connect``)."""
    return api_client(kubeconfig, USER_AGENT)


class LeaseLock:
    """One Lease, read and written with resourceVersion preconditions.

    Every method blocks (call it from a thread); each request gives up after
    ``request_timeout`` seconds.
    """

    def __init__(
        self, api: client.ApiClient, namespace: str, name: str, request_timeout: float
    ) -> None:
        self._api = client.CoordinationV1Api(api)
        self.namespace = namespace
        self.name = name
        self._timeout = request_timeout

    def __str__(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    def get(self) -> LeaseRecord | None:
        """The Lease, or None when it does not exist yet."""
        try:
            lease = self._api.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return _record(lease)

    def write(self, current: LeaseRecord | None, spec: Any) -> LeaseRecord | None:
        """Create the Lease (``current`` None) or replace the version ``current`` was read
        from; None when someone else wrote it first (409 Conflict: read again)."""
        metadata = client.V1ObjectMeta(
            name=self.name,
            namespace=self.namespace,
            resource_version=current.resource_version if current is not None else None,
        )
        body = client.V1Lease(metadata=metadata, spec=spec)
        try:
            if current is None:
                lease = self._api.create_namespaced_lease(
                    self.namespace, body, _request_timeout=self._timeout
                )
            else:
                lease = self._api.replace_namespaced_lease(
                    self.name, self.namespace, body, _request_timeout=self._timeout
                )
        except ApiException as e:
            if e.status == 409:
                return None
            raise
        return _record(lease)


def _record(lease: Any) -> LeaseRecord:
    spec = lease.spec or client.V1LeaseSpec()
    return LeaseRecord(
        holder=spec.holder_identity or None,
        duration=spec.lease_duration_seconds,
        acquire_time=spec.acquire_time,
        transitions=spec.lease_transitions or 0,
        resource_version=lease.metadata.resource_version,
    )


# -- the elector -------------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """Acquires, renews and releases one Lease for one identity.

    ``run`` returns only when leadership, once acquired, is lost; until it is acquired it
    keeps trying. ``leading`` says whether this replica leads right now.
    """

    def __init__(
        self,
        lock: LeaseLock,
        identity: str,
        timing: LeaseTiming,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.lock = lock
        self.identity = identity
        self.timing = timing
        self.leading = False
        self._clock = clock
        self._wall = wall
        self._observed: Observation | None = None

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking): True if this replica holds the Lease afterwards."""
        record = self.lock.get()
        self._observed = observe(self._observed, record, self._clock())
        if not may_take(self._observed, self.identity, self.timing, self._clock()):
            return False
        written = self.lock.write(record, claim(record, self.identity, self.timing, self._wall()))
        if written is None:
            return False
        self._observed = Observation(written, self._clock())
        return True

    def holder(self) -> str | None:
        """Who held the Lease when this replica last read or wrote it."""
        observed = self._observed
        return observed.record.holder if observed is not None and observed.record else None

    def release(self) -> bool:
        """Step down (blocking): free the Lease if this replica still holds the version it
        last wrote. True if released."""
        observed = self._observed
        self.leading = False
        if observed is None or observed.record is None or observed.record.holder != self.identity:
            return False
        written = self.lock.write(observed.record, released(observed.record, self._wall()))
        if written is not None:
            self._observed = Observation(written, self._clock())
        return written is not None

    async def _attempt(self, within: float) -> bool:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.try_acquire_or_renew), within)
        except TimeoutError:
            log.warning("%s: no answer from the API server in %.1fs", self.lock, within)
        except Exception as e:  # any failure to reach or write the Lease is a failed attempt
            log.warning("Could not acquire or renew %s: %s", self.lock, e)
        return False

    async def run(self, on_started: Callable[[], None]) -> None:
        """Try until this replica leads, call ``on_started``, then renew until the renew
        deadline passes without a successful renewal, and return."""
        log.info("Waiting to acquire %s as %s", self.lock, self.identity)
        while True:
            if await self._attempt(self.timing.renew_deadline):
                break
            await asyncio.sleep(jittered(self.timing.retry_period))
        self.leading = True
        log.info("Acquired %s: %s leads", self.lock, self.identity)
        on_started()
        last_renewed = self._clock()
        while True:
            await asyncio.sleep(self.timing.retry_period)
            left = last_renewed + self.timing.renew_deadline - self._clock()
            if left > 0 and await self._attempt(left):
                last_renewed = self._clock()
                continue
            holder = self.holder()
            if holder is not None and holder != self.identity:
                self.leading = False
                log.error("Lost %s: %s holds it now", self.lock, holder)
                return
            if deadline_passed(last_renewed, self.timing, self._clock()):
                self.leading = False
                log.error(
                    "Lost %s: not renewed for %.1fs (renew deadline)",
                    self.lock,
                    self._clock() - last_renewed,
                )
                return
