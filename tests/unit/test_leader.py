"""Leader election decisions (modelops.k8s.leader), pure: a Lease as read, and a clock.

The elector's requests to the API server are covered by tests/cluster/test_leader.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from modelops.k8s.leader import (
    LeaseRecord,
    LeaseTiming,
    Observation,
    claim,
    deadline_passed,
    jittered,
    may_take,
    observe,
    released,
)
from modelops.settings import OperatorSettings

TIMING = LeaseTiming(duration=15, renew_deadline=10.0, retry_period=2.0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def lease(holder: str | None, rv: str = "1", **kw: object) -> LeaseRecord:
    fields: dict[str, object] = {
        "duration": 15,
        "acquire_time": T0,
        "transitions": 0,
        **kw,
    }
    return LeaseRecord(holder=holder, resource_version=rv, **fields)  # type: ignore[arg-type]


def test_a_missing_free_or_own_lease_may_be_taken_at_once() -> None:
    for record in (None, lease(None), lease(""), lease("me")):
        assert may_take(Observation(record, 100.0), "me", TIMING, 100.0)


def test_someone_elses_lease_is_taken_only_a_full_duration_after_it_last_changed() -> None:
    seen = observe(None, lease("other", "1"), 100.0)
    assert not may_take(seen, "me", TIMING, 114.9)
    assert may_take(seen, "me", TIMING, 115.0)


def test_a_renewal_restarts_the_wait() -> None:
    seen = observe(None, lease("other", "1"), 100.0)
    seen = observe(seen, lease("other", "2"), 110.0)  # renewed: a new resourceVersion
    assert not may_take(seen, "me", TIMING, 120.0)
    assert may_take(seen, "me", TIMING, 125.0)


def test_an_unchanged_lease_keeps_the_time_it_was_first_seen() -> None:
    seen = observe(None, lease("other", "1"), 100.0)
    assert observe(seen, lease("other", "1"), 110.0).changed_at == 100.0
    assert observe(seen, None, 110.0) == Observation(None, 110.0)


def test_the_holders_own_duration_wins_over_ours() -> None:
    seen = observe(None, lease("other", duration=60), 100.0)
    assert not may_take(seen, "me", TIMING, 130.0)
    assert may_take(seen, "me", TIMING, 160.0)


def test_taking_over_counts_a_transition_and_renewing_does_not() -> None:
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    first = claim(None, "me", TIMING, now)
    assert (first.holder_identity, first.lease_transitions, first.acquire_time) == ("me", 0, now)
    assert first.lease_duration_seconds == 15
    renewal = claim(lease("me", transitions=3), "me", TIMING, now)
    assert (renewal.lease_transitions, renewal.acquire_time, renewal.renew_time) == (3, T0, now)
    takeover = claim(lease("other", transitions=3), "me", TIMING, now)
    assert (takeover.lease_transitions, takeover.acquire_time) == (4, now)


def test_a_released_lease_has_no_holder() -> None:
    spec = released(lease("me", transitions=2), T0)
    assert spec.holder_identity is None
    assert (spec.lease_duration_seconds, spec.lease_transitions) == (1, 2)
    assert may_take(Observation(lease(None), 0.0), "other", TIMING, 0.0)


def test_the_leader_stops_at_the_renew_deadline() -> None:
    assert not deadline_passed(100.0, TIMING, 109.9)
    assert deadline_passed(100.0, TIMING, 110.0)


def test_followers_retry_within_a_fifth_more_than_the_period() -> None:
    assert jittered(2.0, lambda: 0.0) == 2.0
    assert jittered(2.0, lambda: 0.999) == pytest.approx(2.4, abs=0.01)


def test_settings_refuse_a_renew_deadline_a_follower_could_overtake() -> None:
    with pytest.raises(ValidationError, match="renew_deadline_seconds < lease_duration"):
        OperatorSettings(lease_duration_seconds=10, renew_deadline_seconds=10)
    with pytest.raises(ValidationError):
        OperatorSettings(renew_deadline_seconds=2, retry_period_seconds=2)


def test_identity_is_the_pod_name_else_host_and_pid() -> None:
    assert OperatorSettings(pod_name="modelops-7d9-x2").identity() == "modelops-7d9-x2"
    assert OperatorSettings().identity().endswith(f"_{__import__('os').getpid()}")


@pytest.mark.parametrize(
    ("settings", "namespace"),
    [
        ({"leader_election_namespace": "ops", "pod_namespace": "pod"}, "ops"),
        ({"pod_namespace": "pod", "namespaces": ["a"]}, "pod"),
        ({"namespaces": ["ml-*", "a", "b"]}, "a"),
        ({"namespaces": ["ml-*"]}, None),
        ({"all_namespaces": True}, None),
    ],
)
def test_the_lease_lives_in_the_pods_namespace_else_the_first_watched_one(
    settings: dict[str, object], namespace: str | None
) -> None:
    assert OperatorSettings(**settings).lease_namespace() == namespace  # type: ignore[arg-type]
